"""Runtime mode: the endpoint's handler is a sandboxed script's handle(request)."""
from __future__ import annotations

import json
import logging
import os

from backworks.config.fields import field, listof
from backworks.errors import ConfigError
from backworks.http import JSON_TYPE, Reply, RequestData, error_reply
from backworks.metrics import PLUGIN_CALLS, PLUGIN_LATENCY, TALLY
from backworks.modes.base import LoadContext, Mode

logger = logging.getLogger(__name__)

RESPONSE_KEYS = frozenset(("status", "headers", "body", "json"))
TEXT_TYPE = "text/plain; charset=utf-8"

SCHEMA = {
    "script": field("string", "Script whose handle(request) answers (relative to the config file's folder).",
                    required=True),
    "timeout_ms": field("integer", "Wall-clock budget of one handle() call; over it the client gets 504.",
                        min=1, max=60000, default=1000),
    "memory_mb": field("integer", "Memory budget of one handle() call.", min=8, max=4096, default=64),
    "isolation": field("string", "inline: in the worker (sync workers); process: in a sandbox child (hard "
                       "limits, any worker class); auto: inline when possible.",
                       allowed=["auto", "inline", "process"], default="auto"),
    "config": field("dict", "Free-form settings the script reads as `config`.", default={}),
    "tables": listof("Database endpoints whose records the script reads and writes as `db` (db.get, db.list, "
                     "db.create, db.update, db.delete); needs inline isolation.", {"type": "string"},
                     default=[]),
}


