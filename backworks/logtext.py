"""Text fit for one log line: what a client or a script chose may not end the line or forge another."""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def log_safe(value) -> str:
    """Return text fit for one log line: CR, LF and other control characters written as escapes."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"
