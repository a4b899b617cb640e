"""SQL access for database endpoints: the pooled engine, tables built from declared fields, shape checks."""
from __future__ import annotations

import logging
import os
import weakref

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from backworks.errors import ConfigError
from backworks.secrets import error_text, hide_url

logger = logging.getLogger(__name__)

SQLITE_BUSY_S = 5.0  # how long a SQLite writer waits for another's lock
APPLICATION_NAME = "backworks-database"  # how PostgreSQL lists these connections (pg_stat_activity)

# Declared field type -> (column type factory, SQLAlchemy type classes an existing column may have).
COLUMN_TYPES = {
    "string": (lambda f: sa.String(f.get("max_length")), (sa.String,)),
    "text": (lambda f: sa.Text(), (sa.String,)),
    "integer": (lambda f: sa.BigInteger(), (sa.Integer,)),
    "number": (lambda f: sa.Float(), (sa.Float, sa.Numeric)),
    "boolean": (lambda f: sa.Boolean(), (sa.Boolean,)),
    "datetime": (lambda f: sa.DateTime(), (sa.DateTime,)),
    "date": (lambda f: sa.Date(), (sa.Date,)),
    "json": (lambda f: sa.JSON(), (sa.JSON,)),
}


def normalise_url(url: str) -> str:
    """Return the SQLAlchemy URL to use: PostgreSQL URLs get the psycopg (v3) driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def engine_url(store: str, base_dir=None) -> str:
    """Turn a configured store URL into an SQLAlchemy URL: PostgreSQL gets the psycopg (v3) driver, and a
    relative SQLite file is next to the config file (`base_dir`), like every other path in a config."""
    store = normalise_url(store)
    if store.startswith("sqlite:///") and base_dir is not None:
        path = store[len("sqlite:///"):]
        if path and path != ":memory:" and not os.path.isabs(path):
            return "sqlite:///" + os.path.join(str(base_dir), path)
    return store



def create_engine(url: str, **kwargs) -> sa.Engine:
    """Create an SQLAlchemy engine: the one factory (database endpoints and the capture store).

    SQLite gets the same pragmas everywhere; pooled connections inherited through fork are dropped.
    """
    sqlite = make_url(url).get_backend_name() == "sqlite"
    if sqlite:  # a writer waits for another's lock (seconds; the capture store asks for longer)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_S, **kwargs.get("connect_args", {})}
    engine = sa.create_engine(url, **kwargs)
    if sqlite:
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    _dispose_after_fork(engine)
    return engine


class Database:
    """One pooled SQLAlchemy engine per config load, disposed when the load is closed."""

    def __init__(self, url: str, pool_size: int = 5, echo: bool = False):
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise ConfigError([f"database.url: cannot parse {url!r}: {exc} (e.g. sqlite:///app.db or "
                               f"postgresql://user@host/db)"]) from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError([f"database.url: unsupported database '{self.dialect}' (use sqlite:/// or "
                               f"postgresql://)"])
        # No pre-ping (a round trip per request): a dropped connection invalidates the whole pool, and
        # reads are retried once on a fresh connection (DatabaseMode.handle).
        kwargs: dict = {"echo": echo}
        if self.dialect == "postgresql":
            kwargs.update(pool_size=pool_size, max_overflow=pool_size,
                          connect_args={"application_name": APPLICATION_NAME})
        self.engine = create_engine(self.url, **kwargs)
        self.metadata = sa.MetaData()

    def exists(self) -> bool:
        """False only for a SQLite file that has not been created yet."""
        database = make_url(self.url).database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            return True
        return os.path.exists(database)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return hide_url(self.url)

    def ping(self) -> dict:
        """Run the readiness check: one round trip; the error text never holds a password."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            logger.warning("readiness: database unreachable: %s", error_text(exc))
            return {"ok": False, "error": f"database unreachable: {error_text(exc)}"}
        return {"ok": True, "dialect": self.engine.dialect.name}

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers in other gunicorn workers proceed while one worker writes; in WAL mode
    # synchronous=NORMAL cannot corrupt the file (a power loss may undo the last commits) and spares an
    # fsync per commit.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _dispose_after_fork(engine: sa.Engine) -> None:
    """Drop pooled connections inherited through fork (gunicorn --preload) without closing the parent's."""
    ref = weakref.ref(engine)

    def after_fork() -> None:
        alive = ref()
        if alive is not None:
            alive.dispose(close=False)

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_fork)


