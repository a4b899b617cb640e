"""The backworks command: check, print-config, reference."""
from __future__ import annotations

import re

from click.testing import CliRunner

from backworks.cli.main import cli
from tests.helpers.basics import ROOT, write_config


def test_check_valid_config_prints_summary_and_exits_0():
    result = CliRunner().invoke(cli, ["check", str(ROOT / "config/backworks.yaml")])
    assert result.exit_code == 0
    assert re.fullmatch(r".*config/backworks\.yaml: OK \(\d+ endpoints, \d+ plugins\)", result.output.strip())


def test_check_invalid_config_lists_every_problem_and_exits_1(tmp_path):
    path = write_config(tmp_path, """
        mode: mok
        endpoints:
          a: {path: a}
    """)
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}:2: mode: unallowed value 'mok' (did you mean 'mock'?)",
        f"{path}:4: endpoints.a.path: value 'a' does not match the expected form (must start with '/')",
        f"{path}: left out of the later checks until their problems above are fixed: endpoints.a",
        f"2 problem(s) in {path}",
    ]


def test_print_config_resolves_defaults_and_masks_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", "s3cret")
    path = write_config(tmp_path, """
        admin: {token: "${SHOP_TOKEN}"}
        endpoints:
          a: {path: /a}
    """)
    result = CliRunner().invoke(cli, ["print-config", str(path)])
    assert result.exit_code == 0
    assert "s3cret" not in result.output
    assert "token: '***'" in result.output
    assert "max_body_bytes: 10485760" in result.output


def test_print_config_json_form(tmp_path):
    path = write_config(tmp_path, "endpoints:\n  a: {path: /a}\n")
    result = CliRunner().invoke(cli, ["print-config", str(path), "--json"])
    assert result.exit_code == 0
    assert '"path": "/a"' in result.output


def test_serve_refuses_broken_config_with_exit_1(tmp_path):
    path = write_config(tmp_path, "endpoints:\n  a: {path: /a, mode: nope}\n")
    result = CliRunner().invoke(cli, ["serve", str(path)])
    assert result.exit_code == 1
    assert "endpoints.a.mode: unallowed value 'nope'" in result.output


def test_reference_prints_the_config_reference_by_default_and_the_cli_or_hook_one_on_request():
    from backworks.config.reference import cli_reference, config_reference, hook_reference

    assert CliRunner().invoke(cli, ["reference"]).output == config_reference()
    assert CliRunner().invoke(cli, ["reference", "--cli"]).output == cli_reference(cli)
    assert CliRunner().invoke(cli, ["reference", "--hooks"]).output == hook_reference()


def test_reference_write_replaces_only_the_generated_section_of_the_page(tmp_path):
    from backworks.config.reference import cli_reference

    page = tmp_path / "cli.md"
    page.write_text("# Command line\n\nhand-written\n\n<!-- section:cli-reference -->\nold\n"
                    "<!-- /section:cli-reference -->\n\nafter\n")
    result = CliRunner().invoke(cli, ["reference", "--cli", "--write", str(page)])
    assert result.exit_code == 0
    assert result.output == f"updated the CLI reference in {page}\n"
    assert page.read_text() == ("# Command line\n\nhand-written\n\n<!-- section:cli-reference -->\n"
                                f"{cli_reference(cli)}<!-- /section:cli-reference -->\n\nafter\n")


def test_reference_write_into_a_page_without_its_section_exits_1_naming_the_markers(tmp_path):
    page = tmp_path / "plugins.md"
    page.write_text("# Plugins\n<!-- section:reference -->\n<!-- /section:reference -->\n")
    result = CliRunner().invoke(cli, ["reference", "--hooks", "--write", str(page)])
    assert result.exit_code == 1
    assert result.output == (f"Error: {page} has no hook reference section: add the lines "
                             "<!-- section:hook-reference --> and <!-- /section:hook-reference --> where it goes "
                             "(the hook reference lives in docs/plugins.md)\n")
    assert page.read_text() == "# Plugins\n<!-- section:reference -->\n<!-- /section:reference -->\n"


def test_reference_write_to_a_missing_page_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["reference", "--write", str(tmp_path / "nope.md")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_nginx_upstreams_prints_or_writes_the_blocks_of_hand_off_targets(tmp_path):
    path = write_config(tmp_path, """
        upstreams:
          api: {targets: [{url: "http://127.0.0.1:9001"}], pool_size: 4}
        endpoints:
          a: {path: /a, mode: proxy, proxy: {upstream: api, nginx_handoff: true}}
    """)
    printed = CliRunner().invoke(cli, ["nginx-upstreams", str(path)])
    assert printed.exit_code == 0, printed.output
    assert "upstream backworks_v4_127_0_0_1_9001 {\n    server 127.0.0.1:9001 max_fails=0;\n    keepalive 4;\n}\n" \
        in printed.output
    target = tmp_path / "nginx-upstreams.conf"
    written = CliRunner().invoke(cli, ["nginx-upstreams", str(path), "--write", str(target)])
    assert written.exit_code == 0, written.output
    assert target.read_text() == printed.output
    digest = printed.output.rsplit('default "', 1)[1].split('"')[0]
    assert written.output == (f"wrote 1 upstream block(s) (digest {digest}) to {target}; now run: "
                              "nginx -t && systemctl reload nginx\n")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_nginx_upstreams_refuses_a_broken_config_with_exit_1(tmp_path):
    path = write_config(tmp_path, "endpoints: {a: {path: /a, mode: mok}}\n")
    result = CliRunner().invoke(cli, ["nginx-upstreams", str(path)])
    assert result.exit_code == 1 and "unallowed value 'mok'" in result.output
