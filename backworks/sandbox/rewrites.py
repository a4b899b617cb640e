"""Load-time rewrites that let ordinary code run safely: `except` clauses and `match` class patterns.

- a bare `except:` becomes `except Exception:` (the host's timeout is not an Exception);
- `except json.JSONDecodeError` (or a name imported `from json`) becomes a host name bound to that very
  class: the clause can neither fail nor be redirected by rebinding `json` while a timeout unwinds;
- `case str(s)` becomes `case str() as s` (the built-in names `str`, `list`... are stand-ins whose
  calls are capped: Python's "match the subject itself" rule only knows the real types).
"""
from __future__ import annotations

import ast
import logging

from backworks.sandbox import env, rules

logger = logging.getLogger(__name__)

# The built-in classes a `case C(...)` may name (each matches the subject itself with one positional pattern).
MATCH_CLASSES = frozenset({"bool", "bytearray", "bytes", "dict", "float", "frozenset", "int", "list", "set",
                           "str", "tuple"})


def _module_exceptions() -> dict[tuple[str, str], type]:
    found = {}
    for module, names in env.EXPORTS.items():
        facade = env.FACADES[module]
        for name in names:
            value = getattr(facade, name)
            if isinstance(value, type) and issubclass(value, Exception):
                found[module, name] = value
    return found


MODULE_EXCEPTIONS = _module_exceptions()  # (module, name) -> class: ("json", "JSONDecodeError"), ("re", "error")


def host_name(module: str, name: str) -> str:
    """The builtins name that holds an allowed module's exception class for rewritten `except` clauses."""
    return f"_bw_x_{module.replace('.', '_')}_{name}"


# Added to the scripts' builtins; scripts cannot write `_bw` names themselves (checks.bad_name).
HOST_NAMES = {host_name(module, name): value for (module, name), value in MODULE_EXCEPTIONS.items()}


class Imports:
    """What the names of a script's imports denote: `import json as j` -> j: json; `from re import error`."""

    def __init__(self, tree: ast.AST):
        self.modules: dict[str, str] = {}
        self.names: dict[str, tuple[str, str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in rules.ALLOWED_MODULES and "." not in alias.name:
                        self.modules[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module in rules.ALLOWED_MODULES:
                for alias in node.names:
                    self.names[alias.asname or alias.name] = (node.module, alias.name)

    def exception(self, node: ast.expr) -> tuple[str, str] | None:
        """(module, name) of the allowed module's exception class `node` names, or None."""
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            key = (self.modules.get(node.value.id), node.attr)
        elif isinstance(node, ast.Name) and node.id not in rules.EXCEPTION_NAMES:
            key = self.names.get(node.id)
        else:
            return None
        return key if key in MODULE_EXCEPTIONS else None


class Rewriter(ast.NodeTransformer):
    """Applies the rewrites above to a script the policy accepted."""

    def __init__(self, imports: Imports):
        self.imports = imports

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        if node.type is None:
            node.type = ast.copy_location(ast.Name("Exception", ast.Load()), node)
        elif isinstance(node.type, ast.Tuple):
            node.type.elts = [self.resolve(item) for item in node.type.elts]
        else:
            node.type = self.resolve(node.type)
        return node

    def resolve(self, item: ast.expr) -> ast.expr:
        """A module's exception class named in `except`, as the host name holding it."""
        key = self.imports.exception(item)
        if key is None:
            return item
        return ast.copy_location(ast.Name(host_name(*key), ast.Load()), item)

    def visit_MatchClass(self, node: ast.MatchClass) -> ast.AST:
        self.generic_visit(node)
        if not node.patterns:
            return node
        inner = node.patterns[0]  # checks.py allows one capture or wildcard
        node.patterns = []
        if isinstance(inner, ast.MatchAs) and inner.pattern is None and inner.name is not None:
            return ast.copy_location(ast.MatchAs(pattern=node, name=inner.name), node)
        return node


def rewrite(tree: ast.Module) -> ast.Module:
    """Apply the rewrites to an accepted script's tree."""
    return ast.fix_missing_locations(Rewriter(Imports(tree)).visit(tree))


def match_problems(node: ast.Match) -> list[tuple[ast.AST, str]]:
    """(node, message) for every pattern of a `match` statement the policy refuses."""
    problems = []
    for case in node.cases:
        for pattern in ast.walk(case.pattern):
            message = _pattern_problem(pattern)
            if message:
                problems.append((pattern, message))
    return problems


def _pattern_problem(pattern: ast.AST) -> str | None:
    if isinstance(pattern, ast.MatchValue) and not _literal(pattern.value):
        return ("match value patterns must be literals, e.g. 'case 200:' "
                f"(got '{ast.unparse(pattern.value)}')")
    if isinstance(pattern, ast.MatchMapping) and not all(_literal(key) for key in pattern.keys):
        return "match mapping keys must be literals, e.g. 'case {\"id\": x}:'"
    if isinstance(pattern, ast.MatchClass):
        name = pattern.cls.id if isinstance(pattern.cls, ast.Name) else ast.unparse(pattern.cls)
        if name not in MATCH_CLASSES:
            return (f"match class patterns may name only built-in types ({', '.join(sorted(MATCH_CLASSES))}), "
                    f"not '{name}'")
        if pattern.kwd_patterns or len(pattern.patterns) > 1 or (
                pattern.patterns and not (isinstance(pattern.patterns[0], ast.MatchAs)
                                          and pattern.patterns[0].pattern is None)):
            return f"match class patterns take at most one name, e.g. 'case {name}(x):'"
    return None


def _literal(node: ast.expr) -> bool:
    """A number, string, bytes, True/False/None, or a signed or complex number."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _literal(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return _literal(node.left) and _literal(node.right)
    return False
