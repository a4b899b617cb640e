"""compile_script(): check a script against the policy, rewrite it for the guards, compile it once at load."""
from __future__ import annotations

import ast
import hashlib
import json
import logging
import marshal
import operator
import subprocess
import sys
from dataclasses import dataclass, field
from types import CodeType

from RestrictedPython.transformer import RestrictingNodeTransformer

from backworks.plugins.contract import HOOKS
from backworks.sandbox import env, guards, rewrites, rules
from backworks.sandbox.checks import PolicyChecker

logger = logging.getLogger(__name__)

HOOK_NAMES = HOOKS  # the functions a script may define (the contract module is their one home)


class ScriptError(Exception):
    """A script breaks the policy or does not compile; `problems` lists every "file:line: message"."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Script:
    """A script compiled under the policy: immutable, shareable, sent as is to sandbox children."""

    filename: str
    source: str
    digest: str
    hooks: frozenset
    code: CodeType | None = field(default=None, compare=False, repr=False)


_GUARDED_OPS = {ast.Mult: "_bw_mul", ast.Pow: "_bw_pow", ast.LShift: "_bw_lshift", ast.Mod: "_bw_mod"}
_CONST_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: guards.guarded_mul,
              ast.Pow: guards.guarded_pow, ast.LShift: guards.guarded_lshift, ast.Mod: guards.guarded_mod,
              ast.FloorDiv: operator.floordiv, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
              ast.BitAnd: operator.and_}
_IOPS = {ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.Div: "/=", ast.FloorDiv: "//=", ast.Mod: "%=",
         ast.Pow: "**=", ast.LShift: "<<=", ast.RShift: ">>=", ast.BitAnd: "&=", ast.BitOr: "|=",
         ast.BitXor: "^=", ast.MatMult: "@="}


class _NotConstant(Exception):
    pass


MAX_FOLDED = 64 * 1024  # characters of a constant string/bytes the loader computes; longer ones run under budget


def _constant(node: ast.AST, memo: dict | None = None):
    """Evaluate a constant expression with the run-time caps, or raise _NotConstant.

    The loader's work is bounded: each node is evaluated once (`memo`), and a text result over MAX_FOLDED
    characters is not computed here (its size is checked before the operation): it is left to run time.
    """
    if memo is None:
        memo = {}
    found = memo.get(id(node), _MISSING)
    if found is _MISSING:
        try:
            found = _fold(node, memo)
        except _NotConstant:
            found = _NOT_CONSTANT
        memo[id(node)] = found
    if found is _NOT_CONSTANT:
        raise _NotConstant()
    return found


def _fold(node: ast.AST, memo: dict):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bytes)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_constant(node.operand, memo)
    if isinstance(node, ast.BinOp) and type(node.op) in _CONST_OPS:
        left, right = _constant(node.left, memo), _constant(node.right, memo)
        size = _text_size(type(node.op), left, right)
        if size > MAX_FOLDED:
            if not isinstance(node.op, ast.Mod):
                guards._check_length(size)  # over the run-time cap too: refused at load, as before
            raise _NotConstant()
        try:
            return _CONST_OPS[type(node.op)](left, right)
        except guards.LimitError:
            raise
        except Exception:
            raise _NotConstant() from None
    raise _NotConstant()


def _text_size(op: type, left, right) -> int:
    """The length of a str/bytes result of `left op right`, known before computing it (0: not text)."""
    texts = (str, bytes)
    if op is ast.Add and isinstance(left, texts) and isinstance(right, texts):
        return len(left) + len(right)
    if op is ast.Mult:
        if isinstance(left, texts) and type(right) is int:
            return len(left) * max(right, 0)
        if isinstance(right, texts) and type(left) is int:
            return len(right) * max(left, 0)
    if op is ast.Mod and isinstance(left, texts):
        return len(left) * 2 + rules.MAX_FORMAT_WIDTH  # %-formatting: bounded by template and width cap
    return 0


_MISSING = object()
_NOT_CONSTANT = object()


def _call(name: str, *args: ast.AST) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


class Rewriter(ast.NodeTransformer):
    """Route risky operations through guards and add timeout checkpoints; records oversized constants."""

    def __init__(self):
        self.problems: list[tuple[int, str]] = []
        self.counter = 0
        self.folded: dict = {}  # id(node) -> constant value: each node is folded once

    def temp(self) -> str:
        """Return a fresh name for a temporary (scripts cannot use `_bw` names)."""
        self.counter += 1
        return f"_bw_t{self.counter}"

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        if type(node.op) in _GUARDED_OPS:
            try:
                _constant(node, self.folded)
            except guards.LimitError as exc:
                self.problems.append((node.lineno, _constant_message(exc)))
                return node
            except _NotConstant:
                pass
            else:
                return node  # small constant: let the compiler fold it
        self.generic_visit(node)
        if type(node.op) not in _GUARDED_OPS:
            return node
        return ast.copy_location(_call(_GUARDED_OPS[type(node.op)], node.left, node.right), node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST | list:
        self.generic_visit(node)
        target = node.target
        if isinstance(target, ast.Name):
            return node
        holder = self.temp()
        statements = [ast.Assign(targets=[ast.Name(holder, ast.Store())], value=target.value)]
        if isinstance(target, ast.Subscript):
            key = self.temp()
            index = target.slice
            if isinstance(index, ast.Slice):
                none = ast.Constant(None)
                index = _call("_bw_slice", index.lower or none, index.upper or none, index.step or none)
            statements.append(ast.Assign(targets=[ast.Name(key, ast.Store())], value=index))

            def make(ctx: ast.expr_context) -> ast.expr:
                return ast.Subscript(value=ast.Name(holder, ast.Load()), slice=ast.Name(key, ast.Load()), ctx=ctx)
        else:
            def make(ctx: ast.expr_context) -> ast.expr:
                return ast.Attribute(value=ast.Name(holder, ast.Load()), attr=target.attr, ctx=ctx)
        value = _call("_bw_inplace", ast.Constant(_IOPS[type(node.op)]), make(ast.Load()), node.value)
        statements.append(ast.Assign(targets=[make(ast.Store())], value=value))
        return [ast.fix_missing_locations(ast.copy_location(s, node)) for s in statements]

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        if node.format_spec is None:
            return node
        value = _call("_bw_format", node.value, node.format_spec, ast.Constant(node.conversion))
        return ast.copy_location(ast.FormattedValue(value=value, conversion=-1, format_spec=None), node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.returns = None
        for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs + [node.args.vararg,
                                                                                    node.args.kwarg]:
            if arg is not None:
                arg.annotation = None
        node.body.insert(0, self.checkpoint(node))
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, self.checkpoint(node))
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:
        # A `finally` runs while a timeout unwinds: it re-raises at once instead of running on (one spinning
        # frame per 5 ms re-fire took 4.6 s for 900 nested frames).
        self.generic_visit(node)
        if node.finalbody:
            node.finalbody.insert(0, self.checkpoint(node))
        return node

    def visit_For(self, node: ast.For | ast.While) -> ast.AST:
        # Every loop header: a loop in a handler or `finally` stops at its next iteration once time is up
        # (a global flag the alarm sets: one name read per iteration, no call).
        self.generic_visit(node)
        check = ast.If(test=ast.Name("_bw_expired", ast.Load()), body=[ast.Expr(_call("_bw_tick"))], orelse=[])
        node.body.insert(0, ast.fix_missing_locations(ast.copy_location(check, node)))
        return node

    visit_While = visit_For

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        self.generic_visit(node)
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    @staticmethod
    def checkpoint(node: ast.AST) -> ast.stmt:
        """`_bw_tick()`: raises the timeout again once it has fired, so no handler can resume the script."""
        return ast.fix_missing_locations(ast.copy_location(ast.Expr(_call("_bw_tick")), node))


def _constant_message(exc: Exception) -> str:
    text = str(exc)
    return text if text.startswith("this expression") else f"this expression is too large ({text})"


class Transformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer, allowing local names with one leading `_`, our temporaries, nonlocal."""

    def check_name(self, node, name, allow_magic_methods=False):
        if name and name.startswith("_") and (name.startswith("_bw_") or not (
                name.startswith("__") or name.endswith("_"))):
            return
        if name == "__name__" and isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            return  # read-only: checks.py refuses binding it
        super().check_name(node, name, allow_magic_methods)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        return self.node_contents_visit(node)

    # `match`: checks.py allows only literal, capture, sequence, mapping and built-in class patterns
    def visit_Match(self, node: ast.AST) -> ast.AST:
        return self.node_contents_visit(node)

    visit_match_case = visit_MatchValue = visit_MatchSingleton = visit_MatchSequence = visit_Match
    visit_MatchMapping = visit_MatchClass = visit_MatchStar = visit_MatchAs = visit_MatchOr = visit_Match

    def error(self, node: ast.AST, info: str) -> None:
        self.errors.append((getattr(node, "lineno", None) or 1, info))


