"""One SQL engine factory: database endpoints and the capture store get the same SQLite setup and path rule."""
from __future__ import annotations

import os

from backworks.capture.store import CaptureStore
from backworks.database.engine import Database, engine_url


def _pragmas(engine) -> tuple:
    with engine.connect() as conn:
        return (conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                conn.exec_driver_sql("PRAGMA synchronous").scalar())


def test_database_and_capture_store_sqlite_engines_have_the_same_pragmas(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    store = CaptureStore(f"sqlite:///{tmp_path / 'captures.db'}")
    try:
        assert _pragmas(database.engine) == ("wal", 1)  # 1: synchronous=NORMAL
        assert _pragmas(store.engine) == ("wal", 1)
    finally:
        database.close()
        store.close()


def test_relative_sqlite_path_is_next_to_the_config_file(tmp_path):
    assert engine_url("sqlite:///data/app.db", tmp_path) == "sqlite:///" + os.path.join(str(tmp_path), "data/app.db")
    assert engine_url("sqlite:////abs/app.db", tmp_path) == "sqlite:////abs/app.db"
    assert engine_url("sqlite:///:memory:", tmp_path) == "sqlite:///:memory:"
    assert engine_url("postgres://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
