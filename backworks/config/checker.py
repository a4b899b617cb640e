"""`backworks check`: every problem of every load stage in one run; warnings for configs that cannot work."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from backworks.config.load import collect_config, upstream_blocks
from backworks.config.model import Config
from backworks.config.problems import sort_problems
from backworks.errors import ConfigError
from backworks.loaded import Runtime

logger = logging.getLogger(__name__)

MODE_ONLY_FIELDS = ("path", "name", "description", "methods", "mode")


@dataclass
class Report:
    """What one check found: problems (sorted by file and line), warnings, and notes on stages not run."""

    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    endpoints: int = 0
    plugins: int = 0


def check_config(path, environ=None) -> Report:
    """Run the variable, schema, reference, route, plugin and mode stages; collect everything they find."""
    collected = collect_config(path, environ=environ)
    report = Report(problems=list(collected.problems))
    config = collected.config
    if config is None:
        report.notes.append(f"{path}: the later checks (references, routes, plugins, modes) did not run: "
                            f"{collected.stopped}")
        report.problems = sort_problems(report.problems)
        return report
    left_out = _left_out(collected.skipped)
    runnable, broken = _runnable(config)
    left_out += broken
    if left_out:
        report.notes.append(f"{path}: left out of the later checks until their problems above are fixed: "
                            f"{', '.join(left_out)}")
    # A value left empty by an unset variable is reported once, not again by the stage that uses it.
    later = [p for p in _runtime_problems(runnable) if not p.startswith(collected.unset_at)]
    report.problems = sort_problems(dict.fromkeys(report.problems + later))
    report.warnings = config_warnings(config)
    report.endpoints = len(config.endpoints)
    report.plugins = len(config.data["plugins"])
    return report


def _runtime_problems(config: Config) -> list:
    try:
        Runtime(config, {"check_only": True}).close()
    except ConfigError as exc:
        return list(exc.problems)
    return []


def _left_out(skipped: dict) -> list:
    kinds = ("upstreams", "plugins", "endpoints")
    return [f"{kind}.{name}" for kind in kinds for name in sorted(skipped.get(kind, ()))]


def _runnable(config: Config) -> tuple[Config, list]:
    """The config without the plugins and endpoints whose references are broken (already reported)."""
    upstreams = config.data["upstreams"]
    broken = []
    plugins = {}
    for name, plugin in config.data["plugins"].items():
        if config.resolve(plugin["script"]).is_file():
            plugins[name] = plugin
        else:
            broken.append(f"plugins.{name}")
    endpoints = []
    for spec in config.endpoints:
        names = [(spec.data.get(b) or {}).get("upstream") for b in upstream_blocks(spec.data)]
        if any(n and n not in upstreams for n in names):
            broken.append(f"endpoints.{spec.name}")
        else:
            endpoints.append(spec)
    data = {**config.data, "plugins": plugins}
    return dataclasses.replace(config, data=data, endpoints=endpoints), broken


def config_warnings(config: Config) -> list:
    """Configs that load but can never work as written: "file:line: field: warning: ... (hint)"."""
    warnings = []
    for spec in config.endpoints:
        warnings += _path_only(spec) + _unserved_conditions(spec)
    return sort_problems(warnings)


def _path_only(spec) -> list:
    if spec.mode != "mock" or spec.data.get("mock") or not set(spec.data) <= set(MODE_ONLY_FIELDS):
        return []
    return [f"{spec.at()}: warning: this endpoint has only a path, so it answers 200 with an empty body "
            f"(add a mock: block, e.g. mock: {{json: {{ok: true}}}}, or another mode)"]


def _unserved_conditions(spec) -> list:
    """Conditional mock responses on a method the route does not take: they answer 405 forever instead."""
    served = set(spec.methods) | ({"HEAD"} if "GET" in spec.methods else set())
    out = []
    for index, response in enumerate((spec.data.get("mock") or {}).get("responses") or ()):
        method = str(((response or {}).get("when") or {}).get("method") or "").upper()
        if method and method not in served:
            where = spec.at("mock", "responses", index, "when", "method")
            out.append(f"{where}: warning: {method} is not among this endpoint's methods "
                       f"({', '.join(spec.methods)}), so this response is never chosen and {method} answers "
                       f"405 (add it: methods: [{', '.join(spec.methods + (method,))}])")
    return out
