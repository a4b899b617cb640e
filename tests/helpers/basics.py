"""The repository root, free ports, config files, the rule for missing services, and Ctrl-C for scripts."""
from __future__ import annotations

import os
import signal
import socket
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ctrl_c_stops() -> None:
    """preexec_fn for a script a test stops with SIGINT: Ctrl-C's default action, as in a terminal.

    A suite started in the background of a non-interactive shell inherits SIGINT ignored, and so would the
    script: it would never stop.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def need_service(reason: str):
    """Skip outside CI when a service is missing; fail under CI=true, where it must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this service must be available)")
    pytest.skip(reason)


def write_config(tmp_path: Path, text: str, name: str = "backworks.yaml") -> Path:
    """Write a dedented YAML config into tmp_path and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path
