"""Counters of one plugin in this process: calls, failures by kind, latency percentiles over a bounded window.

They also feed Prometheus: calls by (hook, kind) and the latency histogram are summed here and written to
the metric files by the metrics tally (at most Tally.FLUSH_S later). A call touches as little memory as
possible (one list and the latency window, under a lock shared by every plugin): between two requests a
worker's caches go cold, and each object a request touches then costs a trip to memory.
"""
from __future__ import annotations

import logging
import os
import threading
from bisect import bisect_left
from collections import deque

from backworks.metrics import LATENCY_BUCKETS, PLUGIN_CALLS, PLUGIN_LATENCY, TALLY, add_to_histogram

logger = logging.getLogger(__name__)

WINDOW = 1000  # latest calls kept for the percentiles
_BOUNDS_MS = tuple(bound * 1000.0 for bound in LATENCY_BUCKETS) + (float("inf"),)
_LOCK = threading.Lock()  # one for all plugins: a request's plugins then share one warm lock


def _after_fork() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # the metrics thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork)


class PluginStats:
    """Thread-safe counters for one plugin in this process."""

    def __init__(self, name: str, window: int = WINDOW):
        self.name = name
        self.window = window
        self.latencies_ms: deque = deque(maxlen=window)
        self._pending: dict = {}  # (hook, kind) -> [calls, total ms, count per latency bucket...]
        self._written: dict = {}  # (hook, kind) -> calls already written to Prometheus
        # hook -> durations of "ok" calls not yet counted: a request appends (list.append is atomic, no lock),
        # the counts take them in batches (fold) when they are read or written, or at `window` entries.
        self.ok_ms: dict = {}
        TALLY.add_source(self)

    def record(self, hook: str, kind: str, duration_ms: float) -> None:
        """Count one call of `hook` that ended as `kind` after `duration_ms`."""
        with _LOCK:
            self._add(hook, kind, duration_ms)

    def ok_list(self, hook: str) -> list:
        """The list to append the duration of each "ok" call of `hook` to (see record_ok)."""
        with _LOCK:
            return self.ok_ms.setdefault(hook, [])

    def record_ok(self, durations: list) -> None:
        """After appending to an ok_list: count its calls now once it holds `window` of them."""
        if len(durations) >= self.window:
            with _LOCK:
                self._fold()

    def _fold(self) -> None:  # under _LOCK
        for hook, durations in self.ok_ms.items():
            count = len(durations)  # entries appended from here on stay for the next fold
            if not count:
                continue
            batch = durations[:count]
            del durations[:count]
            pending = self._pending_for(hook, "ok")
            pending[0] += count
            pending[1] += sum(batch)
            for duration_ms in batch:
                pending[bisect_left(_BOUNDS_MS, duration_ms) + 2] += 1
            self.latencies_ms.extend(batch)

    def _pending_for(self, hook: str, kind: str) -> list:  # under _LOCK
        pending = self._pending.get((hook, kind))
        if pending is None:
            pending = self._pending[(hook, kind)] = [0, 0.0] + [0] * len(_BOUNDS_MS)
        return pending

    def _add(self, hook: str, kind: str, duration_ms: float) -> None:  # under _LOCK
        pending = self._pending_for(hook, kind)
        pending[0] += 1
        pending[1] += duration_ms
        pending[bisect_left(_BOUNDS_MS, duration_ms) + 2] += 1
        self.latencies_ms.append(duration_ms)

    def flush(self) -> None:
        """Write the calls and latencies counted since the last flush to Prometheus."""
        with _LOCK:
            self._fold()
            pending, self._pending = self._pending, {}
            for key, (calls, *_rest) in pending.items():
                self._written[key] = self._written.get(key, 0) + calls
        for (hook, kind), (calls, total_ms, *buckets) in pending.items():
            PLUGIN_CALLS.labels(self.name, hook, kind).inc(calls)
            add_to_histogram(PLUGIN_LATENCY.labels(self.name, hook), total_ms / 1000.0, buckets)

    def counts(self) -> dict:
        """{(hook, kind): calls} since this process loaded the plugin."""
        with _LOCK:
            self._fold()
            totals = dict(self._written)
            for key, pending in self._pending.items():
                totals[key] = totals.get(key, 0) + pending[0]
        return totals

    def snapshot(self) -> dict:
        """Return {"calls", "calls_by_hook", "failures", "latency_ms": {"p50", "p95", "p99"}}."""
        by_hook: dict = {}
        failures: dict = {}
        for (hook, kind), calls in self.counts().items():
            by_hook[hook] = by_hook.get(hook, 0) + calls
            if kind != "ok":
                failures[kind] = failures.get(kind, 0) + calls
        with _LOCK:
            self._fold()
            window = sorted(self.latencies_ms)
        return {"calls": sum(by_hook.values()), "calls_by_hook": by_hook, "failures": failures,
                "latency_ms": {name: percentile(window, q) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))}}


def percentile(ordered: list, q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return round(ordered[rank - 1], 3)
