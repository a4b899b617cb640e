"""The capture store's queue: bounded in rows and bytes, drained within a deadline, a dropped table re-made."""
from __future__ import annotations

import threading
import time

import pytest

from backworks import metrics
from backworks.capture.store import ROW_OVERHEAD, CaptureStore


def row(i: int, body: bytes = b"") -> dict:
    return {"recorded_at": time.time(), "endpoint": "rec", "method": "GET", "path": f"/n/{i}", "status": 200,
            "request_headers": [], "request_body": body, "response_headers": [], "response_body": b""}


def dropped() -> float:
    return metrics.CAPTURE_WRITES.labels("dropped")._value.get()


@pytest.fixture
def store(tmp_path):
    made = CaptureStore(f"sqlite:///{tmp_path / 'captures.db'}", queue_bytes=1024 * 1024)
    yield made
    made.close()


def hang_inserts(store: CaptureStore) -> threading.Event:
    """Make the store hang on every write until the returned event is set."""
    release = threading.Event()
    real = store._insert

    def insert(rows, engine=None):
        release.wait()
        real(rows, engine)

    store._insert = insert
    return release


def test_the_queue_is_bounded_in_bytes_and_counts_what_it_drops(store):
    release = hang_inserts(store)
    before = dropped()
    body = b"x" * (300 * 1024)
    for i in range(10):
        store.record(row(i, body))
    fits = (1024 * 1024) // (len(body) + ROW_OVERHEAD + len(""))
    assert dropped() - before == 10 - fits
    release.set()
    assert store.drain(10) == 0
    assert len(store.rows()) == fits


def test_drain_of_a_hung_store_returns_on_time_and_counts_the_rest_as_dropped(store, caplog):
    hang_inserts(store)  # never released
    for i in range(5):
        store.record(row(i))
    time.sleep(0.3)  # the writer has taken the first batch and hangs in it
    before = dropped()
    started = time.monotonic()
    assert store.drain(0.5) == 5
    assert time.monotonic() - started < 1.5
    assert dropped() - before == 5
    assert "5 not recorded (counted as dropped)" in caplog.text


def test_drain_writes_everything_queued_before_it_returns(store):
    for i in range(40):
        store.record(row(i))
    assert store.drain(10) == 0
    assert sorted(int(r["path"].rsplit("/", 1)[1]) for r in store.rows()) == list(range(40))


def test_a_dropped_table_is_created_again_and_the_exchange_kept(store, caplog):
    store.record(row(1))
    store.drain(10)
    store.drop()
    store.record(row(2))
    assert store.drain(10) == 0
    assert [r["path"] for r in store.rows()] == ["/n/2"]
    assert "table backworks_captures is gone; creating it again" in caplog.text


def test_a_failed_write_logs_the_cause_without_the_recorded_values(tmp_path, caplog):
    broken = CaptureStore(f"sqlite:///{tmp_path / 'captures.db'}")
    broken.record({**row(1), "status": None, "path": "/secret?api_key=hunter2"})  # status NOT NULL
    broken.drain(10)
    broken.close()
    assert "could not record 1 exchange(s): IntegrityError" in caplog.text
    assert "hunter2" not in caplog.text
