"""Counters of one plugin in this process: calls, failures by kind, latency percentiles over a bounded window.

They also feed Prometheus: calls by (hook, kind) and the latency histogram are summed here and written to
the metric files by the metrics tally (at most Tally.FLUSH_S later), so a call costs one lock and a few
dict updates however many plugins a request passes through.
"""
from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections import Counter, deque

from backworks.metrics import LATENCY_BUCKETS, PLUGIN_CALLS, PLUGIN_LATENCY, TALLY, add_to_histogram

logger = logging.getLogger(__name__)

WINDOW = 1000  # latest calls kept for the percentiles
_BOUNDS = (*LATENCY_BUCKETS, float("inf"))


class PluginStats:
    """Thread-safe counters for one plugin in this process."""

    def __init__(self, name: str = "", window: int = WINDOW):
        self.name = name
        self.calls: Counter = Counter()  # by hook
        self.failures: Counter = Counter()  # by kind
        self.latencies_ms: deque = deque(maxlen=window)
        self._pending: dict = {}  # (hook, kind) -> [calls, seconds, count per latency bucket...]
        self._lock = threading.Lock()
        if name:
            TALLY.add_source(self)

    def record(self, hook: str, kind: str, duration_ms: float) -> None:
        """Count one call of `hook` that ended as `kind` after `duration_ms`."""
        seconds = duration_ms / 1000.0
        with self._lock:
            self.calls[hook] += 1
            if kind != "ok":
                self.failures[kind] += 1
            self.latencies_ms.append(duration_ms)
            pending = self._pending.get((hook, kind))
            if pending is None:
                pending = self._pending[(hook, kind)] = [0, 0.0] + [0] * len(_BOUNDS)
            pending[0] += 1
            pending[1] += seconds
            pending[bisect_left(_BOUNDS, seconds) + 2] += 1

    def flush(self) -> None:
        """Write the calls and latencies counted since the last flush to Prometheus."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for (hook, kind), (calls, seconds, *buckets) in pending.items():
            PLUGIN_CALLS.labels(self.name, hook, kind).inc(calls)
            add_to_histogram(PLUGIN_LATENCY.labels(self.name, hook), seconds, buckets)

    def snapshot(self) -> dict:
        """Return {"calls", "calls_by_hook", "failures", "latency_ms": {"p50", "p95", "p99"}}."""
        with self._lock:
            calls = dict(self.calls)
            failures = dict(self.failures)
            window = sorted(self.latencies_ms)
        return {"calls": sum(calls.values()), "calls_by_hook": calls, "failures": failures,
                "latency_ms": {name: percentile(window, q) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))}}


def percentile(ordered: list, q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return round(ordered[rank - 1], 3)
