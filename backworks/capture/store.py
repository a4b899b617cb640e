"""The capture store: recorded exchanges in SQLite or PostgreSQL, written off the request path."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from urllib.parse import parse_qsl

import sqlalchemy as sa

from backworks import metrics, secrets
from backworks.capture.redact import redact_row
from backworks.database.engine import create_engine, engine_url
from backworks.server import draining

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10000
QUEUE_BYTES = 32 * 1024 * 1024  # bodies waiting for a slow or hung store may not grow a worker without end
ROW_OVERHEAD = 512  # bytes counted per queued exchange besides its bodies (headers, url, the dict itself)
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 10000
BATCH = 200
WRITE_INTERVAL_S = 0.1
COLUMNS = ("recorded_at", "endpoint", "method", "url", "path", "query", "request_headers", "request_body",
           "request_body_size", "request_body_hash", "status", "response_headers", "response_body",
           "response_body_size", "duration_ms", "upstream")


def make_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """Declare the captures table."""
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False, default=""),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False, default=""),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("query", sa.Text, nullable=False, default=""),
        sa.Column("request_headers", sa.Text, nullable=False, default="[]"),
        sa.Column("request_body", sa.LargeBinary, nullable=False, default=b""),
        sa.Column("request_body_size", sa.Integer, nullable=False, default=0),
        sa.Column("request_body_hash", sa.String(64), nullable=False, default=""),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("response_headers", sa.Text, nullable=False, default="[]"),
        sa.Column("response_body", sa.LargeBinary, nullable=False, default=b""),
        sa.Column("response_body_size", sa.Integer, nullable=False, default=0),
        sa.Column("duration_ms", sa.Float, nullable=False, default=0.0),
        sa.Column("upstream", sa.Text, nullable=False, default=""),
        sa.Index(f"ix_{name}_method_path", "method", "path"),
    )


def query_key(query: str) -> tuple:
    """Return a query string in a canonical, order-free form for matching."""
    return tuple(sorted(parse_qsl(query or "", keep_blank_values=True)))


class CaptureStore:
    """Recorded exchanges: `record()` queues (never blocks), a writer thread per process stores them."""

    def __init__(self, url: str, table: str = "backworks_captures", policy=secrets.DEFAULT,
                 queue_bytes: int = QUEUE_BYTES):
        self.url = url
        self.policy = policy  # every row written goes through it (capture mode's rows on the way in)
        self.table = make_table(sa.MetaData(), table)
        self.queue_bytes = queue_bytes
        self._engine = None
        self._pid = None
        self._pending: deque = deque()
        self._queued = 0  # bytes of the exchanges queued or being written (under _size_lock)
        self._inflight = 0  # exchanges of the batch being written
        self._size_lock = threading.Lock()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        draining.register(self)

    @classmethod
    def from_config(cls, config) -> "CaptureStore":
        """Build the store named by a config's `capture` section."""
        capture = config.data["capture"]
        return cls(engine_url(capture["store"], config.base_dir), capture.get("table", "backworks_captures"),
                   config.secrets, capture.get("queue_max_bytes", QUEUE_BYTES))

    @property
    def engine(self) -> sa.Engine:
        """This process's engine, created on first use (never shared across a fork); table ensured."""
        if self._pid != os.getpid() or self._engine is None:
            with self._lock:
                if self._pid != os.getpid():
                    self._reset_for_process()
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _reset_for_process(self) -> None:
        self._pid = os.getpid()
        self._engine = None
        self._pending = deque()
        self._queued = 0
        self._size_lock = threading.Lock()
        self._writer = None

    def _create_engine(self) -> sa.Engine:
        if self.url.startswith("sqlite"):
            engine = create_engine(self.url, connect_args={"timeout": STATEMENT_TIMEOUT_MS / 1000,
                                                              "check_same_thread": False}, hide_parameters=True)
        else:
            # A store that accepts connections and never answers must not hold the writer forever.
            engine = create_engine(self.url, pool_pre_ping=True, pool_size=2, pool_timeout=CONNECT_TIMEOUT_S,
                                      hide_parameters=True,
                                      connect_args={"connect_timeout": CONNECT_TIMEOUT_S,
                                                    "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"})
        for attempt in range(3):
            try:
                self.table.metadata.create_all(engine)
                return engine
            except sa.exc.SQLAlchemyError:
                # another process may be creating it at the same moment: look again
                if attempt == 2:
                    raise
                time.sleep(0.1)
        return engine

    def record(self, row: dict, prepare=None) -> None:
        """Queue one exchange for writing (`prepare(row)` runs in the writer); never blocks the caller."""
        if self._closed:
            return
        if self._pid != os.getpid() or self._writer is None:
            self._start_writer()
        size = row_size(row)
        with self._size_lock:
            full = len(self._pending) >= QUEUE_SIZE or self._queued + size > self.queue_bytes
            if not full:
                self._queued += size
        if full:
            metrics.CAPTURE_WRITES.labels("dropped").inc()
            logger.warning("capture queue full (%d exchanges, %d of %d bytes); one exchange not recorded",
                           len(self._pending), self._queued, self.queue_bytes)
            return
        # a deque append wakes no thread: the writer polls, so the request never pays for a thread switch
        self._pending.append((row, prepare, size))

    def _start_writer(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._reset_for_process()
            if self._writer is not None:
                return
            self._stop = threading.Event()
            self._writer = threading.Thread(target=self._drain, args=(self._pending, self._stop),
                                            name="backworks-capture", daemon=True)
            self._writer.start()

    def _drain(self, pending: deque, stop: threading.Event) -> None:
        while not stop.wait(WRITE_INTERVAL_S):
            self._write_pending(pending)
        self._write_pending(pending)

    def _write_pending(self, pending: deque) -> None:
        while pending:
            batch = []
            while pending and len(batch) < BATCH:
                batch.append(pending.popleft())
            self._inflight = len(batch)
            try:
                self._write(batch)
            finally:
                self._inflight = 0
                with self._size_lock:
                    self._queued -= sum(item[2] for item in batch)

    def _write(self, batch: list) -> None:
        try:
            rows = [prepare(row) if prepare else redact_row(row, self.policy) for row, prepare, _ in batch]
            self._insert_recreating(rows)
            metrics.CAPTURE_WRITES.labels("ok").inc(len(batch))
        except Exception as exc:
            metrics.CAPTURE_WRITES.labels("failed").inc(len(batch))
            # the exception's own text lists the SQL parameters (query keys, API keys): never log it
            logger.warning("capture store %s: could not record %d exchange(s): %s", safe_url(self.url),
                           len(batch), secrets.error_text(exc))

    def _write_in_thread(self, deadline: float) -> bool:
        """Write what is queued from a new thread until `deadline`; True when it is still writing then."""
        late = threading.Thread(target=self._write_pending, args=(self._pending,), daemon=True,
                                name="backworks-capture-drain")
        late.start()
        late.join(max(0.0, deadline - time.monotonic()))
        return late.is_alive()

    def _insert_recreating(self, rows: list) -> None:
        """insert(), creating the table again once when it was dropped under a running server."""
        try:
            self._insert(rows)
        except sa.exc.DBAPIError:
            if self._table_exists():
                raise
            logger.warning("capture store %s: table %s is gone; creating it again", safe_url(self.url),
                           self.table.name)
            self.table.metadata.create_all(self.engine)
            self._insert(rows)

    def _table_exists(self) -> bool:
        try:
            return sa.inspect(self.engine).has_table(self.table.name)
        except sa.exc.SQLAlchemyError:
            return True  # the store itself is failing: not a dropped table

    def insert(self, rows: list, engine: sa.Engine | None = None) -> None:
        """Store rows now (import, tests), their secrets redacted by the store's policy."""
        self._insert([redact_row(row, self.policy) for row in rows], engine)

    def _insert(self, rows: list, engine: sa.Engine | None = None) -> None:
        with (engine or self.engine).begin() as conn:
            conn.execute(self.table.insert(), [{k: row.get(k) for k in COLUMNS if k in row} for row in rows])

    def flush(self, timeout: float = 10.0) -> None:
        """Write every queued exchange of this process now (the writer restarts on the next record)."""
        self.drain(timeout)

    def drain(self, timeout: float = 10.0) -> int:
        """Write what is queued within `timeout` seconds; count and log the rest as dropped; return that count.

        The writing happens in a thread, so a store that hangs costs the caller `timeout` at most.
        """
        with self._lock:
            writer, stop, self._writer = self._writer, self._stop, None
        if self._pid != os.getpid():
            return 0
        deadline = time.monotonic() + timeout
        if writer is not None:
            stop.set()
            writer.join(timeout)
        busy = writer is not None and writer.is_alive()
        if not busy and self._pending:
            # queued while the writer was stopping: write them in a thread of their own, on what time is left
            busy = self._write_in_thread(deadline)
        lost = len(self._pending) + (self._inflight if busy else 0)
        if lost:
            metrics.CAPTURE_WRITES.labels("dropped").inc(lost)
            logger.error("capture store %s did not take the last exchanges within %.1f s: %d not recorded "
                         "(counted as dropped)", safe_url(self.url), timeout, lost)
        return lost

    def candidates(self, method: str | None, path: str | None, limit: int = 500) -> list:
        """Return recorded exchanges for a method and path (None: any), newest first."""
        t = self.table
        query = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if method is not None:
            query = query.where(t.c.method == method)
        if path is not None:
            query = query.where(t.c.path == path)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def rows(self, endpoint: str | None = None) -> list:
        """Return every recorded exchange, oldest first (optionally of one endpoint)."""
        t = self.table
        query = sa.select(t).order_by(t.c.id)
        if endpoint:
            query = query.where(t.c.endpoint == endpoint)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def drop(self) -> None:
        """Drop the table (tests and maintenance)."""
        self.table.drop(self.engine, checkfirst=True)

    def close(self) -> None:
        """Write what is queued, stop the writer and release connections."""
        self._closed = True
        self.flush()
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None


def row_size(row: dict) -> int:
    """The bytes a queued exchange holds, as the queue's byte bound counts them."""
    return (len(row.get("request_body") or b"") + len(row.get("response_body") or b"") + len(row.get("url") or "")
            + ROW_OVERHEAD)


def safe_url(url: str) -> str:
    """Return a store URL without its password (see backworks.secrets)."""
    return secrets.hide_url(url)
