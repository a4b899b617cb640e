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
DEFAULT_MAX_BYTES = 4 * 1024 * 1024  # per plugin, in memory: keys (UTF-8) + values as JSON text
EVICTION_LOG_S = 60.0  # at most one "evicted" warning per store per minute (a script must not flood the log)
_UNSET = object()


class StateError(ValueError):
    """A script used `state` wrongly: bad key, value too large, value not a number for incr."""


def make_state(settings: dict, namespace: str) -> "MemoryState | RedisState":
    """Return the store of one plugin: Redis when `settings["url"]` is set, else in memory (per process)."""
    max_value = int(settings.get("max_value_bytes") or 65536)
    if settings.get("url"):
        return RedisState(_redis_client(settings["url"]), namespace, max_value)
    return _memory_store(namespace, int(settings.get("max_keys") or 10000), max_value,
                         int(settings.get("max_bytes") or DEFAULT_MAX_BYTES))


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
        raise StateError(f"state values must be JSON data (dict, list, str, int, float, bool, None): {exc}") from None
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
    """One plugin's store in this process: values kept as JSON text, oldest keys evicted past max_keys or
    max_bytes (the UTF-8 bytes of every key + its value's JSON text, counted exactly as `used_bytes`)."""

    def __init__(self, namespace: str, max_keys: int, max_value_bytes: int, max_bytes: int = DEFAULT_MAX_BYTES):
        self.namespace = namespace
        self.max_keys = max_keys
        self.max_value_bytes = max_value_bytes
        self.max_bytes = max_bytes
        self.used_bytes = 0
        self._items: OrderedDict = OrderedDict()  # key -> (json text, expires_at monotonic or None)
        self._lock = threading.Lock()
        self._evicted = 0  # keys dropped since the last warning
        self._warned_at = float("-inf")

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
            self._drop(key)

    def clear(self) -> None:
        """Remove every key of this plugin."""
        with self._lock:
            self._items.clear()
            self.used_bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _live(self, key: str, now: float) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= now:
            self._drop(key)
            return None
        return item[0]

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.used_bytes -= _cost(key, item[0])

    def _store(self, key: str, text: str, expires: float | None, now: float) -> None:
        cost = _cost(key, text)
        if cost > self.max_bytes:
            raise StateError(f"state key and value take {cost} bytes; the plugin's state is limited to "
                             f"{self.max_bytes} (state.max_bytes)")
        self._drop(key)
        self._items[key] = (text, expires)
        self.used_bytes += cost
        if len(self._items) > self.max_keys or self.used_bytes > self.max_bytes:
            self._evict(now)

    def _evict(self, now: float) -> None:
        expired = [k for k, (_, exp) in self._items.items() if exp is not None and exp <= now]
        for key in expired:
            self._drop(key)
        dropped = 0
        while len(self._items) > self.max_keys or self.used_bytes > self.max_bytes:
            oldest, (text, _) = self._items.popitem(last=False)
            self.used_bytes -= _cost(oldest, text)
            dropped += 1
        if dropped:
            self._evicted += dropped
            if now - self._warned_at >= EVICTION_LOG_S:
                logger.warning("plugin state %s is full (%d keys, %d bytes at most): dropped the %d oldest keys",
                               self.namespace, self.max_keys, self.max_bytes, self._evicted)
                self._evicted, self._warned_at = 0, now

    def limit(self, max_keys: int, max_value_bytes: int, max_bytes: int) -> None:
        """Apply new limits (a reload): keys over them are evicted now, oldest first."""
        with self._lock:
            self.max_keys, self.max_value_bytes, self.max_bytes = max_keys, max_value_bytes, max_bytes
            if len(self._items) > max_keys or self.used_bytes > max_bytes:
                self._evict(time.monotonic())


def _cost(key: str, text: str) -> int:
    """Bytes a key and its value count against max_bytes: the key in UTF-8, the value's JSON text (ASCII)."""
    return len(key) + len(text) if key.isascii() else len(key.encode("utf-8", "surrogatepass")) + len(text)


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


def _memory_store(namespace: str, max_keys: int, max_value_bytes: int, max_bytes: int) -> MemoryState:
    # One store per plugin per process, kept across reloads so counters survive a script edit.
    key = (os.getpid(), namespace)
    with _registry_lock:
        store = _memory_stores.get(key)
        if store is None:
            store = _memory_stores[key] = MemoryState(namespace, max_keys, max_value_bytes, max_bytes)
        else:
            store.limit(max_keys, max_value_bytes, max_bytes)
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
