"""What scripts see as `state`: get, set and incr of their own store, with set's value measured first."""
from __future__ import annotations

import logging

from backworks.sandbox import guards, wrapped
from backworks.state import StateError

logger = logging.getLogger(__name__)

_FLOAT_CHARS = 3  # the fewest characters a float takes in JSON ("0.0"); at most 24


def json_bytes_at_least(item) -> int:
    """A lower bound of the JSON text of one non-container value (what a refusal may never exceed)."""
    kind = type(item)
    if kind is str:
        return len(item) + 2
    if kind is int:
        return max(1, (item.bit_length() - 1) * 3 // 10 + 1)  # at least 1 + floor((bits - 1) * log10(2)) digits
    if kind is float:
        return _FLOAT_CHARS
    if kind is bool or item is None:
        return 4
    return 1  # not JSON data: json.dumps refuses it on its own


def measure(value, limit: int) -> None:
    """Refuse a value whose JSON text is surely over `limit` bytes, in O(limit) steps (shared parts each time).

    The host's json.dumps of what passes writes at most about 8 times `limit` (a float is 3 to 24
    characters, an escaped character up to 6): a 40-level shared `a = [a, a]` is refused here instead
    of being encoded for seconds in C, where no timer reaches.
    """
    try:
        size = wrapped.expanded_size(value, limit, json_bytes_at_least)
        if size == 0:  # not a container
            size = json_bytes_at_least(value)
    except guards.LimitError:
        size = limit + 1
    if size > limit:
        raise StateError(f"state value is more than {limit} bytes as JSON; the limit is {limit} "
                         f"(state.max_value_bytes)")


class StateFacade:
    """What scripts see as `state`: plain functions over their own store, nothing else of it."""

    __slots__ = ("get", "set", "incr")

    def __init__(self, store):
        def get(key, default=None):
            return store.get(key, default)

        def set(key, value, ttl=None):
            measure(value, store.max_value_bytes)  # read at each call: a reload may change it
            store.set(key, value, ttl)

        def incr(key, by=1, ttl=None):
            return store.incr(key, by, ttl)

        self.get, self.set, self.incr = get, set, incr
