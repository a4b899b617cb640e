"""One request phase: every plugin's before_request (or after_response) in order, with fail-open semantics."""
from __future__ import annotations

import logging
from functools import partial
from typing import Callable

from backworks.plugins.contract import BEFORE_REQUEST, REQUEST_HOOKS
from backworks.sandbox import limits, values
from backworks.sandbox.runner import Outcome, PhaseResult, Runner, Step

logger = logging.getLogger(__name__)

PHASES = REQUEST_HOOKS
# Request fields that hold text (or None) once valid: a change to them keeps a text-only request text-only.
TEXT_FIELDS = frozenset(("method", "path", "headers", "body", "client_ip", "endpoint"))


def check_phase(phase: str) -> None:
    """Refuse an unknown phase name."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r} (before_request or after_response)")


def apply(phase: str, outcome: Outcome, request: dict, response: dict | None, name) -> tuple:
    """Fold one ok outcome into (request, response, short_circuit), or turn it into an "invalid" outcome."""
    value = outcome.value
    if value is None:
        return outcome, request, response, False
    try:
        if phase == BEFORE_REQUEST:
            if type(value) is dict and "response" in value:
                if len(value) != 1:
                    raise values.InvalidValue("a short-circuit answer is {\"response\": {...}} alone")
                return _ok(outcome), request, values.response(value["response"], None), True
            return _ok(outcome), values.request(value, request), response, False
        return _ok(outcome), request, values.response(value, response), False
    except Exception as exc:
        return invalid(outcome, phase, name, exc), request, response, False


def invalid(outcome: Outcome, phase: str, name, exc: Exception) -> Outcome:
    """The `invalid` outcome of a hook whose value failed the checks (or could not even be looked at)."""
    if isinstance(exc, values.InvalidValue):
        reason = str(exc)
    else:  # MemoryError, RecursionError... while checking a value the script built
        reason = f"{type(exc).__name__} while checking it"
    return Outcome("invalid", None, f"{name()}: invalid return from {phase}: {reason}", "", outcome.duration_ms,
                   outcome.logs)


def _ok(outcome: Outcome) -> Outcome:
    outcome.value = None  # the validated copy travels in the PhaseResult, not twice
    return outcome


def run_phase(runner: Runner, phase: str, steps: list, request: dict, response: dict | None = None,
              emit: Callable | None = None) -> PhaseResult:
    """Run the steps in order in this process; `emit(index, key, outcome, result)` sees each step as it ends."""
    check_phase(phase)
    steps = [step if type(step) is Step else Step(*step) for step in steps]
    if not steps:
        return PhaseResult(request, response)
    return run_steps(runner, phase, steps, request, response, emit)


class Steps(tuple):
    """A fixed, non-empty sequence of Step with its session's bounds worked out once (see session_bounds)."""

    def __new__(cls, steps):
        self = super().__new__(cls, steps)
        self.bounds = session_bounds(self)
        return self


def session_bounds(steps) -> tuple[int, int]:
    """(the largest memory budget, the shortest time budget) of a non-empty sequence of Step."""
    budget = steps[0].budget
    memory, first_ms = budget.memory_mb, budget.timeout_ms
    for _, budget, _ in steps:
        if budget.memory_mb > memory:
            memory = budget.memory_mb
        if budget.timeout_ms < first_ms:
            first_ms = budget.timeout_ms
    return memory, first_ms


def run_steps(runner: Runner, phase: str, steps: list, request: dict, response: dict | None = None,
              emit: Callable | None = None, shaped: bool = False) -> PhaseResult:
    """run_phase for a checked phase and a non-empty list (or Steps) of Step.

    shaped: the request has the server's shape (see values.copy_shaped), as the plugin chain's requests do.
    """
    memory, first_ms = steps.bounds if type(steps) is Steps else session_bounds(steps)
    try:
        limits.begin_session(memory if runner.memory else None, first_ms / 1000.0)
        return _run_steps(runner, phase, steps, request, response, emit, shaped)
    finally:
        limits.end_session()


def _run_steps(runner, phase, steps, request, response, emit, shaped) -> PhaseResult:
    result = PhaseResult(request, response)
    outcomes = result.outcomes
    before = phase == BEFORE_REQUEST
    changed = result.changed = set() if before else None  # (see PhaseResult.changed; None after an apply())
    loaded_scripts, call, thaw = runner.loaded, runner.call_step, values.thaw
    frozen = None  # after_response's input, serialised once per change: each hook thaws its own deep copy
    text_only = shaped  # the request's containers hold text only, or it has the server's shape: cheap copies
    exact = before and values.equal_is_same(request)  # a returned request equal to the current one is it
    for index, (key, budget, on_error) in enumerate(steps):
        loaded = loaded_scripts.get(key)
        if loaded is not None and phase not in loaded.script.hooks:
            continue
        # Every hook gets a fresh deep copy of the current valid request: nothing one hook did to its copy
        # (in place, returned or not) reaches the next, by construction.
        if before:
            if shaped:
                args = (values.copy_shaped(result.request),)
            elif text_only:
                args = (values.copy_text_only(result.request),)
            else:
                copied, text_only = values.copy_request(result.request)
                args = (copied,)
        else:
            if frozen is None:
                frozen = values.freeze((result.request, result.response))
            args = thaw(frozen)
        outcome = call(key, phase, args, budget, loaded)
        ok = outcome.kind == "ok"
        value = outcome.value if ok else None
        if value is not None and before and type(value) is dict and "response" not in value:
            try:  # the common case, apply() inlined: a before_request hook returned the request
                if not (exact and value == result.request):  # (unchanged: request_changes' first test)
                    result.request, names = values.request_changes(value, result.request)
                    if names:
                        exact = values.equal_is_same(result.request)
                        if changed is not None:
                            changed.update(names)
                        if text_only and not shaped and not TEXT_FIELDS.issuperset(names):
                            text_only = False  # numbers, lists or JSON may be in it now: copied whole
                outcome.value = None  # the validated copy travels in the PhaseResult, not twice
            except Exception as exc:
                outcome, ok = invalid(outcome, phase, partial(_name, runner, key), exc), False
        elif value is not None:
            current = result.request, result.response
            outcome, result.request, result.response, short = apply(phase, outcome, result.request,
                                                                     result.response, partial(_name, runner, key))
            ok = outcome.kind == "ok"
            result.short_circuit = short
            if result.request is not current[0] or result.response is not current[1]:
                frozen = None  # the next hook sees the new value
                changed = result.changed = None
        outcomes.append((key, outcome))
        if emit is not None:
            emit(index, key, outcome, result)
        if not ok and on_error == "closed":
            result.failed_closed = (key, outcome)
            break
        if result.short_circuit:
            break
    return result


def _name(runner: Runner, key: str) -> str:
    loaded = runner.loaded.get(key)
    return loaded.script.filename.rsplit("/", 1)[-1] if loaded else key
