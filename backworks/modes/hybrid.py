"""Hybrid mode: try the upstream (proxy or capture), fall back to replay or mock when it fails."""
from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from backworks.config.fields import HTTP_METHODS, field, listof
from backworks.errors import ConfigError, HTTPError
from backworks.http import Reply, RequestData
from backworks.modes.base import LoadContext, Mode

if TYPE_CHECKING:
    from backworks.upstreams import UpstreamFailure

logger = logging.getLogger(__name__)

SCHEMA = {
    "primary": field("string", "Mode tried first; its block (`proxy:` / `capture:`) sits beside `hybrid:`.",
                     allowed=["proxy", "capture"], default="proxy"),
    "fallback": field("string", "Mode answering when the primary fails; its block (`mock:` / `replay:`) sits "
                      "beside `hybrid:`.", allowed=["replay", "mock"], default="mock"),
    "upstream": field("string", "Shorthand for a primary block with only `upstream:`."),
    "fallback_on_status": listof("Upstream statuses that also trigger the fallback (e.g. [500, 502]).",
                                 {"type": "integer", "min": 100, "max": 599}, default=[]),
    "header": field("string", "Header marking fallback answers: value `<fallback>; reason=<why>`.",
                    default="X-Backworks-Fallback"),
}


class HybridMode(Mode):
    """Try a primary upstream mode; on refusal, timeout, open breaker (or listed statuses) fall back."""

    schema = SCHEMA
    default_methods = tuple(HTTP_METHODS)
    names_upstream = True

    def __init__(self, spec, ctx: LoadContext):
        super().__init__(spec, ctx)
        block = self.block
        self.primary_name = block.get("primary", "proxy")
        self.fallback_name = block.get("fallback", "mock")
        data = dict(spec.data)
        if not data.get(self.primary_name):
            if not block.get("upstream"):
                raise self.problem("primary", f"needs a '{self.primary_name}:' block beside 'hybrid:' (or "
                                   f"hybrid.upstream)")
            data[self.primary_name] = {"upstream": block["upstream"]}
        if (data.get("proxy") or {}).get("nginx_handoff"):
            raise ConfigError([f"{spec.at('proxy', 'nginx_handoff')}: a hybrid endpoint needs the upstream's "
                               f"answer to fall back, so nginx cannot send the request (remove nginx_handoff)"])
        if self.fallback_name == "mock" and "mock" not in data:
            raise self.problem("fallback", "needs a 'mock:' block beside 'hybrid:' with the fallback answer")
        modes = ctx.modes
        self.primary = modes[self.primary_name](dataclasses.replace(spec, mode=self.primary_name, data=data), ctx)
        self.fallback = modes[self.fallback_name](dataclasses.replace(spec, mode=self.fallback_name, data=data),
                                                  ctx)
        self.statuses = frozenset(block.get("fallback_on_status") or ())
        self.header = block.get("header", "X-Backworks-Fallback")
        # the fallback may need the body after the primary sent it, so it is then read first
        self.reads_body = self.fallback.reads_body

    def handle(self, request: RequestData) -> Reply:
        """Answer from the primary; from the fallback when the upstream fails."""
        from backworks.upstreams import UpstreamFailure  # the primary loaded it: a lookup

        try:
            reply = self.primary.handle(request)
        except UpstreamFailure as exc:
            return self.fall_back(request, exc.code, exc)
        if reply.status in self.statuses:
            close = getattr(reply.body, "close", None)
            if close:
                close()
            return self.fall_back(request, f"upstream_status_{reply.status}", None)
        return reply

    def fall_back(self, request: RequestData, reason: str, failure: UpstreamFailure | None) -> Reply:
        """Answer from the fallback mode and mark the answer with the fallback header."""
        logger.info("endpoint %s: %s, answering from %s", self.spec.name, reason, self.fallback_name)
        try:
            reply = self.fallback.handle(request)
        except HTTPError as exc:
            if failure is None:
                raise
            raise HTTPError(failure.status, failure.code, f"{failure.message}; the {self.fallback_name} "
                            f"fallback had no answer: {exc.message}") from None
        reply.headers.append((self.header, f"{self.fallback_name}; reason={reason}"))
        reply.meta = {**(reply.meta or {}), "fallback": self.fallback_name, "fallback_reason": reason}
        return reply

    def close(self) -> None:
        """Close both modes."""
        self.primary.close()
        self.fallback.close()