def compile_script(source: str, filename: str) -> Script:
    """Compile `source` under the policy at load time, or raise ScriptError listing every refusal.

    A source over rules.INLINE_COMPILE_BYTES is compiled in a child process under a deadline (its code
    object comes back through marshal): this process never spends more than about 150 ms parsing a script.
    """
    data = source.encode("utf-8", "surrogatepass")
    if len(data) > rules.MAX_SOURCE_BYTES:
        raise ScriptError([f"{filename}: script is {len(data)} bytes; the limit is {rules.MAX_SOURCE_BYTES}"])
    if len(data) > rules.INLINE_COMPILE_BYTES:
        code, hooks = _compiled_in_child(source, filename)
    else:
        code, hooks = compiled(source, filename)
    return Script(filename, source, hashlib.sha256(data).hexdigest(), hooks, code)


def compiled(source: str, filename: str) -> tuple[CodeType, frozenset]:
    """The code object and hook names of a script, or ScriptError (whatever stage of the compiler failed)."""
    try:
        tree, code = _compile(source, filename)
    except ScriptError:
        raise
    # Every stage (parse, checks, rewrites, the final compile() with its symbol table) can raise: a
    # script must never turn into anything but a ScriptError, which a config load reports and survives.
    except SyntaxError as exc:  # also what compile() finds that ast.parse does not ('return' outside...)
        raise ScriptError([f"{filename}:{exc.lineno or 1}: {exc.msg} ({type(exc).__name__})"]) from None
    except (RecursionError, MemoryError):
        raise ScriptError([f"{filename}:1: the script is nested too deeply or too large to compile "
                           f"(nesting limit {rules.MAX_NESTING} levels)"]) from None
    except Exception as exc:  # ValueError, OverflowError, ...: the compiler's own limits
        raise ScriptError([f"{filename}:1: the script cannot be compiled: {type(exc).__name__}: "
                           f"{str(exc)[:200]}"]) from None
    hooks = frozenset(node.name for node in tree.body
                      if isinstance(node, ast.FunctionDef) and node.name in HOOK_NAMES)
    return code, hooks


