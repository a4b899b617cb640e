"""Load, substitute, override and validate a Backworks YAML config; errors name file:line and field."""
from __future__ import annotations

import copy
import logging
import os
import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import cerberus
import yaml

from backworks import secrets
from backworks.config import yaml_limits
from backworks.config.env import apply_env_overrides, name_from_path
from backworks.config.model import DEFAULT_CONFIG, Config, EndpointSpec, glob_match
from backworks.config.problems import explain_errors, format_problem, path_text, suggest, validation_problems
from backworks.config.schema import config_schema, config_validator  # noqa: F401 (callers import both here)
from backworks.errors import ConfigError
from backworks.modes import MODES
from backworks.routing import route_key

logger = logging.getLogger(__name__)

VAR_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None,
                environ: dict | None = None, text: str | None = None, unset: list | None = None) -> Config:
    """Read, substitute, override and validate a config file; raise ConfigError listing every problem.

    `text`, when given, is used instead of the file's current content (a last good copy). `unset`, when
    given, collects unset-variable problems instead of failing on them (commands that need other parts)."""
    result = collect_config(path, overrides, environ, text, unset)
    if result.problems:
        raise ConfigError(result.problems)
    return result.config


@dataclass
class Collected:
    """What collect_config found: the config (pruned of broken parts), every problem, the parts left out."""

    config: Config | None
    problems: list
    skipped: dict = dc_field(default_factory=dict)  # {"endpoints"|"plugins"|"upstreams": {names}}
    stopped: str = ""  # why the later stages could not run at all, when they could not
    unset_at: tuple = ()  # "file:line: field: " of each value whose variable is unset


