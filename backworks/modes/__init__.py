"""The registry of modes: add a mode by writing one module and one line here."""
from __future__ import annotations

from backworks.modes.mock import MockMode

MODES: dict = {
    "mock": MockMode,
}
