"""Load, substitute, override and validate a Backworks YAML config; errors name file:line and field."""
from __future__ import annotations

import copy
import difflib
import logging
import os
import re
from dataclasses import dataclass, field as dc_field
from pathlib import Path

import cerberus
import yaml

from backworks.errors import ConfigError
from backworks.schema import HTTP_METHODS, field, listof, named, section, string_map

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = "config/backworks.yaml"
ENV_PREFIX = "BACKWORKS__"
VAR_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SECRET_WORDS = ("token", "password", "secret", "key", "keys", "authorization", "cookie", "dsn")


def _breaker(help_text: str) -> dict:
    return section(help_text, {
        "failure_threshold": field("integer", "Consecutive failures that open the breaker.", min=1, default=5),
        "recovery_s": field("number", "Seconds the breaker stays open before one trial call.", min=0, default=30),
    }, default={})


SERVER = section("Server limits and request handling.", {
    "max_body_bytes": field("integer", "Largest request body accepted; larger bodies get 413.",
                            min=0, default=10 * 1024 * 1024),
    "max_header_count": field("integer", "Most request headers accepted; more get 431.", min=1, default=100),
    "trusted_proxies": listof("Addresses whose X-Forwarded-For / X-Forwarded-Proto are believed "
                              "(e.g. the nginx in front; a peer on gunicorn's unix socket always is).", {"type": "string"}, default=["127.0.0.1", "::1"]),
    "access_log": field("boolean", "Write one log line per request (logger backworks.access).", default=True),
    "log_json": field("boolean", "Write log lines as JSON objects instead of text.", default=False),
    "request_id_header": field("string", "Header carrying the request id (taken from the client "
                               "when present, else generated) and echoed on every response.",
                               default="X-Request-Id"),
    "watch": field("boolean", "Reload config and scripts when their files change (checked every "
                   "half second).", default=True),
}, default={})

ADMIN = section("Dashboard, admin API and metrics.", {
    "path": field("string", "Where the dashboard and admin API are mounted.", default="/_backworks",
                  regex=r"^/[A-Za-z0-9_\-/]*[A-Za-z0-9_\-]$"),
    "token": field("string", "Bearer token the admin API and dashboard require; with none they are off "
                   "(except under `backworks serve` for direct loopback clients).", nullable=True, default=None),
    "recent_requests": field("integer", "How many recent requests the admin API keeps.", min=0, default=200),
}, default={})

DATABASE = section("Database used by `database` endpoints.", {
    "url": field("string", "SQLAlchemy URL: sqlite:///file.db (default) or postgresql://user@host/db.",
                 default="sqlite:///backworks.db"),
    "pool_size": field("integer", "Connections kept in the pool (PostgreSQL).", min=1, default=5),
    "echo": field("boolean", "Log every SQL statement.", default=False),
}, default={})

CAPTURE = section("Where `capture` endpoints record exchanges and `replay` endpoints read them.", {
    "store": field("string", "sqlite:///captures.db (default) or a postgresql:// URL.",
                   default="sqlite:///captures.db"),
    "redact_headers": listof("Extra header names replaced by [REDACTED] before storing "
                             "(authorization, cookie and set-cookie always are).", {"type": "string"}, default=[]),
    "redact_fields": listof("JSON body fields replaced by [REDACTED] before storing.", {"type": "string"},
                            default=[]),
    "max_body_bytes": field("integer", "Bodies longer than this are stored truncated.", min=0,
                            default=1024 * 1024),
    "include": listof("Only record paths matching one of these globs (default: all).", {"type": "string"},
                      default=[]),
    "exclude": listof("Never record paths matching these globs.", {"type": "string"}, default=[]),
    "methods": listof("Only record these methods (default: all).",
                      {"type": "string", "allowed": HTTP_METHODS}, default=[]),
    "table": field("string", "Table the exchanges are stored in.", default="backworks_captures",
                   regex=r"^[A-Za-z_][A-Za-z0-9_]*$"),
}, default={})

