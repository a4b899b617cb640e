"""What scripts may use: the module allowlist, the protected names, the size caps, the refused constructs."""
from __future__ import annotations

import builtins

MAX_SOURCE_BYTES = 256 * 1024
# Larger sources are parsed and compiled in a child process under a deadline, never in a worker or the
# master: Python's parser holds the GIL, and some shapes cost seconds near the cap (60,000 f-string fields:
# 2.5 s for ast.parse alone; 120,000 chained comparisons: 6 s through the policy). At this size the worst
# shape measured takes about 150 ms.
INLINE_COMPILE_BYTES = 16 * 1024
COMPILE_TIMEOUT_S = 5.0
MAX_NESTING = 60  # AST depth; deeper expressions are refused at load

# Size caps that keep every single C-level operation short (the caps users see: docs/sandbox.md, Budgets).
MAX_INT_BITS = 100_000          # results of *, **, << and pow()
MAX_SEQUENCE = 10_000_000       # characters / items produced by one repetition, join, pad or replace
MAX_RANGE = 1_000_000           # items anything but a `for` loop takes from one range() (ranges.py)
MAX_SORT = 100_000              # items sorted by one sorted() / list.sort()
MAX_FORMAT_WIDTH = 10_000       # width or precision in format specs and %-formatting
MAX_JSON_INDENT = 16
MAX_LOG_LINES = 50
MAX_LOG_LINE = 500
MAX_LOG_CALL_BYTES = 16 * 1024        # log lines one call keeps (and writes to the server log)
MAX_LOG_BYTES_PER_MINUTE = 256 * 1024  # server log bytes one script may cause a minute (lines, failures, warnings)
MAX_SOURCE_LINE = 200                 # characters of a source line in a failure's traceback

ALLOWED_MODULES = ("base64", "collections", "datetime", "hashlib", "hmac", "json", "math", "random", "re",
                   "string", "time", "types", "urllib", "urllib.parse", "uuid")

EXCEPTION_NAMES = frozenset(
    name for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")
    and name not in ("ExceptionGroup",)
)

# Names a script may not bind: rebinding them would let an `except` clause fail while a timeout unwinds.
PROTECTED_NAMES = EXCEPTION_NAMES

REFUSED_CALLS = {
    "exec": "running generated code would bypass the policy",
    "eval": "running generated code would bypass the policy",
    "compile": "running generated code would bypass the policy",
    "open": "scripts have no file access",
    "globals": "the module namespace is private to the host",
    "locals": "frames are private to the host",
    "vars": "object internals are private to the host",
    "dir": "object internals are private to the host",
    "type": "type objects reach the host's classes; use isinstance()",
    "super": "classes are not available",
    "memoryview": "raw memory access is not available",
    "breakpoint": "the debugger is not available",
    "input": "scripts have no terminal",
    "help": "scripts have no terminal",
    "exit": "scripts cannot stop the server",
    "quit": "scripts cannot stop the server",
    "id": "object addresses are private to the host",
    "delattr": "attributes of host objects are read-only",
    "setattr": "attributes of host objects are read-only",
    "classmethod": "classes are not available",
    "staticmethod": "classes are not available",
    "property": "classes are not available",
    "object": "classes are not available",
    "BaseException": "the host's stop signals derive from it; catch Exception",
    "SystemExit": "scripts cannot stop the server",
    "KeyboardInterrupt": "scripts cannot stop the server",
    "GeneratorExit": "generators are not available",
}

