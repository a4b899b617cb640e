"""The load-time policy pass: walks a script's AST and lists every construct it refuses, with a line."""
from __future__ import annotations

import ast
import logging

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from backworks.sandbox import rules
from backworks.sandbox.rewrites import Imports, match_problems

logger = logging.getLogger(__name__)

ALLOWED_DISPLAY = ", ".join(m for m in rules.ALLOWED_MODULES if m != "urllib")
_ASYNC = (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)
_LOOPS = (ast.For, ast.While)
_FUNCTIONS = (ast.FunctionDef, ast.Lambda)


def bad_name(name: str) -> bool:
    """Tell whether a script may not use `name` as a variable (guards and dunders)."""
    if name == "_":
        return False
    return name.startswith("__") or name.startswith("_bw") or (name.startswith("_") and name.endswith("_"))


class PolicyChecker(ast.NodeVisitor):
    """Collect (line, message) for every refused construct in one pass."""

    def __init__(self, exports: dict[str, frozenset]):
        self.exports = exports  # module name -> names a facade offers
        self.problems: list[tuple[int, str]] = []
        self.context: list[str] = []  # "function" | "loop" | "finally"
        self.depth = 0
        self.too_deep = False
        self.imports: Imports | None = None  # what import names denote (for `except json.JSONDecodeError`)

    def refuse(self, node: ast.AST, message: str) -> None:
        """Record one refusal at the node's line."""
        self.problems.append((getattr(node, "lineno", 1), message))

    def visit(self, node: ast.AST) -> None:
        """Visit a node, refusing nesting deeper than the cap once."""
        self.depth += 1
        try:
            if self.depth > rules.MAX_NESTING:
                if not self.too_deep:
                    self.too_deep = True
                    self.refuse(node, f"expression nested too deeply (more than {rules.MAX_NESTING} levels)")
                return
            super().visit(node)
        finally:
            self.depth -= 1

    def in_context(self, kind: str, nodes: list) -> None:
        """Visit statements inside a function, loop or finally block."""
        self.context.append(kind)
        for child in nodes:
            self.visit(child)
        self.context.pop()

    def visit_Module(self, node: ast.Module) -> None:
        self.imports = Imports(node)
        self.generic_visit(node)

    # names

    def check_binding(self, node: ast.AST, name: str | None) -> None:
        """Refuse binding a private or protected name."""
        if name is None:
            return
        if bad_name(name):
            self.refuse(node, f"name '{name}' is not allowed (use a name that does not start with '__' "
                              "or end with '_')")
        elif name in rules.PROTECTED_NAMES or name in rules.REFUSED_CALLS or name in ("print", "printed"):
            self.refuse(node, f"'{name}' cannot be assigned (it is a built-in name scripts rely on)")

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id == "__name__":  # reading it is harmless (the host sets "plugin"); binding it is not
                return
            if bad_name(node.id):
                self.check_binding(node, node.id)
            elif node.id in rules.REFUSED_CALLS:
                self.refuse(node, f"'{node.id}' is not available in plugin scripts "
                                  f"({rules.REFUSED_CALLS[node.id]})")
            elif node.id in ("print", "printed"):
                self.refuse(node, f"'{node.id}' is not available (use log.info(...))")
        else:
            self.check_binding(node, node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.refuse(node, f"attribute '{node.attr}' is not allowed (names starting with '_' are private "
                              "to the host)")
        elif node.attr in INSPECT_ATTRIBUTES:
            self.refuse(node, f"attribute '{node.attr}' is not allowed (frame and code internals are "
                              "private to the host)")
        self.generic_visit(node)

    def visit_arguments(self, node: ast.arguments) -> None:
        for arg in node.posonlyargs + node.args + node.kwonlyargs + [node.vararg, node.kwarg]:
            if arg is not None:
                self.check_binding(arg, arg.arg)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self.check_binding(node, name)

    visit_Nonlocal = visit_Global

    # imports

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in rules.ALLOWED_MODULES:
                self.refuse(node, f"import of '{alias.name}' is not allowed (allowed: {ALLOWED_DISPLAY})")
            self.check_binding(node, alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        if module not in rules.ALLOWED_MODULES:
            self.refuse(node, f"import of '{module}' is not allowed (allowed: {ALLOWED_DISPLAY})")
            return
        for alias in node.names:
            if alias.name == "*":
                self.refuse(node, f"'from {module} import *' is not allowed (import the names you need)")
            elif alias.name not in self.exports.get(module, ()):
                self.refuse(node, f"'{alias.name}' is not available from '{module}'")
            self.check_binding(node, alias.asname or alias.name)

    # constructs refused outright

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.refuse(node, "class definitions are not allowed (use dicts, or types.SimpleNamespace)")

    def visit_Yield(self, node: ast.AST) -> None:
        self.refuse(node, "generator functions are not allowed (build and return a list)")

    visit_YieldFrom = visit_Yield

    def visit_Match(self, node: ast.Match) -> None:
        for pattern, message in match_problems(node):
            self.refuse(pattern, message)
        self.visit(node.subject)
        for case in node.cases:
            for pattern in ast.walk(case.pattern):
                for name in (getattr(pattern, "name", None), getattr(pattern, "rest", None)):
                    self.check_binding(pattern, name)
            if case.guard is not None:
                self.visit(case.guard)
            for child in case.body:
                self.visit(child)

    def visit_TryStar(self, node: ast.AST) -> None:
        self.refuse(node, "'except*' is not allowed (use except)")

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, _ASYNC):
            self.refuse(node, "async code is not allowed (hooks are plain functions)")
            return
        super().generic_visit(node)

    # control flow that could swallow the host's timeout

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.check_binding(node, node.name)
        for item in node.decorator_list:
            self.visit(item)
        self.visit(node.args)
        self.in_context("function", node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self.in_context("function", [node.body])

    def visit_For(self, node: ast.For | ast.While) -> None:
        for name in ("target", "iter", "test"):
            if hasattr(node, name):
                self.visit(getattr(node, name))
        self.in_context("loop", node.body)
        for child in node.orelse:
            self.visit(child)

    visit_While = visit_For

    def visit_Try(self, node: ast.Try) -> None:
        for child in node.body + node.handlers + node.orelse:
            self.visit(child)
        self.in_context("finally", node.finalbody)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:  # a bare `except:` is rewritten to `except Exception:` (rewrites.py)
            names = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            for item in names:
                if not (isinstance(item, ast.Name) and item.id in rules.EXCEPTION_NAMES
                        or self.imports is not None and self.imports.exception(item) is not None):
                    self.refuse(node, "except clauses may name only built-in exceptions or an allowed module's "
                                      f"(json.JSONDecodeError, re.error), e.g. 'except ValueError:' "
                                      f"(got '{ast.unparse(item)}')")
        self.check_binding(node, node.name)
        for child in node.body:
            self.visit(child)

    def visit_Return(self, node: ast.AST) -> None:
        if "finally" in self.context_up_to(("function",)):
            self.refuse(node, "'return' inside 'finally' is not allowed (it would swallow errors)")
        self.generic_visit(node)

    def visit_Break(self, node: ast.AST) -> None:
        word = "break" if isinstance(node, ast.Break) else "continue"
        if "finally" in self.context_up_to(("function", "loop")):
            self.refuse(node, f"'{word}' inside 'finally' is not allowed (it would swallow errors)")

    visit_Continue = visit_Break

    def context_up_to(self, stops: tuple) -> list[str]:
        """Return the enclosing contexts from the innermost out to the first of `stops`."""
        found = []
        for kind in reversed(self.context):
            if kind in stops:
                break
            found.append(kind)
        return found
