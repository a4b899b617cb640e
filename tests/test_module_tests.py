"""Tests mirror the package: backworks/a/b.py is tested in tests/a/test_b.py; the list of exceptions only shrinks."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Modules whose behaviour is tested in other files (by feature, not yet by module). Remove an entry when its
# mirrored test file exists; never add one: a new module comes with its test file.
WITHOUT_TEST_FILE = {
    "admin/api.py", "admin/auth.py", "admin/recorder.py", "admin/views.py", "backstop.py", "capture/redact.py",
    "cli/capture.py", "cli/help.py", "cli/problems.py", "config/checker.py", "config/env.py", "config/fields.py",
    "config/reference.py", "config/schema.py", "config/yaml_limits.py", "database/listing.py",
    "database/records.py", "loaded.py", "modes/base.py", "modes/tables.py", "ops/exposition.py",
    "ops/health.py", "plugins/contract.py", "plugins/devkit.py", "plugins/isolation.py", "plugins/testing.py",
    "sandbox/audit.py", "sandbox/callables.py", "sandbox/checks.py", "sandbox/child.py", "sandbox/env.py",
    "sandbox/guards.py", "sandbox/host.py", "sandbox/module_state.py", "sandbox/phases.py", "sandbox/ranges.py",
    "sandbox/rewrites.py", "sandbox/rules.py", "sandbox/runner.py", "sandbox/safe_builtins.py", "sandbox/spare.py",
    "sandbox/wrapped.py", "server/draining.py", "server/gunicorn_hooks.py", "server/watchdog.py", "upstreams.py",
}


def modules_without_test_file() -> set[str]:
    """Every backworks module (package __init__ files aside) with no tests/<same path>/test_<name>.py."""
    package = ROOT / "backworks"
    return {str(path.relative_to(package)) for path in package.rglob("*.py")
            if path.name != "__init__.py"
            and not (ROOT / "tests" / path.relative_to(package).parent / f"test_{path.stem}.py").exists()}


def test_every_new_module_has_a_mirrored_test_file():
    assert sorted(modules_without_test_file() - WITHOUT_TEST_FILE) == []


def test_the_list_of_modules_without_a_test_file_only_shrinks():
    """A module that got its test file (or is gone) leaves the list."""
    assert sorted(WITHOUT_TEST_FILE - modules_without_test_file()) == []
