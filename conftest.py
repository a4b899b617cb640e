"""Load the shared test helpers (tests/helpers/) as pytest plugins, for tests/ and examples/ alike.

This file sits at the repository root so that pytest puts the root on sys.path (`import tests.helpers...`)
without a `pythonpath` setting.
"""
pytest_plugins = ["tests.helpers.gunicorn", "tests.helpers.services", "tests.helpers.markers"]
