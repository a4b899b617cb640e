"""What every mode is: a schema for its block, and a handler built once per config load."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Callable

from backworks.config.model import Config, EndpointSpec
from backworks.errors import ConfigError
from backworks.http import Reply, RequestData

logger = logging.getLogger(__name__)

# A load option: a script that fails to load (compile, module body, on_load) disables its plugin or runtime
# endpoint for this load instead of refusing the config. Only a gunicorn worker's last-resort boot sets it
# (see server/lifecycle.py): checks and reloads still refuse a broken script with its file:line.
DISABLE_FAILED_SCRIPTS = "disable_failed_scripts"


class LoadContext:
    """What modes share during one config load: the config and resources created once (pools, stores)."""

    def __init__(self, config: Config, options: dict | None = None, *, modes: Mapping[str, type]):
        self.config = config
        self.options = options or {}  # process-level facts: {"dev_server": bool, "worker_class": str}
        self.modes = modes  # mode name -> class, for a mode built of other modes (hybrid)
        self._shared: dict = {}

    def shared(self, key: str, factory: Callable[[], object]) -> object:
        """Return the resource named `key`, creating it with `factory` the first time in this load."""
        if key not in self._shared:
            self._shared[key] = factory()
        return self._shared[key]

    @property
    def disables_failed_scripts(self) -> bool:
        """True when a script that fails to load is disabled for this load rather than refusing it."""
        return bool(self.options.get(DISABLE_FAILED_SCRIPTS))

    def peek(self, key: str) -> object | None:
        """Return the resource named `key` if this load created it, without creating it."""
        return self._shared.get(key)

    def close(self) -> None:
        """Release every shared resource that has a close() method."""
        for key, resource in list(self._shared.items()):
            close = getattr(resource, "close", None)
            if close:
                try:
                    close()
                except Exception:
                    logger.exception("closing %s failed", key)
        self._shared.clear()


class Mode:
    """Base class: subclasses set `schema` and implement `handle`."""

    schema: dict = {}
    default_methods: tuple = ("GET",)
    block_required = True
    reads_body = True  # False for modes that stream the body through untouched (proxy)
    names_upstream = False  # True when this mode's block has an `upstream:` naming one of `upstreams:`

    @classmethod
    def routes(cls, path: str, methods: tuple, block: dict) -> list[tuple[str, tuple]]:
        """Return the (path, methods) URL rules this endpoint answers: one rule by default."""
        return [(path, methods)]

    def bind_plugins(self, chain) -> None:
        """Learn the endpoint's plugin chain (None for none), once, when the load has built it."""

    def readiness(self):
        """A check this endpoint adds to /readyz as (name, run), run returning {"ok": ...}; None for none."""
        return None

    def __init__(self, spec: EndpointSpec, ctx: LoadContext):
        self.spec = spec
        self.ctx = ctx
        self.block = spec.block

    def handle(self, request: RequestData) -> Reply:
        """Answer one request."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what this endpoint holds when a new config replaces it."""

    def problem(self, field_path: str, message: str) -> ConfigError:
        """Build a load-time error that names this endpoint's field."""
        return ConfigError([f"{self.spec.at(self.spec.mode, *field_path.split('.'))}: {message}"])
