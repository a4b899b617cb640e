"""Commands on the capture store: `capture export|import` (HAR 1.2) and `mocks-from-capture`."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
import yaml

from backworks.capture.redact import redact_row
from backworks.capture.store import CaptureStore, safe_url
from backworks.cli.help import FullSummaryGroup
from backworks.cli.problems import exit_with_problems
from backworks.config.load import load_config
from backworks.errors import ConfigError
from backworks.secrets import error_text

logger = logging.getLogger(__name__)

CONFIG_ARG = click.argument("config", type=click.Path(dir_okay=False), default="config/backworks.yaml")


def open_store(config_path: str) -> CaptureStore:
    """Load CONFIG and open its capture store; exit 1 with the problems when the config is invalid."""
    unset: list = []  # an unset variable elsewhere (say admin.token) must not block work on the store
    try:
        config = load_config(config_path, unset=unset)
    except ConfigError as exc:
        exit_with_problems(exc)
    for problem in unset:
        click.echo(f"warning: {problem}", err=True)
    return CaptureStore.from_config(config)


def read_rows(config_path: str, endpoint: str | None) -> list:
    """Return the recorded exchanges (of one endpoint, or all); exit 1 when the store cannot be read."""
    store = open_store(config_path)
    try:
        return [redact_row(row, store.policy) for row in store.rows(endpoint)]
    except Exception as exc:
        _fail(f"cannot read the capture store {safe_url(store.url)}: {error_text(exc)}")
    finally:
        store.close()


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


@click.group(cls=FullSummaryGroup)
def capture():
    """Export or import recorded exchanges (HAR 1.2)."""


@capture.command("export")
@click.option("--har", "har_path", required=True, type=click.Path(dir_okay=False), help="HAR file to write.")
@click.option("--endpoint", default=None, help="Only exchanges recorded by this endpoint.")
@CONFIG_ARG
def export_command(har_path, endpoint, config):
    """Write the exchanges recorded in CONFIG's capture store to a HAR file."""
    from backworks.capture.har import export_har  # start-up cost: only for this command

    rows = read_rows(config, endpoint)
    Path(har_path).write_text(json.dumps(export_har(rows), indent=2, ensure_ascii=False), encoding="utf-8")
    click.echo(f"exported {len(rows)} exchange(s) to {har_path}")


@capture.command("import")
@click.argument("har_path", type=click.Path(exists=True, dir_okay=False))
@CONFIG_ARG
def import_command(har_path, config):
    """Add the entries of a HAR file to CONFIG's capture store."""
    from backworks.capture.har import HarError, import_har  # start-up cost: only for this command

    try:
        rows = import_har(json.loads(Path(har_path).read_text(encoding="utf-8")))
    except (ValueError, HarError) as exc:
        _fail(f"{har_path}: {exc}")
    store = open_store(config)
    try:
        store.insert(rows)
    except Exception as exc:
        _fail(f"cannot write to the capture store {safe_url(store.url)}: {error_text(exc)}")
    finally:
        store.close()
    click.echo(f"imported {len(rows)} exchange(s) from {har_path}")


@click.command("mocks-from-capture")
@CONFIG_ARG
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Config file to write (binary bodies go to a folder beside it).")
@click.option("--endpoint", default=None, help="Only exchanges recorded by this endpoint.")
def mocks_from_capture(config, out_path, endpoint):
    """Write mock endpoints that answer what CONFIG's capture store recorded."""
    from backworks.capture.mockgen import build_mocks  # start-up cost: only for this command

    rows = read_rows(config, endpoint)
    out = Path(out_path)
    data = build_mocks(rows, out.parent / f"{out.stem}_files")  # rows are redacted by read_rows
    text = "# Written by `backworks mocks-from-capture`: one mock endpoint per recorded method and path.\n"
    out.write_text(text + yaml.dump(data, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True),
                   encoding="utf-8")
    click.echo(f"wrote {len(data['endpoints'])} endpoint(s) from {len(rows)} exchange(s) to {out_path}")


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated values in full instead of YAML anchors, for a config people read."""

    def ignore_aliases(self, data) -> bool:
        return True


COMMANDS = (capture, mocks_from_capture)
