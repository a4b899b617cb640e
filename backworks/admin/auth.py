"""Who may use the admin API and dashboard: the bearer of `admin.token`, or direct loopback in dev."""
from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import render_template, request

from backworks.http import error_reply

logger = logging.getLogger(__name__)

MISSING = "the admin API needs the header Authorization: Bearer <admin.token>"
WRONG = "the admin token is wrong"
DISABLED = ("the admin API and dashboard are disabled: set admin.token in the config to turn them on, then "
            "send Authorization: Bearer <token> (or open {path}/ and sign in with it)")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="backworks admin"'}


def require_admin(backworks):
    """Before every admin request: 404 when the admin is off, 401 without the right token."""
    token = backworks.runtime.config.data["admin"]["token"]
    if not token:
        return disabled_reply(backworks)
    if request.endpoint == "admin.static":
        return None  # the page's own scripts and styles; nothing secret
    supplied = bearer_token(request)
    if supplied is None and request.endpoint == "admin.dashboard" and request.method == "POST":
        # the login form posts the token: in a URL it would land in access logs and browser history
        supplied = request.form.get("token")
    if supplied is not None and hmac.compare_digest(supplied.encode(), token.encode()):
        return None
    logger.warning("admin: %s token from %s for %s", "wrong" if supplied else "missing",
                   backworks.runtime.client_ip(request.environ), request.path)
    if request.endpoint == "admin.dashboard" and request.accept_mimetypes.accept_html:
        return render_template("login.html", wrong=supplied is not None), 401, CHALLENGE
    reply = error_reply(401, "unauthorized", WRONG if supplied is not None else MISSING, CHALLENGE)
    return reply.body_bytes(), reply.status, reply.headers


def disabled_reply(backworks):
    """The JSON 404 of every admin path while the admin is off (None when it is on for this client)."""
    if backworks.runtime.config.data["admin"]["token"]:
        return None
    if backworks.options.get("dev_server") and is_direct_loopback(request.environ):
        return None
    reply = error_reply(404, "admin_disabled", DISABLED.format(path=backworks.runtime.admin_path))
    return reply.body_bytes(), reply.status, reply.headers


def bearer_token(req) -> str | None:
    """Return the token of an `Authorization: Bearer ...` header, if any."""
    header = req.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_direct_loopback(environ) -> bool:
    """True for a client on this machine talking to us directly (no proxy in between)."""
    if any(environ.get(k) for k in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")):
        return False
    try:
        return ipaddress.ip_address(environ.get("REMOTE_ADDR") or "").is_loopback
    except ValueError:
        return False
