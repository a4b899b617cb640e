"""Declared fields of a database endpoint: validate JSON values, parse query text, serialise rows."""
from __future__ import annotations

import datetime as dt
import logging
import math

logger = logging.getLogger(__name__)

INT64 = 2 ** 63
EXAMPLES = {"datetime": "2024-05-01T12:00:00Z", "date": "2024-05-01"}
TYPE_WORDS = {"string": "a string", "text": "a string", "integer": "an integer", "number": "a number",
              "boolean": "true or false", "datetime": f"an ISO 8601 date-time (e.g. {EXAMPLES['datetime']})",
              "date": f"an ISO 8601 date (e.g. {EXAMPLES['date']})", "json": "any JSON value"}
TRUE_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class Invalid(ValueError):
    """A value does not fit its field; the message says why."""


def utc_now() -> dt.datetime:
    """The current time in UTC, without a zone (how datetimes are stored)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Field:
    """One declared field: its type and constraints, checked for every write."""

    def __init__(self, name: str, spec: dict, is_id: bool = False):
        self.name = name
        self.type = spec["type"]
        self.required = bool(spec.get("required")) or is_id
        self.unique = bool(spec.get("unique"))
        self.max_length = spec.get("max_length")
        self.min = spec.get("min")
        self.max = spec.get("max")
        self.allowed = spec.get("allowed")
        self.default = spec.get("default")
        self.is_id = is_id

    @property
    def filterable(self) -> bool:
        """JSON fields cannot be compared or sorted portably."""
        return self.type != "json"

    def default_value(self):
        """The value a new row gets when the client sends none ("now" means the current time)."""
        if self.default == "now" and self.type == "datetime":
            return utc_now()
        if self.default == "now" and self.type == "date":
            return utc_now().date()
        return self.check(self.default) if self.default is not None else None

    def check(self, value):
        """Return the value to store for a JSON value; raise Invalid naming what is wrong."""
        if value is None:
            if self.required:
                raise Invalid("must not be null")
            return None
        value = self._typed(value)
        self._constrain(value)
        return value

    def _typed(self, value):
        kind = self.type
        if kind in ("string", "text"):
            if not isinstance(value, str):
                raise Invalid(f"must be {TYPE_WORDS[kind]}")
            _check_text(value)
            return value
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise Invalid("must be an integer")
            if not -INT64 <= value < INT64:
                raise Invalid("is out of range (64-bit integer)")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise Invalid("must be a number")
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise Invalid("must be true or false")
            return value
        if kind in ("datetime", "date"):
            if not isinstance(value, str):
                raise Invalid(f"must be {TYPE_WORDS[kind]}")
            return parse_time(kind, value)
        return value  # json: anything JSON

    def _constrain(self, value) -> None:
        if self.allowed is not None and value not in self.allowed:
            raise Invalid(f"must be one of: {', '.join(str(a) for a in self.allowed)}")
        if self.max_length is not None and isinstance(value, str) and len(value) > self.max_length:
            raise Invalid(f"is longer than {self.max_length} characters")
        if self.min is not None and isinstance(value, (int, float)) and value < self.min:
            raise Invalid(f"must be at least {self.min}")
        if self.max is not None and isinstance(value, (int, float)) and value > self.max:
            raise Invalid(f"must be at most {self.max}")

    def parse(self, text: str):
        """Turn query or path text into a value of this field's type; raise Invalid when it is not one."""
        kind = self.type
        if kind in ("string", "text"):
            _check_text(text)
            return text
        if kind == "integer":
            try:
                value = int(text.strip(), 10)
            except ValueError:
                raise Invalid(f"{text!r} is not an integer") from None
            if not -INT64 <= value < INT64:
                raise Invalid(f"{text!r} is out of range (64-bit integer)")
            return value
        if kind == "number":
            try:
                value = float(text)
            except ValueError:
                raise Invalid(f"{text!r} is not a number") from None
            if not math.isfinite(value):
                raise Invalid(f"{text!r} is not a finite number")
            return value
        if kind == "boolean":
            if text.lower() not in TRUE_WORDS:
                raise Invalid(f"{text!r} is not true or false")
            return TRUE_WORDS[text.lower()]
        if kind in ("datetime", "date"):
            return parse_time(kind, text)
        raise Invalid("json fields cannot be filtered")


def parse_time(kind: str, text: str):
    """Parse an ISO 8601 date or date-time; date-times with a zone are converted to UTC."""
    try:
        if kind == "date":
            return dt.date.fromisoformat(text)
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"must be {TYPE_WORDS[kind]}, got {text[:40]!r}") from None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise Invalid(f"is out of range once converted to UTC, got {text[:40]!r}") from None
    return value


def _check_text(value: str) -> None:
    """Refuse text no database can store: NUL characters and lone surrogates (not UTF-8 encodable)."""
    if "\x00" in value:
        raise Invalid("must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid("must be valid Unicode text (it contains a lone surrogate)") from None


def row_converter(fields: dict):
    """Return a function turning a result row into a JSON-ready dict (dates as ISO 8601 text)."""
    datetimes = [name for name, f in fields.items() if f.type == "datetime"]
    dates = [name for name, f in fields.items() if f.type == "date"]
    if not datetimes and not dates:
        return lambda row: dict(row._mapping)

    def convert(row) -> dict:
        item = dict(row._mapping)
        for name in datetimes:
            if item[name] is not None:
                item[name] = item[name].isoformat() + "Z"
        for name in dates:
            if item[name] is not None:
                item[name] = item[name].isoformat()
        return item

    return convert
