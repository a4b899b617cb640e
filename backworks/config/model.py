"""The loaded config as data: Config, EndpointSpec and the typed settings read while serving (no loading
here, so every layer may import it)."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, fields
from dataclasses import field as dc_field
from pathlib import Path

from backworks import secrets
from backworks.config.problems import line_for, path_text

DEFAULT_CONFIG = "config/backworks.yaml"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The `server:` section as typed attributes (built once per load: request code reads no dicts)."""

    max_body_bytes: int
    max_header_count: int
    trusted_proxies: tuple
    access_log: bool
    log_json: bool
    request_id_header: str
    watch: bool
    inline_hard_margin_ms: int

    @classmethod
    def of(cls, section: dict) -> ServerSettings:
        """Build from the validated (defaults filled) `server:` section."""
        return cls(**{**_picked(cls, section), "trusted_proxies": tuple(section["trusted_proxies"])})


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """The `admin:` section as typed attributes (built once per load)."""

    path: str
    token: str | None
    recent_requests: int

    @classmethod
    def of(cls, section: dict) -> AdminSettings:
        """Build from the validated (defaults filled) `admin:` section."""
        return cls(**_picked(cls, section))


def _picked(cls, section: dict) -> dict:
    return {f.name: section[f.name] for f in fields(cls)}


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
        line = line_for(self.lines, ("endpoints", self.name) + parts)
        return f"{self.filename}:{line}: {path_text(self.shown + parts)}"


@dataclass
class Config:
    """A loaded, validated config."""

    path: Path
    data: dict
    lines: dict = dc_field(default_factory=dict)
    endpoints: list = dc_field(default_factory=list)
    secrets: secrets.SecretsPolicy = secrets.DEFAULT  # what every output of this load hides
    server: ServerSettings = dc_field(init=False, repr=False)
    admin: AdminSettings = dc_field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.server = ServerSettings.of(self.data["server"])
        self.admin = AdminSettings.of(self.data["admin"])

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
        return f"{self.path}:{line_for(self.lines, tuple(path))}"


def glob_match(pattern: str, name: str) -> bool:
    """Return True when an endpoint name matches one glob pattern."""
    return fnmatch.fnmatchcase(name, pattern)


def endpoint_matches(patterns, name: str) -> bool:
    """Return True when an endpoint name matches any of the glob patterns."""
    return any(glob_match(p, name) for p in patterns)


def masked(value, policy: secrets.SecretsPolicy = secrets.DEFAULT):
    """Return a copy of config data with secrets masked as '***' (see backworks.secrets)."""
    return secrets.mask_config(value, policy)
