"""In-process counters of one plugin: calls, failures by kind, latency percentiles over a bounded window."""
from __future__ import annotations

import logging
import threading
from collections import Counter, deque

logger = logging.getLogger(__name__)

WINDOW = 1000  # latest calls kept for the percentiles


class PluginStats:
    """Thread-safe counters for one plugin in this process."""

    def __init__(self, window: int = WINDOW):
        self.calls: Counter = Counter()  # by hook
        self.failures: Counter = Counter()  # by kind
        self.latencies_ms: deque = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, hook: str, kind: str, duration_ms: float) -> None:
        """Count one call of `hook` that ended as `kind` after `duration_ms`."""
        with self._lock:
            self.calls[hook] += 1
            if kind != "ok":
                self.failures[kind] += 1
            self.latencies_ms.append(duration_ms)

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
