"""The nginx `upstream` blocks of hand-off targets, so that nginx keeps their connections alive, and their digest.

nginx keeps no connection alive for `proxy_pass $bw_url` when the URL holds an address; when its host names an
`upstream` block instead, that block's `keepalive` applies. `backworks nginx-upstreams CONFIG` writes one block
per hand-off target and `map "" $backworks_upstreams` holding the digest of those blocks; the shipped site sends
that digest in X-Backworks-Handoff. Backworks names a block only when the digest is the one of its own config:
then the nginx that handles the request has every block Backworks names (docs/modes/proxy.md).
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

INCLUDE = "/etc/backworks/nginx-upstreams.conf"  # where the shipped site's include glob looks
NO_BLOCKS = "1"  # X-Backworks-Handoff from a site without the generated file: hand-off, addresses in the URL
DIGEST = re.compile(r"[0-9a-f]{16}")  # what the generated map holds (an offer is "1" or one of these)
STALE_LOGGED = 16  # distinct stale digests logged per load and worker (a bound, not a setting)


def target_problem(url: str) -> str | None:
    """Why nginx cannot be handed a target (it needs http:// and an IP address), or None."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return "it is not http:// (nginx would not verify the certificate of an https:// target)"
    try:
        ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return "its host is a name, not an IP address (nginx resolves names in proxy_pass only with a resolver)"
    return None


def is_offer(value: str | None) -> bool:
    """Whether an X-Backworks-Handoff value offers the hand-off: "1", or the digest of some generated blocks."""
    return value == NO_BLOCKS or (value is not None and DIGEST.fullmatch(value) is not None)


def block_name(host: str, port: int) -> str:
    """The block named after an address: one name per address, nothing a client or a config can choose."""
    ip = ipaddress.ip_address(host)
    return f"backworks_v{ip.version}_{ip.compressed.replace('.', '_').replace(':', '_')}_{port}"


def _server(host: str, port: int) -> str:
    ip = ipaddress.ip_address(host)
    return f"[{ip.compressed}]:{port}" if ip.version == 6 else f"{ip.compressed}:{port}"


class NginxUpstreams:
    """The upstream blocks of a config's hand-off targets (one per address), their text and digest."""

    def __init__(self, keepalive: dict):
        # keepalive: {(host, port): idle connections nginx keeps per worker}
        self.names = {address: block_name(*address) for address in keepalive}
        # max_fails=0: Backworks' breakers and health checks judge a target, not nginx.
        self.blocks = "".join(
            f"upstream {self.names[address]} {{\n    server {_server(*address)} max_fails=0;\n"
            f"    keepalive {keepalive[address]};\n}}\n"
            for address in sorted(keepalive, key=lambda a: (self.names[a], a)))
        self.digest = hashlib.sha256(self.blocks.encode()).hexdigest()[:16]
        self._stale: set = set()

    @classmethod
    def of(cls, config) -> NginxUpstreams:
        """The blocks for every target of every upstream a proxy endpoint with nginx_handoff names.

        An upstream with a target nginx cannot be handed gets no blocks (its endpoints never hand off).
        """
        keepalive: dict = {}
        upstreams = config.data.get("upstreams") or {}
        named = {spec.block.get("upstream") for spec in config.endpoints
                 if spec.mode == "proxy" and spec.block.get("nginx_handoff")}
        for name in sorted(n for n in named if n in upstreams):
            settings = upstreams[name]
            if any(target_problem(t["url"]) for t in settings["targets"]):
                continue
            for target in settings["targets"]:
                parts = urlsplit(target["url"])
                address = (ipaddress.ip_address(parts.hostname).compressed, parts.port or 80)
                keepalive[address] = max(keepalive.get(address, 0), settings["pool_size"])
        return cls(keepalive)

    def name_of(self, host: str, port: int) -> str:
        """The block name of a target's address."""
        return self.names[(ipaddress.ip_address(host).compressed, port)]

    def text(self, config_path: str) -> str:
        """The include file: the blocks, then the map the shipped site reads their digest from."""
        return (f"# Written by `backworks nginx-upstreams {config_path}`; do not edit. After a change to the\n"
                f"# upstreams of endpoints with proxy.nginx_handoff, write it again and reload nginx\n"
                f"# (docs/modes/proxy.md). Backworks names these blocks only while the digest below is its own.\n"
                f"{self.blocks}"
                f'map "" $backworks_upstreams {{\n    default "{self.digest}";\n}}\n')

    def offered(self, offer: str) -> bool:
        """Whether nginx's X-Backworks-Handoff shows it has these blocks; a digest of other blocks is logged once."""
        if offer == self.digest:
            return True
        if offer != NO_BLOCKS and offer not in self._stale and len(self._stale) < STALE_LOGGED:
            self._stale.add(offer)
            logger.warning("nginx's upstream blocks (digest %s) are not those of this config (%s): handed-off "
                           "requests open a new upstream connection each until `backworks nginx-upstreams` writes "
                           "%s again and nginx is reloaded", offer, self.digest, INCLUDE)
        return False
