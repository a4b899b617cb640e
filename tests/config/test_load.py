"""Config loading: invalid configs (data files), substitution, overrides, list form, masking."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from backworks.config.load import load_config
from backworks.config.model import masked
from backworks.errors import ConfigError
from backworks.loaded import load_runtime
from tests.helpers.basics import ROOT, write_config

INVALID = sorted((ROOT / "tests/data/configs/invalid").glob("*.yaml"))


def _env_from_header(path: Path) -> dict:
    first = path.read_text().splitlines()[0]
    match = re.match(r"# env: (\w+)=(.*)", first)
    return {match.group(1): match.group(2)} if match else {}


def test_there_are_at_least_twenty_invalid_configs():
    assert len(INVALID) >= 20


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_config_reports_every_expected_problem(path, monkeypatch):
    for name, value in _env_from_header(path).items():
        monkeypatch.setenv(name, value)
    expected = path.with_suffix(".expected").read_text()
    expected = expected.replace("{file}", str(path)).replace("{dir}", str(path.parent)).splitlines()
    with pytest.raises(ConfigError) as info:
        load_runtime(path)
    assert info.value.problems == expected


def test_example_config_is_valid():
    runtime = load_runtime(ROOT / "config/backworks.yaml")
    assert "hello" in runtime.endpoints
    runtime.close()


def test_env_substitution_with_and_without_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_TITLE", "Kettles")
    path = write_config(tmp_path, """
        name: ${SHOP_TITLE}
        version: ${SHOP_VERSION:-2.5}
        endpoints:
          a: {path: /a, mock: {body: "cost $$5"}}
    """)
    config = load_config(path)
    assert config.data["name"] == "Kettles"
    assert config.data["version"] == "2.5"
    assert config.data["endpoints"]["a"]["mock"]["body"] == "cost $5"


def test_env_override_sets_nested_scalar_with_yaml_typing(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKWORKS__SERVER__MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("BACKWORKS__ENDPOINTS__A__MOCK__STATUS", "201")
    path = write_config(tmp_path, "endpoints:\n  a: {path: /a, mock: {status: 200}}\n")
    config = load_config(path)
    assert config.data["server"]["max_body_bytes"] == 2048
    assert config.data["endpoints"]["a"]["mock"]["status"] == 201


def test_list_form_equals_map_form(tmp_path):
    listed = load_config(write_config(tmp_path, """
        endpoints:
          - {name: hello, path: "/hello/:name", mock: {json: {a: 1}}}
          - {path: "/users/{id}"}
    """, "list.yaml"))
    names = [spec.name for spec in listed.endpoints]
    assert names == ["hello", "users"]
    assert listed.endpoints[0].block == {"json": {"a": 1}, "status": 200, "headers": {}, "sequence_end": "cycle"}


def test_methods_default_to_mode_defaults(tmp_path):
    config = load_config(write_config(tmp_path, "endpoints:\n  a: {path: /a}\n"))
    assert config.endpoints[0].methods == ("GET",)
    assert config.endpoints[0].mode == "mock"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.problems == [f"{tmp_path / 'nope.yaml'}: cannot read config file: No such file or directory"]


def test_empty_file_is_a_valid_config_with_no_endpoints(tmp_path):
    config = load_config(write_config(tmp_path, ""))
    assert config.endpoints == []
    assert config.data["server"]["max_body_bytes"] == 10 * 1024 * 1024


def test_masked_hides_secrets_and_url_passwords():
    data = {"admin": {"token": "abc"}, "database": {"url": "postgresql://bob:hunter2@db/x"},
            "plugins": {"k": {"config": {"api_keys": ["1"], "limit": 5}}}}
    assert masked(data) == {"admin": {"token": "***"}, "database": {"url": "postgresql://bob:***@db/x"},
                            "plugins": {"k": {"config": {"api_keys": "***", "limit": 5}}}}


def test_upstream_blocks_come_from_the_modes_that_name_an_upstream():
    from backworks.config.load import upstream_blocks

    every_block = {name: {} for name in ("mock", "proxy", "capture", "replay", "hybrid", "runtime", "database")}
    assert upstream_blocks(every_block) == ("proxy", "capture", "hybrid")
    assert upstream_blocks({"mock": {}}) == ()
