"""Helpers to declare cerberus schemas with help text, and to render them as a reference."""
from __future__ import annotations

HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def field(type_: str | list, help: str, **rules) -> dict:
    """Declare a scalar or free-form field with its help text."""
    return {"type": type_, "meta": {"help": help}, **rules}


def section(help: str, fields: dict, **rules) -> dict:
    """Declare a mapping with a fixed set of keys."""
    return {"type": "dict", "meta": {"help": help}, "schema": fields, **rules}


def named(help: str, item: dict, **rules) -> dict:
    """Declare a mapping from user-chosen names to items of one shape."""
    return {"type": "dict", "meta": {"help": help}, "keysrules": {"type": "string"},
            "valuesrules": item, **rules}


def listof(help: str, item: dict, **rules) -> dict:
    """Declare a list whose items share one shape."""
    return {"type": "list", "meta": {"help": help}, "schema": item, **rules}


def string_map(help: str, **rules) -> dict:
    """Declare a mapping of string names to scalar values (headers, query conditions)."""
    return {"type": "dict", "meta": {"help": help}, "keysrules": {"type": "string"},
            "valuesrules": {"type": ["string", "integer", "float", "boolean"]}, **rules}


# What may go on the wire (RFC 9110): header names are tokens; values have no CR, LF or NUL (no injection).
HEADER_NAME = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
HEADER_VALUE = r"[^\r\n\x00]*"
HEADER_FIELDS = ("headers", "set_headers")  # keys whose maps are headers sent (see problems._regex_hint)


def header_map(help: str, **rules) -> dict:
    """Declare a mapping of header names to values sent on the wire (names: tokens; values: no CR/LF/NUL)."""
    declared = string_map(help, **rules)
    declared["keysrules"] = {"type": "string", "regex": HEADER_NAME}
    declared["valuesrules"] = {**declared["valuesrules"], "regex": HEADER_VALUE}
    return declared


def walk_fields(schema: dict, prefix: str = ""):
    """Yield (dotted path, rules) for every declared field, depth first."""
    for name, rules in schema.items():
        path = f"{prefix}.{name}" if prefix else name
        yield path, rules
        yield from _walk_children(rules, path)


def _walk_children(rules: dict, path: str):
    if rules.get("type") == "dict" and isinstance(rules.get("schema"), dict):
        yield from walk_fields(rules["schema"], path)
    item = rules.get("valuesrules")
    if isinstance(item, dict):
        yield from _walk_children(item, f"{path}.<name>")
    if rules.get("type") == "list" and isinstance(rules.get("schema"), dict):
        yield from _walk_children(rules["schema"], f"{path}[]")


def describe_type(rules: dict) -> str:
    """Return a short human type name for a field."""
    type_ = rules.get("type", "any")
    if isinstance(type_, list):
        type_ = " | ".join(type_)
    if "allowed" in rules:
        type_ = " | ".join(repr(a) if not isinstance(a, str) else a for a in rules["allowed"])
    if rules.get("type") == "dict" and "valuesrules" in rules:
        type_ = "map"
    return type_


def reference_rows(schema: dict):
    """Yield (path, type, default, help) rows for the config reference."""
    for path, rules in walk_fields(schema):
        help_text = rules.get("meta", {}).get("help", "")
        default = rules.get("default", "")
        yield path, describe_type(rules), default, help_text
