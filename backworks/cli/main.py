"""The `backworks` command: serve, check, print-config and the developer tools."""
from __future__ import annotations

import json
import logging
import os
import sys

import click
import yaml

from backworks import __version__
from backworks.cli.help import CONTEXT_SETTINGS, FullSummaryGroup
from backworks.cli.problems import exit_with_problems
from backworks.config.load import load_config
from backworks.config.model import masked
from backworks.errors import ConfigError
from backworks.modes.handoff_upstreams import INCLUDE, NginxUpstreams

logger = logging.getLogger(__name__)


@click.group(cls=FullSummaryGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="backworks")
def cli():
    """Backworks: a configuration-driven, programmable API server."""


@cli.command(epilog="Exit status: 0 when the config is valid (warnings are printed but do not fail it), "
                    "1 when it has problems (every one is listed, file:line: field: message, sorted by "
                    "file and line), 2 for a usage error.")
@click.argument("config", type=click.Path(dir_okay=False), default="config/backworks.yaml")
def check(config):
    """Validate CONFIG (default: config/backworks.yaml) and compile every plugin script it names."""
    from backworks.config.checker import check_config  # start-up cost: only for this command

    report = check_config(config)
    for line in report.problems + report.notes + report.warnings:
        click.echo(line, err=bool(report.problems))
    warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    if report.problems:
        click.echo(f"{len(report.problems)} problem(s){warned} in {config}", err=True)
        sys.exit(1)
    click.echo(f"{config}: OK ({report.endpoints} endpoints, {report.plugins} plugins{warned})")


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


@cli.command("nginx-upstreams", epilog=f"The shipped nginx site includes {INCLUDE} (any "
                                      f"/etc/backworks/nginx-upstreams*.conf); reload nginx after writing it.")
@click.argument("config", type=click.Path(dir_okay=False), default="config/backworks.yaml")
@click.option("--write", "path", type=click.Path(dir_okay=False),
              help=f"Write the file here (replaced whole, never half-written) instead of printing it, e.g. {INCLUDE}.")
def nginx_upstreams(config, path):
    """Print the nginx upstream blocks of CONFIG's hand-off targets, so that nginx keeps their connections alive."""
    try:
        blocks = NginxUpstreams.of(load_config(config))
    except ConfigError as exc:
        exit_with_problems(exc)
    text = blocks.text(config)
    if not path:
        click.echo(text, nl=False)
        return
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as out:
        out.write(text)
    os.replace(temporary, path)
    click.echo(f"wrote {len(blocks.names)} upstream block(s) (digest {blocks.digest}) to {path}; now run: "
               f"nginx -t && systemctl reload nginx")


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False), default="config/backworks.yaml")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port to listen on.")
def serve(config, host, port):
    """Run the development server on CONFIG (production: gunicorn wsgi:app)."""
    from backworks.app import create_app  # start-up cost: only for this command

    try:
        app = create_app(config, options={"dev_server": True})
    except ConfigError as exc:
        exit_with_problems(exc)
    click.echo(f"Backworks dev server on http://{host}:{port} (config {config})")
    app.run(host=host, port=port, threaded=False, use_reloader=False)


@cli.command()
@click.option("--cli", "what", flag_value="cli", help="The CLI reference (every command and option).")
@click.option("--hooks", "what", flag_value="hooks", help="The plugin hook reference (backworks/plugins/contract.py).")
@click.option("--write", "page", type=click.Path(dir_okay=False, exists=True),
              help="Update the generated section of this page in place (docs/reference/config.md, "
                   "docs/reference/cli.md with --cli, docs/plugins.md with --hooks).")
def reference(what, page):
    """Print the config reference generated from the schema (--cli, --hooks: the CLI or hook reference).

    With --write, the reference replaces the generated section of its docs page instead.
    """
    from pathlib import Path

    from backworks.config import reference as docs  # start-up cost: only for this command

    section, content = {
        "cli": lambda: (docs.CLI_SECTION, docs.cli_reference(cli)),
        "hooks": lambda: (docs.HOOKS_SECTION, docs.hook_reference()),
    }.get(what, lambda: (docs.CONFIG_SECTION, docs.config_reference()))()
    if page:
        docs.write_section(Path(page), section, content)
        click.echo(f"updated the {docs.TITLES[section]} in {page}")
    else:
        click.echo(content, nl=False)


from backworks.cli import capture as capture_cli  # noqa: E402  (commands on the capture store)

for _command in capture_cli.COMMANDS:
    cli.add_command(_command)

from backworks.cli import plugins as cli_plugins  # noqa: E402  (plugin developer kit)

for _command in cli_plugins.COMMANDS:
    cli.add_command(_command)


def main():
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
