"""Load plugin scripts into their sandboxes, order them per endpoint, and call their hooks safely."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from backworks.breaker import CLOSED, OPEN, Breaker
from backworks.config.model import Config, endpoint_matches
from backworks.errors import ConfigError
from backworks.metrics import PLUGIN_BREAKER_OPEN, PLUGIN_QUARANTINED
from backworks.modes.base import LoadContext
from backworks.plugins.chain import AFTER, BEFORE, PluginChain
from backworks.plugins.isolation import isolation_for, on_main_thread
from backworks.plugins.stats import PluginStats
from backworks.sandbox import SKIPPED, Budget, Sandbox, ScriptError, Step, compile_script, vetting_sandbox
from backworks.sandbox import logs as script_logs
from backworks.sandbox.logs import log_script_lines

logger = logging.getLogger(__name__)
script_logger = logging.getLogger("backworks.plugin")  # the logger scripts' `log` lines go to


class SetFlags:
    """What a request checks once for all the plugins of a load: breakers not closed, inline loads pending."""

    __slots__ = ("tripped", "pending")

    def __init__(self):
        self.tripped: set[str] = set()  # plugins whose breaker is open or half-open
        self.pending: set[str] = set()  # plugins loaded off the main thread, not yet made inline


class Plugin:
    """One loaded plugin: its compiled script, its sandbox, budget, breaker and counters."""

    def __init__(self, name: str, settings: dict, script, isolation: str, sandbox, display: str,
                 flags: SetFlags | None = None):
        self.name = name
        self.settings = settings
        self.script = script
        self.isolation = isolation
        self.sandbox = sandbox
        self.display = display
        self.key = f"plugin:{name}"
        self.on_error = settings["on_error"]
        self.critical = settings["critical"]
        self.budget = Budget(timeout_ms=settings["timeout_ms"], memory_mb=settings["memory_mb"])
        self.step = Step(self.key, self.budget, self.on_error)
        breaker = settings["circuit_breaker"]
        self.breaker = Breaker(breaker["failure_threshold"], breaker["recovery_s"], on_change=self._breaker_changed)
        self.stats = PluginStats(name)
        self.ok_ms = {hook: self.stats.ok_list(hook) for hook in (BEFORE, AFTER)}  # see PluginStats.ok_list
        self.pending_load: tuple | None = None
        self.flags = flags or SetFlags()
        PLUGIN_BREAKER_OPEN.labels(name).set(0)
        PLUGIN_QUARANTINED.labels(name).set(1 if self.quarantined else 0)

    @property
    def quarantined(self) -> bool:
        """True while this plugin's script runs in a sandbox child because a worker died inside it."""
        return self.sandbox.quarantined(self.key)

    def record(self, hook: str, kind: str, duration_ms: float, outcome=None, count_breaker: bool = True) -> None:
        """Count one hook call in stats, metrics and the breaker; log failures and the script's log lines."""
        self.stats.record(hook, kind, duration_ms)
        if count_breaker and kind != SKIPPED:  # a call a neighbour's kill kept from running is not this one's fault
            self.breaker.record(kind == "ok")
        if outcome is None:
            return
        if self.isolation == "process":  # inline scripts' lines are logged as they are written
            log_script_lines(self.display, outcome.logs)
        if kind != "ok":
            text = describe(outcome)
            if script_logs.admit(os.path.basename(self.display), len(text)):  # bytes a minute per script
                logger.warning("plugin %s %s: %s", self.name, hook, text)

    def finish_load(self) -> None:
        """Make the inline copy of a script loaded off the main thread (a no-op elsewhere)."""
        if self.pending_load is None or not on_main_thread():
            return
        pending, self.pending_load = self.pending_load, None
        self.flags.pending.discard(self.name)
        outcome = self.sandbox.load(self.key, *pending)
        if not outcome.ok:
            logger.warning("plugin %s could not be loaded inline: %s", self.name, describe(outcome))

    def _breaker_changed(self, state: str) -> None:
        if state == CLOSED:
            self.flags.tripped.discard(self.name)
        else:
            self.flags.tripped.add(self.name)
        PLUGIN_BREAKER_OPEN.labels(self.name).set(0 if state == CLOSED else 1)
        logger.warning("plugin %s: circuit breaker %s", self.name, state.replace("_", "-"))


