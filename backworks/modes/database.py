"""Database mode: a REST resource over one SQL table (list, get, create, update, patch, delete)."""
from __future__ import annotations

import logging
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from backworks.config.problems import suggest as _suggest
from backworks.database.engine import Database, build_table, engine_url, prepare_table
from backworks.database.listing import ListQuery
from backworks.database.records import Field, Invalid, row_converter
from backworks.errors import ConfigError, HTTPError
from backworks.http import Reply, RequestData, is_json_type, json_reply
from backworks.modes.base import LoadContext, Mode
from backworks.modes.database_schema import FIELD, FIELD_TYPES, IDENT, OPERATIONS, SCHEMA  # noqa: F401
from backworks.modes.tables import register

logger = logging.getLogger(__name__)

COLLECTION_METHODS = {"list": "GET", "create": "POST"}
ITEM_METHODS = {"get": "GET", "update": "PUT", "patch": "PATCH", "delete": "DELETE"}
ITEM_PARAM = "id"


class DatabaseMode(Mode):
    """A REST resource over a SQL table: filters, sort, pagination, validation, no SQL written."""

    schema = SCHEMA
    default_methods = ("GET", "POST", "PUT", "PATCH", "DELETE")

    @classmethod
    def routes(cls, path: str, methods: tuple, block: dict) -> list[tuple[str, tuple]]:
        """The collection path answers list/create; path/{id} answers get/update/patch/delete."""
        ops = block.get("operations") or OPERATIONS
        collection = tuple(m for op, m in COLLECTION_METHODS.items() if op in ops and m in methods)
        item = tuple(m for op, m in ITEM_METHODS.items() if op in ops and m in methods)
        item_path = path.rstrip("/") + "/{" + ITEM_PARAM + "}"
        return [(p, ms) for p, ms in ((path, collection), (item_path, item)) if ms]

    def __init__(self, spec, ctx: LoadContext):
        super().__init__(spec, ctx)
        block = self.block
        self.id_name = block["id_field"]
        self.fields = self._fields(block)
        self.id = self.fields[self.id_name]
        self.auto_id = self.id_name not in block["fields"]
        self.unique = [f for f in self.fields.values() if f.unique or (f.is_id and not self.auto_id)]
        self.db = self._database(ctx)
        self.table = build_table(sa.MetaData(), block["table"], block["fields"], self.id_name)
        prepare_table(self.db, self.table, self.fields, block["create_table"], spec.at(self.spec.mode, "table"),
                      dry_run=bool(ctx.options.get("check_only")))
        self.key = self.table.c[self.id_name]
        self.select_one = sa.select(self.table).where(self.key == sa.bindparam("key"))
        self.insert = sa.insert(self.table)
        self.to_json = row_converter(self.fields)
        self.listing = ListQuery(self.table, self.fields, self.id_name, block["default_limit"], block["max_limit"])
        self.name = block["table"]
        register(ctx, spec.name, self)  # runtime scripts that list this endpoint in runtime.tables use it

    def _fields(self, block: dict) -> dict:
        problems = []
        if block["default_limit"] > block["max_limit"]:
            problems.append(("default_limit", f"is larger than max_limit ({block['max_limit']})"))
        fields = {}
        for name, spec in block["fields"].items():
            problems.extend((f"fields.{name}.{key}", msg) for key, msg in _field_problems(name, spec))
            fields[name] = Field(name, spec, is_id=name == block["id_field"])
        id_name = block["id_field"]
        if id_name in block["fields"] and block["fields"][id_name]["type"] not in ("string", "integer"):
            problems.append((f"fields.{id_name}.type", "an id field must be a string or an integer"))
        if problems:
            raise ConfigError([p for path, msg in problems for p in self.problem(path, msg).problems])
        if id_name not in fields:
            fields = {id_name: Field(id_name, {"type": "integer"}, is_id=True), **fields}
        return fields

    def _database(self, ctx: LoadContext) -> Database:
        settings = ctx.config.data["database"]
        try:
            # A relative SQLite file is next to the config file, like every other path in it.
            url = engine_url(settings["url"], ctx.config.base_dir)
            return ctx.shared("database", lambda: Database(url, settings["pool_size"], settings["echo"]))
        except ConfigError as exc:
            raise ConfigError([f"{ctx.config.where('database', 'url')}: {p}" for p in exc.problems]) from None

    def readiness(self):
        """/readyz pings this load's database (shared by its database endpoints: one check)."""
        return "database", self.db.ping

    def handle(self, request: RequestData) -> Reply:
        """Answer one request: list/create on the collection, get/update/patch/delete on an item."""
        method = "GET" if request.method == "HEAD" else request.method
        try:
            try:
                return self.answer(request, method)
            except DBAPIError as exc:
                if not (exc.connection_invalidated and method == "GET"):
                    raise
                logger.warning("endpoint %s: database connection lost; retrying the read once", self.spec.name)
                return self.answer(request, method)
        except HTTPError:
            raise
        except DataError as exc:
            logger.warning("endpoint %s: the database refused a value: %s", self.spec.name, exc.orig)
            raise HTTPError(400, "invalid_value", "the database refused a value of this request") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
                logger.error("endpoint %s: database unavailable: %s", self.spec.name, exc.orig)
                raise HTTPError(503, "database_unavailable", "the database is unavailable; try again later") from exc
            raise
        except SQLAlchemyError as exc:
            logger.exception("endpoint %s: database error", self.spec.name)
            raise HTTPError(500, "database_error", "the database failed to answer this request") from exc

    def answer(self, request: RequestData, method: str) -> Reply:
        """Run the operation the method and path name."""
        if ITEM_PARAM not in request.path_params:
            return self.list(request) if method == "GET" else self.create(request)
        key = self.parse_key(request.path_params[ITEM_PARAM])
        if method == "GET":
            return self.get(key)
        if method == "DELETE":
            return self.delete(key)
        return self.update(request, key, partial=method == "PATCH")

    def parse_key(self, text: str):
        """Turn the {id} path segment into a key value; a malformed id is simply not found."""
        try:
            return self.id.parse(text)
        except Invalid:
            raise self.not_found(text) from None

    def not_found(self, key) -> HTTPError:
        """The 404 for a missing record."""
        shown = str(key) if len(str(key)) <= 80 else str(key)[:77] + "..."
        return HTTPError(404, "not_found", f"no {self.name} record with {self.id_name} '{shown}'")

    def list(self, request: RequestData) -> Reply:
        """GET collection: filters, sort, pagination; {items, total, limit, offset} plus Link headers."""
        plan = self.listing.plan(request.query)
        with self.db.engine.connect() as conn:
            rows = conn.execute(plan.select, plan.bind).all()
            if plan.offset == 0 and len(rows) < plan.limit:
                total = len(rows)
            else:
                total = conn.execute(plan.count).scalar_one()
        body = {"items": [self.to_json(r) for r in rows], "total": total, "limit": plan.limit,
                "offset": plan.offset}
        headers = [("X-Total-Count", str(total))]
        links = plan.links(request.path, total)
        if links:
            headers.append(("Link", links))
        return json_reply(200, body, headers)

    def get(self, key) -> Reply:
        """GET item."""
        with self.db.engine.connect() as conn:
            row = conn.execute(self.select_one, {"key": key}).first()
        if row is None:
            raise self.not_found(key)
        return json_reply(200, self.to_json(row))

    def create(self, request: RequestData) -> Reply:
        """POST collection: validate, insert, 201 with Location."""
        record = self.insert_record(self.validated(self.body(request), "create"))
        location = request.path.rstrip("/") + "/" + quote(str(record[self.id_name]), safe="")
        return json_reply(201, record, [("Location", location)])

    def insert_record(self, values: dict) -> dict:
        """Insert validated values; return the stored record (409 HTTPError on a unique clash)."""
        try:
            with self.db.engine.begin() as conn:
                result = conn.execute(self.insert, values)
                key = values[self.id_name] if not self.auto_id else result.inserted_primary_key[0]
                row = conn.execute(self.select_one, {"key": key}).one()
        except IntegrityError:
            raise self.conflict(values, None) from None
        return self.to_json(row)

    def update(self, request: RequestData, key, partial: bool) -> Reply:
        """PUT (replace) or PATCH (change the given fields) an item."""
        values = self.validated(self.body(request), "patch" if partial else "replace", key)
        record = self.update_record(key, values)
        if record is None:
            raise self.not_found(key)
        return json_reply(200, record)

    def update_record(self, key, values: dict, conditions=()) -> dict | None:
        """Set validated values on the record `key` (if it also meets `conditions`); None when none does."""
        try:
            with self.db.engine.begin() as conn:
                if values or conditions:
                    changed = conn.execute(sa.update(self.table).where(self.key == key, *conditions)
                                           .values(values or {self.id_name: key}))
                    if changed.rowcount == 0:
                        return None
                row = conn.execute(self.select_one, {"key": key}).first()
        except IntegrityError:
            raise self.conflict(values, key) from None
        return None if row is None else self.to_json(row)

    def delete(self, key) -> Reply:
        """DELETE item: 204, or 404 when there was none."""
        with self.db.engine.begin() as conn:
            deleted = conn.execute(sa.delete(self.table).where(self.key == key))
        if deleted.rowcount == 0:
            raise self.not_found(key)
        return Reply(204, [], b"")

    def body(self, request: RequestData) -> dict:
        """The JSON object of a write; 415 when not declared JSON, 400 when not an object."""
        if not is_json_type(request.headers.get("Content-Type")):
            raise HTTPError(415, "unsupported_media_type",
                            "send the record as JSON (Content-Type: application/json)")
        data = request.json
        if not isinstance(data, dict):
            raise HTTPError(400, "invalid_body", "the request body must be a JSON object of field values")
        return data

    def validated(self, data: dict, action: str, key=None) -> dict:
        """Check a write against the declared fields; 400 listing every problem."""
        values, problems = {}, []
        for name, value in data.items():
            problem = self._check_one(name, value, action, key, values)
            if problem:
                problems.append({"field": name, "message": problem})
        if action != "patch":
            for name, f in self.fields.items():
                if name in data or (f.is_id and action == "replace") or (f.is_id and self.auto_id):
                    continue
                if f.default == "now" and action == "replace":
                    continue
                if f.default is not None:
                    values[name] = f.default_value()
                elif f.required:
                    problems.append({"field": name, "message": "is required"})
                else:
                    values[name] = None
        if problems:
            text = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            raise HTTPError(400, "validation_failed", f"invalid {self.name} record: {text}", details=problems)
        return values

    def _check_one(self, name: str, value, action: str, key, values: dict) -> str | None:
        f = self.fields.get(name)
        if f is None:
            return "unknown field" + _suggest(name, [n for n in self.fields if n != self.id_name or
                                                     not self.auto_id])
        if f.is_id and (self.auto_id or action != "create"):
            if action == "create":
                return "is assigned by the server; leave it out"
            try:
                same = f.check(value) == key
            except Invalid:
                same = False
            return None if same else "cannot be changed (it must match the id in the path)"
        try:
            values[name] = f.check(value)
        except Invalid as exc:
            return str(exc)
        return None

    def conflict(self, values: dict, key) -> HTTPError:
        """Turn a constraint violation into a 409 naming the unique field that clashed."""
        with self.db.engine.connect() as conn:
            for f in self.unique:
                value = values.get(f.name)
                if value is None:
                    continue
                query = sa.select(self.key).where(self.table.c[f.name] == value)
                if key is not None:
                    query = query.where(self.key != key)
                if conn.execute(query.limit(1)).first() is not None:
                    return HTTPError(409, "conflict", f"{f.name} '{value}' is already taken (it must be unique)",
                                     details={"field": f.name})
        return HTTPError(409, "conflict", f"the {self.name} record conflicts with existing data")


def _field_problems(name: str, spec: dict):
    """Yield (key, message) for declarations that cannot work."""
    kind = spec["type"]
    if "__" in name:
        yield "type", f"field name '{name}' must not contain '__' (it separates filter operators)"
    if name in ListQuery.RESERVED:
        yield "type", f"field name '{name}' is reserved for query parameters (choose another name)"
    if spec.get("max_length") is not None and kind not in ("string", "text"):
        yield "max_length", f"applies to string and text fields only (this one is {kind})"
    for bound in ("min", "max"):
        if spec.get(bound) is not None and kind not in ("integer", "number"):
            yield bound, f"applies to integer and number fields only (this one is {kind})"
    default = spec.get("default")
    if default == "now" and kind in ("datetime", "date"):
        return
    if default is not None:
        try:
            Field(name, spec).check(default)
        except Invalid as exc:
            yield "default", f"default {default!r} {exc}"
