"""The repository root, free ports, config files, and the rule for missing services."""
from __future__ import annotations

import os
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