class RuntimeMode(Mode):
    """The handler is a sandboxed script: handle(request) returns a response dict or any JSON value."""

    schema = SCHEMA
    default_methods = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def __init__(self, spec, ctx: LoadContext):
        super().__init__(spec, ctx)
        self.load_error: str | None = None
        try:
            self._load(spec, ctx)
        except Exception as exc:
            if not ctx.disables_failed_scripts:
                raise
            # This worker must boot (see DISABLE_FAILED_SCRIPTS): the endpoint answers as its script failing.
            problems = exc.problems if isinstance(exc, ConfigError) else [f"{type(exc).__name__}: {exc}"]
            self.load_error = "\n".join(problems)
            logger.error("runtime endpoint %s is DISABLED in this worker: its script failed to load; it answers "
                         "500 handler_failed until the script is fixed or loads again on the next reload:\n%s",
                         spec.name, self.load_error)

    def _load(self, spec, ctx: LoadContext) -> None:
        """Compile the script, pick its isolation and load it (module body + on_load) in its sandbox."""
        from backworks.plugins.isolation import isolation_for, pick_isolation
        from backworks.sandbox import Budget, Sandbox, ScriptError, compile_script

        block = self.block
        path = ctx.config.resolve(block["script"])
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise self.problem("script", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            script = compile_script(source, str(path))
        except ScriptError as exc:
            problems = [p for problem in exc.problems for p in self.problem("script", problem).problems]
            raise ConfigError(problems) from None
        if "handle" not in script.hooks:
            raise self.problem("script", f"{path.name} defines no handle(request) function (runtime endpoints "
                                         f"answer with it)")
        # Like plugins: a reload (in the file watcher's thread) keeps the isolation the worker chose at start;
        # a check and a quarantined script get process isolation.
        isolation = isolation_for(block["isolation"], script.digest, ctx.options)
        extras = self._tables(ctx, pick_isolation(block["isolation"]))
        if isolation == "process":
            extras = {}  # checked (or quarantined) in a sandbox child, which never gets database access
        state = ctx.config.data["state"]
        self.sandbox = ctx.shared(f"sandbox:{isolation}", lambda: Sandbox(
            isolation, state, warm_spare=not ctx.options.get("check_only")))
        self.child_logs = isolation == "process"  # inline scripts' log lines are written as they happen
        self.display = str(path)
        self.key = f"runtime:{spec.name}"
        self.budget = Budget(block["timeout_ms"], block["memory_mb"])
        self.latency = PLUGIN_LATENCY.labels(self.key, "handle")
        outcome = self.sandbox.load(self.key, script, block["config"], self.budget, extras)
        if outcome.kind != "ok":
            raise self.problem("script", f"loading the script failed ({outcome.kind}): {outcome.message}")

    def _tables(self, ctx: LoadContext, isolation: str) -> dict:
        """The `db` facade for runtime.tables (checked against the config's database endpoints), or none."""
        names = self.block["tables"]
        if not names:
            return {}
        from backworks.modes.tables import Tables
        from backworks.sandbox.env import Facade

        databases = [s.name for s in ctx.config.endpoints if s.mode == "database"]
        problems = [f"{self.spec.at(self.spec.mode, 'tables', str(i))}: {name!r} is not a database endpoint "
                    f"(database endpoints: {', '.join(databases) or 'none'})"
                    for i, name in enumerate(names) if name not in databases]
        if isolation == "process":
            where = self.spec.at(self.spec.mode, "tables")
            problems.append(f"{where}: runtime.tables needs inline isolation (sync gunicorn workers or "
                            f"`backworks serve`); a sandbox process has no database access "
                            f"(isolation: {self.block['isolation']})")
        if problems:
            raise ConfigError(problems)
        return {"db": Facade("db", Tables(ctx, names, self.spec.name).functions())}

    def handle(self, request: RequestData) -> Reply:
        """Call the script's handle(request) under its budget and turn what it returns into a reply."""
        if self.load_error is not None:
            return error_reply(500, "handler_failed", "the handler failed; the server log has the details",
                               request_id=request.request_id)
        outcome = self.sandbox.call(self.key, "handle", (request.to_dict(),), self.budget)
        if self.child_logs and outcome.logs:
            from backworks.sandbox.logs import log_script_lines

            log_script_lines(self.display, outcome.logs)
        reply = None
        if outcome.kind == "ok":
            try:
                reply = to_reply(outcome.value)
            except ValueError as exc:
                outcome.kind, outcome.message = "invalid", str(exc)
        TALLY.count_and_time(PLUGIN_CALLS.labels(self.key, "handle", outcome.kind), self.latency,
                             outcome.duration_ms / 1000.0)
        meta = {"handler": outcome.kind, "handler_ms": round(outcome.duration_ms, 1)}
        if reply is None:
            return self.failure(request, outcome, meta)
        reply.meta = meta
        return reply

    def failure(self, request: RequestData, outcome, meta: dict) -> Reply:
        """Log what went wrong (with the script's own frames) and answer a JSON error with the request id."""
        from backworks.sandbox import logs

        text = outcome.message + (f"\n{outcome.traceback.rstrip()}" if outcome.traceback else "")
        if logs.admit(os.path.basename(self.display), len(text)):  # bytes a minute per script
            logger.warning("runtime endpoint %s: handler %s (request id %s): %s", self.spec.name, outcome.kind,
                           request.request_id, text)
        if outcome.kind == "timeout":
            reply = error_reply(504, "handler_timeout", f"the handler did not finish within "
                                f"{self.budget.timeout_ms} ms", request_id=request.request_id)
        elif outcome.kind == "memory":
            reply = error_reply(500, "handler_memory", f"the handler went over its memory budget of "
                                f"{self.budget.memory_mb} MB", request_id=request.request_id)
        elif outcome.kind == "invalid":
            reply = error_reply(500, "handler_invalid", f"the handler returned an invalid response: "
                                f"{outcome.message}", request_id=request.request_id)
        else:
            reply = error_reply(500, "handler_failed", "the handler failed; the server log has the details",
                                request_id=request.request_id)
        reply.meta = meta
        return reply

    def close(self) -> None:
        """The sandbox is shared per load and closed with it."""


def is_response(value) -> bool:
    """A dict made only of response keys, with an integer status or a body/json, is a response dict."""
    if type(value) is not dict or not value or not set(value) <= RESPONSE_KEYS:
        return False
    status = value.get("status")
    return (type(status) is int) or ("status" not in value and ("body" in value or "json" in value))


def to_reply(value) -> Reply:
    """Turn a handler's return value into a Reply; ValueError says why it is not a valid one."""
    from backworks.sandbox import values

    if not is_response(value):
        return Reply(200, [("Content-Type", JSON_TYPE)], _dump(values.plain(value, "return value")))
    response = values.response(value, None)
    headers = response["headers"]
    pairs = [(k, v) for k, v in (headers.items() if isinstance(headers, dict) else headers)]
    has_type = any(k.lower() == "content-type" for k, _ in pairs)
    if "json" in response:
        body = _dump(response["json"])
        default_type = JSON_TYPE
    else:
        body = response["body"].encode("utf-8")
        default_type = TEXT_TYPE
    if not has_type and response["status"] not in (204, 304):
        pairs.append(("Content-Type", default_type))
    if response["status"] in (204, 304):
        body = b""
    return Reply(response["status"], pairs, body)


def _dump(value) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        raise ValueError(f"the JSON body cannot be serialised: {exc}") from exc
