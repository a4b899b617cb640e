"""The one secrets policy: which names and values are secret, and how every output hides them.

Capture, HAR export, mocks from capture, the admin recent-requests view, logs, error bodies, metrics
labels and print-config all ask this module; nothing else keeps a list of secret names. A leaf: it
imports nothing from backworks.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

REDACTED = "[REDACTED]"
MASK = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
                            "x-auth-token", "x-access-key", "x-private-key", "x-csrf-token"})
# A header, query parameter, JSON or form field, config key or variable whose name contains one of
# these (lower-cased, `-` read as `_`) is secret.
SECRET_FRAGMENTS = ("token", "secret", "password", "passphrase", "passwd", "api_key", "apikey", "access_key",
                    "private_key", "jwt", "session", "credential", "signature", "cookie", "authorization")
SECRET_NAMES = frozenset({"key", "keys", "sig", "pw", "pass", "auth", "dsn"})
SECRET_SUFFIXES = ("_key", "_keys", "_dsn")
# A known secret value shorter than this is not searched for in free text (it would match anywhere).
MIN_VALUE_LENGTH = 4
NOT_SECRET_VALUES = frozenset({"true", "false", "null", "none", "bearer", "basic"})
# A user name alone is a token in web URLs (https://ghp_...@github.com); in database URLs it is only a name.
TOKEN_USER_SCHEMES = ("http://", "https://", "ws://", "wss://")
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
JSON_PAIR = re.compile(rb'"((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*"?|[^\s,}\]{\[][^,}\]]*)')


def normalise(name) -> str:
    """Return a name as the policy compares it: lower case, `-` read as `_`."""
    return str(name).lower().replace("-", "_")


def looks_secret(name) -> bool:
    """Return True for a name that looks like it holds a credential (api_key, X-Auth-Token, DB_PASSWORD...)."""
    lowered = normalise(name)
    return lowered in SECRET_NAMES or lowered.endswith(SECRET_SUFFIXES) or \
        any(fragment in lowered for fragment in SECRET_FRAGMENTS)


@dataclass(frozen=True)
class SecretsPolicy:
    """The defaults plus a config's additions: extra header, field and query names, and known values."""

    headers: frozenset = frozenset()
    fields: frozenset = frozenset()
    query: frozenset = frozenset()
    values: frozenset = frozenset()

    def is_secret_header(self, name) -> bool:
        """Return True for a header that carries credentials."""
        lowered = str(name).lower()
        return lowered in SECRET_HEADERS or normalise(name) in self.headers or looks_secret(name)

    def is_secret_field(self, name) -> bool:
        """Return True for a JSON or form field (or config key) that holds a credential."""
        return normalise(name) in self.fields or looks_secret(name)

    def is_secret_param(self, name) -> bool:
        """Return True for a query parameter that holds a credential."""
        lowered = normalise(name)
        return lowered in self.query or lowered in self.fields or looks_secret(name)

    def redaction(self) -> "Redaction":
        """Start hiding one exchange: secrets found by name are remembered to hide them in free text."""
        return Redaction(self, set(self.values))


DEFAULT = SecretsPolicy()


def from_settings(capture: dict, values=()) -> SecretsPolicy:
    """Build the policy from the `capture` section's additions and the secret values a config holds."""
    return SecretsPolicy(headers=frozenset(normalise(h) for h in capture.get("redact_headers") or ()),
                         fields=frozenset(normalise(f) for f in capture.get("redact_fields") or ()),
                         query=frozenset(normalise(q) for q in capture.get("redact_query") or ()),
                         values=frozenset(v for v in values if usable_value(v)))


def usable_value(value) -> bool:
    """Return True for a value worth searching for in free text (long enough, not a common word)."""
    return isinstance(value, str) and len(value) >= MIN_VALUE_LENGTH and value.lower() not in NOT_SECRET_VALUES


