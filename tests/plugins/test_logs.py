"""Log records a plugin can cause through the server (issue 13, section 4): bounded per call and per minute."""
from __future__ import annotations

import logging

import pytest

from backworks.sandbox import logs
from tests.helpers.plugins import plugin_app

pytestmark = pytest.mark.timeout(120, method="thread")  # the inline sandbox owns SIGALRM


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_a_failing_noisy_plugin_writes_a_bounded_log(tmp_path, caplog, monkeypatch, isolation):
    monkeypatch.setattr(logs, "_windows", {})
    source = ("def before_request(request):\n    for i in range(100):\n        log.info('z' * 400)\n"
              "    raise ValueError('q' * 100000)\n")
    app, client = plugin_app(tmp_path, {"noisy": source},
                             {"noisy": {"isolation": isolation, "circuit_breaker": {"failure_threshold": 1000}}})
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(60):
                assert client.get("/echo").status_code == 200
    finally:
        app.extensions["backworks"].runtime.close()
    written = sum(len(r.getMessage()) for r in caplog.records if "noisy" in r.getMessage())
    assert written <= 256 * 1024 + 2 * 16 * 1024, written  # a minute's cap (+ the record that crossed it)
    messages = [r.getMessage() for r in caplog.records]
    assert "noisy.py: log limit of 262144 bytes a minute reached: its lines and failures are suppressed until the " \
           "minute is over" in messages
    assert any(m.startswith("noisy.py: log limit of 50 lines or 16384 bytes a call reached") for m in messages)
