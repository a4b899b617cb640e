"""One endpoint's plugins around its handler: before_request in order, after_response in reverse, fail-safe."""
from __future__ import annotations

import logging

from backworks.http import Reply, RequestData, error_reply
from backworks.plugins.contract import AFTER_RESPONSE, BEFORE_REQUEST
from backworks.plugins.data import apply_request, apply_response, reply_from_response, request_data, response_data
from backworks.plugins.stats import WINDOW
from backworks.sandbox.phases import Steps

logger = logging.getLogger(__name__)

BEFORE, AFTER = BEFORE_REQUEST, AFTER_RESPONSE


class Phase:
    """The plugins of one phase, grouped at load into runs that share a sandbox (one run_phase call each)."""

    def __init__(self, hook: str, plugins: list):
        self.hook = hook
        self.plugins = plugins
        self.groups = groups(plugins, hook)
        self.flags = plugins[0].flags if plugins else None  # shared by every plugin of one load

    def active_groups(self) -> list:
        """The groups to run now: all of them unless a breaker skips a plugin."""
        if not self.flags.tripped:
            return self.groups
        allowed = [p.breaker.allow() for p in self.plugins]
        if all(allowed):
            return self.groups
        for plugin, ok in zip(self.plugins, allowed, strict=True):
            if not ok and plugin.on_error == "closed":  # an auth check's open breaker is no free pass
                raise BreakerOpen(plugin)
        return groups([p for p, ok in zip(self.plugins, allowed, strict=True) if ok], self.hook)


class BreakerOpen(Exception):
    """A plugin with on_error: closed is skipped by its open breaker: the request is refused instead."""

    def __init__(self, plugin):
        super().__init__(plugin.name)
        self.plugin = plugin


def groups(plugins: list, hook: str) -> list:
    """Split plugins into consecutive runs sharing a sandbox: [(sandbox, plugins, steps, by_key)].

    steps: a phases.Steps; by_key: step key -> (plugin, the list its ok calls of `hook` go to, its note for one).
    """
    runs: list = []
    for plugin in plugins:
        if not runs or plugin.sandbox is not runs[-1][0]:
            runs.append((plugin.sandbox, [], [], {}))
        runs[-1][1].append(plugin)
        runs[-1][2].append(plugin.step)
        runs[-1][3][plugin.key] = (plugin, plugin.ok_ms[hook], (plugin.name, hook, "ok"))
    return [(sandbox, members, Steps(steps), by_key) for sandbox, members, steps, by_key in runs]


class PluginChain:
    """The plugins of one endpoint: before_request in order, after_response in reverse order."""

    def __init__(self, plugins: list, with_body: bool = True, refused=None):
        self.before = Phase(BEFORE, [p for p in plugins if BEFORE in p.script.hooks])
        self.after = Phase(AFTER, [p for p in reversed(plugins) if AFTER in p.script.hooks])
        self.with_body = with_body
        self.refused = refused  # a plugin with on_error: closed whose script failed to load in this worker

    def before_request(self, request: RequestData) -> RequestData | Reply:
        """Run before_request hooks; return the (possibly replaced) request or a reply that answers now."""
        if self.refused is not None:
            return closed_reply((self.refused, "load_failed"), request, [(self.refused.name, BEFORE, "load_failed")])
        try:
            runs = self.before.active_groups() if self.before.plugins else ()
        except BreakerOpen as exc:
            return closed_reply((exc.plugin, "breaker_open"), request, [(exc.plugin.name, BEFORE, "breaker_open")])
        if not runs:
            return request
        original = current = request_data(request, self.with_body)
        notes: list = []
        changed: set | None = set()  # the fields hooks may have changed (None: unknown, compare them all)
        for run in runs:
            result, closed = run_group(BEFORE, run, current, None, notes)
            if closed is not None:
                return closed_reply(closed, request, notes)
            if result is None:
                continue
            if result.short_circuit:
                try:
                    reply = reply_from_response(result.response)
                except Exception as exc:  # values.response validated it: a bug here must still fail open
                    _invalid(notes, "plugin answer in before_request ignored", exc)
                    continue
                reply.meta = {"plugins": notes}
                return reply
            current = result.request
            changed = None if changed is None or result.changed is None else changed | result.changed
        try:
            new = apply_request(request, original, current, self.with_body, changed)
        except Exception as exc:  # values.request validated it: a bug here must still fail open
            _invalid(notes, "plugin request change ignored", exc)
            new = request
        new.plugin_notes = notes
        new.plugin_view = current  # what after_response hooks see, without building it again
        return new

    def after_response(self, request: RequestData, reply: Reply) -> Reply:
        """Run after_response hooks in reverse order; return the (possibly replaced) reply."""
        notes = list(getattr(request, "plugin_notes", ()))
        try:
            runs = self.after.active_groups() if self.after.plugins else ()
        except BreakerOpen as exc:
            notes.append((exc.plugin.name, AFTER, "breaker_open"))
            return closed_reply((exc.plugin, "breaker_open"), request, notes)
        if runs:
            request_dict = getattr(request, "plugin_view", None) or request_data(request, self.with_body)
            original = current = response_data(reply)
            for run in runs:
                result, closed = run_group(AFTER, run, request_dict, current, notes)
                if closed is not None:
                    return closed_reply(closed, request, notes)
                if result is not None:
                    current = result.response
            try:
                reply = apply_response(reply, original, current)
            except Exception as exc:  # values.response validated it: a bug here must still fail open
                _invalid(notes, "plugin response change ignored", exc)
        if notes:
            reply.meta = {**reply.meta, "plugins": notes} if reply.meta else {"plugins": notes}
        return reply


