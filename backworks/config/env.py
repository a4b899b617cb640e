"""BACKWORKS__A__B=value environment overrides: scalar settings the schema declares, in entries that exist."""
from __future__ import annotations

import re

import yaml

from backworks.config.problems import suggest
from backworks.config.schema import config_schema

ENV_PREFIX = "BACKWORKS__"
ONLY_SCALARS = "environment variables can only set a single value (a number, a string, true or false)"


class OverrideRefused(Exception):
    """An override names no existing scalar setting; the message says what it named."""


def apply_env_overrides(data: dict, environ, report) -> dict:
    """Apply BACKWORKS__A__B=value variables to scalar settings; return {field path: variable name}."""
    applied: dict = {}
    names = sorted(name for name in environ if name.startswith(ENV_PREFIX))
    schema = {"type": "dict", "schema": config_schema()} if names else {}
    for name in names:
        parts = [p for p in name[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        try:
            path = _apply(data, schema, parts, environ[name])
        except OverrideRefused as exc:
            report(f"{name}: {exc}")
            continue
        applied[path] = name
    return applied


def _apply(data: dict, schema: dict, parts: list, text: str) -> tuple:
    """Set one override; return the field path it set. OverrideRefused when it names no scalar setting."""
    node, rules, path = data, schema, ()
    for part in parts[:-1]:
        key, rules = _child(node, rules, part, path)
        path += (key,)
        if isinstance(node, list):  # endpoints in list form: the entry is found by name
            node = next(item for index, item in enumerate(node) if _entry_name(item, index) == key)
            continue
        if node.get(key) is None:
            if "schema" not in rules:
                node = {}  # a map of named entries the file has none of: the next part names no entry
                continue
            node[key] = {}  # a section the file leaves to its defaults
        node = node[key]
        if not isinstance(node, (dict, list)):
            raise OverrideRefused(f"{_dotted(path)} is not a mapping of settings in the config file")
    key, rules = _child(node, rules, parts[-1], path, last=True)
    if rules.get("type") in ("dict", "list") or "schema" in rules or "valuesrules" in rules:
        raise OverrideRefused(f"{_dotted(path + (key,))} is not a single setting; {ONLY_SCALARS}")
    value = _scalar(text)
    if isinstance(value, (dict, list)):
        raise OverrideRefused(f"the value is a YAML {type(value).__name__}; {ONLY_SCALARS}")
    node[key] = value
    return path + (key,)


def _child(node, rules: dict, part: str, path: tuple, last: bool = False) -> tuple[str, dict]:
    """The key `part` names under a schema section, and its rules; OverrideRefused when there is none."""
    fields = rules.get("schema")
    if rules.get("type") == "dict" and isinstance(fields, dict):
        key = _match(fields, part)
        if key is None:
            raise OverrideRefused(f"unknown setting {_dotted(path + (part.lower(),))}"
                                  f"{suggest(part.lower(), list(fields))}")
        return key, fields[key]
    if "valuesrules" in rules and not last:
        names = [_entry_name(item, index) for index, item in enumerate(node)] if isinstance(node, list) \
            else [k for k in node if isinstance(k, str)] if isinstance(node, dict) else []
        key = _match(names, part)
        if key is None:
            raise OverrideRefused(f"there is no {_dotted(path + (part.lower(),))} in the config file; "
                                  f"environment variables can only change settings it already has"
                                  f"{suggest(part.lower(), names)}")
        return key, rules["valuesrules"]
    if "valuesrules" in rules:
        raise OverrideRefused(f"{_dotted(path + (part.lower(),))} is a whole entry; {ONLY_SCALARS}")
    if rules.get("type") == "dict" and isinstance(node, dict):
        # free-form settings (a plugin's or a runtime script's `config`): only a key the file already has
        key = _match([k for k in node if isinstance(k, str)], part)
        if key is None:
            raise OverrideRefused(f"there is no {_dotted(path + (part.lower(),))} in the config file; "
                                  f"environment variables can only change settings it already has")
        return key, ({"type": "dict"} if isinstance(node[key], dict) else {})
    raise OverrideRefused(f"{_dotted(path)} is not a mapping of settings; {ONLY_SCALARS}")


def _entry_name(item, index: int) -> str:
    """The name a list-form endpoint gets: its `name`, else the one made from its path."""
    if not isinstance(item, dict):
        return ""
    return str(item.get("name") or name_from_path(item.get("path"), index))


def _match(keys, part: str) -> str | None:
    for key in keys:
        if isinstance(key, str) and key.lower() == part.lower():
            return key
    return None


def _scalar(text: str):
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def name_from_path(path, index: int) -> str:
    """The name a list-form endpoint without `name` gets, made from the words of its path."""
    if not isinstance(path, str):
        return f"endpoint{index}"
    words = re.findall(r"[A-Za-z0-9]+", path.split("{")[0].split(":")[0].split("*")[0])
    return "_".join(words) or f"endpoint{index}"
