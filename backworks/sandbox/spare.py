"""Warm spare sandbox children: booted and loaded in a background thread, swapped in when a child is killed.

Starting a child (an interpreter by exec, then every script's module body) takes tens to hundreds of ms: a
request must never pay for it. The parent keeps one spare that has answered a ping and loaded every
script; after a kill the spare becomes current at once and the next one is built here, off every clock.
"""
from __future__ import annotations

import json
import logging
import marshal
import os
import select
import subprocess
import threading
import time

from backworks.sandbox.child import READ_CHUNK, take_frame, write_frame

logger = logging.getLogger(__name__)

BOOT_S = 10.0  # a spare must answer each boot message (ping, one load) within this


class BootFailed(Exception):
    """A spare did not boot: it died, overran BOOT_S or sent garbage (it has been killed)."""


def ask(proc: subprocess.Popen, buffer: bytearray, message, timeout_s: float = BOOT_S) -> list:
    """Send one marshal frame to a booting child and wait (blocking, this thread only) for its JSON answer."""
    try:
        write_frame(proc.stdin.fileno(), marshal.dumps(message))
    except (OSError, ValueError) as exc:
        raise BootFailed(f"write failed ({exc})") from None
    try:
        fd = proc.stdout.fileno()
    except ValueError:  # closed: the sandbox was closed (or the child reaped) while this spare booted
        raise BootFailed("the process was closed") from None
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            payload = take_frame(buffer, 64 * 1024 * 1024)
        except ValueError as exc:
            raise BootFailed(str(exc)) from None
        if payload is not None:
            try:
                return json.loads(bytes(payload).decode())
            except ValueError as exc:
                raise BootFailed(f"unreadable answer ({exc})") from None
        left = deadline - time.monotonic()
        if left <= 0:
            raise BootFailed("no answer in time")
        try:
            ready, _, _ = select.select([fd], [], [], left)
        except (OSError, ValueError) as exc:  # the descriptor was closed under this thread
            raise BootFailed(f"wait failed ({exc})") from None
        if not ready:
            continue
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            continue
        except OSError as exc:
            raise BootFailed(f"read failed ({exc})") from None
        if not chunk:
            raise BootFailed("the process died")
        buffer += chunk


def boot(proc: subprocess.Popen, loads: list) -> bytearray:
    """Ping a fresh child and send it every (key, load message); return its read buffer once all answered."""
    buffer = bytearray()
    ask(proc, buffer, ("ping",))
    for key, message in loads:
        answer = ask(proc, buffer, message)
        if not (isinstance(answer, list) and len(answer) == 2 and answer[1] and answer[1][0] == "ok"):
            logger.warning("plugin %s failed to load in a spare sandbox process", key)
    return buffer


class Builder:
    """Builds one warm spare in a background thread; `start` spawns a child, `loads` lists its load messages."""

    def __init__(self, start, loads: list, done):
        self.start_child = start
        self.loads = loads
        self.done = done  # done(proc, buffer) installs the spare (or reaps it), called in the thread
        self.proc: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self.run, name="sandbox-spare", daemon=True)

    def run(self) -> None:
        try:
            self.proc = self.start_child()
            buffer = boot(self.proc, self.loads)
        except (BootFailed, OSError) as exc:
            if self.proc is not None and self.proc.returncode is None:  # not reaped by close()
                logger.warning("a spare sandbox process failed to boot: %s", exc)
            self.done(self.proc, None)
            return
        self.done(self.proc, buffer)

    def alive(self) -> bool:
        """Tell whether the build is still running."""
        return self.thread.is_alive()
