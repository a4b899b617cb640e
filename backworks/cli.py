"""The `backworks` command: serve, check, print-config and the developer tools."""
from __future__ import annotations

import json
import logging

import click
import yaml

from backworks import __version__
from backworks.config import load_config, masked
from backworks.errors import ConfigError
from backworks.problems import exit_with_problems

logger = logging.getLogger(__name__)


@click.group()
@click.version_option(__version__, prog_name="backworks")
def cli():
    """Backworks: a configuration-driven, programmable API server."""


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False), default="config/backworks.yaml")
def check(config):
    """Validate CONFIG and compile every plugin script it names."""
    from backworks.runtime import load_runtime

    try:
        runtime = load_runtime(config, options={"check_only": True})
    except ConfigError as exc:
        exit_with_problems(exc, summary=f"{len(exc.problems)} problem(s) in {config}")
    plugins = len(runtime.config.data["plugins"])
    click.echo(f"{config}: OK ({len(runtime.endpoints)} endpoints, {plugins} plugins)")
    runtime.close()


@cli.command("print-config")
@click.argument("config", type=click.Path(dir_okay=False), default="config/backworks.yaml")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def print_config(config, as_json):
    """Print CONFIG with defaults, variables and overrides resolved (secrets masked)."""
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        exit_with_problems(exc)
    data = masked(loaded.data, loaded.secrets)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), nl=False)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False), default="config/backworks.yaml")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(config, host, port):
    """Run the development server on CONFIG (production: gunicorn wsgi:app)."""
    from backworks.app import create_app

    try:
        app = create_app(config, options={"dev_server": True})
    except ConfigError as exc:
        exit_with_problems(exc)
    click.echo(f"Backworks dev server on http://{host}:{port} (config {config})")
    app.run(host=host, port=port, threaded=False, use_reloader=False)


@cli.command()
@click.option("--write", "readme", type=click.Path(dir_okay=False), help="Update this README in place.")
def reference(readme):
    """Print the config reference generated from the schema (or write it into a README)."""
    from pathlib import Path

    from backworks.docs import config_reference, write_reference

    if readme:
        write_reference(Path(readme))
        click.echo(f"updated the config reference in {readme}")
    else:
        click.echo(config_reference(), nl=False)


from backworks import capture_cli  # noqa: E402  (commands on the capture store)

for _command in capture_cli.COMMANDS:
    cli.add_command(_command)

from backworks import cli_plugins  # noqa: E402  (plugin developer kit)

for _command in cli_plugins.COMMANDS:
    cli.add_command(_command)


def main():
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