def _compiled_in_child(source: str, filename: str) -> tuple[CodeType, frozenset]:
    """compiled() in a child process (backworks.sandbox.compiling) under rules.COMPILE_TIMEOUT_S."""
    request = json.dumps({"source": source, "filename": filename}).encode()
    try:
        done = subprocess.run([sys.executable, "-m", "backworks.sandbox.compiling"], input=request,
                              capture_output=True, timeout=rules.COMPILE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ScriptError([f"{filename}:1: the script takes more than {rules.COMPILE_TIMEOUT_S:g} s to compile "
                           "(keep scripts small: big tables belong in files the script reads at load)"]) from None
    try:
        kind, payload = done.stdout[:1], done.stdout[1:]
        if done.returncode == 0 and kind == b"C":
            code, hooks = marshal.loads(payload)
            return code, frozenset(hooks)
        if done.returncode == 0 and kind == b"E":
            raise ScriptError(json.loads(payload))
    except (ValueError, EOFError, TypeError):
        pass
    raise ScriptError([f"{filename}:1: the script could not be compiled (compiler exit status {done.returncode})"])


def _compile(source: str, filename: str):
    """Parse, check, rewrite and compile; ScriptError lists the policy's refusals."""
    tree = _parse(source, filename)
    problems = _check(tree)
    if not problems:
        tree = rewrites.rewrite(tree)
        rewriter = Rewriter()
        tree = ast.fix_missing_locations(rewriter.visit(tree))
        problems = rewriter.problems
    if not problems:
        errors: list = []
        Transformer(errors, [], {}).visit(tree)
        problems = [e if isinstance(e, tuple) else (1, str(e)) for e in errors]
    if problems:
        raise ScriptError([f"{filename}:{line}: {message}" for line, message in sorted(set(problems),
                                                                                    key=lambda p: p[0])])
    return tree, compile(tree, filename, "exec", dont_inherit=True)


def _parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename)
    except SyntaxError as exc:
        return _raise(f"{filename}:{exc.lineno or 1}: {exc.msg} ({type(exc).__name__})")
    except (RecursionError, MemoryError):
        return _raise(f"{filename}:1: expression nested too deeply (more than {rules.MAX_NESTING} levels)")
    except ValueError as exc:
        return _raise(f"{filename}:1: {exc}")


def _raise(problem: str):
    raise ScriptError([problem])


def _check(tree: ast.Module) -> list[tuple[int, str]]:
    checker = PolicyChecker(env.EXPORTS)
    try:
        checker.visit(tree)
    except RecursionError:
        return [(1, f"expression nested too deeply (more than {rules.MAX_NESTING} levels)")]
    return checker.problems
