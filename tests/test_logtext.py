"""log_safe: text a client or a script chose can neither end a log line nor forge another."""
from __future__ import annotations

import pytest

from backworks.logtext import log_safe


@pytest.mark.parametrize(("value", "expected"), [
    ("GET /x", "GET /x"),
    ("/x\r\n2026-01-01 INFO forged", "/x\\x0d\\x0a2026-01-01 INFO forged"),
    ("a\x00b\x7fc\x85d", "a\\x00b\\x7fc\\x85d"),
    ("line\u2028separator\u2029", "line\\u2028separator\\u2029"),
    ("tab\there", "tab\\x09here"),
    ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),  # printable non-ASCII text is left alone
])
def test_control_characters_are_written_as_escapes(value, expected):
    assert log_safe(value) == expected


def test_a_value_that_is_not_text_is_logged_as_its_str():
    assert log_safe(42) == "42"
    assert log_safe(b"a\nb") == "b'a\\nb'"  # str() of bytes already escapes
