"""The admin ring of recent requests stays small whatever headers clients send."""
from __future__ import annotations

import io

from backworks.admin.recorder import MAX_HEADER_CHARS, RequestRecorder


def test_a_recorded_request_keeps_at_most_max_header_chars_of_each_header_value():
    recorder = RequestRecorder(5)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": io.BytesIO(),
               **{f"HTTP_X_H{n}": "v" * 8000 for n in range(100)}, "HTTP_SHORT": "ok"}
    for _ in range(10):
        recorder.record(environ, 200, 0.0, None, "id")
    assert len(recorder.recent) == 5
    headers = recorder.recent[-1][-1]
    assert len(headers) == 101 and headers[-1] == ("HTTP_SHORT", "ok")
    assert all(len(value) == MAX_HEADER_CHARS for key, value in headers[:-1])
