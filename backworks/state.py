"""Per-plugin state: a small key-value store with TTLs, in memory per process or shared through Redis."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 200
REDIS_TIMEOUT_S = 0.5
_UNSET = object()


class StateError(ValueError):
    """A script used `state` wrongly: bad key, value too large, value not a number for incr."""


def make_state(settings: dict, namespace: str) -> "MemoryState | RedisState":
    """Return the store of one plugin: Redis when `settings["url"]` is set, else in memory (per process)."""
    max_value = int(settings.get("max_value_bytes") or 65536)
    if settings.get("url"):
        return RedisState(_redis_client(settings["url"]), namespace, max_value)
    return _memory_store(namespace, int(settings.get("max_keys") or 10000), max_value)


def _check_key(key) -> str:
    if not isinstance(key, str) or not key:
        raise StateError(f"state keys must be non-empty strings, not {type(key).__name__}")
    if len(key) > MAX_KEY_LENGTH:
        raise StateError(f"state key is {len(key)} characters; the limit is {MAX_KEY_LENGTH}")
    return key


def _encode(value, limit: int) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StateError(f"state values must be JSON data (dict, list, str, int, float, bool, None): {exc}")
    if len(text) > limit:
        raise StateError(f"state value is {len(text)} bytes as JSON; the limit is {limit} (state.max_value_bytes)")
    return text


def _check_ttl(ttl) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
        raise StateError(f"ttl must be a positive number of seconds, not {ttl!r}")
    return float(ttl)


def _check_by(by) -> int:
    if isinstance(by, bool) or not isinstance(by, int):
        raise StateError(f"incr needs an integer step, not {type(by).__name__}")
    return by


class MemoryState:
    """One plugin's store in this process: values kept as JSON text, oldest key evicted past max_keys."""

    def __init__(self, namespace: str, max_keys: int, max_value_bytes: int):
        self.namespace = namespace
        self.max_keys = max_keys
        self.max_value_bytes = max_value_bytes
        self._items: OrderedDict = OrderedDict()  # key -> (json text, expires_at monotonic or None)
        self._lock = threading.Lock()

    def get(self, key: str, default=None):
        """Return the value of `key`, or `default` when it is missing or expired."""
        _check_key(key)
        with self._lock:
            text = self._live(key, time.monotonic())
        return default if text is None else json.loads(text)

    def set(self, key: str, value, ttl: float | None = None) -> None:
        """Store `value` (JSON data) under `key`, expiring after `ttl` seconds when given."""
        _check_key(key)
        text = _encode(value, self.max_value_bytes)
        ttl = _check_ttl(ttl)
        with self._lock:
            now = time.monotonic()
            self._store(key, text, now + ttl if ttl else None, now)

    def incr(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        """Add `by` to the integer under `key` (0 when missing); `ttl` applies only when the key is created."""
        _check_key(key)
        by, ttl = _check_by(by), _check_ttl(ttl)
        with self._lock:
            now = time.monotonic()
            text = self._live(key, now)
            if text is None:
                value, expires = by, (now + ttl if ttl else None)
            else:
                current = json.loads(text)
                if isinstance(current, bool) or not isinstance(current, int):
                    raise StateError(f"state key {key!r} does not hold an integer")
                value, expires = current + by, self._items[key][1]
            self._store(key, str(value), expires, now)
            return value

    def delete(self, key: str) -> None:
        """Remove `key` if present."""
        _check_key(key)
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        """Remove every key of this plugin."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _live(self, key: str, now: float) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= now:
            del self._items[key]
            return None
        return item[0]

    def _store(self, key: str, text: str, expires: float | None, now: float) -> None:
        self._items[key] = (text, expires)
        self._items.move_to_end(key)
        if len(self._items) > self.max_keys:
            self._evict(now)

    def _evict(self, now: float) -> None:
        expired = [k for k, (_, exp) in self._items.items() if exp is not None and exp <= now]
        for key in expired:
            del self._items[key]
        while len(self._items) > self.max_keys:
            oldest, _ = self._items.popitem(last=False)
            logger.warning("plugin state %s is full (%d keys): dropped %r", self.namespace, self.max_keys, oldest)


class RedisState:
    """One plugin's store in Redis: keys prefixed with the plugin's namespace, values as JSON."""

    def __init__(self, client, namespace: str, max_value_bytes: int):
        import redis

        self._response_error = redis.ResponseError
        self.client = client
        self.prefix = f"backworks:{namespace}:"
        self.max_value_bytes = max_value_bytes

    def get(self, key: str, default=None):
        """Return the value of `key`, or `default` when it is missing or expired."""
        text = self.client.get(self.prefix + _check_key(key))
        return default if text is None else json.loads(text)

    def set(self, key: str, value, ttl: float | None = None) -> None:
        """Store `value` (JSON data) under `key`, expiring after `ttl` seconds when given."""
        text = _encode(value, self.max_value_bytes)
        ttl = _check_ttl(ttl)
        self.client.set(self.prefix + _check_key(key), text, px=max(1, int(ttl * 1000)) if ttl else None)

    def incr(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        """Atomically add `by` (INCRBY); `ttl` is set only when the key has none (EXPIRE NX)."""
        name = self.prefix + _check_key(key)
        by, ttl = _check_by(by), _check_ttl(ttl)
        try:
            if ttl is None:
                return int(self.client.incrby(name, by))
            pipe = self.client.pipeline(transaction=True)
            pipe.incrby(name, by)
            pipe.pexpire(name, max(1, int(ttl * 1000)), nx=True)
            value, _ = pipe.execute()
            return int(value)
        except self._response_error as exc:
            if "not an integer" not in str(exc):
                raise
            raise StateError(f"state key {key!r} does not hold an integer") from None

    def delete(self, key: str) -> None:
        """Remove `key` if present."""
        self.client.delete(self.prefix + _check_key(key))

    def clear(self) -> None:
        """Remove every key of this plugin."""
        names = list(self.client.scan_iter(match=self.prefix + "*", count=500))
        if names:
            self.client.delete(*names)


_memory_stores: dict = {}
_redis_clients: dict = {}
_registry_lock = threading.Lock()


def _memory_store(namespace: str, max_keys: int, max_value_bytes: int) -> MemoryState:
    # One store per plugin per process, kept across reloads so counters survive a script edit.
    key = (os.getpid(), namespace)
    with _registry_lock:
        store = _memory_stores.get(key)
        if store is None:
            store = _memory_stores[key] = MemoryState(namespace, max_keys, max_value_bytes)
        store.max_keys, store.max_value_bytes = max_keys, max_value_bytes
        return store


def _redis_client(url: str):
    import redis

    key = (os.getpid(), url)
    with _registry_lock:
        client = _redis_clients.get(key)
        if client is None:
            client = _redis_clients[key] = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        return client
