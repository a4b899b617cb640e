"""The `db` object of runtime scripts: read and write the records of the config's database endpoints.

A runtime endpoint lists the database endpoints it may use (`runtime.tables: [carts, orders]`); its script
then calls `db.get(name, id)`, `db.list(name, query)`, `db.create(name, record)`,
`db.update(name, id, changes, where=None)` and `db.delete(name, id)`. Every write is validated against the
endpoint's declared fields exactly as over HTTP, and every value is a bound parameter. Problems a script can
handle (a record that fails validation, a unique clash, a bad query) raise ValueError with the same message
an HTTP client would get; nothing a script receives is a host object.
"""
from __future__ import annotations

import json
import logging
import signal
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict

from backworks.database.records import Invalid
from backworks.errors import HTTPError

logger = logging.getLogger(__name__)

REGISTRY = "database_endpoints"  # LoadContext.shared key: endpoint name -> DatabaseMode of this load


def register(ctx, name: str, mode) -> None:
    """Make a database endpoint reachable by the `db` objects of this load's runtime scripts."""
    ctx.shared(REGISTRY, dict)[name] = mode


@contextmanager
def host_work():
    """Run host SQL with the script's timer held off: a SIGALRM that comes due meanwhile is delivered right
    after, so a spent budget ends the call then, and a pool or transaction is never left half-done."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # inline scripts run on the main thread
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


class Tables:
    """The host side of one runtime endpoint's `db` object: only the listed database endpoints."""

    def __init__(self, ctx, names: list[str], owner: str):
        self.registry = ctx.shared(REGISTRY, dict)
        self.names = tuple(names)
        self.owner = owner

    def functions(self) -> dict:
        """The callables scripts see as db.get, db.list, db.create, db.update and db.delete."""
        return {"get": self.get, "list": self.list, "create": self.create, "update": self.update,
                "delete": self.delete}

    def endpoint(self, name):
        """The DatabaseMode of `name`; ValueError when this runtime endpoint may not use it."""
        if not isinstance(name, str) or name not in self.names:
            raise ValueError(f"db: {str(name)[:60]!r} is not one of this endpoint's tables "
                             f"({', '.join(self.names)}; see runtime.tables)")
        return self.registry[name]

    def get(self, name, record_id):
        """The record with this id, or None."""
        mode = self.endpoint(name)
        key = _key(mode, record_id)
        if key is None:
            return None
        with host_work(), _sql(self.owner, name):
            with mode.db.engine.connect() as conn:
                row = conn.execute(mode.select_one, {"key": key}).first()
        return None if row is None else _plain(mode.to_json(row))

    def list(self, name, query=None):
        """{"items", "total", "limit", "offset"} for filters, sort and paging written as in a URL query."""
        mode = self.endpoint(name)
        pairs = []
        for key, value in dict(query or {}).items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                pairs.append((str(key), _text(item)))
        with host_work(), _sql(self.owner, name), _as_value_error():
            plan = mode.listing.plan(MultiDict(pairs))
            with mode.db.engine.connect() as conn:
                rows = conn.execute(plan.select, plan.bind).all()
                total = conn.execute(plan.count).scalar_one()
        return _plain({"items": [mode.to_json(r) for r in rows], "total": total, "limit": plan.limit,
                       "offset": plan.offset})

    def create(self, name, record):
        """Validate and insert a record; return it as stored."""
        mode = self.endpoint(name)
        with host_work(), _sql(self.owner, name), _as_value_error():
            values = mode.validated(_record(record), "create")
            return _plain(mode.insert_record(values))

    def update(self, name, record_id, changes, where=None):
        """Change the given fields; None when no record has this id (and, with `where`, those values)."""
        mode = self.endpoint(name)
        key = _key(mode, record_id)
        if key is None:
            return None
        with host_work(), _sql(self.owner, name), _as_value_error():
            values = mode.validated(_record(changes), "patch", key)
            conditions = _conditions(mode, where)
            return _plain(mode.update_record(key, values, conditions))

    def delete(self, name, record_id) -> bool:
        """Delete the record; True when there was one."""
        mode = self.endpoint(name)
        key = _key(mode, record_id)
        if key is None:
            return False
        with host_work(), _sql(self.owner, name):
            with mode.db.engine.begin() as conn:
                return conn.execute(sa.delete(mode.table).where(mode.key == key)).rowcount > 0


def _key(mode, record_id):
    """The id as the key column's type, or None when it cannot be one (a malformed id finds nothing)."""
    try:
        if isinstance(record_id, str):
            return mode.id.parse(record_id)
        return mode.id.check(record_id)
    except Invalid:
        return None


def _plain(value):
    """Plain data for the script: column names are SQLAlchemy str subclasses, which scripts must not get."""
    return None if value is None else json.loads(json.dumps(value))


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _record(value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"db: a record must be a dict of field values, not {type(value).__name__}")
    return value


def _conditions(mode, where) -> list:
    """`where` {field: value} as equality conditions on declared fields."""
    conditions = []
    for name, value in dict(where or {}).items():
        field = mode.fields.get(name)
        if field is None:
            raise ValueError(f"db: where: unknown field {str(name)[:60]!r}")
        try:
            conditions.append(mode.table.c[name] == field.check(value))
        except Invalid as exc:
            raise ValueError(f"db: where: {name}: {exc}") from None
    return conditions


@contextmanager
def _as_value_error():
    """Client-side problems (validation, unique clashes, bad queries) become ValueError with their message."""
    try:
        yield
    except HTTPError as exc:
        raise ValueError(exc.message) from None
    except Invalid as exc:
        raise ValueError(str(exc)) from None


@contextmanager
def _sql(owner: str, name: str):
    """Database failures reach the script as RuntimeError without the driver's objects or text."""
    try:
        yield
    except SQLAlchemyError as exc:
        logger.error("runtime endpoint %s: db on %s failed: %s", owner, name, getattr(exc, "orig", exc))
        raise RuntimeError(f"db: the database failed on {name!r} (see the server log)") from None
