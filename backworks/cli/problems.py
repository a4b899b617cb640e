"""How commands report config problems: one per line on stderr, then exit 1."""
from __future__ import annotations

import sys

import click

from backworks.errors import ConfigError


def exit_with_problems(exc: ConfigError, summary: str | None = None) -> None:
    """Print every problem of a ConfigError (and an optional summary line) to stderr; exit 1."""
    for problem in exc.problems:
        click.echo(problem, err=True)
    if summary:
        click.echo(summary, err=True)
    sys.exit(1)
