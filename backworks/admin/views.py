"""The dashboard page: one HTML page whose script polls the admin API and redraws in place."""
from __future__ import annotations

import logging

from flask import Blueprint, render_template, request

logger = logging.getLogger(__name__)

POLL_MS = 1000


def register(bp: Blueprint, backworks) -> None:
    """Add the dashboard page to the admin blueprint."""

    @bp.route("/", methods=["GET", "POST"])  # POST: the login form, whose body carries the token
    def dashboard():
        data = backworks.runtime.config.data
        page = render_template("dashboard.html", name=data["name"], version=data["version"],
                               api=request.script_root + backworks.runtime.admin_path + "/api",
                               poll_ms=POLL_MS)
        return page, 200, {"Cache-Control": "no-store"}
