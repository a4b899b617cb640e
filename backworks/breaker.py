"""A thread-safe circuit breaker: closed -> open after N consecutive failures -> one half-open trial."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Breaker:
    """Count consecutive failures; skip calls while open; let exactly one trial through after recovery_s."""

    def __init__(self, failure_threshold: int = 5, recovery_s: float = 30.0,
                 on_change: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self.failure_threshold = failure_threshold
        self.recovery_s = recovery_s
        self.on_change = on_change
        self.clock = clock
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.trial_started = 0.0
        self.clean = True  # closed with no failure counted: a success changes nothing (callers may skip record)
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Return True when a call may go ahead (always when closed; one trial when recovery is due)."""
        if self.state == CLOSED:
            return True
        with self._lock:
            now = self.clock()
            if self.state == CLOSED:
                return True
            if self.state == OPEN and now - self.opened_at >= self.recovery_s:
                self._set(HALF_OPEN)
                self.trial_started = now
                return True
            # A trial that never reported back (its caller died) must not wedge the breaker.
            if self.state == HALF_OPEN and now - self.trial_started >= max(self.recovery_s, 1.0):
                self.trial_started = now
                return True
            return False

    def ready(self) -> bool:
        """Tell whether allow() would let a call through now, without taking the half-open trial."""
        if self.state == CLOSED:
            return True
        now = self.clock()
        if self.state == OPEN:
            return now - self.opened_at >= self.recovery_s
        return now - self.trial_started >= max(self.recovery_s, 1.0)

    def record(self, ok: bool) -> None:
        """Report the outcome of an allowed call."""
        if ok and self.clean:
            return
        with self._lock:
            if ok:
                self.failures = 0
                if self.state != CLOSED:
                    self._set(CLOSED)
                self.clean = self.state == CLOSED
                return
            self.failures += 1
            self.clean = False
            if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.failure_threshold):
                self.opened_at = self.clock()
                self._set(OPEN)

    def reset(self) -> None:
        """Close the breaker and forget past failures."""
        with self._lock:
            self.failures = 0
            if self.state != CLOSED:
                self._set(CLOSED)
            self.clean = self.state == CLOSED

    def retry_in(self) -> float | None:
        """Seconds until the next trial while open, else None."""
        if self.state != OPEN:
            return None
        return max(0.0, self.opened_at + self.recovery_s - self.clock())

    def _set(self, state: str) -> None:
        self.state = state
        self.clean = state == CLOSED and not self.failures
        if self.on_change is not None:
            self.on_change(state)
