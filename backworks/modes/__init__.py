"""The registry of modes: add a mode by writing one module and one line here.

A mode's module is imported the first time something asks for its class (MODES[name]), so a config loads
only the modes it uses: a mock-only config never imports SQLAlchemy or urllib3. What every config load
needs of every mode, its block's schema and one-line summary (for validation and the reference), comes from
block_schema(), which imports only light modules: the mode's own, or for a mode whose module is heavy, a
module that holds only its schema.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

# name: (module, class, module holding SUMMARY and SCHEMA when the mode's own module is heavy, else None)
REGISTRY = {
    "database": ("backworks.modes.database", "DatabaseMode", "backworks.modes.database_schema"),
    "mock": ("backworks.modes.mock", "MockMode", None),
    "proxy": ("backworks.modes.proxy", "ProxyMode", None),
    "capture": ("backworks.modes.capture", "CaptureMode", None),
    "replay": ("backworks.modes.replay", "ReplayMode", None),
    "hybrid": ("backworks.modes.hybrid", "HybridMode", None),
    "runtime": ("backworks.modes.runtime", "RuntimeMode", None),
}


class LazyModes(Mapping):
    """Mode name -> mode class, importing a mode's module on first lookup; iterating names imports nothing."""

    def __init__(self, registry: dict):
        self._registry = registry
        self._classes: dict = {}

    def __getitem__(self, name: str) -> type:
        found = self._classes.get(name)
        if found is None:
            module, cls, _ = self._registry[name]
            found = self._classes[name] = getattr(importlib.import_module(module), cls)
        return found

    def __iter__(self):
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)

    def __contains__(self, name) -> bool:
        return name in self._registry


MODES = LazyModes(REGISTRY)


def block_schema(name: str) -> tuple[str, dict]:
    """Return (summary line, schema) of a mode's block without importing a heavy mode module."""
    module, _, light = REGISTRY[name]
    if light is None:
        mode = MODES[name]
        return mode.__doc__.strip().splitlines()[0], mode.schema
    spec = importlib.import_module(light)
    return spec.SUMMARY, spec.SCHEMA
