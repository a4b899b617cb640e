"""One loaded config: route table, endpoint handlers and plugin chains, immutable once built."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from backworks import backstop
from backworks.config.load import load_config
from backworks.config.model import Config
from backworks.errors import ConfigError, HTTPError
from backworks.http import Reply, RequestData, environ_header_items, is_trusted_peer, parse_json_body
from backworks.modes import MODES
from backworks.modes.base import LoadContext, Mode
from backworks.routing import Router

logger = logging.getLogger(__name__)

RESERVED_PATHS = ("/metrics", "/healthz", "/readyz")
UNIX_PEER = "unix-socket"  # client_ip of a unix-socket peer that names no client (no X-Forwarded-For)


@dataclass
class LoadedEndpoint:
    """An endpoint ready to serve: its spec, its mode handler and its plugin chain (or None)."""

    spec: object
    mode: Mode
    plugins: object | None


class Runtime:
    """Everything one config load produced; replaced whole on reload, never mutated."""

    def __init__(self, config: Config, options: dict | None = None):
        self.config = config
        self.server = server = config.server
        self.max_body = server.max_body_bytes
        self.max_headers = server.max_header_count
        self.trusted = frozenset(server.trusted_proxies)
        self.request_id_header = server.request_id_header
        self.request_id_key = "HTTP_" + self.request_id_header.upper().replace("-", "_")
        self.admin_path = config.admin.path
        self.reserved = RESERVED_PATHS + (self.admin_path,)
        self.ctx = LoadContext(config, options, modes=MODES)
        self.plugins = None
        self.endpoints: dict = {}
        self.inline_sandbox = None
        problems: list = []  # every stage runs, so one load reports routes, plugins and modes together
        try:
            _collect(problems, check_reserved, config, self.admin_path)
            self.router = _collect(problems, Router, config.endpoints)
            # Inside, a refused plugin's sandbox is closed too.
            self.plugins = _collect(problems, build_plugins, config, self.ctx)
            _collect(problems, self._build_endpoints)
            if problems:
                raise ConfigError(problems)
        except BaseException:
            self.close()
            raise
        # The in-process sandbox of this load (plugins and runtime handlers share it), if any: what its
        # failed calls leave behind is freed once their response is sent (see Backworks.__call__ in app.py).
        self.inline_sandbox = self.ctx.peek("sandbox:inline")
        if self.inline_sandbox is not None:
            backstop.set_margin(server.inline_hard_margin_ms)

    def _build_endpoints(self) -> None:
        problems = []
        for spec in self.config.endpoints:
            try:
                mode = MODES[spec.mode](spec, self.ctx)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            # The mode class says whether requests of this mode read the body (proxy streams it through).
            chain = self.plugins.chain_for(spec.name, type(mode).reads_body) if self.plugins else None
            mode.bind_plugins(chain)
            self.endpoints[spec.name] = LoadedEndpoint(spec, mode, chain)
        if problems:
            raise ConfigError(problems)

    def dispatch(self, environ, request_id: str) -> tuple[Reply, LoadedEndpoint | None]:
        """Route and answer one request; HTTPError for client-facing failures."""
        name, params = self.router.match(environ)
        endpoint = self.endpoints[name]
        if self.max_headers and len(environ) > self.max_headers:
            count = len(environ_header_items(environ))
            if count > self.max_headers:
                raise HTTPError(431, "too_many_headers", f"request has {count} headers; the limit is "
                                f"{self.max_headers} (server.max_header_count)")
        request = RequestData(environ, name, params, request_id, self.max_body, self.client_ip(environ))
        mode = endpoint.mode
        if mode.reads_body:
            parse_json_body(environ.get("CONTENT_TYPE"), request.body)
        chain = endpoint.plugins
        if chain is None:
            return mode.handle(request), endpoint
        outcome = chain.before_request(request)
        if isinstance(outcome, Reply):
            return outcome, endpoint
        return chain.after_response(outcome, mode.handle(outcome)), endpoint

    def client_ip(self, environ) -> str:
        """The client address (X-Forwarded-For only from a trusted proxy); never empty."""
        peer = environ.get("REMOTE_ADDR") or ""
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if not forwarded or not self.trusted_peer(peer):
            return peer or UNIX_PEER
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in self.trusted:
                return hop
        # Every hop is a trusted proxy (nginx on this host over a unix socket, say): the client is the first.
        return hops[0] if hops else (peer or UNIX_PEER)

    def trusted_peer(self, peer: str) -> bool:
        """True for a configured trusted proxy, or a unix-socket peer (no address: nginx on this host)."""
        return is_trusted_peer(peer, self.trusted)

    def scheme(self, environ) -> str:
        """The client's scheme, taken from X-Forwarded-Proto only when the peer is a trusted proxy."""
        forwarded = environ.get("HTTP_X_FORWARDED_PROTO")
        if forwarded and self.trusted_peer(environ.get("REMOTE_ADDR") or ""):
            proto = forwarded.split(",", 1)[0].strip().lower()
            if proto in ("http", "https"):
                return proto
        return environ.get("wsgi.url_scheme") or "http"

    def close(self) -> None:
        """Release pools, stores and sandbox children of this load."""
        for endpoint in self.endpoints.values():
            try:
                endpoint.mode.close()
            except Exception:
                logger.exception("closing endpoint %s failed", endpoint.spec.name)
        if self.plugins is not None:
            self.plugins.close()
        self.ctx.close()


def _collect(problems: list, stage, *args):
    """Run one load stage; add its ConfigError problems to `problems` instead of stopping."""
    try:
        return stage(*args)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def check_reserved(config: Config, admin_path: str) -> None:
    """Refuse endpoints whose paths would shadow the built-in operational routes."""
    problems = []
    for spec in config.endpoints:
        for reserved in RESERVED_PATHS + (admin_path,):
            if spec.path == reserved or spec.path.startswith(reserved + "/"):
                problems.append(f"{spec.at('path')}: {spec.path} is reserved for Backworks itself "
                                f"({reserved}); choose another path")
    if problems:
        raise ConfigError(problems)


def build_plugins(config: Config, ctx: LoadContext):
    """Load the config's plugins (None when there are none)."""
    if not config.data["plugins"]:
        return None
    from backworks.plugins.set import PluginSet  # start-up cost: plugins import the sandbox (RestrictedPython)

    return PluginSet(config, ctx)


def load_runtime(path=None, overrides=None, options=None) -> Runtime:
    """Load a config file and build its runtime; ConfigError lists every problem."""
    return Runtime(load_config(path, overrides), options)
