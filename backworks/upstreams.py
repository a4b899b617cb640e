"""Upstream services: pooled urllib3 clients per target, balancing, retries, breakers, health checks."""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error

from backworks import metrics
from backworks.breaker import CLOSED, OPEN, Breaker
from backworks.errors import HTTPError
from backworks.pids import current_pid
from backworks.secrets import public_url, scrub_text
from backworks.upstream_http import (
    WATCHDOG,
    CheckedHTTPConnection,
    CheckedHTTPSConnection,
    Deadline,
    InvalidUpstreamResponse,
)

logger = logging.getLogger(__name__)

IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))
# Retries are Upstream.send's job (with breakers and backoff); one shared object spares urllib3 building
# a Retry per request from `retries=False`.
NO_RETRIES = urllib3.Retry(total=False, redirect=False)


class UpstreamFailure(HTTPError):
    """An upstream could not answer: unreachable, error, invalid_response (502), timeout (504), unavailable."""

    STATUS = {"unreachable": 502, "error": 502, "invalid_response": 502, "timeout": 504, "unavailable": 503}

    def __init__(self, kind: str, message: str):
        super().__init__(self.STATUS[kind], f"upstream_{kind}", message)
        self.kind = kind


class RequestBodyError(HTTPError):
    """The client's body could not be sent (too large, cut off): the client's fault, not the upstream's."""


