"""Who may use the admin API and dashboard: the bearer of `admin.token`, or direct loopback in dev."""
from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import render_template, request

from backworks.http import error_reply
from backworks.logtext import log_safe

logger = logging.getLogger(__name__)

MISSING = "the admin API needs the header Authorization: Bearer <admin.token>"
WRONG = "the admin token is wrong"
DISABLED = ("the admin API and dashboard are disabled: set admin.token in the config to turn them on, then "
            "send Authorization: Bearer <token> (or open {path}/ and sign in with it)")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="backworks admin"'}


def require_admin(backworks):
    """Before every admin request: 404 when the admin is off, 401 without the right token."""
    token = backworks.runtime.config.admin.token
    if not token:
        return disabled_reply(backworks)
    if request.endpoint == "admin.static":
        return None  # the page's own scripts and styles; nothing secret
    supplied = bearer_token(request)
    if supplied is None and request.endpoint == "admin.dashboard" and request.method == "POST":
        # the login form posts the token: in a URL it would land in access logs and browser history
        supplied = request.form.get("token")
    if supplied is not None and hmac.compare_digest(supplied.encode(), token.encode()):
        return browser_refusal(request.environ, loopback_only=False)
    logger.warning("admin: %s token from %s for %s", "wrong" if supplied else "missing",
                   log_safe(backworks.runtime.client_ip(request.environ)), log_safe(request.path))
    if request.endpoint == "admin.dashboard" and request.accept_mimetypes.accept_html:
        return render_template("login.html", wrong=supplied is not None), 401, CHALLENGE
    reply = error_reply(401, "unauthorized", WRONG if supplied is not None else MISSING, CHALLENGE)
    return reply.body_bytes(), reply.status, reply.headers


def disabled_reply(backworks):
    """The JSON 404 of every admin path while the admin is off (None when it is on for this client)."""
    if backworks.runtime.config.admin.token:
        return None
    if backworks.options.get("dev_server") and is_direct_loopback(request.environ):
        # A page in the browser on this machine is a loopback client too: refuse it through another
        # site's name (DNS rebinding) or origin (a cross-site form or fetch).
        return browser_refusal(request.environ, loopback_only=True)
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


STATE_CHANGING = frozenset(("POST", "PUT", "PATCH", "DELETE"))
DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def browser_refusal(environ, loopback_only: bool):
    """A 403 for a foreign Host (when only loopback names may be used) or a cross-origin change; else None."""
    host = (environ.get("HTTP_HOST") or "").lower()
    if loopback_only and not is_loopback_host(host):
        logger.warning("admin: refused Host %s from a loopback client", log_safe(host)[:100])
        return _forbidden("foreign_host", "without admin.token the admin API answers only to loopback host "
                          "names (localhost, 127.0.0.1, [::1]) in the Host header")
    if environ.get("REQUEST_METHOD") in STATE_CHANGING and is_cross_origin(environ, host):
        logger.warning("admin: refused a cross-origin %s %s (Origin %s, Sec-Fetch-Site %s)",
                       environ.get("REQUEST_METHOD"), log_safe(environ.get("PATH_INFO", ""))[:200],
                       log_safe(environ.get("HTTP_ORIGIN", "-"))[:100],
                       log_safe(environ.get("HTTP_SEC_FETCH_SITE", "-"))[:20])
        return _forbidden("cross_origin", "admin changes must come from the dashboard's own origin "
                          "(this request came from another site)")
    return None


def is_cross_origin(environ, host: str) -> bool:
    """True when a browser says (Sec-Fetch-Site) or shows (Origin) that another site sent the request."""
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None:
        return site.lower() not in ("same-origin", "none")
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return False  # not sent by a browser for another site: browsers send Origin on cross-origin POSTs
    scheme, _, netloc = origin.lower().partition("://")
    default = DEFAULT_PORTS.get(scheme, "")
    return not netloc or _without(netloc, default) != _without(host, default)


def _without(netloc: str, default_port: str) -> str:
    return netloc[:-len(default_port)] if default_port and netloc.endswith(default_port) else netloc


def is_loopback_host(host: str) -> bool:
    """True for a Host header naming this machine: localhost, *.localhost or a loopback address."""
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _forbidden(code: str, message: str):
    reply = error_reply(403, code, message)
    return reply.body_bytes(), reply.status, reply.headers
