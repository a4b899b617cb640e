"""The errors callers must tell apart."""
from __future__ import annotations


class BackworksError(Exception):
    """Base class for every error Backworks raises on purpose."""


class ConfigError(BackworksError):
    """The configuration (or a script it names) is invalid; carries every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class HTTPError(BackworksError):
    """A client-facing failure: answered as a JSON error with `status`."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 details: object = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details
