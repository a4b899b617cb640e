"""range() for scripts: any length to loop over, at most MAX_RANGE items for anything that materialises it.

A `for` loop (or comprehension) over a range is Python bytecode the timer interrupts, and takes only the
items it uses: `for i in range(2_000_000): ... break` is fine. A C consumer (`list`, `sorted`, `set`,
`deque`, `x in r` for a non-int...) would walk a huge range in one C call no timer can stop, so a range
over MAX_RANGE items is a LongRange: loops get the real range iterator (guards.guarded_iter calls _loop,
which scripts cannot name), every other iteration gets one that stops with LimitError after MAX_RANGE items.
"""
from __future__ import annotations

import itertools
import logging

from backworks.sandbox import rules

logger = logging.getLogger(__name__)


def _limit_error(length: int):
    return rules.LimitError(f"materialising a range of {length} items exceeds the sandbox limit of "
                      f"{rules.MAX_RANGE} (loop over it with `for` instead)")


class LongRange:
    """A range of more than MAX_RANGE items: lazy for loops, capped for everything else."""

    __slots__ = ("_range",)

    def __init__(self, real: range):
        self._range = real

    def _loop(self):
        """The real iterator, for `for` loops and comprehensions (interruptible bytecode)."""
        return iter(self._range)

    def __iter__(self):
        return _capped(iter(self._range), _size(self._range))

    def __reversed__(self):
        return _capped(reversed(self._range), _size(self._range))

    def __len__(self) -> int:
        return len(self._range)

    def __contains__(self, item) -> bool:
        if type(item) is int or type(item) is bool:  # O(1) arithmetic in range.__contains__
            return item in self._range
        return any(item == value for value in self)  # a linear search: capped like any iteration

    def __getitem__(self, index):
        item = self._range[index]
        return safe_range_of(item) if type(item) is range else item

    def __eq__(self, other) -> bool:
        other = other._range if type(other) is LongRange else other
        return self._range == other

    def __hash__(self) -> int:
        return hash(self._range)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return repr(self._range)

    @property
    def start(self) -> int:
        """First item."""
        return self._range.start

    @property
    def stop(self) -> int:
        """End (excluded)."""
        return self._range.stop

    @property
    def step(self) -> int:
        """Step."""
        return self._range.step

    def index(self, value) -> int:
        """Position of `value` (ints only: anything else would be a linear search)."""
        if type(value) is not int:
            raise _limit_error(_size(self._range))
        return self._range.index(value)

    def count(self, value) -> int:
        """0 or 1 (ints only)."""
        if type(value) is not int:
            raise _limit_error(_size(self._range))
        return self._range.count(value)


def _size(real: range) -> int:
    # len() raises OverflowError past sys.maxsize items
    start, stop, step = real.start, real.stop, real.step
    return max(0, (stop - start + step - (1 if step > 0 else -1)) // step)


def _capped(iterator, length: int):
    # A Python generator: the timer can interrupt a C consumer between items, and the cap stops it.
    for item in itertools.islice(iterator, rules.MAX_RANGE):
        yield item
    if length > rules.MAX_RANGE:
        raise _limit_error(length)


def safe_range_of(real: range):
    """`real` itself when small, else a LongRange around it."""
    return real if _size(real) <= rules.MAX_RANGE else LongRange(real)


def safe_range(*args):
    """range() of any length; over MAX_RANGE items only `for` loops take more than MAX_RANGE of them."""
    return safe_range_of(range(*args))
