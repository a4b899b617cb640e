"""The request shape the modes and plugins see, built from a WSGI environ."""
from __future__ import annotations

import pytest
from werkzeug.wrappers import Request

from backworks.http import RequestData


# PATH_INFO as a WSGI server gives it: the request's bytes decoded as latin-1.
@pytest.mark.parametrize("path_info", ["/items", "//items/", "items", "", "/caf\u00c3\u00a9", "/bad\u00ff",
                                       "/%C3%A9"])
def test_the_received_path_is_werkzeugs_request_path(path_info):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path_info, "SERVER_NAME": "localhost", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http"}
    request = RequestData(environ, "x", {}, "rid", 1024, "127.0.0.1")
    assert request.received_path == request.path == Request(environ).path
    if path_info == "/caf\u00c3\u00a9":
        assert request.received_path == "/caf\u00e9"
