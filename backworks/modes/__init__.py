"""The registry of modes: add a mode by writing one module and one line here."""
from __future__ import annotations

from backworks.modes.capture import CaptureMode
from backworks.modes.database import DatabaseMode
from backworks.modes.hybrid import HybridMode
from backworks.modes.mock import MockMode
from backworks.modes.proxy import ProxyMode
from backworks.modes.replay import ReplayMode
from backworks.modes.runtime import RuntimeMode

MODES: dict = {
    "database": DatabaseMode,
    "mock": MockMode,
    "proxy": ProxyMode,
    "capture": CaptureMode,
    "replay": ReplayMode,
    "hybrid": HybridMode,
    "runtime": RuntimeMode,
}
