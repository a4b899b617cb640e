"""Readiness (/readyz and the admin API's detail): config loaded, critical plugins, database."""
from __future__ import annotations

import logging

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
    for endpoint in runtime.endpoints.values():  # checks the modes add (database endpoints: their database)
        check = endpoint.mode.readiness()
        if check is not None and check[0] not in checks:  # one check per shared resource
            checks[check[0]] = check[1]()
    ready = all(check.get("ok") for check in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, ready
