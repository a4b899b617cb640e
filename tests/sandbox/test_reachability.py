"""The reachability audit and the callable allow-list (docs/sandbox.md), as tests over everything scripts reach."""
from __future__ import annotations

import functools
import hashlib
import random
import types
import urllib.parse

import pytest

from backworks.sandbox import audit, callables, env


def test_no_object_reachable_from_builtins_or_facades_is_mutable():
    assert audit.shared_mutable() == []


@pytest.mark.parametrize("name, value, expected", [
    ("algorithms_available", set(hashlib.algorithms_available), "hashlib.algorithms_available: set"),
    ("sha256", random.Random().random, "hashlib.sha256: builtin_function_or_method"),
    ("new", functools.lru_cache(urllib.parse.urlsplit.__wrapped__), "hashlib.new: _lru_cache_wrapper"),
], ids=["host-set", "bound-method-of-shared-object", "lru-cache-wrapper"])
def test_audit_names_the_path_of_a_shared_mutable_object(monkeypatch, name, value, expected):
    names = dict(object.__getattribute__(env.FACADES["hashlib"], "_names"), **{name: value})
    monkeypatch.setitem(env.FACADES, "hashlib", env.Facade("hashlib", names))
    assert expected in audit.shared_mutable()


def test_every_reachable_callable_is_listed_as_bounded_or_wrapped():
    found = audit.reachable_callables()
    missing = sorted(f"{name} (at {path})" for name, (path, _) in found.items()
                     if name not in callables.BOUNDED and name not in callables.WRAPPED)
    assert missing == []
    assert sorted(set(callables.BOUNDED) & set(callables.WRAPPED)) == []
    assert sorted(name for name in [*callables.BOUNDED, *callables.WRAPPED] if name not in found) == []


def test_every_wrapped_callable_is_a_wrapper_of_the_sandbox_package():
    found = audit.reachable_callables()
    for name in callables.WRAPPED:
        obj = found[name][1]
        module = type(obj).__module__ if isinstance(obj, type) else getattr(obj, "__module__", "")
        assert isinstance(obj, (types.FunctionType, type)) and module.startswith("backworks.sandbox."), name


def test_every_bounded_callable_names_the_cap_that_bounds_it():
    for name, reason in callables.BOUNDED.items():
        assert any(cap in reason for cap in callables.CAPS), f"{name}: {reason}"


def test_a_new_reachable_callable_fails_the_allow_list(monkeypatch):
    names = dict(object.__getattribute__(env.FACADES["math"], "_names"), fresh=lambda: None)
    monkeypatch.setitem(env.FACADES, "math", env.Facade("math", names))
    assert "math.fresh" in audit.reachable_callables()
    assert "math.fresh" not in callables.BOUNDED and "math.fresh" not in callables.WRAPPED
