"""Prometheus metrics, shared by every part of Backworks; multiprocess-aware under gunicorn.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set by config/gunicorn.conf.py before workers import this
module, and /metrics aggregates every worker's files. Without it, metrics are per process.
"""
from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram

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
UPSTREAM_HEALTHY = Gauge("backworks_upstream_target_healthy", "1 when an upstream target passes its health "
                         "checks, else 0.", ["upstream", "target"], multiprocess_mode="livemin")
UPSTREAM_REQUESTS = Counter("backworks_upstream_requests_total", "Requests sent to upstream targets, by "
                            "outcome (ok, error, timeout).", ["upstream", "target", "outcome"])
CAPTURE_WRITES = Counter("backworks_capture_writes_total", "Exchanges recorded, by outcome (ok, failed).",
                         ["outcome"])
