"""The list query of a database endpoint: filters, sort and pagination from the query string."""
from __future__ import annotations

import logging
from urllib.parse import urlencode

import sqlalchemy as sa

from backworks.config.problems import suggest as _suggest
from backworks.database.records import Field, Invalid
from backworks.errors import HTTPError

logger = logging.getLogger(__name__)

MAX_OFFSET = 2 ** 62
COMPARE = {"": "__eq__", "ne": "__ne__", "gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}
OPERATORS = sorted([op for op in COMPARE if op] + ["contains", "in", "isnull"])


class Plan:
    """One list request, ready to run: the select, the count and the page it covers."""

    def __init__(self, select, count, limit: int, offset: int, params: list, by_page: bool, bind: dict):
        self.select = select
        self.count = count
        self.bind = bind  # values of the statements' bound limit/offset, when they have them
        self.limit = limit
        self.offset = offset
        self.params = params  # the query parameters other than paging, kept in Link URLs
        self.by_page = by_page

    def links(self, path: str, total: int) -> str:
        """Return the RFC 8288 Link header value (first, prev, next, last), or "" for one page."""
        limit, offset = self.limit, self.offset
        last = max(total - 1, 0) // limit * limit
        pages = [("first", 0)]
        if offset > 0:
            pages.append(("prev", max(offset - limit, 0)))
        if offset + limit < total:
            pages.append(("next", offset + limit))
        pages.append(("last", last))
        if offset == 0 and total <= limit:
            return ""
        return ", ".join(f'<{self._url(path, start)}>; rel="{rel}"' for rel, start in pages)

    def _url(self, path: str, start: int) -> str:
        if self.by_page:
            paging = [("page", str(start // self.limit + 1)), ("per_page", str(self.limit))]
        else:
            paging = [("limit", str(self.limit)), ("offset", str(start))]
        return f"{path}?{urlencode(self.params + paging)}"


class ListQuery:
    """Turns a query string into a Plan; every name is checked against the declared fields."""

    PAGING = ("limit", "offset", "page", "per_page")
    RESERVED = PAGING + ("sort",)

    def __init__(self, table: sa.Table, fields: dict, id_name: str, default_limit: int, max_limit: int):
        self.table = table
        self.fields = fields
        self.key = table.c[id_name]
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.base = sa.select(table)
        # The unfiltered, default-sorted page is the common case: its statements are built once.
        page = sa.bindparam("page_limit", type_=sa.Integer), sa.bindparam("page_offset", type_=sa.Integer)
        self.plain_select = self.base.order_by(self.key.asc()).limit(page[0]).offset(page[1])
        self.plain_count = sa.select(sa.func.count()).select_from(table)

    def plan(self, query) -> Plan:
        """Build the Plan for a query MultiDict; 400 listing every problem."""
        problems: list[str] = []
        conditions = self.conditions(query, problems)
        order = self.order(query.get("sort"), problems)
        limit, offset, by_page = self.page(query, problems)
        if problems:
            raise HTTPError(400, "invalid_query", "; ".join(problems), details=problems)
        params = [(k, v) for k, v in query.items(multi=True) if k not in self.PAGING]
        if not conditions and order is None:
            return Plan(self.plain_select, self.plain_count, limit, offset, params, by_page,
                        {"page_limit": limit, "page_offset": offset})
        select = self.base.where(*conditions).order_by(*(order or [self.key.asc()])).limit(limit).offset(offset)
        count = sa.select(sa.func.count()).select_from(self.table).where(*conditions)
        return Plan(select, count, limit, offset, params, by_page, {})

    def conditions(self, query, problems: list) -> list:
        """The WHERE clauses of the filters (`field`, `field__op`), values bound as parameters."""
        conditions = []
        for key in query.keys():
            if key in self.RESERVED:
                continue
            name, _, op = key.partition("__")
            f = self.fields.get(name)
            if f is None:
                problems.append(f"unknown filter field '{name}'{_suggest(name, list(self.fields))}")
            elif op not in COMPARE and op not in OPERATORS:
                problems.append(f"unknown filter operator '__{op}' in '{key}' (use one of: "
                                f"{', '.join('__' + o for o in OPERATORS)})")
            elif not f.filterable:
                problems.append(f"field '{name}' is JSON and cannot be filtered")
            else:
                for text in query.getlist(key):
                    try:
                        conditions.append(self.condition(self.table.c[name], f, op, text))
                    except Invalid as exc:
                        problems.append(f"filter '{key}': {exc}")
        return conditions

    def condition(self, column, f: Field, op: str, text: str):
        """One comparison, with the value parsed to the field's type."""
        if op == "isnull":
            wanted = Field(f.name, {"type": "boolean"}).parse(text)
            return column.is_(None) if wanted else column.is_not(None)
        if op == "contains":
            if f.type not in ("string", "text"):
                raise Invalid(f"'__contains' applies to string fields only ({f.name} is {f.type})")
            return column.icontains(f.parse(text), autoescape=True)
        if op == "in":
            values = [f.parse(part) for part in text.split(",") if part != ""]
            if not values:
                raise Invalid("give at least one value, separated by commas")
            return column.in_(values)
        return getattr(column, COMPARE[op])(f.parse(text))

    def order(self, text: str | None, problems: list) -> list | None:
        """ORDER BY from `sort=-a,b`, always ending with the id so pages are stable; None: by id only."""
        if not text:
            return None
        order, seen = [], set()
        for part in (text or "").split(","):
            part = part.strip()
            name = part.lstrip("-+")
            if not name:
                continue
            f = self.fields.get(name)
            if f is None:
                problems.append(f"unknown sort field '{name}'{_suggest(name, list(self.fields))}")
            elif not f.filterable:
                problems.append(f"field '{name}' is JSON and cannot be sorted")
            elif name not in seen:
                seen.add(name)
                column = self.table.c[name]
                order.append(column.desc() if part.startswith("-") else column.asc())
        if self.key.name not in seen:
            order.append(self.key.asc())
        return order

    def page(self, query, problems: list) -> tuple[int, int, bool]:
        """(limit, offset, by_page) from limit/offset or page/per_page; limit capped at max_limit."""
        by_page = "page" in query or "per_page" in query
        if by_page and ("limit" in query or "offset" in query):
            problems.append("use either limit/offset or page/per_page, not both")
        if by_page:
            size = min(_number(query, "per_page", self.default_limit, 1, problems), self.max_limit)
            page = _number(query, "page", 1, 1, problems)
            return size, min((page - 1) * size, MAX_OFFSET), True
        limit = min(_number(query, "limit", self.default_limit, 1, problems), self.max_limit)
        return limit, _number(query, "offset", 0, 0, problems), False


def _number(query, name: str, default: int, minimum: int, problems: list) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip(), 10)
    except ValueError:
        problems.append(f"{name} must be an integer, got {text[:40]!r}")
        return default
    if value < minimum:
        problems.append(f"{name} must be at least {minimum}")
        return default
    if value > MAX_OFFSET:
        problems.append(f"{name} is too large")
        return default
    return value