UPSTREAM = section("One upstream service: targets, balancing, timeouts, retries, health.", {
    "targets": listof("Target servers.", section("One target.", {
        "url": field("string", "Base URL, e.g. http://127.0.0.1:9001.", required=True, regex=r"^https?://.+"),
        "weight": field("integer", "Share of traffic with balance: weighted.", min=1, default=1),
    }), required=True, minlength=1),
    "balance": field("string", "How targets are chosen.", allowed=["round_robin", "weighted", "least_connections"],
                     default="round_robin"),
    "connect_timeout_ms": field("integer", "Connect timeout per attempt.", min=1, default=2000),
    "read_timeout_ms": field("integer", "Read timeout per attempt; over it the client gets 504.", min=1,
                             default=30000),
    "retries": field("integer", "Extra attempts for idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS).",
                     min=0, default=1),
    "retry_backoff_ms": field("integer", "Wait before the first retry, doubled each time.", min=0, default=50),
    "pool_size": field("integer", "Connections kept open per target per worker.", min=1, default=32),
    "host_header": field("string", "`upstream` sends the target's host; `client` keeps the client's Host.",
                         allowed=["upstream", "client"], default="upstream"),
    "health_check": section("Active health checks (off when absent).", {
        "path": field("string", "Path probed with GET; 2xx/3xx is healthy.", default="/"),
        "interval_s": field("number", "Seconds between probes.", min=0.05, default=5),
        "timeout_ms": field("integer", "Probe timeout.", min=1, default=1000),
        "unhealthy_after": field("integer", "Failed probes that take a target out.", min=1, default=2),
        "healthy_after": field("integer", "Passed probes that bring it back.", min=1, default=2),
    }, nullable=True, default=None),
    "circuit_breaker": _breaker("Per-target breaker: opens after consecutive failures."),
})

PLUGIN = section("One sandboxed plugin script and where it runs.", {
    "script": field("string", "Path of the script (relative to the config file's folder).", required=True),
    "enabled": field("boolean", "Set false to keep the plugin configured but unused.", default=True),
    "order": field("integer", "Lower runs first in before_request (and last in after_response).", default=100),
    "endpoints": listof("Endpoint names or globs it applies to (default: all).", {"type": "string"},
                        default=["*"]),
    "timeout_ms": field("integer", "Wall-clock budget per hook call.", min=1, max=60000, default=100),
    "memory_mb": field("integer", "Memory budget per hook call.", min=8, max=4096, default=64),
    "on_error": field("string", "open: continue as if the plugin were absent; closed: answer 503.",
                      allowed=["open", "closed"], default="open"),
    "isolation": field("string", "inline: in the worker (sync workers); process: in a sandbox child "
                       "(hard limits, any worker class); auto: inline when possible.",
                       allowed=["auto", "inline", "process"], default="auto"),
    "critical": field("boolean", "When true, /readyz fails while its health_check fails or its breaker is "
                      "open.", default=False),
    "circuit_breaker": _breaker("Takes the plugin out of the path after consecutive failures."),
    "config": field("dict", "Free-form settings the script reads as `config`.", default={}),
})

STATE = section("Backend of the `state` store plugins use.", {
    "url": field("string", "Empty: in-memory per worker. redis://host:port/db: shared by all workers.",
                 nullable=True, default=None),
    "max_keys": field("integer", "Most keys per plugin (in-memory backend).", min=1, default=10000),
    "max_value_bytes": field("integer", "Largest value stored.", min=1, default=65536),
}, default={})


def endpoint_schema() -> dict:
    """Return the schema of one endpoint, with one block per registered mode."""
    from backworks.modes import MODES

    fields = {
        "name": field("string", "Endpoint name (list form only; the map key otherwise).",
                      regex=r"^[A-Za-z0-9_.\-]+$"),
        "path": field("string", "URL path: /users/{id}, /users/:id, catch-all tail /files/{rest:path} or "
                      "/files/*rest.", required=True, regex=r"^/.*"),
        "methods": listof("HTTP methods answered (default depends on the mode).",
                          {"type": "string", "allowed": HTTP_METHODS}, minlength=1),
        "mode": field("string", "How the endpoint answers (default: the top-level `mode`).",
                      allowed=sorted(MODES)),
        "description": field("string", "Free text shown in the dashboard."),
    }
    for name, mode in sorted(MODES.items()):
        fields[name] = section(mode.__doc__.strip().splitlines()[0], mode.schema)
    return section("One endpoint.", fields)


