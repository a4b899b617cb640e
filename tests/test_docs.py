"""Meta-tests: every config field has help text and appears in the README's generated reference."""
from __future__ import annotations

from backworks.config import config_schema
from backworks.docs import config_reference, readme_section
from backworks.modes import MODES
from backworks.schema import walk_fields
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_config_field_has_help_text():
    missing = [path for path, rules in walk_fields(config_schema()) if not rules.get("meta", {}).get("help")]
    assert missing == []


def test_readme_reference_is_generated_from_the_current_schema():
    assert readme_section(README) == config_reference(), (
        "README config reference is stale: run `backworks reference --write README.md`")


def test_every_config_field_is_named_in_the_readme():
    missing = [path for path, _ in walk_fields(config_schema()) if f"`{path}`" not in README]
    assert missing == []


def test_every_mode_has_a_readme_section():
    missing = [name for name in MODES if f"### `{name}` mode" not in README]
    assert missing == []


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    assert "bash scripts/run.sh" in README
    assert "bash scripts/test.sh" in README
    ci = (ROOT / ".ci/run").read_text()
    assert "\nbash scripts/test.sh\n" in ci
