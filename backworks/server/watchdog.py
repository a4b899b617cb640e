"""The gunicorn master's watchdog: ends a worker whose inline script call outlived budget + hard margin.

A C call that never checks signals cannot be interrupted inside the worker (the worker's own threads
cannot run while it holds the GIL); the worker can be ended from outside. The master polls the board of
worker slots (see backworks.sandbox.backstop) every POLL_S, quarantines the script a worker is stuck in
and SIGKILLs that worker; gunicorn then starts a new one. A worker that dies on its own (a C-stack
overflow, an abort, gunicorn's own timeout) with a deadline set is found by died_in_script().
"""
from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time

from backworks.backstop import Board, add

logger = logging.getLogger(__name__)

POLL_S = 0.02


_lock = threading.RLock()  # the watchdog thread and gunicorn's main loop both report dead workers


def quarantine(board: Board, index: int, pid: int, reason: str, others: dict | None = None) -> None:
    """Quarantine the script slot `index`'s worker was in, and tell every worker.

    Workers look at the board before each inline phase. One that is inside the same script right now (it
    took the same request a moment later) is sent SIGALRM: its timer handler ends that call (fail open)
    before the script gets to what killed the first worker.
    """
    digest, name = board.identity(index)
    with _lock:
        if board.quarantine(digest):
            board.bump()
            _interrupt(board, digest, pid, others or {})
        if add(digest, name, reason):
            logger.error("worker %s %s inside script %s: that script now runs with process isolation in every "
                         "worker until its file changes", pid, reason, name or digest)


def _interrupt(board: Board, digest: str, culprit: int, others: dict) -> None:
    for pid, index in others.items():
        if pid != culprit and board.deadline(index) and board.identity(index)[0] == digest:
            try:
                os.kill(pid, signal.SIGALRM)  # inside an inline call: the sandbox's handler is installed
            except ProcessLookupError:
                pass


def died_in_script(board: Board, index: int, pid: int, others: dict | None = None) -> bool:
    """Quarantine the script a dead worker was running inline, if it was running one; True when so."""
    with _lock:
        if board.deadline(index) == 0:
            return False
        quarantine(board, index, pid, "died", others)
        board.clear(index)
        return True


class Watchdog:
    """A master thread that polls the slots of the live workers."""

    def __init__(self, board: Board, workers):
        self.board = board
        self.workers = workers  # () -> {pid: slot index} of the live workers
        self.killed: set[int] = set()
        self.dead: set[int] = set()  # workers seen dead, not yet reaped by gunicorn
        self.thread = threading.Thread(target=self._run, name="backworks-watchdog", daemon=True)

    def start(self) -> "Watchdog":
        """Start polling."""
        self.thread.start()
        return self

    def check(self, now_ns: int | None = None) -> list[int]:
        """End every worker stuck past its deadline; return their pids."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        ended = []
        live = self.workers()
        self.killed &= set(live)
        for pid, index in live.items():
            deadline = self.board.deadline(index)
            if not deadline or now_ns <= deadline or pid in self.killed:
                continue
            quarantine(self.board, index, pid, "overran its budget and hard margin", live)
            self.killed.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            ended.append(pid)
        return ended

    def _run(self) -> None:
        pidfds: dict = {}  # pid -> a pidfd, readable once the worker is dead (before gunicorn reaps it)
        while True:
            try:
                self._wait_for_death(pidfds)
                self.check()
            except Exception:
                logger.exception("inline backstop watchdog failed; it keeps watching")
                time.sleep(POLL_S)

    def _wait_for_death(self, pidfds: dict) -> None:
        """Sleep POLL_S, waking at once when a worker dies: its script is quarantined before gunicorn's main
        loop gets to it, so another worker is told before it can start the same request."""
        live = self.workers()
        self.dead &= set(live)  # gunicorn reaped the others
        for pid in set(pidfds) - set(live):
            os.close(pidfds.pop(pid))
        for pid in set(live) - set(pidfds) - self.dead:
            try:
                pidfds[pid] = os.pidfd_open(pid)
            except (OSError, AttributeError):  # gone already, or no pidfd here: gunicorn's reaping tells
                continue
        ready, _, _ = select.select(list(pidfds.values()), [], [], POLL_S)
        for pid, fd in list(pidfds.items()):
            if fd in ready:
                died_in_script(self.board, live[pid], pid, live)
                os.close(pidfds.pop(pid))
                self.dead.add(pid)
