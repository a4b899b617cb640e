"""Run a plugin's generated test file without pytest: `backworks test-plugin --tests FILE`."""
from __future__ import annotations

import importlib.util
import inspect
import traceback
from dataclasses import dataclass
from pathlib import Path

from backworks.plugins.devkit import DevkitError


@dataclass
class TestResult:
    """One test function's outcome: its name, whether it passed, and why not."""

    name: str
    passed: bool
    message: str = ""


def run_test_file(path) -> list[TestResult]:
    """Import a test file and call each `test_*` function that takes no arguments, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DevkitError(f"test file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"backworks_plugin_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise DevkitError(f"cannot import {path}: {type(exc).__name__}: {exc}") from exc
    tests = [(name, fn) for name, fn in vars(module).items()
             if name.startswith("test_") and inspect.isfunction(fn) and fn.__module__ == module.__name__]
    tests.sort(key=lambda item: item[1].__code__.co_firstlineno)
    results = []
    for name, fn in tests:
        if inspect.signature(fn).parameters:
            results.append(TestResult(name, False, "takes arguments (pytest fixtures need pytest: "
                                                   f"python -m pytest {path})"))
            continue
        try:
            fn()
        except Exception as exc:
            results.append(TestResult(name, False, _failure(exc, path)))
        else:
            results.append(TestResult(name, True))
    return results


def _failure(exc: Exception, path: Path) -> str:
    """The exception and the line of the test file it came from."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path.resolve()
              or f.filename == str(path)]
    where = f" ({path}:{frames[-1].lineno}: {frames[-1].line})" if frames else ""
    text = str(exc) or "assertion failed"
    return f"{type(exc).__name__}: {text}{where}"
