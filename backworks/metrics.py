"""Prometheus metrics, shared by every part of Backworks; multiprocess-aware under gunicorn.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set by gunicorn.conf.py before workers import this
module, and /metrics aggregates every worker's files. Without it, metrics are per process.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from bisect import bisect_left

from prometheus_client import Counter, Gauge, Histogram

from backworks.pids import current_pid

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("backworks_requests_total", "Requests answered, by endpoint, mode and status.",
                   ["endpoint", "mode", "status"])
REQUEST_LATENCY = Histogram("backworks_request_duration_seconds", "Time to answer a request.",
                            ["endpoint", "mode"], buckets=LATENCY_BUCKETS)
PLUGIN_CALLS = Counter("backworks_plugin_calls_total", "Plugin hook calls, by plugin, hook and outcome kind "
                       "(ok, error, timeout, memory, invalid, crash).", ["plugin", "hook", "kind"])
PLUGIN_LATENCY = Histogram("backworks_plugin_duration_seconds", "Time spent in a plugin hook.",
                           ["plugin", "hook"], buckets=LATENCY_BUCKETS)
PLUGIN_BREAKER_OPEN = Gauge("backworks_plugin_breaker_open", "1 while a plugin's circuit breaker is open "
                            "or half-open, else 0.", ["plugin"], multiprocess_mode="livemax")
PLUGIN_QUARANTINED = Gauge("backworks_plugin_quarantined", "1 while a script runs with process isolation "
                           "because a worker died inside it (until its file changes), else 0.", ["plugin"],
                           multiprocess_mode="livemax")
UPSTREAM_HEALTHY = Gauge("backworks_upstream_target_healthy", "1 when an upstream target passes its health "
                         "checks, else 0.", ["upstream", "target"], multiprocess_mode="livemin")
UPSTREAM_REQUESTS = Counter("backworks_upstream_requests_total", "Requests sent to upstream targets, by "
                            "outcome (ok, error, timeout, invalid_response; handoff: handed to nginx; "
                            "handoff_error, handoff_timeout: nginx's exchange failed).",
                            ["upstream", "target", "outcome"])
CAPTURE_WRITES = Counter("backworks_capture_writes_total", "Exchanges recorded, by outcome (ok, failed).",
                         ["outcome"])


class Tally:
    """Counter increments and histogram observations summed in memory and written in batches.

    Updating a labelled child costs 0.3-0.6 us (a lock, and an mmap'ed file under gunicorn); a request
    through five plugins makes a dozen such updates. The tally sums them in dicts instead and writes them
    at most FLUSH_S later: from a daemon thread, before every read of the metrics in this process
    (/metrics, the admin API) and at exit. Histograms are bucketed here and added to the child's buckets
    in one step; a child without those internals is written through at once.
    """

    FLUSH_S = 1.0

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict = {}  # counter child -> pending amount
        self._histograms: dict = {}  # histogram child -> [sum, count per bucket...]
        self._bounds: dict = {}  # histogram child -> its upper bounds, or None when it cannot be batched
        self._sources: weakref.WeakSet = weakref.WeakSet()  # objects that sum their own, with a flush()
        self._thread_pid = 0

    def add_source(self, source) -> None:
        """Flush `source` (an object with its own pending sums and a flush() method) with the rest.

        The flushing thread starts with the first request's update, not here: a process that only checks
        a config (gunicorn's master) gets no thread.
        """
        with self._lock:
            self._sources.add(source)

    def inc(self, child, amount: float = 1) -> None:
        """Add `amount` to a counter child."""
        with self._lock:
            counts = self._counts
            counts[child] = counts.get(child, 0) + amount
        self._ensure_thread()

    def count_and_time(self, counter, histogram, seconds: float) -> None:
        """inc(counter) and observe(histogram, seconds) together (one lock)."""
        bounds = self._bounds_of(histogram)
        if bounds is None:
            self.inc(counter)
            histogram.observe(seconds)
            return
        with self._lock:
            counts = self._counts
            counts[counter] = counts.get(counter, 0) + 1
            pending = self._histograms.get(histogram)
            if pending is None:
                pending = self._histograms[histogram] = [0.0] + [0] * len(bounds)
            pending[0] += seconds
            pending[bisect_left(bounds, seconds) + 1] += 1
        self._ensure_thread()

    def _bounds_of(self, child) -> tuple | None:
        bounds = self._bounds.get(child, _UNKNOWN)
        if bounds is _UNKNOWN:
            bounds = self._bounds[child] = _histogram_bounds(child)
        return bounds

    def _ensure_thread(self) -> None:
        if self._thread_pid != current_pid():
            self._start_thread()

    def flush(self) -> None:
        """Write everything pending to the Prometheus children."""
        with self._lock:
            counts, self._counts = self._counts, {}
            histograms, self._histograms = self._histograms, {}
            sources = list(self._sources)
        for child, amount in counts.items():
            _write(child.inc, amount)
        for child, pending in histograms.items():
            _write(add_to_histogram, child, pending[0], pending[1:])
        for source in sources:
            _write(source.flush)

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread_pid == current_pid():
                return
            self._thread_pid = current_pid()
        threading.Thread(target=self._run, name="backworks-metrics", daemon=True).start()

    def _run(self) -> None:
        pid = current_pid()
        while pid == current_pid():  # a forked child starts its own thread
            time.sleep(self.FLUSH_S)
            try:
                self.flush()
            except Exception:
                logger.exception("writing metrics failed")


_UNKNOWN = object()


def _write(function, *args) -> None:
    """One write of a flush; a failure is logged and the rest of the batch still goes out."""
    try:
        function(*args)
    except Exception:
        logger.exception("writing a metric failed")


def add_to_histogram(child, total: float, counts: list) -> None:
    """Add observations already bucketed by the child's upper bounds (`counts`) summing to `total`."""
    if _histogram_bounds(child) is None:
        # A prometheus_client without bulk access: one observation per count at its bucket's upper bound
        # (twice the last bound for the overflow bucket). Bucket counts stay exact; the sum is approximate.
        for bound, count in zip(LATENCY_BUCKETS + (LATENCY_BUCKETS[-1] * 2,), counts, strict=True):
            for _ in range(count):
                child.observe(bound)
        return
    child._sum.inc(total)
    for bucket, count in zip(child._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


def _histogram_bounds(child) -> tuple | None:
    """The upper bounds of a histogram child whose buckets can be added to in bulk, else None."""
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    if bounds is None or buckets is None or len(bounds) != len(buckets) or not hasattr(child, "_sum"):
        return None
    return tuple(bounds)


def _after_fork() -> None:
    TALLY._lock = threading.Lock()
    TALLY._counts, TALLY._histograms = {}, {}  # the parent's pending values are the parent's to write


os.register_at_fork(after_in_child=_after_fork)

TALLY = Tally()
atexit.register(TALLY.flush)
