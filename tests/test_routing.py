"""Path syntax translation and route matching."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from backworks.errors import HTTPError
from backworks.routing import Router, route_key, to_rule


@pytest.mark.parametrize("path,rule", [
    ("/users", "/users"),
    ("/users/{id}", "/users/<id>"),
    ("/users/:id", "/users/<id>"),
    ("/users/{id:int}", "/users/<int:id>"),
    ("/files/{rest:path}", "/files/<path:rest>"),
    ("/files/*rest", "/files/<path:rest>"),
    ("/a/:x/b/{y}", "/a/<x>/b/<y>"),
])
def test_path_syntaxes_translate_to_rules(path, rule):
    assert to_rule(path) == rule


def test_route_key_ignores_parameter_names():
    assert route_key("/users/{id}") == route_key("/users/:user_id") == "/users/<>"
    assert route_key("/files/*rest") == route_key("/files/{tail:path}") == "/files/<path>"
    assert route_key("/users/{id:int}") != route_key("/users/{id}")


def test_unknown_parameter_type_is_refused():
    with pytest.raises(ValueError, match="unknown parameter type 'integer'"):
        to_rule("/a/{id:integer}")


def _router(*routes) -> Router:
    specs = [SimpleNamespace(name=name, routes=((path, methods),), path=path, methods=methods,
                             at=lambda field: field) for name, path, methods in routes]
    return Router(specs)


def _answer(router: Router, method: str, path: str):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "localhost", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "HTTP_HOST": "localhost"}
    try:
        return router.match(environ)
    except HTTPError as exc:
        return exc.status, exc.message, exc.headers


ROUTES = (("list", "/items", ("GET",)), ("create", "/items", ("POST",)), ("me", "/users/me", ("GET",)),
          ("user", "/users/{id}", ("GET", "DELETE")), ("slash", "/dir/", ("GET",)), ("cafe", "/café", ("GET",)))


@pytest.mark.parametrize("method,path", [
    ("GET", "/items"), ("HEAD", "/items"), ("POST", "/items"), ("PUT", "/items"), ("get", "/items"),
    ("GET", "/items/"), ("GET", "//items"), ("GET", "/users/me"), ("DELETE", "/users/me"), ("GET", "/users/7"),
    ("GET", "/dir"), ("GET", "/dir/"), ("GET", "/caf\xc3\xa9"), ("GET", "/nothing"), ("GET", ""),
])
def test_a_parameterless_route_answers_as_werkzeugs_matcher_does(method, path):
    router = _router(*ROUTES)
    matcher_only = _router(*ROUTES)
    matcher_only.static = {}
    assert _answer(router, method, path) == _answer(matcher_only, method, path)


def test_parameterless_routes_are_matched_without_the_matcher_and_get_their_own_params():
    router = _router(*ROUTES)
    assert router.static == {("/items", "GET"): "list", ("/items", "HEAD"): "list", ("/items", "POST"): "create",
                             ("/users/me", "GET"): "me", ("/users/me", "HEAD"): "me", ("/dir/", "GET"): "slash",
                             ("/dir/", "HEAD"): "slash"}
    first = _answer(router, "GET", "/items")
    first[1]["changed"] = True  # a plugin may change the params of its request
    assert _answer(router, "GET", "/items") == ("list", {})


PARAM_ROUTES = ROUTES + (("files", "/files/{rest:path}", ("GET",)), ("num", "/n/{id:int}", ("GET",)))


@pytest.mark.parametrize("method,path", [
    ("GET", "/users/7"), ("DELETE", "/users/7"), ("POST", "/users/7"), ("GET", "/files/a/b.txt"),
    ("GET", "/files/"), ("GET", "/n/12"), ("GET", "/n/x"), ("GET", "/files/caf\xc3\xa9"), ("HEAD", "/n/3"),
])
def test_a_route_with_parameters_answers_the_same_the_second_time_and_as_the_matcher_does(method, path):
    router = _router(*PARAM_ROUTES)
    fresh = _router(*PARAM_ROUTES)
    first, again = _answer(router, method, path), _answer(router, method, path)
    assert first == again == _answer(fresh, method, path)
    if type(first[1]) is dict:
        first[1]["changed"] = True  # a plugin may change the params of its request: the next one is not
        assert _answer(router, method, path) == again


def test_the_paths_remembered_are_bounded(monkeypatch):
    import backworks.routing as routing

    monkeypatch.setattr(routing, "RECENT_PATHS", 10)
    router = _router(*PARAM_ROUTES)
    for n in range(35):
        assert _answer(router, "GET", f"/users/{n}") == ("user", {"id": str(n)})
    assert 0 < len(router.recent) <= 10
    long_path = "/files/" + "x" * routing.RECENT_PATH_CHARS
    assert _answer(router, "GET", long_path)[0] == "files"
    assert all(len(path) <= routing.RECENT_PATH_CHARS for path, _ in router.recent)
