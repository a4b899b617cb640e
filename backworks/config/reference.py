"""Generated docs/ sections: config reference (schema), CLI reference (click), hook reference (contract)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import click

from backworks.config.fields import reference_rows
from backworks.config.schema import config_schema
from backworks.plugins import contract as hooks

# Which generated section lives in which page, between `<!-- section:NAME -->` and `<!-- /section:NAME -->`.
CONFIG_SECTION = "reference"
CLI_SECTION = "cli-reference"
HOOKS_SECTION = "hook-reference"
PAGES = {CONFIG_SECTION: "docs/reference/config.md", CLI_SECTION: "docs/reference/cli.md",
         HOOKS_SECTION: "docs/plugins.md"}
TITLES = {CONFIG_SECTION: "config reference", CLI_SECTION: "CLI reference", HOOKS_SECTION: "hook reference"}


def config_reference() -> str:
    """Render every config field (path, type, default, help) as a Markdown table."""
    lines = [
        f"Generated from the schema (`backworks reference --write {PAGES[CONFIG_SECTION]}`); a test fails when it"
        " is stale.",
        "`<name>` stands for a name you choose, `[]` for each item of a list.",
        "",
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for path, type_, default, help_text in reference_rows(config_schema()):
        shown_default = "" if default in ("", {}) else f"`{_inline(default)}`"
        lines.append(f"| `{path}` | {_cell(type_)} | {shown_default} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


def cli_reference(group: click.Group) -> str:
    """Render every command of the click group (subcommands too) with its usage, help and options."""
    lines = [
        f"Generated from the commands (`backworks reference --cli --write {PAGES[CLI_SECTION]}`); a test fails"
        " when it is stale. Every command also takes `-h`/`--help`.",
    ]
    root = click.Context(group, info_name="backworks", **group.context_settings)
    for ctx in (root, *_contexts(root)):
        lines += _command_lines(ctx)
    return "\n".join(lines) + "\n"


def _contexts(ctx: click.Context):
    """Yield the context of every command under ctx (not ctx itself), depth first, by name."""
    command = ctx.command
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        child = click.Context(sub, info_name=name, parent=ctx)
        yield child
        yield from _contexts(child)


def _command_lines(ctx: click.Context) -> list[str]:
    command = ctx.command
    lines = ["", f"### `{ctx.command_path}`", "", "```", command.get_usage(ctx), "```", ""]
    if command.help:
        lines += [inspect.cleandoc(command.help), ""]
    if command.epilog:
        lines += [inspect.cleandoc(command.epilog), ""]
    help_option = command.get_help_option(ctx)
    rows = [_param_row(ctx, param) for param in command.get_params(ctx) if param is not help_option]
    if rows:
        lines += ["| argument or option | meaning |", "|---|---|", *rows]
    return lines


def _param_row(ctx: click.Context, param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        if param.required:
            return f"| `{param.human_readable_name}` | argument, required |"
        default = param.get_default(ctx)
        shown = f" (default: `{default}`)" if isinstance(default, (str, int, float)) else ""
        return f"| `{param.human_readable_name}` | argument, optional{shown} |"
    names, help_text = param.get_help_record(ctx) or (param.name, "")
    return f"| `{_cell(names)}` | {_cell(help_text)} |"


def hook_reference() -> str:
    """Render the plugin contract (backworks/plugins/contract.py): every hook's signature and docstring."""
    lines = [
        "Generated from `backworks/plugins/contract.py` (`backworks reference --hooks --write "
        f"{PAGES[HOOKS_SECTION]}`); a test fails when it is stale.",
        "",
        inspect.cleandoc(hooks.__doc__ or ""),
    ]
    for name in hooks.HOOKS:
        function = getattr(hooks, name)
        lines += ["", f"**`{_signature(function)}`**", "", inspect.getdoc(function) or ""]
    return "\n".join(lines) + "\n"


def _signature(function) -> str:
    # The annotations are strings (postponed evaluation): show them as written in the contract.
    notes = function.__annotations__
    params = ", ".join(f"{name}: {notes[name]}" if name in notes else name
                       for name in inspect.signature(function).parameters)
    return f"{function.__name__}({params}) -> {notes.get('return', 'None')}"


def _inline(value) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return str(value).lower()
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- section:{name} -->", f"<!-- /section:{name} -->"


def page_section(text: str, name: str) -> str | None:
    """Return the text between the `name` markers of a page (None when the page has no such section)."""
    start, end = _markers(name)
    match = re.search(re.escape(start) + r"\n(.*?)" + re.escape(end), text, re.S)
    return match.group(1) if match else None


def write_section(page: Path, name: str, content: str) -> None:
    """Replace the `name` section of a page with content; a page without the markers is an error."""
    text = page.read_text()
    start, end = _markers(name)
    if page_section(text, name) is None:
        raise click.ClickException(f"{page} has no {TITLES[name]} section: add the lines {start} and {end} "
                                   f"where it goes (the {TITLES[name]} lives in {PAGES[name]})")
    updated = re.sub(re.escape(start) + r".*?" + re.escape(end),
                     lambda _: f"{start}\n{content}{end}", text, flags=re.S)
    page.write_text(updated)
