"""Backworks: a configuration-driven, programmable API server."""
from __future__ import annotations

__version__ = "0.1.0"


def create_app(config_path=None, overrides=None):
    """Build the Flask application for a config file (see backworks.app.create_app)."""
    from backworks.app import create_app as _create_app  # start-up cost: `import backworks` stays light (Flask, modes)

    return _create_app(config_path, overrides)


__all__ = ["__version__", "create_app"]
