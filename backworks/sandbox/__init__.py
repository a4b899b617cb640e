"""The plugin sandbox: the only package that imports RestrictedPython.

compile_script() checks and compiles a script at load time; Sandbox runs its hooks under a time and
memory budget, inline (SIGALRM timer + RLIMIT_AS, main thread only) or in a persistent sandbox child
(setrlimit, SIGKILL at the hard deadline, respawn).
"""
from __future__ import annotations

from backworks.sandbox.host import Sandbox, is_vetted, vetting_sandbox
from backworks.sandbox.limits import Budget, choose_isolation
from backworks.sandbox.policy import HOOK_NAMES, Script, ScriptError, compile_script
from backworks.sandbox.rules import ALLOWED_MODULES, REFUSED
from backworks.sandbox.runner import SKIPPED, Outcome, PhaseResult, Step

__all__ = ["ALLOWED_MODULES", "Budget", "HOOK_NAMES", "Outcome", "PhaseResult", "REFUSED", "SKIPPED", "Sandbox",
           "Script", "ScriptError", "Step", "choose_isolation", "compile_script", "is_vetted",
           "vetting_sandbox"]
