"""Fixtures for the real PostgreSQL and Redis servers (required under CI=true)."""
from __future__ import annotations

import os

import pytest

from tests.helpers.basics import need_service


def _postgres_url() -> str | None:
    import psycopg

    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url
        except Exception:
            continue
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL server (psycopg driver), skipped only outside CI when unreachable."""
    url = os.environ.get("BACKWORKS_TEST_POSTGRES") or _postgres_url()
    if not url:
        need_service("PostgreSQL is not reachable on 127.0.0.1:5432")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis server, skipped only outside CI when unreachable."""
    import redis

    url = os.environ.get("BACKWORKS_TEST_REDIS", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception:
        need_service(f"Redis is not reachable at {url}")
    return url