def describe(outcome) -> str:
    """One failure as the log shows it: kind, message and the script's own frames."""
    text = f"{outcome.kind}: {outcome.message}"
    if outcome.traceback:
        text += "\n" + str(outcome.traceback).rstrip()
    return text


class PluginSet:
    """Every enabled plugin of one config load, compiled and loaded, ordered by (order, name)."""

    def __init__(self, config: Config, ctx: LoadContext):
        self.config = config
        self.ctx = ctx
        self.plugins: dict[str, Plugin] = {}
        self.disabled: dict[str, DisabledPlugin] = {}
        self.flags = SetFlags()
        problems: list[str] = []
        enabled = [(s["order"], name, s) for name, s in config.data["plugins"].items() if s["enabled"]]
        for _, name, settings in sorted(enabled, key=lambda item: item[:2]):
            try:
                self.plugins[name] = load_plugin(name, settings, config, ctx, self.flags)
            except Exception as exc:
                if not ctx.disables_failed_scripts:
                    if not isinstance(exc, ConfigError):
                        raise
                    problems.extend(exc.problems)
                    continue
                self.disabled[name] = disable(name, settings, exc)
        if problems:
            raise ConfigError(problems)

    def chain_for(self, endpoint: str, reads_body: bool = True) -> PluginChain | None:
        """The plugins that apply to an endpoint and define a request hook (None when there are none)."""
        plugins = [p for p in self.plugins.values() if endpoint_matches(p.settings["endpoints"], endpoint)
                   and (BEFORE in p.script.hooks or AFTER in p.script.hooks)]
        # A disabled plugin that fails closed refuses its endpoints' requests; one that fails open is skipped.
        refused = next((p for p in self.disabled.values() if p.on_error == "closed"
                        and endpoint_matches(p.settings["endpoints"], endpoint)), None)
        if not plugins and refused is None:
            return None
        return PluginChain(plugins, with_body=reads_body, refused=refused)

    def status(self) -> list[dict]:
        """Per-plugin status for the admin API: settings, breaker, calls, failures, latency percentiles."""
        return [{
            "name": p.name, "script": p.display, "digest": p.script.digest, **_isolation(p),
            "order": p.settings["order"], "endpoints": list(p.settings["endpoints"]), "on_error": p.on_error,
            "critical": p.critical, "hooks": sorted(p.script.hooks),
            "breaker": {"state": p.breaker.state, "consecutive_failures": p.breaker.failures,
                        "retry_in_s": p.breaker.retry_in()},
            **p.stats.snapshot(),
        } for p in self.plugins.values()]

    def reset_breaker(self, name: str) -> bool:
        """Close a plugin's breaker; False when there is no such plugin."""
        plugin = self.plugins.get(name)
        if plugin is None:
            return False
        plugin.breaker.reset()
        return True

    def readiness(self) -> dict:
        """{"ok": bool, "plugins": {...}}: ok unless a critical plugin is unhealthy or its breaker open."""
        report = {}
        for plugin in self.plugins.values():
            report[plugin.name] = check_health(plugin)
        for plugin in self.disabled.values():
            report[plugin.name] = {"critical": plugin.critical, "healthy": False, "load_error": plugin.error}
        ok = all(item["healthy"] for item in report.values() if item["critical"])
        return {"ok": ok, "plugins": report}

    def close(self) -> None:
        """Write the plugins' last counts to Prometheus (the sandboxes belong to the load context)."""
        for plugin in self.plugins.values():
            plugin.stats.flush()


class DisabledPlugin:
    """A plugin whose script failed to load in this worker: its requests go on as if each call failed."""

    def __init__(self, name: str, settings: dict, error: str):
        self.name = name
        self.settings = settings
        self.on_error = settings["on_error"]
        self.critical = settings["critical"]
        self.error = error


