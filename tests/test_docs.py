"""Meta-tests: the README stays short, docs/ builds cleanly, and the generated references match the code."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import click
import yaml

from backworks.cli.main import cli
from backworks.config.fields import walk_fields
from backworks.config.reference import (
    CLI_SECTION,
    CONFIG_SECTION,
    HOOKS_SECTION,
    cli_reference,
    config_reference,
    hook_reference,
    page_section,
)
from backworks.config.schema import config_schema
from backworks.modes import MODES
from backworks.plugins import contract as hooks
from tests.helpers.basics import ROOT, write_config

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
CONFIG_PAGE = (DOCS / "reference/config.md").read_text()
CLI_PAGE = (DOCS / "reference/cli.md").read_text()
PLUGINS_PAGE = (DOCS / "plugins.md").read_text()


def nav_pages(nav) -> list[str]:
    """Every page file named in an mkdocs.yml nav, nested sections included."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return [page for item in nav for page in nav_pages(item)]


NAV = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])


def test_every_config_field_has_help_text():
    missing = [path for path, rules in walk_fields(config_schema()) if not rules.get("meta", {}).get("help")]
    assert missing == []


def test_config_reference_page_is_generated_from_the_current_schema():
    assert page_section(CONFIG_PAGE, CONFIG_SECTION) == config_reference(), (
        "docs/reference/config.md is stale: run `backworks reference --write docs/reference/config.md`")


def test_every_config_field_is_named_in_the_config_reference_page():
    missing = [path for path, _ in walk_fields(config_schema()) if f"`{path}`" not in CONFIG_PAGE]
    assert missing == []


def test_cli_reference_page_is_generated_from_the_current_commands():
    assert page_section(CLI_PAGE, CLI_SECTION) == cli_reference(cli), (
        "docs/reference/cli.md is stale: run `backworks reference --cli --write docs/reference/cli.md`")


def test_cli_reference_names_every_command_and_option():
    reference = cli_reference(cli)
    missing, stack = [], [click.Context(cli, info_name="backworks")]
    while stack:
        ctx = stack.pop()
        if f"### `{ctx.command_path}`" not in reference:
            missing.append(ctx.command_path)
        for param in ctx.command.params:
            shown = param.human_readable_name if isinstance(param, click.Argument) else param.opts[-1]
            if f"`{shown}" not in reference.split(f"### `{ctx.command_path}`", 1)[-1]:
                missing.append(f"{ctx.command_path} {shown}")
        if isinstance(ctx.command, click.Group):
            stack += [click.Context(ctx.command.commands[name], info_name=name, parent=ctx)
                      for name in ctx.command.commands]
    assert missing == []
    assert "### `backworks capture export`" in reference and "`--har FILE`" in reference


def test_hook_reference_in_the_plugins_page_is_generated_from_the_hook_contract():
    assert page_section(PLUGINS_PAGE, HOOKS_SECTION) == hook_reference(), (
        "docs/plugins.md hook reference is stale: run `backworks reference --hooks --write docs/plugins.md`")
    reference = hook_reference()
    assert "**`after_response(request: dict, response: dict) -> dict | None`**" in reference
    assert all(hooks.HOOKS.count(name) == 1 and f"**`{name}(" in reference for name in hooks.HOOKS)


def test_every_mode_has_a_docs_page_in_the_nav():
    missing = [name for name in MODES
               if f"modes/{name}.md" not in NAV
               or not (DOCS / f"modes/{name}.md").read_text().startswith(f"# `{name}` mode\n")]
    assert missing == []


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    assert "bash scripts/run.sh" in README
    assert "bash scripts/test.sh" in README
    ci = (ROOT / ".ci/run").read_text()
    assert "\nbash scripts/test.sh\n" in ci


def test_readme_is_at_most_200_lines_and_links_every_docs_page():
    assert len(README.splitlines()) <= 200
    unlinked = [page for page in NAV if page != "index.md" and f"](docs/{page})" not in README]
    assert unlinked == []


def mkdocs_build(config, site):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, timeout=120)


def test_docs_build_with_mkdocs_strict_has_no_warnings(tmp_path):
    result = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    assert (tmp_path / "site/modes/database/index.html").exists()


def test_docs_build_strict_fails_on_a_broken_anchor_or_a_page_missing_from_the_nav(tmp_path):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs/modes/mock.md"
    page.write_text(page.read_text() + "\nSee [budgets](../sandbox.md#no-such-heading).\n")
    (tmp_path / "docs/stray.md").write_text("# Stray\n")
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 1
    assert "does not contain an anchor '#no-such-heading'" in result.stderr
    assert "not included in the \"nav\" configuration" in result.stderr and "stray.md" in result.stderr


def cited_text(source) -> str:
    """The text of a source file that cites files: a whole backworks/ module, a test's docstring and comments."""
    text = source.read_text()
    if source.is_relative_to(ROOT / "backworks"):
        return text
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    docstring = re.match(r'\s*("""|\'\'\')(.*?)\1', text, re.S)  # not ast: some tests hold code ast refuses
    return "\n".join([docstring.group(2) if docstring else "", *comments])


def test_markdown_files_cited_in_code_and_tests_exist_in_the_repository():
    cited = []
    for source in [*ROOT.glob("backworks/**/*.py"), *ROOT.glob("tests/**/*.py")]:
        for name in re.findall(r"(?<![\w./<>-])([\w./-]+\.md)\b", cited_text(source)):
            if not any((base / name).exists() for base in (ROOT, DOCS, source.parent)):
                cited.append(f"{source.relative_to(ROOT)}: {name}")
    assert cited == []


def test_config_errors_point_at_docs_pages_that_exist(tmp_path):
    from click.testing import CliRunner

    config = write_config(tmp_path, """\
        endpoints:
          a: {path: /a, mode: proxy}
          b:
            path: /b
            mode: database
            database: {table: things, fields: {"bad name": {type: string}}}
        """)
    result = CliRunner().invoke(cli, ["check", str(config)])
    assert f"{config}:2: endpoints.a: mode 'proxy' needs a 'proxy:' block (see docs/modes/proxy.md)" in result.output
    assert (f"{config}:6: endpoints.b.database.fields.bad name: value 'bad name' does not match the expected form "
            "(see the config reference: docs/reference/config.md)") in result.output
    assert (DOCS / "modes/proxy.md").exists() and (DOCS / "reference/config.md").exists()
