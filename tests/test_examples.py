"""Every app under examples/ is complete, valid and listed in the README's examples table."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from backworks.cli.main import cli
from tests.helpers.basics import ROOT

EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")))


def readme_examples() -> dict:
    """Example name -> what the README's examples table says it shows."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Examples", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2).strip() for m in
            re.finditer(r"^\| \[`([\w-]+)`\]\(examples/[\w-]+/README\.md\) \| (.+) \|$", section, re.M)}


def test_readme_lists_every_example_with_what_it_shows():
    listed = readme_examples()
    assert sorted(listed) == EXAMPLES
    assert all(len(line) > 20 for line in listed.values())


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_has_readme_config_tests_and_passes_check(name, tmp_path, monkeypatch):
    folder = ROOT / "examples" / name
    assert (folder / "README.md").exists() and list(folder.glob("test_*.py"))
    readme = (folder / "README.md").read_text()
    assert f"examples/{name}/backworks.yaml" in readme or f"examples/{name}/run.sh" in readme
    monkeypatch.chdir(tmp_path)  # a relative SQLite path would point here (check creates no file anyway)
    result = CliRunner().invoke(cli, ["check", str(folder / "backworks.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{folder / 'backworks.yaml'}: OK (")
    assert list(tmp_path.iterdir()) == []