def disable(name: str, settings: dict, exc: Exception) -> DisabledPlugin:
    """Disable a plugin whose script failed to load, and say so in the log."""
    problems = exc.problems if isinstance(exc, ConfigError) else [f"{type(exc).__name__}: {exc}"]
    error = "\n".join(problems)
    consequence = ("its endpoints answer 503 (on_error: closed)" if settings["on_error"] == "closed"
                   else "its endpoints are served without it (on_error: open)")
    logger.error("plugin %s is DISABLED in this worker: its script failed to load; %s until the script is "
                 "fixed or loads again on the next reload:\n%s", name, consequence, error)
    return DisabledPlugin(name, settings, error)


def _isolation(plugin: Plugin) -> dict:
    """Where a plugin's hooks run now: a quarantined script runs in the child whatever it loaded with."""
    quarantined = plugin.quarantined
    return {"isolation": "process" if quarantined else plugin.isolation, "quarantined": quarantined}


def check_health(plugin: Plugin) -> dict:
    """Run a plugin's health_check (when it has one) and look at its breaker."""
    item = {"critical": plugin.critical, "breaker": plugin.breaker.state}
    healthy = plugin.breaker.state != OPEN
    if "health_check" in plugin.script.hooks:
        try:
            plugin.finish_load()
            outcome = plugin.sandbox.call(plugin.key, "health_check", (), plugin.budget)
        except Exception:
            logger.exception("plugin %s health_check could not run", plugin.name)
            item.update(healthy=False, health_check="crash")
            return item
        plugin.record("health_check", outcome.kind, outcome.duration_ms, outcome, count_breaker=False)
        passed = outcome.ok and bool(outcome.value)
        item["health_check"] = ("ok" if passed else "unhealthy") if outcome.ok else outcome.kind
        healthy = healthy and passed
    item["healthy"] = healthy
    return item


def load_plugin(name: str, settings: dict, config: Config, ctx: LoadContext,
                flags: SetFlags | None = None) -> Plugin:
    """Compile a plugin's script, pick its isolation and load it (module body + on_load) in its sandbox."""
    where = f"{config.where('plugins', name, 'script')}: plugins.{name}.script"
    path = config.resolve(settings["script"])
    display = display_path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{where}: cannot read {display}: {exc}"]) from None
    try:
        script = compile_script(source, display)
    except ScriptError as exc:
        raise ConfigError([f"{where}: {problem}" for problem in exc.problems]) from None
    if not set(script.hooks) & {BEFORE, AFTER, "health_check"}:
        logger.warning("plugin %s: %s defines no before_request, after_response or health_check hook; "
                       "it does nothing", name, display)
    # A check (`backworks check`, gunicorn's master validating before workers) runs module bodies in a
    # sandbox child: untrusted code never runs in a process that is not serving plugins.
    isolation = isolation_for(settings["isolation"], script.digest, ctx.options)
    sandbox = ctx.shared(f"sandbox:{isolation}", lambda: Sandbox(isolation, ctx.config.data["state"],
                                                                   warm_spare=not ctx.options.get("check_only")))
    budget = Budget(timeout_ms=settings["timeout_ms"], memory_mb=settings["memory_mb"])
    deferred = isolation == "inline" and not on_main_thread()
    # Off the main thread (a reload) the inline timer cannot run: validate in this process's long-lived
    # validation child instead, and make the inline copy on the main thread before the first call.
    loader = vetting_sandbox(ctx.config.data["state"]) if deferred else sandbox
    outcome = loader.load(f"plugin:{name}", script, settings["config"], budget)
    if not outcome.ok:
        raise ConfigError([f"{where}: {display} failed to load: {describe(outcome)}"])
    logger.info("plugin %s loaded from %s (%s isolation)", name, display, isolation)
    plugin = Plugin(name, settings, script, isolation, sandbox, display, flags)
    if deferred:
        plugin.pending_load = (script, settings["config"], budget)
        plugin.flags.pending.add(name)
    return plugin


def display_path(path: Path) -> str:
    """A script's path as messages show it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