def collect_config(path=None, overrides=None, environ=None, text=None,
                   unset: list | None = None) -> Collected:
    """Run every config stage that can run (variables, schema, references); collect all problems.

    Parts with schema errors are left out so the later stages still check the rest."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("BACKWORKS_CONFIG") or DEFAULT_CONFIG)
    try:
        if text is None:
            yaml_limits.check_size(path.stat().st_size, str(path))
            text = path.read_text(encoding="utf-8")
        data, lines = parse_yaml(text, str(path))
    except OSError as exc:
        return Collected(None, [f"{path}: cannot read config file: {exc.strerror or exc}"],
                         stopped="the file cannot be read")
    except ConfigError as exc:
        return Collected(None, exc.problems, stopped="the YAML does not parse")
    problems: list[str] = []
    unset_paths: set = set()

    def unset_variable(p, msg):
        unset_paths.add(tuple(p))
        (problems if unset is None else unset).append(format_problem(path, lines, p, msg))

    used: dict = {}
    data = substitute_env(data, environ, unset_variable, used=used)
    from_env = apply_env_overrides(data, environ, lambda msg: problems.append(f"{path}: {msg}"))
    used.update((name, environ[name]) for name in from_env.values())
    hidden = {value for name, value in used.items() if secrets.looks_secret(name)}
    result = _collect(path, data, lines, overrides, from_env, problems, unset_paths, hidden)
    # a value from a secret-named variable never reaches a message (/readyz, the log, the admin API)
    result.problems = [secrets.hide_values(problem, hidden) for problem in result.problems]
    return result


def _collect(path: Path, data: dict, lines: dict, overrides, from_env: dict, problems: list, unset_paths: set,
             hidden: set) -> Collected:
    """The stages after variables: overrides, schema (pruning broken parts), endpoints, references."""
    if overrides:
        data = deep_merge(data, overrides)
    data, index_names = normalise_endpoints(data, lines, path, problems)
    validator = config_validator()
    skipped: dict = {}
    if not validator.validate(data):
        problems += validation_problems(validator, path, lines, index_names, from_env, unset_paths)
        data, skipped = prune_invalid(data, validator)
        if not validator.validate(data):
            return Collected(None, problems, skipped, "the schema errors above must be fixed first")
    config = Config(path=path, data=validator.document, lines=lines)
    config.secrets = secrets.from_settings(config.data["capture"], hidden | secrets.config_values(config.data))
    config.endpoints = build_endpoints(config, index_names, problems)
    check_references(config, problems, skipped)
    unset_at = tuple(format_problem(path, lines, p, "") for p in sorted(unset_paths, key=str))
    return Collected(config, problems, skipped, unset_at=unset_at)


def prune_invalid(data: dict, validator: cerberus.Validator) -> tuple[dict, dict]:
    """Leave out what has schema errors: the endpoint, plugin or upstream it is in, else the whole setting."""
    data = dict(data)
    skipped: dict = {}
    for error, _ in explain_errors(validator):
        where = tuple(error.document_path)
        if not where:
            continue
        named = where[0] in ("endpoints", "plugins", "upstreams") and isinstance(data.get(where[0]), dict)
        if named and len(where) >= 2:
            data[where[0]] = {k: v for k, v in data[where[0]].items() if k != where[1]}
            skipped.setdefault(where[0], set()).add(where[1])
        else:
            data.pop(where[0], None)
    return data, skipped


def parse_yaml(text: str, filename: str) -> tuple[dict, dict]:
    """Parse YAML safely; return (data, {field path tuple: line}). Syntax errors give line and column."""
    yaml_limits.check_size(len(text), filename)
    try:
        loader = yaml_limits.LimitedLoader(text, filename)
        try:
            node = loader.get_single_node()
            if node is not None:
                yaml_limits.check_expansion(node, filename)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except RecursionError:
        raise ConfigError([f"{filename}: the YAML is nested too deeply to read (flatten the structure)"]) \
            from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([yaml_error_text(exc, filename)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{filename}: YAML error: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}:1: the config must be a mapping of settings "
                           f"(name, endpoints, ...), not a {type(data).__name__}"])
    lines: dict = {}
    if node is not None:
        _record_lines(node, (), lines)
    return data, lines


_OPENERS = {"while parsing a flow sequence": "'['", "while parsing a flow mapping": "'{'",
            "while scanning a quoted scalar": "quote"}


def yaml_error_text(exc: yaml.MarkedYAMLError, filename: str) -> str:
    """Say where the error is; for an unclosed bracket or quote, where it was opened (not the file's end)."""
    mark, reason = exc.problem_mark or exc.context_mark, exc.problem or "invalid YAML"
    opened, opener = exc.context_mark, _OPENERS.get(exc.context or "")
    if opener and opened and mark and opened.line != mark.line:
        return (f"{filename}:{opened.line + 1}:{opened.column + 1}: YAML syntax error: the {opener} opened "
                f"here is not closed (line {mark.line + 1}, column {mark.column + 1}: {reason})")
    where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
    context = f" ({exc.context})" if exc.context else ""
    return f"{where}: YAML syntax error: {reason}{context}"


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


def substitute_env(value, environ, report, path: tuple = (), used: dict | None = None):
    """Replace ${VAR} and ${VAR:-default} in every string; `$$` is a literal `$`; `used` gets {VAR: value}."""
    used = {} if used is None else used
    if isinstance(value, dict):
        return {k: substitute_env(v, environ, report, path + (k,), used) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, environ, report, path + (i,), used) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            used[name] = environ[name]
            return environ[name]
        if default is not None:
            return default
        report(path, f"environment variable {name} is not set (set it, or give a default: "
                     f"${{{name}:-value}})")
        return ""

    return VAR_PATTERN.sub(replace, value)


def escape_substitution(value):
    """Return data with every `$` in its strings written `$$`, so loading it gives the text back unchanged."""
    if isinstance(value, dict):
        return {k: escape_substitution(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_substitution(v) for v in value]
    return value.replace("$", "$$") if isinstance(value, str) else value


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
            problems.append(format_problem(filename, lines, ("endpoints", index),
                                    f"each endpoint must be a mapping, not {type(item).__name__}"))
            continue
        name = item.get("name") or name_from_path(item.get("path"), index)
        if name in as_map:
            problems.append(format_problem(filename, lines, ("endpoints", index, "name"),
                                    f"duplicate endpoint name '{name}' (names must be unique)"))
            continue
        as_map[str(name)] = item
        index_names[str(name)] = index
        for key in [k for k in lines if k[:2] == ("endpoints", index)]:
            lines[("endpoints", str(name)) + key[2:]] = lines[key]
    data = dict(data)
    data["endpoints"] = as_map
    return data, index_names


def build_endpoints(config: Config, index_names: dict, problems: list) -> list:
    """Turn the validated endpoint map into EndpointSpecs; check mode blocks and duplicates."""
    specs = []
    seen: dict = {}
    default_mode = config.data["mode"]
    for name, data in config.data["endpoints"].items():
        shown = ("endpoints", index_names.get(name, name))
        mode = data.get("mode") or default_mode
        mode_cls = MODES[mode]
        where = f"{config.where('endpoints', name)}: {path_text(shown)}"
        others = [block for block in MODES if block != mode and isinstance(data.get(block), dict)]
        if not data.get("mode") and others and mode not in data:
            problems.append(f"{where}: has a '{others[0]}:' block but no `mode`, so it would run in the "
                            f"default mode '{mode}' and ignore that block; add `mode: {others[0]}`")
            continue
        if mode_cls.block_required and mode not in data:
            problems.append(f"{where}: mode '{mode}' needs a '{mode}:' block (see docs/modes/{mode}.md)")
            continue
        methods = tuple(data.get("methods") or mode_cls.default_methods)
        routes = tuple(mode_cls.routes(data["path"], methods, data.get(mode) or {}))
        for path, method in [(path, m) for path, route_methods in routes for m in route_methods]:
            key = (method, route_key(path))
            if key in seen:
                problems.append(f"{format_problem(config.path, config.lines, ('endpoints', name, 'path'), '')[:-2]}"
                                f": {method} {path} is already served by endpoint "
                                f"'{seen[key]}' (each method and path may appear once)")
            seen[key] = name
        specs.append(EndpointSpec(name=name, path=data["path"], methods=methods, mode=mode,
                                  data=data, where=where, filename=str(config.path), shown=shown,
                                  lines=config.lines, routes=routes))
    return specs


def upstream_blocks(endpoint: dict) -> tuple[str, ...]:
    """An endpoint's blocks whose `upstream:` names an upstream: of the modes that say they name one.

    Only the modes of blocks the endpoint has are imported (a mock-only config imports no proxy or SQL)."""
    return tuple(name for name in MODES if isinstance(endpoint.get(name), dict) and MODES[name].names_upstream)


def check_references(config: Config, problems: list, skipped: dict | None = None) -> None:
    """Check cross references: upstream names, plugin scripts and endpoint names.

    Names left out for schema errors (`skipped`) still count as defined: they are reported already."""
    skipped = skipped or {}
    upstreams = list(config.data["upstreams"]) + sorted(skipped.get("upstreams", ()))
    for spec in config.endpoints:
        for block_name in upstream_blocks(spec.data):
            block = spec.data.get(block_name) or {}
            upstream = block.get("upstream")
            if upstream and upstream not in upstreams:
                problems.append(f"{config.where('endpoints', spec.name, block_name, 'upstream')}: "
                                f"endpoints.{spec.name}.{block_name}.upstream: unknown upstream "
                                f"'{upstream}'{suggest(upstream, list(upstreams))}")
    names = [spec.name for spec in config.endpoints] + sorted(skipped.get("endpoints", ()))
    for plugin_name, plugin in config.data["plugins"].items():
        where = config.where("plugins", plugin_name, "script")
        if not config.resolve(plugin["script"]).is_file():
            problems.append(f"{where}: plugins.{plugin_name}.script: file not found: "
                            f"{config.resolve(plugin['script'])}")
        for pattern in plugin["endpoints"]:
            if not any(glob_match(pattern, n) for n in names):
                problems.append(f"{config.where('plugins', plugin_name, 'endpoints')}: "
                                f"plugins.{plugin_name}.endpoints: '{pattern}' matches no endpoint"
                                f"{suggest(pattern, names)}")
