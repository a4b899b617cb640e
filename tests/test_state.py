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


def _memory(max_bytes: int, max_keys: int = 1000, max_value_bytes: int = 65536) -> MemoryState:
    return MemoryState(f"test-{uuid.uuid4().hex}", max_keys, max_value_bytes, max_bytes)


def test_memory_state_counts_keys_and_json_values_exactly():
    store = _memory(1000)
    store.set("ab", {"x": [1, 2]})        # 2 + len('{"x":[1,2]}') = 2 + 11
    store.set("é", "snow ☃")              # 2 UTF-8 bytes + len('"snow \\u2603"') = 2 + 13
    store.incr("n", 5)                    # 1 + 1
    assert store.used_bytes == 13 + 15 + 2
    store.set("ab", 1)                    # replacing a key counts the new value only
    store.delete("é")
    assert store.used_bytes == 3 + 2


def test_memory_state_evicts_oldest_keys_past_its_byte_budget():
    store = _memory(100)
    for index in range(10):
        store.set(f"k{index}", "x" * 18)  # 2 + 20 bytes each
    assert store.used_bytes <= 100
    assert [store.get(f"k{index}") for index in range(10)][:6] == [None] * 6
    assert store.get("k9") == "x" * 18 and store.used_bytes == 4 * 22


def test_memory_state_refuses_one_value_over_its_whole_byte_budget():
    store = _memory(50)
    store.set("keep", 1)
    with pytest.raises(StateError) as caught:
        store.set("big", "x" * 60)
    assert str(caught.value) == "state key and value take 65 bytes; the plugin's state is limited to 50 " \
                                "(state.max_bytes)"
    assert store.get("keep") == 1 and store.used_bytes == 5


def test_memory_state_byte_budget_shrinks_on_reload():
    namespace = f"test-{uuid.uuid4().hex}"
    store = make_state({"url": None}, namespace)
    for index in range(10):
        store.set(f"k{index}", "y" * 98)  # 2 + 100 bytes
    assert store.used_bytes == 1020
    assert make_state({"url": None, "max_bytes": 310}, namespace) is store
    assert store.used_bytes == 306 and store.get("k9") == "y" * 98 and store.get("k6") is None
    store.clear()
    assert store.used_bytes == 0


def test_memory_state_logs_evictions_at_most_once_a_minute(caplog):
    store = _memory(30)
    with caplog.at_level("WARNING", logger="backworks.state"):
        for index in range(200):
            store.set(f"k{index}", index)
    lines = [r.getMessage() for r in caplog.records if r.name == "backworks.state"]
    assert len(lines) == 1
    assert lines[0].endswith("is full (1000 keys, 30 bytes at most): dropped the 2 oldest keys")


def test_memory_state_default_byte_budget_is_four_mib():
    assert make_state({"url": None}, f"test-{uuid.uuid4().hex}").max_bytes == 4 * 1024 * 1024


def test_expired_keys_free_their_bytes():
    store = _memory(1000)
    store.set("t", "x", ttl=0.001)
    time.sleep(0.01)
    assert store.get("t") is None and store.used_bytes == 0
