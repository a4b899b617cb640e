"""The typed settings of a load: one frozen attribute per schema field, built once when the config loads."""
from __future__ import annotations

import dataclasses

import pytest

from backworks.config.load import load_config
from backworks.config.model import AdminSettings, ServerSettings
from backworks.config.schema import ADMIN, SERVER
from tests.helpers.basics import write_config


@pytest.mark.parametrize(("settings", "section"), [(ServerSettings, SERVER), (AdminSettings, ADMIN)])
def test_every_field_of_a_section_has_its_typed_attribute(settings, section):
    assert sorted(f.name for f in dataclasses.fields(settings)) == sorted(section["schema"])


def test_a_load_builds_its_settings_from_the_validated_sections(tmp_path):
    config = load_config(write_config(tmp_path, """
        server: {max_body_bytes: 2048, access_log: false, trusted_proxies: [10.0.0.1]}
        admin: {token: s3cret, path: /ops}
        endpoints:
          hello: {path: /hello, mock: {body: hi}}
    """))
    assert config.server == ServerSettings(max_body_bytes=2048, max_header_count=100, trusted_proxies=("10.0.0.1",),
                                           access_log=False, log_json=False, request_id_header="X-Request-Id",
                                           watch=True, inline_hard_margin_ms=300)
    assert config.admin == AdminSettings(path="/ops", token="s3cret", recent_requests=200)


def test_settings_cannot_change_after_the_load(tmp_path):
    config = load_config(write_config(tmp_path, "endpoints:\n  hello: {path: /hello, mock: {body: hi}}\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.access_log = False
    assert not hasattr(config.admin, "__dict__")  # slots: no stray attribute either
