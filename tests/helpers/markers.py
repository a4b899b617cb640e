"""Mark the tests that start real servers as slow (`-m "not slow"` runs the rest in seconds)."""
from __future__ import annotations

import pytest

REAL_SERVER_FIXTURES = {"gunicorn", "plain", "stack", "browser"}


def pytest_collection_modifyitems(items):
    """Mark every test that starts a real server as slow."""
    for item in items:
        if REAL_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
