"""Liveness, readiness and the Prometheus exposition (/healthz, /readyz, /metrics)."""
from __future__ import annotations

import functools
import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from backworks.metrics import TALLY

logger = logging.getLogger(__name__)


def registry() -> CollectorRegistry:
    """The registry /metrics reads, with this process's batched updates written first."""
    TALLY.flush()
    return _registry()


@functools.lru_cache(maxsize=1)
def _registry() -> CollectorRegistry:
    """Every worker's files under gunicorn, this process's registry otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated)
    return aggregated


def metrics_payload(accept: str | None) -> tuple[bytes, str]:
    """Return the exposition in the format the scraper accepts (Prometheus text by default)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry()), content_type


def readiness(backworks) -> tuple[dict, bool]:
    """Run the readiness checks: config loaded, critical plugins healthy, database reachable."""
    runtime = backworks.runtime
    checks = {"config": {"ok": True, "endpoints": len(runtime.endpoints),
                         "last_reload_error": backworks.last_error}}
    if runtime.plugins is not None:
        checks["plugins"] = runtime.plugins.readiness()
    database = database_check(runtime)
    if database is not None:
        checks["database"] = database
    ready = all(check.get("ok") for check in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, ready


def database_check(runtime) -> dict | None:
    """Ping the database of this load's database endpoints (None when no endpoint uses one)."""
    if not any(spec.mode == "database" for spec in runtime.config.endpoints):
        return None
    resource = runtime.ctx.peek("database")
    engine = getattr(resource, "engine", resource)
    if engine is None:
        return {"ok": False, "error": "the database was not opened by this config load"}
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        logger.warning("readiness: database unreachable: %s", exc)
        return {"ok": False, "error": f"database unreachable: {type(exc).__name__}: {_first_line(exc)}"}
    return {"ok": True, "dialect": engine.dialect.name}


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
