"""Fixtures for the example apps' black-box tests: the same real gunicorn and services as tests/."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import gunicorn, postgres_url, redis_url  # noqa: E402,F401  (fixtures)
