"""Config problems as users read them: "file:line: field.path: message (hint)"."""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

import cerberus

from backworks.config.fields import HEADER_FIELDS


def line_for(lines: dict, path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def path_text(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_problem(filename, lines: dict, path: tuple, message: str) -> str:
    return f"{filename}:{line_for(lines, tuple(path))}: {path_text(path)}: {message}"

def display_path(path: tuple, index_names: dict) -> tuple:
    if len(path) >= 2 and path[0] == "endpoints" and path[1] in index_names:
        return ("endpoints", index_names[path[1]]) + tuple(path[2:])
    return tuple(path)


def validation_problems(validator, filename, lines: dict, index_names: dict, from_env: dict,
                        unset_paths=()) -> list:
    """Format cerberus errors as "file:line: field: message (hint)", sorted by line.

    Errors on a value whose variable is unset are left out: the unset variable is the problem."""
    problems = []
    for error, message in explain_errors(validator):
        shown = display_path(error.document_path, index_names)
        if tuple(shown) in unset_paths:
            continue
        variable = from_env.get(tuple(error.document_path))
        if variable:
            problems.append((0, f"{filename}: {path_text(shown)}: {message} (set by environment variable "
                                f"{variable})"))
        else:
            problems.append((line_for(lines, shown), format_problem(filename, lines, shown, message)))
    return [text for _, text in sorted(problems, key=lambda item: item[0])]


def explain_errors(validator: cerberus.Validator):
    """Yield (error, message with hint) for every leaf cerberus error."""
    for error in _leaf_errors(validator._errors):
        yield error, _message(validator, error)


def _leaf_errors(errors):
    for error in errors:
        if error.is_group_error and error.child_errors:
            yield from _leaf_errors(error.child_errors)
        else:
            yield error


def _message(validator, error) -> str:
    rule, constraint, value = error.rule, error.constraint, error.value
    if error.code == cerberus.errors.UNKNOWN_FIELD.code:
        allowed = _allowed_keys(validator.schema, error.document_path)
        return f"unknown field{suggest(str(error.field), allowed)}"
    if rule == "required":
        return "required field is missing"
    if rule == "type":
        types = constraint if isinstance(constraint, str) else " or ".join(constraint)
        return f"must be of {types} type, got {type(value).__name__} {_short(value)}"
    if rule == "allowed":
        bad = value if not isinstance(value, list) else [v for v in value if v not in constraint]
        bad_text = ", ".join(_short(v) for v in bad) if isinstance(bad, list) else _short(bad)
        first = bad[0] if isinstance(bad, list) and bad else bad
        return f"unallowed value {bad_text}{suggest(str(first), [str(c) for c in constraint])}"
    if rule in ("min", "max"):
        return f"{rule} value is {constraint}, got {_short(value)}"
    if rule in ("minlength", "maxlength"):
        return f"{rule[:3]} length is {constraint}, got {len(value)}"
    if rule == "regex":
        return f"value {_short(value)} does not match the expected form ({_regex_hint(error.document_path)})"
    if rule == "nullable":
        return "must not be empty (null)"
    if rule == "excludes":
        others = constraint if isinstance(constraint, list) else [constraint]
        return f"cannot be used together with {' or '.join(repr(o) for o in others)} (choose one)"
    template = validator.error_handler.messages.get(error.code) or rule or "invalid value"
    try:
        return template.format(*error.info, constraint=constraint, field=error.field, value=value)
    except (IndexError, KeyError):
        return f"invalid value {_short(value)} ({rule})"


def _regex_hint(path) -> str:
    if any(part in HEADER_FIELDS for part in path[:-1]) or (path and path[-1] in HEADER_FIELDS):
        return "header names are letters, digits and !#$%&'*+-.^_`|~; values cannot contain CR, LF or NUL"
    last = next((p for p in reversed(path) if isinstance(p, str)), "")
    hints = {
        "path": "must start with '/'",
        "url": "an http:// or https:// URL",
        "name": "letters, digits, '_', '.' and '-' only",
    }
    return hints.get(last, "see the config reference: docs/reference/config.md")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def suggest(word: str, choices) -> str:
    choices = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if choices and len(choices) <= 12:
        return f" (allowed: {', '.join(sorted(choices))})"
    return ""


def _allowed_keys(schema, path: tuple) -> list:
    rules = {"type": "dict", "schema": schema}
    for part in path[:-1]:
        if rules.get("type") == "list":
            rules = rules.get("schema", {})
            continue
        if "valuesrules" in rules and "schema" not in rules:
            rules = rules["valuesrules"]
            continue
        sub = rules.get("schema", {})
        rules = sub.get(part, {}) if isinstance(sub, Mapping) else {}
    if "valuesrules" in rules and "schema" not in rules:
        rules = rules["valuesrules"]
    schema = rules.get("schema", {})
    return list(schema) if isinstance(schema, Mapping) else []


_LOCATION = re.compile(r"^(.*?):(\d+)(?::(\d+))?: ")


def sort_problems(problems) -> list:
    """Sort "file:line[:col]: ..." problems by file, then line and column (no line: first of its file)."""
    def key(text: str):
        match = _LOCATION.match(text)
        if match:
            return (match.group(1), int(match.group(2)), int(match.group(3) or 0))
        return (text.split(": ", 1)[0], 0, 0)

    return sorted(problems, key=key)
