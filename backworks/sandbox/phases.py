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
    except values.InvalidValue as exc:
        return Outcome("invalid", None, f"{name()}: invalid return from {phase}: {exc}", "", outcome.duration_ms,
                       outcome.logs), request, response, False


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


def run_steps(runner: Runner, phase: str, steps: list, request: dict, response: dict | None = None,
              emit: Callable | None = None) -> PhaseResult:
    """run_phase for a checked phase and a non-empty list of Step."""
    memory = max([step.budget.memory_mb for step in steps]) if runner.memory else None
    try:
        limits.begin_session(memory, min([step.budget.timeout_ms for step in steps]) / 1000.0)
        return _run_steps(runner, phase, steps, request, response, emit)
    finally:
        limits.end_session()


def _run_steps(runner, phase, steps, request, response, emit) -> PhaseResult:
    result = PhaseResult(request, response)
    outcomes = result.outcomes
    loaded_scripts, call, thaw = runner.loaded, runner.call_step, values.thaw
    frozen = None  # the hooks' input, serialised once per change: each hook thaws its own deep copy
    args = None  # the last hook's copy while it provably still equals the input (see _reusable)
    for index, (key, budget, on_error) in enumerate(steps):
        loaded = loaded_scripts.get(key)
        if loaded is not None and phase not in loaded.script.hooks:
            continue
        if frozen is None:
            inputs = (result.request,) if phase == BEFORE_REQUEST else (result.request, result.response)
            frozen = values.freeze(inputs)
            exact = _reusable(inputs)
            args = None
        if args is None:
            args = thaw(frozen)
        outcome = call(key, phase, args, budget, loaded)
        ok = outcome.kind == "ok"
        if not (ok and outcome.value is None and exact and args == inputs):
            args = None
        if ok and outcome.value is not None:
            current = result.request, result.response
            outcome, result.request, result.response, short = apply(phase, outcome, result.request,
                                                                     result.response, partial(_name, runner, key))
            ok = outcome.kind == "ok"
            result.short_circuit = short
            if result.request is not current[0] or result.response is not current[1]:
                frozen = None  # the next hook sees the new value
        outcomes.append((key, outcome))
        if emit is not None:
            emit(index, key, outcome, result)
        if not ok and on_error == "closed":
            result.failed_closed = (key, outcome)
            break
        if result.short_circuit:
            break
    return result


def _reusable(inputs: tuple) -> bool:
    """Tell whether a hook's copy of `inputs` that still compares equal to them is an exact copy.

    A hook that ended normally, returned None and left its copy equal to the input hands that copy to the
    next hook instead of a new one (a thaw per hook costs more than the comparison). `==` is exact on
    strings, None, dicts and lists of them, but not on numbers (1 == 1.0 == True): a request with a JSON
    body or a non-string path parameter, and every response (its status), get a fresh copy per hook.
    Scripts cannot define classes, so the comparison runs no script code; it walks at most the input.
    """
    if len(inputs) != 1:
        return False
    request = inputs[0]
    if request.get("json") is not None:
        return False
    params = request.get("path_params")
    return not params or all(type(value) is str for value in params.values())


def _name(runner: Runner, key: str) -> str:
    loaded = runner.loaded.get(key)
    return loaded.script.filename.rsplit("/", 1)[-1] if loaded else key
