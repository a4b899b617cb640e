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


def test_environ_headers_are_werkzeugs_lower_cased_and_keys_naming_one_header_are_joined():
    from werkzeug.datastructures import EnvironHeaders

    from backworks.http import environ_headers

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_ONE": "1", "HTTP_ACCEPT": "*/*",
               "CONTENT_TYPE": "", "CONTENT_LENGTH": "3", "HTTP_X_EMPTY": "", "wsgi.url_scheme": "http"}
    expected = {name.lower(): value for name, value in EnvironHeaders(environ).items()}
    assert environ_headers(environ) == expected == {"x-one": "1", "accept": "*/*", "content-length": "3",
                                                     "x-empty": ""}
    # A gateway's own spelling of a known header (HTTP_x_one names x-one too): both values, joined.
    twice = {**environ, "HTTP_x_one": "2"}
    assert environ_headers(twice)["x-one"] == "1, 2"
    assert environ_headers(environ) == expected  # the environ without it still takes the one-pass path
    # Keys seen for the first time, in an environ whose other keys are known.
    fresh = {**environ, "HTTP_X_FIRST_SEEN_NOW": "yes"}
    assert environ_headers(fresh)["x-first-seen-now"] == "yes"


def test_header_names_learnt_by_many_threads_at_once_never_fail_a_request():
    import sys
    import threading

    from backworks.http import environ_headers

    failures = []

    def learn(thread):
        for batch in range(20):
            environ = {f"HTTP_X_T{thread}_B{batch}_{n}": str(n) for n in range(8)}
            environ["REQUEST_METHOD"] = "GET"
            try:
                headers = environ_headers(environ)
                assert headers == {f"x-t{thread}-b{batch}-{n}": str(n) for n in range(8)}, headers
            except Exception as exc:  # noqa: BLE001 - the test reports every failure
                failures.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=learn, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


ENVIRON_KEYS = ["HTTP_HOST", "HTTP_ACCEPT", "HTTP_X_ONE", "HTTP_x_one", "CONTENT_TYPE", "CONTENT_LENGTH",
                "HTTP_CONTENT_TYPE", "HTTP_TRANSFER_ENCODING", "REQUEST_METHOD", "PATH_INFO", "wsgi.input",
                "SERVER_NAME"]  # (not "HTTP_": werkzeug names it "", servers refuse an empty header name)


def _environs():
    from hypothesis import strategies as st

    return st.lists(st.tuples(st.sampled_from(ENVIRON_KEYS), st.sampled_from(["", "1", "a, b", "*/*"])),
                    max_size=10).map(dict)


def test_environ_headers_read_through_the_layout_cache_are_werkzeugs():
    """Whatever the keys, their order, repeats of one layout with other values, or a full layout cache: the
    headers are werkzeug's, lower-cased, keys naming one header joined; the raw HTTP_* pairs are the environ's."""
    from hypothesis import given, settings
    from werkzeug.datastructures import EnvironHeaders

    from backworks import http

    def werkzeug_headers(environ):
        joined: dict = {}
        for name, value in EnvironHeaders(environ).items():
            name = name.lower()
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        return joined

    @settings(max_examples=300, deadline=None)
    @given(_environs(), _environs())
    def check(environ, other):
        for sample in (environ, {key: other.get(key, "z") for key in environ}, other):  # one layout twice
            assert http.environ_headers(sample) == werkzeug_headers(sample)
            assert list(http.environ_headers(sample)) == list(werkzeug_headers(sample))
            assert http.environ_header_items(sample) == list(EnvironHeaders(sample).items())
            raw = {"HTTP_": "x", "HTTPS": "on", **sample}  # the admin ring's raw HTTP_* pairs, odd keys too
            assert http.environ_http_items(raw, 99) == [(k, v) for k, v in raw.items() if k[:5] == "HTTP_"]
            assert http.environ_http_items(raw, 1) == [(k, v[:1]) for k, v in raw.items() if k[:5] == "HTTP_"]

    check()
    full = dict.fromkeys(range(http.MAX_LAYOUTS))
    saved = dict(http._LAYOUTS)
    http._LAYOUTS.clear()
    http._LAYOUTS.update(full)
    try:
        check()  # emptied when full: every answer is still right, and it never holds more
        assert 0 < len(http._LAYOUTS) < http.MAX_LAYOUTS
    finally:
        http._LAYOUTS.clear()
        http._LAYOUTS.update(saved)


def test_the_header_caches_keep_no_long_client_chosen_names():
    """A client sending 8 KB header names (gunicorn's limit) leaves nothing of them in the caches: each such
    request is read as it comes, and gets werkzeug's headers."""
    from backworks import http

    for n in range(20):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "x",
                   **{f"HTTP_R{n}_H{h}_" + "A" * 8000: "v" for h in range(5)}}
        headers = http.environ_headers(environ)
        assert len(headers) == 6 and headers["host"] == "x"
    assert all(len(key) <= http._MAX_CACHED_KEY for key in http._HEADER_NAMES)
    assert all(sum(map(len, keys)) <= http._MAX_LAYOUT_CHARS for keys in http._LAYOUTS)
