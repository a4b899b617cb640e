"""Path syntax translation and route matching."""
from __future__ import annotations

import pytest

from backworks.routing import route_key, to_rule


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