def config_schema() -> dict:
    """Return the whole config schema."""
    from backworks.modes import MODES

    return {
        "name": field("string", "Name of this API, shown in logs and the dashboard.", default="backworks"),
        "version": field(["string", "integer", "float"], "Version of this API config.", default="1"),
        "mode": field("string", "Default mode for endpoints that name none.", allowed=sorted(MODES),
                      default="mock"),
        "server": SERVER,
        "admin": ADMIN,
        "database": DATABASE,
        "capture": CAPTURE,
        "upstreams": named("Upstream services, by name, for proxy/capture/hybrid endpoints.", UPSTREAM,
                           default={}),
        "plugins": named("Plugin scripts, by name.", PLUGIN, default={}),
        "state": STATE,
        "endpoints": named("Endpoints, as a map `name: {...}` or a list `- {name, path, ...}`.",
                           endpoint_schema(), default={}),
    }


@dataclass(frozen=True)
class EndpointSpec:
    """One validated endpoint: name, path, methods, mode and the whole block."""

    name: str
    path: str
    methods: tuple
    mode: str
    data: dict
    where: str  # "file:line: endpoints.name" for load-time errors
    filename: str = ""
    shown: tuple = ()
    lines: dict = dc_field(default_factory=dict, compare=False, hash=False, repr=False)
    routes: tuple = ()  # ((path, methods), ...) URL rules; empty means ((path, methods),)

    @property
    def block(self) -> dict:
        """The mode's own block (`mock:`, `proxy:`, ...), empty when absent."""
        return self.data.get(self.mode) or {}

    def at(self, *parts) -> str:
        """Return "file:line: endpoints.name.part..." for a field inside this endpoint."""
        line = _line_for(self.lines, ("endpoints", self.name) + parts)
        return f"{self.filename}:{line}: {_path_text(self.shown + parts)}"


@dataclass
class Config:
    """A loaded, validated config."""

    path: Path
    data: dict
    lines: dict = dc_field(default_factory=dict)
    endpoints: list = dc_field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        """Folder relative paths in the config are resolved against."""
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """Resolve a path named in the config against its folder (absolute paths stay)."""
        p = Path(relative)
        return p if p.is_absolute() else (self.base_dir / p)

    def where(self, *path) -> str:
        """Return "file:line" for a field path, the nearest known line when it is absent."""
        return f"{self.path}:{_line_for(self.lines, tuple(path))}"


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None,
                environ: dict | None = None, text: str | None = None) -> Config:
    """Read, substitute, override and validate a config file; raise ConfigError listing every problem.

    `text`, when given, is used instead of the file's current content (a last good copy)."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("BACKWORKS_CONFIG") or DEFAULT_CONFIG)
    try:
        text = path.read_text(encoding="utf-8") if text is None else text
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror or exc}"])
    data, lines = parse_yaml(text, str(path))
    problems: list[str] = []
    data = substitute_env(data, environ, lambda p, msg: problems.append(_format(path, lines, p, msg)))
    from_env = apply_env_overrides(data, environ, lambda msg: problems.append(f"{path}: {msg}"))
    if overrides:
        data = deep_merge(data, overrides)
    data, index_names = normalise_endpoints(data, lines, path, problems)
    if problems:
        raise ConfigError(problems)
    validator = cerberus.Validator(config_schema())
    if not validator.validate(data):
        raise ConfigError(validation_problems(validator, path, lines, index_names, from_env))
    config = Config(path=path, data=validator.document, lines=lines)
    config.endpoints = build_endpoints(config, index_names, problems)
    check_references(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


class _LineLoader(yaml.SafeLoader):
    """A safe loader; plain `yaml.safe_load` semantics."""


def parse_yaml(text: str, filename: str) -> tuple[dict, dict]:
    """Parse YAML safely; return (data, {field path tuple: line}). Syntax errors give line and column."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = _LineLoader(text).get_single_data() if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        reason = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise ConfigError([f"{where}: YAML syntax error: {reason}{context}"])
    except yaml.YAMLError as exc:
        raise ConfigError([f"{filename}: YAML error: {exc}"])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}:1: the config must be a mapping of settings "
                           f"(name, endpoints, ...), not a {type(data).__name__}"])
    lines: dict = {}
    if node is not None:
        _record_lines(node, (), lines)
    return data, lines


def _record_lines(node, path: tuple, lines: dict) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = path + (key.value,)
            lines[child] = key.start_mark.line + 1
            _record_lines(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, path + (index,), lines)


