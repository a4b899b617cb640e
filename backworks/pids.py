"""This process's id, kept current across fork() without a system call per use: the one after-fork pid helper."""
from __future__ import annotations

import os

_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


# Registered when this module is first imported, so before the after-fork hooks of the modules that import it.
os.register_at_fork(after_in_child=_after_fork)


def current_pid() -> int:
    """Return this process's id without a system call (per-request checks for a fork use it)."""
    return _pid
