"""The `state` store plugins use: the in-memory backend and the Redis backend, same behaviour."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from backworks.state import MemoryState, RedisState, StateError, make_state


@pytest.fixture(params=["memory", "redis"])
def store(request):
    """A fresh store of each backend, namespaced so runs never collide."""
    namespace = f"test-{uuid.uuid4().hex}"
    settings = {"url": None, "max_keys": 50, "max_value_bytes": 100}
    if request.param == "redis":
        settings["url"] = request.getfixturevalue("redis_url")
    store = make_state(settings, namespace)
    yield store
    store.clear()


def test_make_state_picks_backend_from_url(redis_url):
    assert isinstance(make_state({"url": None}, "a"), MemoryState)
    assert isinstance(make_state({"url": redis_url}, "a"), RedisState)


def test_memory_state_is_kept_per_process_across_reloads():
    first = make_state({"url": None}, "keep-me")
    first.set("k", 1)
    assert make_state({"url": None}, "keep-me").get("k") == 1
    assert make_state({"url": None}, "someone-else").get("k") is None
    first.clear()


def test_state_set_get_round_trips_json_values(store):
    store.set("user", {"name": "ana", "tags": ["a", "b"], "n": 1.5, "ok": True})
    assert store.get("user") == {"name": "ana", "tags": ["a", "b"], "n": 1.5, "ok": True}
    assert store.get("missing") is None
    assert store.get("missing", 7) == 7


def test_state_get_returns_a_copy_not_the_stored_object(store):
    store.set("list", [1])
    value = store.get("list")
    value.append(2)
    assert store.get("list") == [1]


def test_state_ttl_expires_keys(store):
    store.set("short", "x", ttl=0.2)
    assert store.get("short") == "x"
    time.sleep(0.3)
    assert store.get("short") is None


def test_state_incr_counts_from_zero_and_keeps_first_ttl(store):
    assert store.incr("hits", ttl=0.4) == 1
    time.sleep(0.25)
    assert store.incr("hits", ttl=0.4) == 2  # the window is not extended by later calls
    assert store.incr("hits", by=5) == 7
    time.sleep(0.25)
    assert store.get("hits") is None
    assert store.incr("hits") == 1


def test_state_incr_refuses_non_integer_value_and_step(store):
    store.set("name", "ana")
    with pytest.raises(StateError, match="state key 'name' does not hold an integer"):
        store.incr("name")
    with pytest.raises(StateError, match="incr needs an integer step, not str"):
        store.incr("n", by="2")


def test_state_refuses_values_over_max_value_bytes(store):
    with pytest.raises(StateError, match=r"state value is 102 bytes as JSON; the limit is 100 "
                                         r"\(state.max_value_bytes\)"):
        store.set("big", "x" * 100)


def test_state_refuses_bad_keys_values_and_ttls(store):
    with pytest.raises(StateError, match="state keys must be non-empty strings, not int"):
        store.get(5)
    with pytest.raises(StateError, match="state key is 201 characters; the limit is 200"):
        store.set("k" * 201, 1)
    with pytest.raises(StateError, match="state values must be JSON data"):
        store.set("k", {1, 2})
    with pytest.raises(StateError, match="ttl must be a positive number of seconds, not -1"):
        store.set("k", 1, ttl=-1)


def test_state_delete_removes_key(store):
    store.set("k", 1)
    store.delete("k")
    assert store.get("k") is None


def test_memory_state_evicts_oldest_key_past_max_keys():
    store = MemoryState("evict", max_keys=3, max_value_bytes=100)
    for key in "abcd":
        store.set(key, key)
    assert len(store) == 3
    assert store.get("a") is None
    assert [store.get(k) for k in "bcd"] == ["b", "c", "d"]


def test_state_incr_is_atomic_under_threads(store):
    def work():
        for _ in range(200):
            store.incr("counter")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert store.get("counter") == 800


def test_redis_state_is_shared_between_stores_of_same_namespace(redis_url):
    namespace = f"shared-{uuid.uuid4().hex}"
    one = make_state({"url": redis_url}, namespace)
    two = RedisState(one.client.__class__.from_url(redis_url), namespace, 65536)
    one.incr("n", by=2)
    assert two.incr("n") == 3
    assert one.client.pttl(f"backworks:{namespace}:n") == -1
    one.clear()
