"""The JSON admin API: status, endpoints, plugins, recent requests, request stats, reload, breaker reset."""
from __future__ import annotations

import logging
import os
import signal
import time

from flask import Blueprint, jsonify, request

from backworks import __version__
from backworks.http import error_reply
from backworks.ops.exposition import registry
from backworks.ops.health import readiness

logger = logging.getLogger(__name__)

MAX_RECENT = 1000


def register(bp: Blueprint, backworks) -> None:
    """Add the /api/... routes to the admin blueprint."""

    @bp.get("/api/status")
    def status():
        return jsonify(status_info(backworks))

    @bp.get("/api/endpoints")
    def endpoints():
        return jsonify(endpoints=endpoint_list(backworks.runtime))

    @bp.get("/api/plugins")
    def plugins():
        return jsonify(pid=os.getpid(), plugins=plugin_list(backworks.runtime))

    @bp.post("/api/plugins/<name>/reset")
    def reset_plugin(name):
        plugin_set = backworks.runtime.plugins
        if plugin_set is None or not plugin_set.reset_breaker(name):
            return error(404, "not_found", f"no plugin named {name!r}")
        logger.info("admin: breaker of plugin %s reset (worker %d)", name, os.getpid())
        return jsonify(ok=True, plugin=name, pid=os.getpid())

    @bp.get("/api/requests")
    def recent_requests():
        limit = request.args.get("limit", "100")
        if not limit.isdigit() or not 0 < int(limit) <= MAX_RECENT:
            return error(400, "invalid_parameter", f"limit must be an integer from 1 to {MAX_RECENT}")
        rows = backworks.recorder.snapshot(backworks.runtime, int(limit))
        return jsonify(pid=os.getpid(), capacity=backworks.recorder.recent.maxlen, requests=rows)

    @bp.get("/api/ready")
    def ready():
        report, is_ready = readiness(backworks)  # /readyz shows only the reason codes of this
        return jsonify(report), 200 if is_ready else 503

    @bp.get("/api/stats")
    def stats():
        return jsonify(request_stats())

    @bp.post("/api/reload")
    def reload():
        if not backworks.reload("admin api"):
            problems = (backworks.last_error or "").splitlines()
            return error(422, "config_invalid", "the config was not reloaded; the previous one keeps serving",
                         problems)
        restarting = restart_workers(request.environ)
        return jsonify(ok=True, reloads=backworks.reloads, endpoints=len(backworks.runtime.endpoints),
                       workers="restarting" if restarting else "this process")


def error(status: int, code: str, message: str, details=None):
    """A JSON error response for Flask routes."""
    reply = error_reply(status, code, message, details=details)
    return reply.body_bytes(), reply.status, reply.headers


def status_info(backworks) -> dict:
    """Name, version, config file, load time, reload count and last error of this worker."""
    data = backworks.runtime.config.data
    return {
        "name": data["name"],
        "version": str(data["version"]),
        "backworks_version": __version__,
        "config_path": str(backworks.runtime.config.path),
        "loaded_at": backworks.last_reload,
        "reloads": backworks.reloads,
        "last_reload_error": backworks.last_error,
        "pid": os.getpid(),
        "server": request.environ.get("SERVER_SOFTWARE", ""),
        "time": time.time(),
    }


def endpoint_list(runtime) -> list[dict]:
    """The loaded endpoints: name, path, methods, mode, description."""
    return [{"name": spec.name, "path": spec.path, "methods": list(spec.methods), "mode": spec.mode,
             "description": spec.data.get("description") or ""} for spec in runtime.config.endpoints]


def plugin_list(runtime) -> list[dict]:
    """Per-plugin status from the plugin set, with calls by outcome summed over every worker."""
    if runtime.plugins is None or not hasattr(runtime.plugins, "status"):
        return []
    totals = plugin_call_totals()
    health = runtime.plugins.readiness().get("plugins", {}) if hasattr(runtime.plugins, "readiness") else {}
    return [{**item, "health": health.get(item.get("name")), "calls_all_workers": totals.get(item.get("name"), {})}
            for item in runtime.plugins.status()]


def plugin_call_totals() -> dict:
    """{plugin: {kind: calls}} from the Prometheus registry (all workers under gunicorn)."""
    totals: dict = {}
    for sample in _samples("backworks_plugin_calls_total"):
        kinds = totals.setdefault(sample.labels["plugin"], {})
        kind = sample.labels["kind"]
        kinds[kind] = kinds.get(kind, 0) + int(sample.value)
    return totals


def request_stats() -> dict:
    """Request totals by endpoint and the latency histogram, summed over every worker."""
    endpoints: dict = {}
    for sample in _samples("backworks_requests_total"):
        item = endpoints.setdefault(sample.labels["endpoint"], {"requests": 0, "errors": 0})
        item["requests"] += int(sample.value)
        if sample.labels["status"].isdigit() and int(sample.labels["status"]) >= 500:
            item["errors"] += int(sample.value)
    buckets: dict = {}
    latency = {"sum": 0.0, "count": 0}
    for sample in _samples("backworks_request_duration_seconds"):
        if sample.name.endswith("_bucket"):
            le = sample.labels["le"]
            buckets[le] = buckets.get(le, 0) + int(sample.value)
        elif sample.name.endswith("_sum"):
            latency["sum"] += sample.value
        elif sample.name.endswith("_count"):
            latency["count"] += int(sample.value)
    ordered = sorted(buckets.items(), key=lambda kv: float(kv[0]))  # "+Inf" sorts last
    return {"time": time.time(), "requests": sum(e["requests"] for e in endpoints.values()),
            "endpoints": endpoints, "latency": {**latency, "buckets": [[le, n] for le, n in ordered]}}


def _samples(prefix: str):
    for family in registry().collect():
        for sample in family.samples:
            if sample.name.startswith(prefix):
                yield sample


def restart_workers(environ) -> bool:
    """Under gunicorn, ask the master (HUP) to replace every worker so all of them serve the new config."""
    if not str(environ.get("SERVER_SOFTWARE", "")).startswith("gunicorn"):
        return False
    os.kill(os.getppid(), signal.SIGHUP)
    logger.info("admin: config reloaded; asked the gunicorn master (pid %d) to restart the workers",
                os.getppid())
    return True