# (construct, reason, example of the message the author sees at load time). The table in docs/sandbox.md
# lists every row (tests/sandbox/test_policy.py checks that, and every message).
REFUSED = [
    ("import of a module outside the allowlist", "scripts reach only read-only facades of allowed modules",
     "plugin.py:1: import of 'os' is not allowed (allowed: base64, collections, datetime, hashlib, hmac, "
     "json, math, random, re, string, time, types, urllib.parse, uuid)"),
    ("`from module import *`", "every name a script uses must be visible in its source",
     "plugin.py:1: 'from json import *' is not allowed (import the names you need)"),
    ("attribute names starting with `_` (`x.__class__`, `x._private`)", "dunder attributes reach frames, "
     "code objects and the host's modules", "plugin.py:1: attribute '__class__' is not allowed "
     "(names starting with '_' are private to the host)"),
    ("variable names starting with `__` or ending with `_`, and `_bw...`", "the host's guards use these "
     "names", "plugin.py:1: name '__builtins__' is not allowed (use a name that does not start with '__' "
     "or end with '_')"),
    ("`exec`, `eval`, `compile`, `open`, `globals`, `locals`, `vars`, `dir`, `type`, `id`, `setattr`, "
     "`delattr`, `super`, `object`, `memoryview`, `breakpoint`, `input`, `exit`, `quit`, `BaseException`, "
     "`SystemExit`, `KeyboardInterrupt`, `GeneratorExit`", "each reaches code, files, frames or the host",
     "plugin.py:1: 'eval' is not available in plugin scripts (running generated code would bypass the "
     "policy)"),
    ("`class` statements", "classes give access to metaclasses and object internals",
     "plugin.py:1: class definitions are not allowed (use dicts, or types.SimpleNamespace)"),
    ("`yield`, `yield from` (generator functions)", "a parked generator's `finally` runs later in the host",
     "plugin.py:2: generator functions are not allowed (build and return a list)"),
    ("`async def`, `await`, `async for`, `async with`", "there is no event loop in a hook",
     "plugin.py:1: async code is not allowed (hooks are plain functions)"),
    ("`except` naming anything but built-in exceptions or an allowed module's exception classes "
     "(`except BaseException`, `except json.Error`, `except errors`)",
     "the clause must not fail or catch the host's timeout while it unwinds",
     "plugin.py:3: except clauses may name only built-in exceptions or an allowed module's "
     "(json.JSONDecodeError, re.error), e.g. 'except ValueError:' (got 'BaseException')"),
    ("`except*`", "exception groups can hide the host's timeout", "plugin.py:1: 'except*' is not allowed "
     "(use except)"),
    ("`return`, `break` or `continue` inside `finally`", "it would swallow the host's timeout",
     "plugin.py:5: 'return' inside 'finally' is not allowed (it would swallow errors)"),
    ("binding a built-in exception name (`ValueError = 5`, `def f(KeyError)`, `import json as TypeError`)",
     "a rebound exception name makes `except` fail while a timeout unwinds",
     "plugin.py:1: 'ValueError' cannot be assigned (it is a built-in name scripts rely on)"),
    ("`match` patterns other than literals, captures, sequences, mappings and built-in classes "
     "(`case Color.RED:`, `case Point(x=0):`, `case str(a, b):`)",
     "dotted values and class patterns read attributes without the attribute guard",
     "plugin.py:2: match value patterns must be literals, e.g. 'case 200:' (got 'Color.RED')"),
    ("`print` / `printed`", "scripts write to the server log through `log`", "plugin.py:1: 'print' is not "
     "available (use log.info(...))"),
    ("`global`, `nonlocal` or `del` of a built-in exception name", "same as binding",
     "plugin.py:2: 'ValueError' cannot be assigned (it is a built-in name scripts rely on)"),
    ("constant expressions over the size caps (`10**10**8`, `'x' * 10**9`, `1 << 10**9`)",
     "the C operation would run for seconds without checking the timer",
     "plugin.py:1: this expression is too large (more than 100000 bits)"),
    ("source over 256 KB", "protects the loader", "plugin.py: script is 300000 bytes; the limit is 262144"),
    ("expressions nested more than 60 levels", "protects the loader", "plugin.py:1: expression nested too "
     "deeply (more than 60 levels)"),
    ("syntax errors", "the script cannot run", "plugin.py:1: '(' was never closed (SyntaxError)"),
]


class LimitError(MemoryError):
    """An operation would exceed a size cap (reported to the script as a MemoryError)."""