def _line_for(lines: dict, path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _path_text(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _format(filename, lines: dict, path: tuple, message: str) -> str:
    return f"{filename}:{_line_for(lines, tuple(path))}: {_path_text(path)}: {message}"


def substitute_env(value, environ, report, path: tuple = ()):
    """Replace ${VAR} and ${VAR:-default} in every string; `$$` is a literal `$`."""
    if isinstance(value, dict):
        return {k: substitute_env(v, environ, report, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, environ, report, path + (i,)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        report(path, f"environment variable {name} is not set (set it, or give a default: "
                     f"${{{name}:-value}})")
        return ""

    return VAR_PATTERN.sub(replace, value)


def validation_problems(validator, filename, lines: dict, index_names: dict, from_env: dict) -> list:
    """Format cerberus errors as "file:line: field: message (hint)", sorted by line."""
    problems = []
    for error, message in explain_errors(validator):
        shown = _display(error.document_path, index_names)
        variable = from_env.get(tuple(error.document_path))
        if variable:
            problems.append((0, f"{filename}: {_path_text(shown)}: {message} (set by environment variable "
                                f"{variable})"))
        else:
            problems.append((_line_for(lines, shown), _format(filename, lines, shown, message)))
    return [text for _, text in sorted(problems, key=lambda item: item[0])]


def apply_env_overrides(data: dict, environ, report) -> dict:
    """Apply BACKWORKS__A__B=value variables to scalar settings; return {field path: variable name}."""
    applied: dict = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == "BACKWORKS_CONFIG":
            continue
        parts = [p for p in name[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        target = data
        for part in parts[:-1]:
            key = _match_key(target, part)
            if key not in target:
                target[key] = {}
            if not isinstance(target[key], dict):
                report(f"{name}: cannot set a field inside {'.'.join(parts[:-1]).lower()} "
                       f"(it is not a mapping)")
                break
            target = target[key]
        else:
            key = _match_key(target, parts[-1])
            if isinstance(target.get(key), (dict, list)):
                report(f"{name}: only scalar settings can be overridden from the environment")
                continue
            try:
                target[key] = yaml.safe_load(environ[name]) if environ[name] != "" else ""
            except yaml.YAMLError:
                target[key] = environ[name]
            applied[tuple(_match_key_path(data, parts))] = name
    return applied


def _match_key_path(data: dict, parts: list) -> list:
    path, node = [], data
    for part in parts:
        key = _match_key(node, part) if isinstance(node, dict) else part.lower()
        path.append(key)
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return path


def _match_key(mapping: dict, part: str) -> str:
    for key in mapping:
        if isinstance(key, str) and key.lower() == part.lower():
            return key
    return part.lower()


def deep_merge(base: dict, extra: dict) -> dict:
    """Return `base` with `extra` merged in, mappings recursively, everything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def normalise_endpoints(data: dict, lines: dict, filename, problems: list) -> tuple[dict, dict]:
    """Turn the list form of `endpoints` into the map form; remember where each came from."""
    endpoints = data.get("endpoints")
    index_names: dict = {}
    if not isinstance(endpoints, list):
        return data, index_names
    as_map: dict = {}
    for index, item in enumerate(endpoints):
        if not isinstance(item, dict):
            problems.append(_format(filename, lines, ("endpoints", index),
                                    f"each endpoint must be a mapping, not {type(item).__name__}"))
            continue
        name = item.get("name") or _name_from_path(item.get("path"), index)
        if name in as_map:
            problems.append(_format(filename, lines, ("endpoints", index, "name"),
                                    f"duplicate endpoint name '{name}' (names must be unique)"))
            continue
        as_map[str(name)] = item
        index_names[str(name)] = index
        for key in [k for k in lines if k[:2] == ("endpoints", index)]:
            lines[("endpoints", str(name)) + key[2:]] = lines[key]
    data = dict(data)
    data["endpoints"] = as_map
    return data, index_names


def _name_from_path(path, index: int) -> str:
    if not isinstance(path, str):
        return f"endpoint{index}"
    words = re.findall(r"[A-Za-z0-9]+", path.split("{")[0].split(":")[0].split("*")[0])
    return "_".join(words) or f"endpoint{index}"


def _display(path: tuple, index_names: dict) -> tuple:
    if len(path) >= 2 and path[0] == "endpoints" and path[1] in index_names:
        return ("endpoints", index_names[path[1]]) + tuple(path[2:])
    return tuple(path)


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
        return f"unknown field{_suggest(str(error.field), allowed)}"
    if rule == "required":
        return "required field is missing"
    if rule == "type":
        types = constraint if isinstance(constraint, str) else " or ".join(constraint)
        return f"must be of {types} type, got {type(value).__name__} {_short(value)}"
    if rule == "allowed":
        bad = value if not isinstance(value, list) else [v for v in value if v not in constraint]
        bad_text = ", ".join(_short(v) for v in bad) if isinstance(bad, list) else _short(bad)
        first = bad[0] if isinstance(bad, list) and bad else bad
        return f"unallowed value {bad_text}{_suggest(str(first), [str(c) for c in constraint])}"
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
    last = next((p for p in reversed(path) if isinstance(p, str)), "")
    hints = {
        "path": "must start with '/'",
        "url": "an http:// or https:// URL",
        "name": "letters, digits, '_', '.' and '-' only",
    }
    return hints.get(last, "see the config reference in the README")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, choices) -> str:
    choices = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if choices and len(choices) <= 12:
        return f" (allowed: {', '.join(sorted(choices))})"
    return ""


def _allowed_keys(schema, path: tuple) -> list:
    from collections.abc import Mapping

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


def build_endpoints(config: Config, index_names: dict, problems: list) -> list:
    """Turn the validated endpoint map into EndpointSpecs; check mode blocks and duplicates."""
    from backworks.modes import MODES
    from backworks.routing import route_key

    specs = []
    seen: dict = {}
    default_mode = config.data["mode"]
    for name, data in config.data["endpoints"].items():
        shown = ("endpoints", index_names.get(name, name))
        mode = data.get("mode") or default_mode
        mode_cls = MODES[mode]
        where = f"{config.where('endpoints', name)}: {_path_text(shown)}"
        if mode_cls.block_required and mode not in data:
            problems.append(f"{where}: mode '{mode}' needs a '{mode}:' block (see the {mode} mode "
                            f"reference in the README)")
            continue
        methods = tuple(data.get("methods") or mode_cls.default_methods)
        routes = tuple(mode_cls.routes(data["path"], methods, data.get(mode) or {}))
        for path, method in [(path, m) for path, route_methods in routes for m in route_methods]:
            key = (method, route_key(path))
            if key in seen:
                problems.append(f"{_format(config.path, config.lines, ('endpoints', name, 'path'), '')[:-2]}"
                                f": {method} {path} is already served by endpoint "
                                f"'{seen[key]}' (each method and path may appear once)")
            seen[key] = name
        specs.append(EndpointSpec(name=name, path=data["path"], methods=methods, mode=mode,
                                  data=data, where=where, filename=str(config.path), shown=shown,
                                  lines=config.lines, routes=routes))
    return specs


def check_references(config: Config, problems: list) -> None:
    """Check cross references: upstream names, plugin scripts and endpoint names."""
    upstreams = config.data["upstreams"]
    for spec in config.endpoints:
        for block_name in ("proxy", "capture", "hybrid"):
            block = spec.data.get(block_name) or {}
            upstream = block.get("upstream")
            if upstream and upstream not in upstreams:
                problems.append(f"{config.where('endpoints', spec.name, block_name, 'upstream')}: "
                                f"endpoints.{spec.name}.{block_name}.upstream: unknown upstream "
                                f"'{upstream}'{_suggest(upstream, list(upstreams))}")
    names = [spec.name for spec in config.endpoints]
    for plugin_name, plugin in config.data["plugins"].items():
        where = config.where("plugins", plugin_name, "script")
        if not config.resolve(plugin["script"]).is_file():
            problems.append(f"{where}: plugins.{plugin_name}.script: file not found: "
                            f"{config.resolve(plugin['script'])}")
        for pattern in plugin["endpoints"]:
            if not any(_glob(pattern, n) for n in names):
                problems.append(f"{config.where('plugins', plugin_name, 'endpoints')}: "
                                f"plugins.{plugin_name}.endpoints: '{pattern}' matches no endpoint"
                                f"{_suggest(pattern, names)}")


def _glob(pattern: str, name: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


def endpoint_matches(patterns, name: str) -> bool:
    """Return True when an endpoint name matches any of the glob patterns."""
    return any(_glob(p, name) for p in patterns)


def masked(value, key: str = ""):
    """Return a copy of config data with secret-looking values replaced by '***'."""
    lowered = key.lower()
    secret = any(w == lowered or lowered.endswith("_" + w) for w in SECRET_WORDS)
    if secret and not isinstance(value, dict) and value not in (None, "", []):
        return "***"
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and re.match(r"^[a-z+]+://[^/@\s]+:[^/@\s]+@", value):
        return re.sub(r"://([^/:@\s]+):[^/@\s]+@", r"://\1:***@", value)
    return value
