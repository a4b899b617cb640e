"""The dashboard and the JSON admin API, mounted under `admin.path` (default /_backworks)."""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, request

from backworks.admin import api, views
from backworks.admin.auth import disabled_reply, require_admin

logger = logging.getLogger(__name__)


def init_app(app: Flask, backworks) -> None:
    """Register the admin blueprint on the Flask app at the configured admin path."""
    blueprint = Blueprint("admin", __name__, url_prefix=backworks.runtime.admin_path,
                          template_folder="templates", static_folder="static")
    blueprint.before_request(lambda: require_admin(backworks))
    api.register(blueprint, backworks)
    views.register(blueprint, backworks)
    app.register_blueprint(blueprint)
    prefix = backworks.runtime.admin_path

    @app.before_request
    def admin_off():
        # Paths under the prefix that match no admin route say "disabled" too, not a bare not-found.
        if request.path == prefix or request.path.startswith(prefix + "/"):
            return disabled_reply(backworks)
        return None
