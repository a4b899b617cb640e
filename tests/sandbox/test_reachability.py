"""The reachability audit and the callable allow-list (docs/sandbox.md), as tests over everything scripts reach."""
from __future__ import annotations

import functools
import gc
import hashlib
import random
import time
import types
import urllib.parse

import pytest
import re2

from backworks.sandbox import Budget, Sandbox, Step, audit, callables, compile_script, env


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


def test_no_reachable_callable_feeds_a_process_wide_cache():
    assert audit.cache_feeders() == []


@pytest.mark.parametrize("facade, name, value, expected", [
    ("urllib.parse", "urlparse", urllib.parse.urlparse, "feeds urllib.parse.urlsplit (an lru_cache)"),
    ("urllib.parse", "quote", urllib.parse.quote, "feeds urllib.parse._byte_quoter_factory (an lru_cache)"),
    ("urllib.parse", "urlencode", urllib.parse.urlencode, "feeds urllib.parse._byte_quoter_factory (an lru_cache)"),
    ("re", "sub", re2.sub, "feeds re2._Regexp._make (an lru_cache)"),
    ("re", "compile", re2.compile, "feeds re2._Regexp._make (an lru_cache)"),
    ("re", "fresh", re2._Regexp("a", re2.Options()).subn, "feeds re2._Match._split (its str template, through "
                                                           "match.expand)"),
    ("time", "strptime", time.strptime, "feeds _strptime._regex_cache and re._cache (one regex per format)"),
], ids=["stdlib-through-globals", "stdlib-nested", "default-value",
        "re2-module", "re2-classmethod", "known-python", "known-c"])
def test_audit_names_a_callable_that_feeds_a_process_wide_cache(monkeypatch, facade, name, value, expected):
    names = dict(object.__getattribute__(env.FACADES[facade], "_names"), **{name: value})
    monkeypatch.setitem(env.FACADES, facade, env.Facade(facade, names))
    assert f"{facade}.{name}: {expected}" in audit.cache_feeders()


def _lru_sizes() -> dict:
    """currsize of every lru_cache in the process."""
    return {id(obj): (obj, obj.cache_info().currsize) for obj in gc.get_objects()
            if isinstance(obj, functools._lru_cache_wrapper)}


# Every call passes distinct text to each library function that had a process-wide cache.
FEEDING = """
import re, random, time, datetime
from urllib.parse import urlparse, urljoin, urldefrag, urlsplit, quote, urlencode
def before_request(request):
    tag = str(random.random())
    re.sub("a", tag + "x\\\\n", "a")
    re.compile("b" + tag).sub(tag, "b" + tag)
    m = re.search("(a)", "a" + tag)
    m.expand("\\\\g<1>" + tag)
    urlparse("http://h/" + tag)
    urljoin("http://h/", tag)
    urldefrag("http://h/#" + tag)
    urlsplit("http://h/" + tag)
    quote("a b", safe=tag)
    urlencode({"q": tag + " x/"}, safe=tag)
    datetime.datetime.strptime("2020", "%Y")
    time.strptime("2020", "%Y")
    return None
"""


@pytest.mark.parametrize("isolation", ["inline"])
def test_scripts_leave_nothing_in_any_lru_cache_of_the_process(isolation):
    box = Sandbox(isolation, {})
    try:
        assert box.load("feed", compile_script(FEEDING, "feed.py"), {}, Budget()).ok
        step = [Step("feed", Budget(), "open")]
        request = {"method": "GET", "path": "/", "path_params": {}, "query": {}, "headers": {}, "body": None,
                   "json": None, "client_ip": "127.0.0.1", "endpoint": "e"}
        box.run_phase("before_request", step, request, None)  # first-use caches (the strptime regex of "%Y")
        before = _lru_sizes()
        for _ in range(5):
            result = box.run_phase("before_request", step, request, None)
            assert [outcome.kind for _, outcome in result.outcomes] == ["ok"], result.outcomes[0][1].message
        grown = {f"{obj.__module__}.{obj.__qualname__}": (size, obj.cache_info().currsize)
                 for key, (obj, size) in before.items() if obj.cache_info().currsize > size}
        assert grown == {}
    finally:
        box.close()


def test_the_audit_covers_what_scripts_get_as_state_and_log():
    found = audit.reachable_callables()
    assert {"StateFacade.get", "StateFacade.set", "StateFacade.incr", "ScriptLog.debug", "ScriptLog.info",
            "ScriptLog.warning", "ScriptLog.error"} <= set(found)
    assert "StateFacade.set" in callables.WRAPPED and "ScriptLog.info" in callables.BOUNDED
