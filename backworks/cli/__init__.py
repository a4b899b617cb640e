"""The `backworks` command line: one module per command group (main, capture, plugins)."""
from __future__ import annotations

from backworks.cli.main import cli, main

__all__ = ["cli", "main"]