def _invalid(notes: list, what: str, exc: Exception) -> None:
    """Fail open on a result the server cannot turn into HTTP: the last plugin's note becomes `invalid`."""
    logger.warning("%s: %s: %s", what, type(exc).__name__, str(exc)[:300])
    if notes:
        notes[-1] = (notes[-1][0], "invalid")


def run_group(hook: str, run: tuple, request: dict, response: dict | None, notes: list):
    """Run one group's phase; return (PhaseResult or None, (plugin, kind) that failed closed, or None)."""
    sandbox, plugins, steps, by_key = run
    try:
        if plugins[0].flags.pending:
            for plugin in plugins:
                if plugin.pending_load is not None:
                    plugin.finish_load()
        # each plugin defines `hook`; the request is to_dict's or values.request's: the server's shape
        result = sandbox.run_checked_phase(hook, steps, request, response, shaped=True)
    except Exception:
        logger.exception("plugin sandbox failed to run %s for %s", hook, ", ".join(p.name for p in plugins))
        for plugin in plugins:
            plugin.record(hook, "crash", 0.0)
            notes.append((plugin.name, hook, "crash"))
        closed = next((p for p in plugins if p.on_error == "closed"), None)
        return None, ((closed, "crash") if closed else None)
    for key, outcome in result.outcomes:
        plugin, durations, ok_note = by_key[key]
        if outcome.kind == "ok" and not outcome.logs:  # went fine, logged nothing: counted without record()'s checks
            durations.append(outcome.duration_ms)
            if len(durations) >= WINDOW:
                plugin.stats.record_ok(durations)
            if not plugin.breaker.clean:
                plugin.breaker.record(True)
            notes.append(ok_note)
        else:
            plugin.record(hook, outcome.kind, outcome.duration_ms, outcome)
            notes.append((plugin.name, hook, outcome.kind))
    if result.failed_closed is not None:
        key, outcome = result.failed_closed
        return result, (by_key[key][0], outcome.kind)
    return result, None


def closed_reply(closed: tuple, request: RequestData, notes: list) -> Reply:
    """The 503 a plugin with on_error: closed answers when it fails (no details of the failure)."""
    plugin, kind = closed
    reply = error_reply(503, "plugin_failed", f"plugin {plugin.name} failed: {kind}", request_id=request.request_id)
    reply.meta = {"plugins": notes}
    return reply


def format_notes(notes: list) -> str:
    """What the access log shows of a reply's `plugins` note: plugin.hook:outcome in call order."""
    return ",".join(f"{name}.{hook}:{kind}" for name, hook, kind in notes)
