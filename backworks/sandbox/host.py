"""Sandbox: the one object plugins and runtime mode use, running scripts inline or in a sandbox child."""
from __future__ import annotations

import json
import logging
import os
import threading

from backworks import backstop
from backworks.sandbox.child import plain_outcome
from backworks.sandbox.limits import Budget, timer_usable
from backworks.sandbox.phases import check_phase, run_steps
from backworks.sandbox.policy import Script
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
        self._generation = -1  # the quarantine generation self._quarantined was computed for
        self._quarantined: frozenset = frozenset()  # keys whose script must run in the child
        if self.runner is not None:
            self.runner.watched = True  # each inline call is marked in this worker's backstop slot

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

    def load(self, key: str, script: Script, config: dict, budget: Budget = Budget(),
             extras: dict | None = None) -> Outcome:
        """(Re)define `key`: run the module body and on_load(config) within budget.

        Script code first runs in a sandbox child: this process loads a script inline only after it loaded
        cleanly there (here, or in the gunicorn master's check, whose memory a worker inherits). A script
        that crashes, hangs or blows its memory at load fails in the child, never here. `extras` are
        read-only facades (env.Facade) added to the script's globals when it runs inline; a sandbox child
        never gets them.
        """
        self._hooks[key] = script.hooks
        if self.runner is not None:
            self.runner.extras[key] = dict(extras or {})
        self._loads[key] = (script, config, budget)
        self._generation = -1
        if self.runner is not None and timer_usable() and not backstop.is_quarantined(script.digest):
            self._load_pending()
            if not is_vetted(script, config):
                outcome = _vet(vetting_sandbox(self.state_settings).load(f"vet:{key}", script, config, budget),
                               script, config)
                if not outcome.ok:
                    return outcome
            with _marked(script, budget):
                outcome = self.runner.load(key, script, config, budget)
            if self._child is not None:
                self._child.load(key, script, config, budget)
            return outcome
        if self.runner is not None:
            self._pending.add(key)  # loaded inline on the main thread's next use
        return _vet(self.child.load(key, script, config, budget), script, config)

    def call(self, key: str, hook: str, args: tuple, budget: Budget = Budget()) -> Outcome:
        """Run one hook of `key` with copies of `args`."""
        if self._inline_here() and key not in self._quarantine():
            self._load_pending()
            loaded = self.runner.loaded.get(key)
            with _marked(loaded.script if loaded else None, budget):
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

    def run_checked_phase(self, phase: str, steps: list, request: dict, response: dict | None = None,
                          shaped: bool = False) -> PhaseResult:
        """run_phase for a known phase and a non-empty list of Step whose scripts all define it.

        shaped: the request has the server's shape (values.copy_shaped), as the plugin chain's requests do.
        """
        if self._inline_here() and not (self._quarantine() and any(s.key in self._quarantined for s in steps)):
            if self.runner.garbage or self._pending:
                self._load_pending()
            return run_steps(self.runner, phase, steps, request, response, shaped=shaped)
        if self.runner is not None:
            for step in steps:
                self._ensure_child_loaded(step.key)
        return (self._child or self.child).run_phase(phase, steps, request, response)

    def _quarantine(self) -> frozenset:
        """Keys of this sandbox whose scripts are quarantined (worked out again when the quarantine moved)."""
        if backstop.changed_since(self._generation):
            self._generation = backstop.current_generation()
            digests = backstop.quarantined()
            self._quarantined = frozenset(key for key, (script, _, _) in self._loads.items()
                                          if backstop.digest_key(script.digest) in digests)
            for key in self._quarantined:
                self._pending.discard(key)
        return self._quarantined

    def quarantined(self, key: str) -> bool:
        """True when `key`'s script runs in the child because a worker died inside it."""
        loaded = self._loads.get(key)
        return loaded is not None and backstop.is_quarantined(loaded[0].digest)

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
            script, config, budget = self._loads[key]
            if backstop.is_quarantined(script.digest) or not is_vetted(script, config):
                continue  # stays in the child
            with _marked(script, budget):
                outcome = self.runner.load(key, script, config, budget)
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


_vetted: set = set()  # (digest, config) of scripts that loaded cleanly in a sandbox child
_vetters: dict = {}
_vetters_lock = threading.Lock()


def _vetting_key(script: Script, config: dict) -> tuple:
    return script.digest, json.dumps(config, sort_keys=True, default=repr)


def _vet(outcome: Outcome, script: Script, config: dict) -> Outcome:
    """Remember a script (with its config) that loaded cleanly in a sandbox child; return the outcome."""
    if outcome.ok:
        _vetted.add(_vetting_key(script, config))
    return outcome


def is_vetted(script: Script, config: dict) -> bool:
    """True when this script, with this config, loaded cleanly in a sandbox child of this process or its parent."""
    return _vetting_key(script, config) in _vetted


def vetting_sandbox(state_settings: dict) -> "Sandbox":
    """This process's sandbox child for first loads, kept across reloads (starting one costs tens of ms)."""
    key = (os.getpid(), json.dumps(state_settings or {}, sort_keys=True, default=repr))
    with _vetters_lock:
        if key not in _vetters:
            _vetters[key] = Sandbox("process", state_settings, warm_spare=False)  # it only loads
        return _vetters[key]


class _marked:
    """Mark an inline call of `script` in this worker's backstop slot (a no-op without a slot or script)."""

    __slots__ = ("slot", "script", "budget")

    def __init__(self, script: Script | None, budget: Budget):
        self.slot = backstop.slot if script is not None else None
        self.script = script
        self.budget = budget

    def __enter__(self):
        if self.slot is not None:
            self.slot.enter(self.script.digest, self.script.filename, self.budget.timeout_ms)

    def __exit__(self, *exc_info):
        if self.slot is not None:
            self.slot.leave()


__all__ = ["Sandbox", "is_vetted", "vetting_sandbox"]
