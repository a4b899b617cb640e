"""The config reference in the README, generated from the schema's help text."""
from __future__ import annotations

import re
from pathlib import Path

from backworks.config import config_schema
from backworks.schema import reference_rows

START = "<!-- section:reference -->"
END = "<!-- /section:reference -->"


def config_reference() -> str:
    """Render every config field (path, type, default, help) as a Markdown table."""
    lines = [
        "## Config reference",
        "",
        "Generated from the schema (`backworks reference --write README.md`); a test fails when it is stale.",
        "`<name>` stands for a name you choose, `[]` for each item of a list.",
        "",
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for path, type_, default, help_text in reference_rows(config_schema()):
        shown_default = "" if default in ("", {}) else f"`{_inline(default)}`"
        lines.append(f"| `{path}` | {_cell(type_)} | {shown_default} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


def _inline(value) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return str(value).lower()
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def readme_section(readme_text: str) -> str:
    """Return the text between the reference markers of a README."""
    match = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), readme_text, re.S)
    return match.group(1) if match else ""


def write_reference(readme: Path) -> None:
    """Replace the README's reference section with a freshly generated one."""
    text = readme.read_text()
    updated = re.sub(re.escape(START) + r".*?" + re.escape(END),
                     lambda _: f"{START}\n{config_reference()}{END}", text, flags=re.S)
    readme.write_text(updated)
