"""The config schema: every setting with its type, default and help text (cerberus)."""
from __future__ import annotations

from backworks.config.fields import HTTP_METHODS, field, listof, named, section
from backworks.modes import MODES, block_schema


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
                              "(e.g. the nginx in front; a peer on gunicorn's unix socket always is).",
                              {"type": "string"}, default=["127.0.0.1", "::1"]),
    "access_log": field("boolean", "Write one log line per request (logger backworks.access).", default=True),
    "log_json": field("boolean", "Write log lines as JSON objects instead of text.", default=False),
    "request_id_header": field("string", "Header carrying the request id (taken from the client "
                               "when present, else generated) and echoed on every response.",
                               default="X-Request-Id"),
    "watch": field("boolean", "Reload config and scripts when their files change (checked every "
                   "quarter second).", default=True),
    "inline_hard_margin_ms": field("integer", "How long past its budget an inline script call may run "
                                   "before the gunicorn master ends the worker (a C call that ignores the "
                                   "timer); the script then runs with process isolation until its file "
                                   "changes.", min=50, max=60000, default=300),
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
    "redact_headers": listof("Extra secret header names, added to the built-in secrets policy (authorization, "
                             "cookie, x-api-key, any name containing token, secret, password, ...): replaced "
                             "by [REDACTED] in the store, HAR export, generated mocks and the admin API.",
                             {"type": "string"}, default=[]),
    "redact_fields": listof("Extra secret JSON and form body field names (any depth), added to the secrets "
                            "policy like redact_headers.", {"type": "string"}, default=[]),
    "redact_query": listof("Extra secret query parameter names, added to the secrets policy like "
                           "redact_headers (api_key, access_token, password, ... always are).",
                           {"type": "string"}, default=[]),
    "max_body_bytes": field("integer", "Bodies longer than this are stored truncated.", min=0,
                            default=1024 * 1024),
    "include": listof("Only record paths matching one of these globs (default: all).", {"type": "string"},
                      default=[]),
    "exclude": listof("Never record paths matching these globs.", {"type": "string"}, default=[]),
    "methods": listof("Only record these methods (default: all).",
                      {"type": "string", "allowed": HTTP_METHODS}, default=[]),
    "table": field("string", "Table the exchanges are stored in.", default="backworks_captures",
                   regex=r"^[A-Za-z_][A-Za-z0-9_]*$"),
    "queue_max_bytes": field("integer", "Most bytes of exchanges a worker holds while the store catches up "
                             "(also at most 10,000 exchanges); past it exchanges are counted as dropped.",
                             min=1024, default=32 * 1024 * 1024),
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
    "total_timeout_ms": field("integer", "Deadline for a whole exchange: connecting, sending, the response "
                              "headers and body, retries included; over it the client gets 504 (a response "
                              "already streaming is cut off). null: no deadline.", min=1, nullable=True,
                              default=60000),
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
    "max_bytes": field("integer", "Most bytes per plugin, keys + values as JSON (in-memory backend; oldest "
                       "keys evicted).", min=1, default=4194304),
}, default={})


def endpoint_schema() -> dict:
    """Return the schema of one endpoint, with one block per registered mode."""
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
    for name in sorted(MODES):  # block_schema imports no heavy mode module (SQLAlchemy waits for a database)
        fields[name] = section(*block_schema(name))
    return section("One endpoint.", fields)


def config_schema() -> dict:
    """Return the whole config schema."""
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


def config_validator():
    """Return a cerberus validator of the whole config, its schema trusted as written.

    Cerberus checks every schema it is given against its own rules, a fifth of a second for this one at each
    start of each process. The schema is code, not input: tests/test_startup.py checks it once instead.
    """
    import cerberus
    from cerberus.schema import UnvalidatedSchema

    return cerberus.Validator(UnvalidatedSchema(config_schema()))
