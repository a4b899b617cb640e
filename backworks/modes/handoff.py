"""Hand the upstream leg of a proxy request to nginx: an X-Accel-Redirect to the shipped site's named location.

Backworks decides the route (plugins, target by balancing, health and breakers, the request headers) and
answers nginx with `X-Accel-Redirect: @backworks_upstream` plus X-Backworks-* headers naming the URL and the
header values nginx cannot know; nginx then sends the client's request (method, buffered body, headers) there
and streams the answer. The site offers this with X-Backworks-Handoff (believed from trusted proxies only): "1",
or the digest of the generated upstream blocks nginx has; when that digest is the one of Backworks' config, the
URL names a block (nginx keeps its connections alive), else it holds the target's address (handoff_upstreams.py).
A request is handed off only when nginx would send exactly the headers Backworks would (see Handoff.carried()).
"""
from __future__ import annotations

import logging

from backworks.breaker import CLOSED
from backworks.http import Reply, environ_header_items, is_trusted_peer
from backworks.modes.handoff_upstreams import NginxUpstreams, is_offer

logger = logging.getLogger(__name__)

LOCATION = "@backworks_upstream"
OFFER_KEY = "HTTP_X_BACKWORKS_HANDOFF"  # "1" or the blocks' digest, from the site's `location /`
FAILED_KEY = "HTTP_X_BACKWORKS_HANDOFF_FAILED"  # "<target index> <$upstream_status>" from its failure location
REQUEST_HEADERS = frozenset(("x-backworks-handoff", "x-backworks-handoff-failed"))  # never sent upstream
# Request headers whose value Backworks sets for the nginx leg (`proxy_set_header Name $bw_...` in the site).
CARRIED = {"host": "X-Backworks-Host", "x-forwarded-for": "X-Backworks-Forwarded-For",
           "x-forwarded-proto": "X-Backworks-Forwarded-Proto", "x-forwarded-host": "X-Backworks-Forwarded-Host",
           "x-real-ip": "X-Backworks-Real-Ip", "authorization": "X-Backworks-Authorization"}
# The client's headers the nginx leg never sends: nginx's own proxy defaults, and what the site clears.
NGINX_DROPS = frozenset(("connection", "keep-alive", "te", "upgrade", "expect", "content-length",
                         "transfer-encoding"))
SITE_CLEARS = frozenset(("proxy-connection", "proxy-authorization", "proxy-authenticate", "trailer", "trailers")) \
    | REQUEST_HEADERS
CLEARED = NGINX_DROPS | SITE_CLEARS


class Handoff:
    """One proxy endpoint's hand-off to nginx: which requests qualify, and the answer that hands them over."""

    def __init__(self, upstream, trusted: frozenset, skip: str, set_names: set, removed_names: set,
                 blocks: NginxUpstreams):
        self.upstream = upstream
        self.blocks = blocks
        self.trusted = trusted
        self.skip = skip  # the proxy's "send no such header" marker: nginx sends no default header either
        # With the client's headers as they came and header rules nginx also applies, nginx sends what
        # Backworks would by construction: no comparison is needed (see carried()).
        self.plain = set_names <= CARRIED.keys() and removed_names <= CARRIED.keys() | CLEARED
        self.index = {target: str(i) for i, target in enumerate(upstream.targets)}
        self.prefix = {target: f"http://{target.netloc}{target.base_path}" for target in upstream.targets}
        self.named = {target: f"http://{blocks.name_of(target.host, target.port)}{target.base_path}"
                      for target in upstream.targets}
        self.host = {target: _host_header(target) for target in upstream.targets}

    def answer(self, mode, request) -> Reply | None:
        """The X-Accel answer for this request, or None when Backworks proxies it itself."""
        environ = request.environ
        if not is_trusted_peer(environ.get("REMOTE_ADDR") or "", self.trusted):
            return None
        if FAILED_KEY in environ:
            self.failed(request, environ[FAILED_KEY])
            return None
        offer = environ.get(OFFER_KEY)
        if not is_offer(offer) or request.method != environ.get("REQUEST_METHOD"):
            return None  # not offered, or a plugin changed the method (nginx sends the client's)
        upstream = self.upstream
        for target in upstream.targets:
            if target.breaker.state != CLOSED:
                return None  # a breaker's trial (and what follows it) is Backworks' own to see
        path = mode.upstream_path(request)
        headers = mode.request_headers(request, None)
        target = upstream.pick()
        if target is None:
            return None  # no target available: Backworks answers 503 itself
        if target.auth and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = target.auth
        same = self.plain and not request.headers_replaced and "HTTP_CONNECTION" not in environ
        carried = self.carried(headers, environ, target, same)
        if carried is None:
            return None
        target.count("handoff")
        prefix = self.named if self.blocks.offered(offer) else self.prefix
        return Reply(200, [("X-Accel-Redirect", LOCATION), ("X-Backworks-Url", prefix[target] + path),
                           ("X-Backworks-Target", self.index[target]), *carried], b"", {"handoff": "nginx"})

    def carried(self, headers: dict, environ: dict, target, same: bool) -> list | None:
        """The X-Backworks-* headers that make nginx send `headers`; None when it would send others.

        nginx sends the client's headers (as it forwarded them to Backworks) less CLEARED and the CARRIED
        names, plus the carried values; that must equal what Backworks' own client would send. `same`: it
        does by construction (the headers come from the environ and only nginx's rules applied).
        """
        out = []
        wanted = {}
        host = False
        for key, value in headers.items():
            lkey = key.lower()
            if lkey in CARRIED:
                if not value:
                    return None  # an empty value is no header at all to nginx
                out.append((CARRIED[lkey], value))
                host = host or lkey == "host"
            elif not same and value != self.skip:
                wanted[lkey] = value
        if not host:
            out.append(("X-Backworks-Host", self.host[target]))  # what urllib3 would send
        if same:
            return out
        sent: dict = {}
        for key, value in environ_header_items(environ):
            lkey = key.lower()
            if lkey not in CARRIED and lkey not in CLEARED:
                sent[lkey] = f"{sent[lkey]}, {value}" if lkey in sent else value
        return out if sent == wanted else None

    def failed(self, request, value: str) -> None:
        """nginx could not finish a handed-off exchange: count it; a non-idempotent request is not sent again."""
        from backworks.upstreams import IDEMPOTENT, UpstreamFailure  # urllib3: loaded with the proxy, a lookup

        index, _, statuses = value.partition(" ")
        status = statuses.replace(":", " ").replace(",", " ").split()[-1:] or ["502"]
        targets = self.upstream.targets
        target = targets[int(index)] if index.isdigit() and int(index) < len(targets) else None
        kind = "timeout" if status[0] == "504" else "error"
        name = target.name if target is not None else "?"
        if target is not None:
            target.count(f"handoff_{kind}")
        logger.warning("upstream %s target %s: nginx's exchange failed (%s)%s", self.upstream.name, name, status[0],
                       "; Backworks sends it again" if request.method in IDEMPOTENT else "")
        if request.method not in IDEMPOTENT:
            raise UpstreamFailure(kind, f"upstream '{self.upstream.name}' ({name}) "
                                  f"{'did not answer in time' if kind == 'timeout' else 'failed'} when nginx sent "
                                  f"the request ({status[0]}; see nginx's error log); a {request.method} is not "
                                  f"sent twice")


def _host_header(target) -> str:
    """The Host header urllib3 sends to a target: its host, with the port unless it is the default."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == 80 else f"{host}:{target.port}"
