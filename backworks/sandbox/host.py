"""Sandbox: the one object plugins and runtime mode use, running scripts inline or in a sandbox child."""
from __future__ import annotations

import logging
import threading

from backworks.sandbox.limits import Budget, timer_usable
from backworks.sandbox.phases import check_phase, run_steps
from backworks.sandbox.policy import Script
from backworks.sandbox.child import plain_outcome
from backworks.sandbox.process import ChildProcess
from backworks.sandbox.runner import Outcome, PhaseResult, Runner, Step

logger = logging.getLogger(__name__)


class Sandbox:
    """Loads scripts under keys and runs their hooks: "inline" in this process or "process" in a child."""

    def __init__(self, isolation: str, state_settings: dict, warm_spare: bool = True):
        if isolation not in ("inline", "process"):
            raise ValueError(f"isolation must be 'inline' or 'process', not {isolation!r}")
        self.isolation = isolation
        self.warm_spare = warm_spare  # keep a booted spare child for requests (not for a check that only loads)
        self.state_settings = dict(state_settings or {})
        self.runner = Runner(self.state_settings) if isolation == "inline" else None
        if self.runner is not None:
            self.runner.defer_cleanup = True  # a failed call's objects are freed by collect(), off its clock
        self._child: ChildProcess | None = None
        self._child_lock = threading.Lock()
        self._hooks: dict[str, frozenset] = {}
        self._loads: dict[str, tuple] = {}
        self._warned = False
        self._pending: set[str] = set()

    @property
    def child(self) -> ChildProcess:
        """The sandbox child (started on first use)."""
        with self._child_lock:
            if self._child is None:
                self._child = ChildProcess(self.state_settings, self.warm_spare)
            return self._child

    def _inline_here(self) -> bool:
        if self.runner is None:
            return False
        if timer_usable():
            return True
        if not self._warned:
            self._warned = True
            logger.warning("inline sandbox called off the main thread; running scripts in a sandbox process")
        return False

    def load(self, key: str, script: Script, config: dict, budget: Budget = Budget()) -> Outcome:
        """(Re)define `key`: run the module body and on_load(config) within budget."""
        self._hooks[key] = script.hooks
        self._loads[key] = (script, config, budget)
        if self._inline_here():
            self._load_pending()
            outcome = self.runner.load(key, script, config, budget)
            if self._child is not None:
                self._child.load(key, script, config, budget)
            return outcome
        if self.runner is not None:
            self._pending.add(key)  # loaded inline on the main thread's next use
        return self.child.load(key, script, config, budget)

    def call(self, key: str, hook: str, args: tuple, budget: Budget = Budget()) -> Outcome:
        """Run one hook of `key` with copies of `args`."""
        if self._inline_here():
            self._load_pending()
            return plain_outcome(self.runner.call(key, hook, args, budget))
        self._ensure_child_loaded(key)
        return self.child.call(key, hook, args, budget)

    def run_phase(self, phase: str, steps: list, request: dict, response: dict | None = None) -> PhaseResult:
        """Run every step's `phase` hook in order with fail-open semantics (one round trip in a child)."""
        check_phase(phase)
        hooks = self._hooks
        steps = [step if type(step) is Step else Step._make(step) for step in steps
                 if phase in hooks.get(step[0], (phase,))]
        if not steps:
            return PhaseResult(request=request, response=response)
        return self.run_checked_phase(phase, steps, request, response)

    def run_checked_phase(self, phase: str, steps: list, request: dict, response: dict | None = None) -> PhaseResult:
        """run_phase for a known phase and a non-empty list of Step whose scripts all define it."""
        if self._inline_here():
            self._load_pending()
            return run_steps(self.runner, phase, steps, request, response)
        if self.runner is not None:
            for step in steps:
                self._ensure_child_loaded(step.key)
        return (self._child or self.child).run_phase(phase, steps, request, response)

    def has_garbage(self) -> bool:
        """Tell whether failed inline calls left objects for collect() to free."""
        return self.runner is not None and bool(self.runner.garbage)

    def collect(self) -> None:
        """Free what failed inline calls left behind: call it once the response is sent (else the next call does)."""
        if self.has_garbage():
            self.runner.collect()

    def _load_pending(self) -> None:
        """Free failed calls' leftovers; run inline the loads that came from other threads (sent to the child)."""
        if self.runner.garbage:
            self.runner.collect()
        while self._pending:
            key = self._pending.pop()
            outcome = self.runner.load(key, *self._loads[key])
            if not outcome.ok:
                logger.warning("script %s failed to load inline: %s", key, outcome.message)

    def _ensure_child_loaded(self, key: str) -> None:
        """An inline sandbox used off the main thread loads its scripts into the child on demand."""
        if self.runner is not None and key in self._loads and key not in self.child.scripts:
            self.child.load(key, *self._loads[key])

    def close(self) -> None:
        """Stop the sandbox child, if any."""
        if self._child is not None:
            self._child.close()


__all__ = ["Sandbox"]
