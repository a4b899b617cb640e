"""The package layers point one way and no module imports itself back (the layer order of issue 14).

Every `import` of a backworks module counts, including imports inside functions: an import at call time
still closes a cycle, it only hides it until the call.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "backworks"

# Lower layers never import higher ones (the longest matching prefix gives a module's layer). Within one
# layer imports may go either way, as long as they close no cycle.
LAYERS = {
    # leaves: import nothing above them
    "backworks.errors": 0, "backworks.logtext": 0, "backworks.pids": 0, "backworks.secrets": 0,
    "backworks.metrics": 0, "backworks.backstop": 0, "backworks.breaker": 0, "backworks.http": 0,
    "backworks.routing": 0, "backworks.state": 0, "backworks.upstream_http": 0, "backworks.inbound": 0,
    "backworks.plugins.contract": 0, "backworks.config.problems": 0, "backworks.config.fields": 0,
    "backworks.config.yaml_limits": 0, "backworks.server.draining": 0,
    "backworks.config.model": 1,
    "backworks.sandbox": 2, "backworks.database": 2, "backworks.capture": 2, "backworks.upstreams": 2,
    "backworks.modes": 3, "backworks.plugins": 3,
    "backworks.config": 4, "backworks.capture.mockgen": 4,  # config.load/schema/env/reference ask the modes
    "backworks.loaded": 5, "backworks.config.checker": 5,
    "backworks.app": 6, "backworks.server": 6, "backworks.ops": 6, "backworks.admin": 6,
    "backworks.cli": 7,
    "backworks": 8,  # the package root: __version__, and create_app imported at call time
}

# Imports that close a cycle, each with why it stays. This list may only shrink.
KNOWN_CYCLES: dict[tuple[str, str], str] = {}

# In-function imports without a comment on their line, each with why it stays. This list may only shrink;
# a new in-function import says on its line which start-up cost it avoids.
UNCOMMENTED_LAZY = {
    ("backworks.modes.runtime", "backworks.plugins.isolation"): "RestrictedPython only when a runtime endpoint loads",
    ("backworks.modes.runtime", "backworks.sandbox"): "RestrictedPython only when a runtime endpoint loads",
    ("backworks.modes.runtime", "backworks.sandbox.env"): "RestrictedPython only when a runtime endpoint loads",
    ("backworks.modes.runtime", "backworks.sandbox.logs"): "RestrictedPython only when a runtime endpoint loads",
    ("backworks.modes.runtime", "backworks.sandbox.values"): "RestrictedPython only when a runtime endpoint loads",
    ("backworks.modes.runtime", "backworks.modes.tables"): "SQL tables only for runtime endpoints that name some",
}


def module_name(path: Path) -> str:
    """backworks/a/b.py -> backworks.a.b; a package's __init__.py is the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> list[tuple[str, int, bool, bool]]:
    """(imported backworks module, line, inside a function, has a comment) for every import in a file."""
    source = path.read_text()
    lines = source.splitlines()
    found = []

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                # `from backworks.pkg import sub` imports the submodule when there is one
                targets = [f"{child.module}.{alias.name}" if f"{child.module}.{alias.name}" in MODULES
                           else child.module for alias in child.names]
            for target in targets:
                if target == "backworks" or target.startswith("backworks."):
                    commented = "#" in lines[child.lineno - 1] or lines[child.lineno - 2].strip().startswith("#")
                    found.append((target, child.lineno, in_function, commented))
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def layer(module: str) -> int:
    """The layer of a module: the longest LAYERS prefix that names it or a package above it."""
    name = module
    while name not in LAYERS:
        name = name.rpartition(".")[0]
    return LAYERS[name]


def graph() -> dict[str, set[str]]:
    """Module -> the backworks modules it imports (the package root left out: every module imports it)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _, _, _ in imports_of(path):
            if target != "backworks" and (name, target) not in KNOWN_CYCLES:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_module_imports_itself_back_through_other_modules():
    assert cycles(graph()) == []


def test_cycle_finder_reports_a_two_module_cycle():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_module_imports_a_higher_layer():
    upward = [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: {name} (layer {layer(name)}) imports "
              f"{target} (layer {layer(target)})"
              for name in MODULES for target, line, _, _ in imports_of(MODULES[name])
              if target != "backworks" and layer(target) > layer(name)]
    assert upward == []


def test_every_in_function_import_says_why():
    silent = [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: {target}"
              for name in MODULES for target, line, in_function, commented in imports_of(MODULES[name])
              if in_function and not commented and (name, target) not in UNCOMMENTED_LAZY]
    assert silent == []


def test_known_exceptions_still_exist():
    """An exception that no longer happens leaves its list (the lists only shrink)."""
    lazy = {(name, target) for name in MODULES for target, _, in_function, _ in imports_of(MODULES[name])
            if in_function}
    assert set(UNCOMMENTED_LAZY) <= lazy
    assert set(KNOWN_CYCLES) <= lazy


def test_every_module_has_a_layer():
    assert all(isinstance(layer(name), int) for name in MODULES)

