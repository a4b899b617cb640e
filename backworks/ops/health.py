"""Readiness (/readyz and the admin API's detail): config loaded, critical plugins, database."""
from __future__ import annotations

import logging

from backworks.secrets import error_text

logger = logging.getLogger(__name__)


# /readyz is unauthenticated: it says ready or not and why in these codes only. The details (reload
# problems, plugin health, database errors) are in the admin API (`GET api/ready`) and the log.
REASONS = {"config": "config_invalid", "plugins": "plugin_unhealthy", "database": "database_unreachable"}


def public_readiness(backworks) -> tuple[dict, bool]:
    """Return the /readyz answer: {"status": ..., "reasons": [codes]} without any error text."""
    report, ready = readiness(backworks)
    reasons = [REASONS[name] for name, check in report["checks"].items() if not check.get("ok")]
    if backworks.last_error:
        reasons.insert(0, REASONS["config"])  # the last reload was refused; the previous config serves
    return ({"status": report["status"], "reasons": reasons} if reasons else {"status": report["status"]}), ready


def readiness(backworks) -> tuple[dict, bool]:
    """Run the readiness checks in detail (admin API): config loaded, critical plugins, database."""
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
        logger.warning("readiness: database unreachable: %s", error_text(exc))
        return {"ok": False, "error": f"database unreachable: {error_text(exc)}"}
    return {"ok": True, "dialect": engine.dialect.name}