def config_values(data, policy: SecretsPolicy = DEFAULT) -> set:
    """Return the secret values written in config data: secret-named fields and URL passwords."""
    found: set = set()

    def walk(value, secret: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key != "mock":  # canned answers ({"token": "demo"}) are sample data, not credentials
                    walk(item, secret or policy.is_secret_field(key))
        elif isinstance(value, list):
            for item in value:
                walk(item, secret)
        elif isinstance(value, str):
            if secret:
                found.add(value)
            found.update(url_secrets(value))
            parts = _split_userinfo(value)
            if parts and ":" in parts[1]:  # sent upstream as Basic credentials, which an upstream may echo
                found.update(base64.b64encode(text.encode()).decode() for text in {parts[1], unquote(parts[1])})

    walk(data, False)
    return {v for v in found if usable_value(v)}


# --- URLs -----------------------------------------------------------------------------------------------

def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """Return (scheme://, userinfo, rest) for a URL with credentials, else None.

    Written by hand because passwords are often pasted unencoded: `postgresql://bob:p@ss/w@db/x` has
    its userinfo up to the last `@` before the host, even with `@` or `/` in the password."""
    head, sep, tail = url.partition("://")
    if not sep:
        return None
    before_query = re.split(r"[?#]", tail, maxsplit=1)[0]
    at = before_query.rfind("@")
    if at < 0:
        return None
    userinfo = tail[:at]
    if "/" in userinfo.partition(":")[0]:
        return None  # an `@` in the path (https://host/users/@me), not credentials
    return head + sep, userinfo, tail[at + 1:]


def url_secrets(url: str) -> list:
    """Return the secret parts of a URL: its password (or lone user token) and secret query values."""
    found = []
    parts = _split_userinfo(url)
    if parts:
        user, colon, password = parts[1].partition(":")
        if colon or _token_user(parts[0]):
            found.append(password if colon else user)
    base, _, fragment = url.partition("#")
    query = base.partition("?")[2]
    for pair in f"{query}&{fragment}".split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and looks_secret(unquote_plus(name)):
            found.extend({value, unquote_plus(value)})
    return [v for v in found if v]


def _token_user(scheme: str) -> bool:
    return scheme.lower() in TOKEN_USER_SCHEMES


def hide_url(url: str, mask: str = MASK, policy: SecretsPolicy = DEFAULT) -> str:
    """Return a URL with its password (or lone user token) and secret-looking query values hidden."""
    return _map_params(_hide_userinfo(url, mask), lambda params: hide_query(params, mask, policy))


def _hide_userinfo(url: str, mask: str) -> str:
    parts = _split_userinfo(url)
    if not parts:
        return url
    scheme, userinfo, rest = parts
    user, colon, _ = userinfo.partition(":")
    if colon:
        return f"{scheme}{user}:{mask}@{rest}"
    return f"{scheme}{mask}@{rest}" if _token_user(scheme) else url


def _map_params(url: str, change) -> str:
    """Apply `change` to a URL's query and to its fragment (OAuth answers put tokens in `#access_token=`)."""
    base, hash_, fragment = url.partition("#")
    base, question, query = base.partition("?")
    return base + (question + change(query) if question else "") + (hash_ + change(fragment) if hash_ else "")


def hide_query(query: str, mask: str = REDACTED, policy: SecretsPolicy = DEFAULT, is_secret=None) -> str:
    """Return a query string with secret parameters' values replaced; other pairs stay byte for byte."""
    if not query:
        return query
    is_secret = is_secret or policy.is_secret_param
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        pairs.append(f"{name}={mask}" if eq and is_secret(unquote_plus(name)) else pair)
    return "&".join(pairs)


def public_url(url: str) -> str:
    """Return scheme://host:port/path of a URL: no credentials, no query (metrics labels, error bodies)."""
    parts = _split_userinfo(url)
    if parts:
        url = parts[0] + parts[2]
    split = urlsplit(url)
    try:
        host = split.hostname or ""
        port = split.port
    except ValueError:
        return f"{split.scheme}://{MASK}" if split.scheme else MASK
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return f"{split.scheme}://{netloc}{split.path}".rstrip("/")


def scrub_text(text: str, values=()) -> str:
    """Hide URL credentials and secret query values inside free text, and any of the known `values`."""
    text = URL_IN_TEXT.sub(lambda m: hide_url(m.group(0)), str(text))
    return hide_values(text, values)


def hide_values(text: str, values, mask: str = MASK) -> str:
    """Replace every occurrence of the known secret values in text (longest first)."""
    for value in sorted((v for v in values if usable_value(v)), key=len, reverse=True):
        if value in text:
            text = text.replace(value, mask)
    return text


def error_text(exc: BaseException, values=()) -> str:
    """Describe an exception for a log line or an error body without the data it carried.

    SQLAlchemy's text lists the statement's parameters (query keys, API keys) and PostgreSQL adds a
    DETAIL line with row values: keep the driver's first line only."""
    base = getattr(exc, "orig", None) or exc
    first = (str(base).strip().splitlines() or [""])[0]
    return scrub_text(f"{type(base).__name__}: {first}" if first else type(base).__name__, values)


# --- config (print-config) ------------------------------------------------------------------------------

def mask_config(value, policy: SecretsPolicy = DEFAULT, key: str = ""):
    """Return a copy of config data with secret-named values, URL credentials and known values as '***'."""
    # numbers and booleans under secret-looking keys (state.max_keys) are settings, not credentials
    if key and policy.is_secret_field(key) and isinstance(value, (str, list)) and value not in ("", []):
        return MASK
    if isinstance(value, dict):
        return {k: mask_config(v, policy, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_config(v, policy) for v in value]
    if isinstance(value, str):
        if value in policy.values:
            return MASK
        return hide_values(hide_url(value, MASK, policy) if "://" in value else value, policy.values)
    return value


# --- traffic (capture, HAR, mocks, admin views) ---------------------------------------------------------

class Redaction:
    """Hides one exchange's secrets by name, remembering their values to hide them again in free text."""

    def __init__(self, policy: SecretsPolicy, values: set):
        self.policy = policy
        self.values = values

    def remember(self, value) -> None:
        """Note a secret value so later text (bodies, URLs) has it hidden too."""
        if isinstance(value, str) and usable_value(value.strip()):
            self.values.add(value.strip())

    def headers(self, pairs) -> list:
        """Return (name, value) pairs with secret headers' values replaced."""
        out = []
        for name, value in pairs:
            if self.policy.is_secret_header(name):
                self._remember_header(str(name).lower(), str(value))
                value = REDACTED
            elif "://" in str(value):  # Location, Referer: a URL may carry ?token= or #access_token=
                value = self.url(str(value))
            out.append((name, value))
        return out

    def _remember_header(self, name: str, value: str) -> None:
        self.remember(value)
        if "cookie" in name:  # each cookie's value: "a=1; sid=xyz" or "sid=xyz; Path=/"
            parts = value.split(";")
            for part in parts[:1] if name == "set-cookie" else parts:
                self.remember(part.partition("=")[2])
        elif " " in value.strip():  # "Bearer abc": the credentials without the scheme
            self.remember(value.strip().rsplit(" ", 1)[1])

    def query(self, query: str) -> str:
        """Return a query string with secret parameters redacted (values remembered)."""
        for pair in (query or "").split("&"):
            name, eq, value = pair.partition("=")
            if eq and self.policy.is_secret_param(unquote_plus(name)):
                self.remember(value)
                self.remember(unquote_plus(value))
        return hide_query(query, REDACTED, self.policy)

    def url(self, url: str) -> str:
        """Return a URL with credentials and secret query values redacted (values remembered)."""
        parts = _split_userinfo(url)
        if parts:
            user, colon, password = parts[1].partition(":")
            self.remember(password if colon else user if _token_user(parts[0]) else "")
        return _map_params(_hide_userinfo(url, REDACTED), self.query)

    def json_value(self, value):
        """Return parsed JSON with secret fields' values replaced, at any depth."""
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if self.policy.is_secret_field(key) and item is not None:
                    self._remember_all(item)
                    out[key] = REDACTED
                else:
                    out[key] = self.json_value(item)
            return out
        if isinstance(value, list):
            return [self.json_value(v) for v in value]
        return value

    def _remember_all(self, value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                self._remember_all(item)
        elif isinstance(value, list):
            for item in value:
                self._remember_all(item)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            self.remember(str(value))

    def body(self, data: bytes, content_type: str | None, complete: bool = True) -> bytes:
        """Return a body with secret JSON or form fields redacted (bodies cut short: by pattern)."""
        kind = (content_type or "").split(";", 1)[0].strip().lower()
        if not data:
            return data
        if kind == "application/x-www-form-urlencoded":
            text = data.decode("latin-1")
            for pair in text.split("&"):
                name, _, value = pair.partition("=")
                if self.policy.is_secret_field(unquote_plus(name)):
                    self.remember(unquote_plus(value))
            return hide_query(text, REDACTED, is_secret=self.policy.is_secret_field).encode("latin-1")
        if kind == "application/json" or kind.endswith("+json"):
            return self._json_body(data, complete)
        return data

    def _json_body(self, data: bytes, complete: bool) -> bytes:
        if complete:
            try:
                parsed = json.loads(data)
                redacted = self.json_value(parsed)
            except (ValueError, RecursionError):  # not JSON, or nested past the parser: redacted as text below
                pass
            else:
                if redacted == parsed:
                    return data
                return json.dumps(redacted, ensure_ascii=False, separators=(",", ":")).encode()
        return JSON_PAIR.sub(self._json_pair, data)

    def _json_pair(self, match: re.Match) -> bytes:
        name = match.group(1).decode("utf-8", "replace")
        if not self.policy.is_secret_field(name) or match.group(3) == b"null":
            return match.group(0)
        self.remember(match.group(3).decode("utf-8", "replace").strip('"'))
        return b'"' + match.group(1) + b'"' + match.group(2) + b'"' + REDACTED.encode() + b'"'

    def text(self, data):
        """Return text (str or bytes) with every remembered secret value replaced, in plain and URL-encoded form."""
        for value in sorted(self.values, key=len, reverse=True):
            for form in {value, quote(value, safe=""), quote_plus(value)}:
                if isinstance(data, bytes):
                    data = data.replace(form.encode(), REDACTED.encode())
                elif form in data:
                    data = data.replace(form, REDACTED)
        return data