def build_table(metadata: sa.MetaData, name: str, fields: dict, id_field: str) -> sa.Table:
    """Declare the table for an endpoint: the id column first, then one column per declared field."""
    columns = []
    if id_field not in fields:
        columns.append(sa.Column(id_field, sa.Integer, primary_key=True, autoincrement=True))
    for field_name, spec in fields.items():
        make_type = COLUMN_TYPES[spec["type"]][0]
        is_id = field_name == id_field
        columns.append(sa.Column(field_name, make_type(spec), primary_key=is_id, autoincrement=False,
                                 unique=bool(spec.get("unique")) and not is_id,
                                 nullable=not (spec.get("required") or is_id)))
    return sa.Table(name, metadata, *columns)


def prepare_table(db: Database, table: sa.Table, fields: dict, create: bool, where: str,
                  dry_run: bool = False) -> None:
    """Create the table when asked and absent; refuse an existing table whose shape differs.

    With dry_run (`backworks check`) nothing is created: a SQLite file that does not exist yet is left
    alone, and a missing table is only an error when it would not be created.
    """
    if dry_run and not db.exists():
        return
    for attempt in range(3):
        try:
            existing = _existing_columns(db, table, create, where, dry_run)
            break
        except SQLAlchemyError as exc:
            # Another worker may have created the same table a moment ago: look again.
            if attempt == 2:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                raise ConfigError([f"{where}: cannot use database {db.safe_url}: {reason}"]) from exc
    if existing is None:
        return
    problems = shape_problems(table, fields, existing)
    if problems:
        raise ConfigError([f"{where}: table '{table.name}' exists with a different shape: {p} (alter or "
                           f"drop the table, or change the declared fields)" for p in problems])


def _existing_columns(db: Database, table: sa.Table, create: bool, where: str, dry_run: bool) -> dict | None:
    """Return the existing table's columns by name, or None after creating the table."""
    with db.engine.begin() as conn:
        inspector = sa.inspect(conn)
        if inspector.has_table(table.name):
            columns = {c["name"]: c for c in inspector.get_columns(table.name)}
            for name in _unique_columns(inspector, table.name):
                if name in columns:
                    columns[name]["unique"] = True
            return columns
        if not create:
            raise ConfigError([f"{where}: table '{table.name}' does not exist in {db.safe_url} "
                               f"(create it, or set create_table: true)"])
        if dry_run:
            return None
        table.create(conn)
    logger.info("created table %s in %s", table.name, db.safe_url)
    return None


def _unique_columns(inspector, name: str) -> set:
    """Columns that a one-column unique constraint, unique index or primary key covers."""
    single = set(inspector.get_pk_constraint(name).get("constrained_columns") or [])
    if len(single) > 1:
        single = set()
    for constraint in inspector.get_unique_constraints(name):
        if len(constraint["column_names"]) == 1:
            single.add(constraint["column_names"][0])
    for index in inspector.get_indexes(name):
        if index.get("unique") and len(index["column_names"]) == 1:
            single.add(index["column_names"][0])
    return single


def shape_problems(table: sa.Table, fields: dict, existing: dict) -> list[str]:
    """Compare the declared columns with the columns an existing table has."""
    problems = []
    for column in table.columns:
        found = existing.get(column.name)
        declared = fields[column.name].type
        if found is None:
            problems.append(f"column '{column.name}' is missing (declared {declared})")
            continue
        accepted = COLUMN_TYPES[declared][1]
        if not isinstance(found["type"], accepted):
            problems.append(f"column '{column.name}' is {found['type']} but is declared {declared}")
        elif fields[column.name].unique and not found.get("unique"):
            problems.append(f"column '{column.name}' is declared unique but has no unique constraint or index")
    for name, found in existing.items():
        if name not in table.columns and not found.get("nullable", True) and found.get("default") is None \
                and found.get("autoincrement") is not True:
            problems.append(f"column '{name}' is NOT NULL without a default but is not declared, so no "
                            f"row could be created")
    return problems