class Target:
    """One server of an upstream: its pool (created per process), breaker, health and load."""

    def __init__(self, upstream: "Upstream", spec: dict, settings: dict):
        self.upstream = upstream
        self.url = spec["url"]
        self.weight = spec.get("weight", 1)
        parts = urlsplit(self.url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.name = public_url(self.url)  # metrics labels, logs, error bodies: no credentials, no query
        self.netloc = parts.netloc.rsplit("@", 1)[-1]
        self.auth = urllib3.make_headers(basic_auth=f"{parts.username}:{parts.password or ''}")\
            .get("authorization") if parts.username else None
        self.timeout = urllib3.Timeout(connect=settings["connect_timeout_ms"] / 1000,
                                       read=settings["read_timeout_ms"] / 1000)
        self.pool_size = settings["pool_size"]
        cb = settings["circuit_breaker"]
        self.breaker = Breaker(cb["failure_threshold"], cb["recovery_s"])
        self.healthy = True
        self.probe_passes = 0
        self.probe_failures = 0
        self.active = 0
        self.current_weight = 0
        self._pool = None
        self._pool_pid = None
        self._counters: dict = {}

    def pool(self) -> urllib3.HTTPConnectionPool:
        """Return this process's connection pool (pools are never shared across a fork)."""
        if self._pool_pid != current_pid():
            cls = urllib3.HTTPSConnectionPool if self.scheme == "https" else urllib3.HTTPConnectionPool
            self._pool = cls(self.host, self.port, maxsize=self.pool_size, block=False, timeout=self.timeout,
                             retries=False)
            # checked response heads, and a connection the total deadline can cut
            self._pool.ConnectionCls = CheckedHTTPSConnection if self.scheme == "https" else \
                CheckedHTTPConnection
            self._pool_pid = os.getpid()
            self._counters = {}
        return self._pool

    def count(self, outcome: str) -> None:
        """Count one request to this target by outcome (ok, error, timeout)."""
        counter = self._counters.get(outcome)
        if counter is None:
            counter = self._counters[outcome] = metrics.UPSTREAM_REQUESTS.labels(
                self.upstream.name, self.name, outcome)
        metrics.TALLY.inc(counter)

    def available(self, now: float) -> bool:
        """Return True when the target is healthy and its breaker lets a call through."""
        return self.healthy and self.breaker.ready()

    def close(self) -> None:
        """Close this process's pooled connections."""
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.close()
        self._pool = None


class Upstream:
    """A named upstream: picks a target, sends with retries and backoff, tracks failures."""

    def __init__(self, name: str, settings: dict):
        self.name = name
        self.settings = settings
        self.balance = settings["balance"]
        self.retries = settings["retries"]
        self.backoff = settings["retry_backoff_ms"] / 1000
        self.client_host = settings["host_header"] == "client"
        total = settings.get("total_timeout_ms")
        self.total_timeout = total / 1000 if total else None
        self.health = settings.get("health_check")
        self.targets = [Target(self, spec, settings) for spec in settings["targets"]]
        self.only = self.targets[0] if len(self.targets) == 1 else None
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def pick(self, exclude=()) -> Target | None:
        """Choose a target by the balance policy among the available ones (None when none is)."""
        now = time.monotonic()
        if self.only is not None:  # one target: tried again on retries, as long as it is available
            chosen = self.only if self.only.available(now) else None
            return chosen if chosen is not None and chosen.breaker.allow() else None
        candidates = [t for t in self.targets if t not in exclude and t.available(now)]
        if not candidates and exclude:
            candidates = [t for t in self.targets if t.available(now)]
        if not candidates:
            return None
        if len(candidates) == 1:
            chosen = candidates[0]
        elif self.balance == "least_connections":
            start = next(self._counter) % len(candidates)
            rotated = candidates[start:] + candidates[:start]
            chosen = min(rotated, key=lambda t: t.active)
        elif self.balance == "weighted":
            chosen = self._smooth_weighted(candidates)
        else:
            chosen = candidates[next(self._counter) % len(candidates)]
        # Only the chosen target takes its breaker's trial; another thread may have just taken it.
        return chosen if chosen.breaker.allow() else None

    def _smooth_weighted(self, candidates: list) -> Target:
        with self._lock:
            total = 0
            best = None
            for target in candidates:
                target.current_weight += target.weight
                total += target.weight
                if best is None or target.current_weight > best.current_weight:
                    best = target
            best.current_weight -= total
            return best

    def deadline(self) -> Deadline | None:
        """Start this exchange's total deadline (total_timeout_ms), or None when the upstream has none."""
        return WATCHDOG.start(self.total_timeout) if self.total_timeout else None

    def finish(self, deadline: Deadline | None) -> None:
        """End an exchange's deadline before its connection goes back to the pool."""
        WATCHDOG.finish(deadline)

    def send(self, method: str, path: str, headers, body, replayable: bool, deadline: Deadline | None = None):
        """Send one request; return (urllib3 response not yet read, target); UpstreamFailure when none answers."""
        attempts = 1 + (self.retries if replayable and method in IDEMPOTENT else 0)
        tried: list = []
        failure = None
        for attempt in range(attempts):
            if deadline is not None and deadline.fired:
                break  # the total deadline is spent: no more attempts
            target = self.pick(tried)
            if target is None:
                break
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            tried.append(target)
            try:
                return self._attempt(target, method, path, headers, body, deadline), target
            except UpstreamFailure as exc:
                failure = exc
        if failure is not None:
            raise failure
        raise self.unavailable()

    def _attempt(self, target: Target, method: str, path: str, headers, body, deadline=None):
        if target.auth and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = target.auth
        target.active += 1
        if deadline is not None:
            WATCHDOG.current(deadline)
        try:
            response = target.pool().urlopen(method, target.base_path + path, body=body, headers=headers,
                                             retries=NO_RETRIES, redirect=False, assert_same_host=False,
                                             preload_content=False, decode_content=False)
        except RequestBodyError:
            target.active -= 1
            raise
        except Exception as exc:
            target.active -= 1
            raise self.failed(target, exc, deadline) from None
        finally:
            if deadline is not None:
                WATCHDOG.current(None)
        target.breaker.record(True)
        target.count("ok")
        return response

    def failed(self, target: Target, exc: Exception, deadline: Deadline | None = None) -> UpstreamFailure:
        """Record a transport failure on `target` and return the client-facing error for it."""
        if isinstance(exc, UpstreamFailure):
            return exc
        invalid = _invalid_response(exc)
        spent = deadline is not None and deadline.fired
        timeout = spent or isinstance(exc, (ReadTimeoutError, ConnectTimeoutError, TimeoutError)) and \
            not isinstance(exc, NewConnectionError)
        target.count("invalid_response" if invalid and not spent else "timeout" if timeout else "error")
        was = target.breaker.state
        target.breaker.record(False)
        if target.breaker.state == OPEN and was != OPEN:
            logger.warning("upstream %s target %s: circuit breaker opened after %d failures", self.name,
                           target.name, target.breaker.failures)
        if spent:
            total = self.settings["total_timeout_ms"]
            return UpstreamFailure("timeout", f"upstream '{self.name}' ({target.name}) did not finish its "
                                   f"response within {total} ms (total_timeout_ms)")
        if invalid:
            logger.warning("upstream %s target %s sent an invalid response: %s", self.name, target.name,
                           invalid)
            return UpstreamFailure("invalid_response", f"upstream '{self.name}' ({target.name}) sent an "
                                   f"invalid response: {invalid}")
        if isinstance(exc, NewConnectionError) or isinstance(getattr(exc, "reason", None), NewConnectionError):
            return UpstreamFailure("unreachable", f"upstream '{self.name}' ({target.name}) is unreachable: "
                                   f"{_reason(exc)}")
        if isinstance(exc, ConnectTimeoutError):
            return UpstreamFailure("timeout", f"upstream '{self.name}' ({target.name}) did not accept a "
                                   f"connection within {self.settings['connect_timeout_ms']} ms")
        if timeout:
            return UpstreamFailure("timeout", f"upstream '{self.name}' ({target.name}) did not answer within "
                                   f"{self.settings['read_timeout_ms']} ms")
        if not isinstance(exc, (Urllib3Error, OSError)):
            logger.exception("upstream %s target %s: unexpected failure", self.name, target.name)
        return UpstreamFailure("error", f"upstream '{self.name}' ({target.name}) failed: {_reason(exc)}")

    def unavailable(self) -> UpstreamFailure:
        """The error when no target may be tried (all unhealthy or breakers open)."""
        down = [t for t in self.targets if not t.healthy]
        opened = [t for t in self.targets if t.healthy and t.breaker.state != CLOSED]
        why = []
        if down:
            why.append(f"{len(down)} failing health checks")
        if opened:
            why.append(f"{len(opened)} with the circuit breaker open")
        return UpstreamFailure("unavailable", f"upstream '{self.name}' has no available target "
                               f"({len(self.targets)} target(s): {', '.join(why) or 'none available'})")

    def done(self, target: Target) -> None:
        """Note that a response from `target` is finished (for least_connections)."""
        target.active -= 1

    def close(self) -> None:
        """Close every target's pooled connections."""
        for target in self.targets:
            target.close()


def _invalid_response(exc: BaseException) -> str | None:
    """The reason an upstream's response head was refused (see upstream_http), when that is the failure."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, InvalidUpstreamResponse):
            return str(exc)
        inner = [a for a in getattr(exc, "args", ()) if isinstance(a, BaseException)]
        exc = inner[0] if inner else (exc.__cause__ or exc.__context__)
        seen += 1
    return None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = scrub_text(str(reason))  # it reaches the client's 502 body
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name not found"
    # urllib3 prefixes messages with the connection object's repr; keep only the reason.
    return text.split(": ", 1)[-1] if text.startswith("<") else text


class UpstreamSet:
    """Every upstream of one config load, plus the health-check thread of this process."""

    def __init__(self, config_data: dict):
        self.upstreams = {name: Upstream(name, settings) for name, settings in config_data.items()}
        self._checked = [u for u in self.upstreams.values() if u.health]
        self._pid = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def get(self, name: str) -> Upstream:
        """Return the upstream named `name`; start health checks in this process on first use."""
        if self._pid != current_pid():
            self.start()
        return self.upstreams[name]

    def start(self) -> None:
        """Start this process's health-check thread (once per process; never before a fork)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            if not self._checked or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="backworks-health", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        due = {u.name: 0.0 for u in self._checked}
        while not self._stop.is_set():
            now = time.monotonic()
            for upstream in self._checked:
                if now >= due[upstream.name]:
                    due[upstream.name] = now + upstream.health["interval_s"]
                    for target in upstream.targets:
                        probe(upstream, target)
            self._stop.wait(max(0.01, min(due.values()) - time.monotonic()))

    def close(self) -> None:
        """Stop the health checks and close every pool."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        for upstream in self.upstreams.values():
            upstream.close()


def probe(upstream: Upstream, target: Target) -> None:
    """Probe one target once; take it out or bring it back after enough results in a row."""
    health = upstream.health
    try:
        response = target.pool().urlopen("GET", target.base_path + health["path"], retries=False,
                                         redirect=False, timeout=urllib3.Timeout(total=health["timeout_ms"] / 1000),
                                         headers={"User-Agent": "backworks-health-check"})
        ok = 200 <= response.status < 400
    except Exception as exc:
        ok = False
        logger.debug("health probe of %s failed: %s", target.name, exc)
    if ok:
        target.probe_failures = 0
        target.probe_passes += 1
        if not target.healthy and target.probe_passes >= health["healthy_after"]:
            target.healthy = True
            target.breaker.reset()
            logger.info("upstream %s target %s is healthy again", upstream.name, target.name)
    else:
        target.probe_passes = 0
        target.probe_failures += 1
        if target.healthy and target.probe_failures >= health["unhealthy_after"]:
            target.healthy = False
            logger.warning("upstream %s target %s failed %d health checks; taken out", upstream.name,
                           target.name, target.probe_failures)
    metrics.UPSTREAM_HEALTHY.labels(upstream.name, target.name).set(1 if target.healthy else 0)
