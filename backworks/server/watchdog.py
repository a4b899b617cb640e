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
import signal
import threading
import time

from backworks.backstop import Board, add

logger = logging.getLogger(__name__)

POLL_S = 0.02


def quarantine(board: Board, index: int, pid: int, reason: str) -> None:
    """Quarantine the script slot `index`'s worker was in, and tell every worker."""
    digest, name = board.identity(index)
    if add(digest, name, reason):
        board.bump()
        logger.error("worker %s %s inside script %s: that script now runs with process isolation in every "
                     "worker until its file changes", pid, reason, name or digest)


def died_in_script(board: Board, index: int, pid: int) -> bool:
    """Quarantine the script a dead worker was running inline, if it was running one; True when so."""
    if board.deadline(index) == 0:
        return False
    quarantine(board, index, pid, "died")
    board.clear(index)
    return True


class Watchdog:
    """A master thread that polls the slots of the live workers."""

    def __init__(self, board: Board, workers):
        self.board = board
        self.workers = workers  # () -> {pid: slot index} of the live workers
        self.killed: set[int] = set()
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
            quarantine(self.board, index, pid, "overran its budget and hard margin")
            self.killed.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            ended.append(pid)
        return ended

    def _run(self) -> None:
        while True:
            time.sleep(POLL_S)
            try:
                self.check()
            except Exception:
                logger.exception("inline backstop watchdog failed; it keeps watching")
