"""Start-up and memory: a config imports only the libraries it uses; the master shares what it loaded."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cerberus
import pytest
from cerberus.schema import DefinitionSchema

from backworks.config.schema import config_schema
from backworks.modes import MODES, REGISTRY, block_schema
from tests.helpers.basics import ROOT, write_config

HEAVY = ("sqlalchemy", "psycopg", "urllib3", "requests", "redis", "RestrictedPython", "re2", "jinja2.sandbox",
         "backworks.sandbox")
# What a gunicorn master (validation) and then its worker (the app) import, in a fresh interpreter.
MASTER_THEN_WORKER = textwrap.dedent("""
    import json, sys
    from backworks import create_app
    from backworks.server import lifecycle
    problems = lifecycle.validate(sys.argv[1])
    create_app(sys.argv[1])
    print(json.dumps({"problems": problems, "loaded": [m for m in sys.argv[2:] if m in sys.modules]}))
""")


def loaded_heavy(config) -> list:
    """The heavy libraries a fresh process has imported after validating and serving `config`."""
    out = subprocess.run([sys.executable, "-c", MASTER_THEN_WORKER, str(config), *HEAVY], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    assert result["problems"] == []
    return result["loaded"]


def test_a_mock_only_config_imports_no_database_proxy_template_or_sandbox_library(tmp_path):
    config = write_config(tmp_path, """
        endpoints:
          items: {path: /items, mock: {json: [{id: 1}]}}
    """)
    assert loaded_heavy(config) == []


def test_a_proxy_config_imports_urllib3_and_no_sqlalchemy(tmp_path):
    config = write_config(tmp_path, """
        upstreams: {api: {targets: [{url: "http://127.0.0.1:9"}]}}
        endpoints:
          api: {path: "/api/{rest:path}", mode: proxy, proxy: {upstream: api}}
    """)
    assert loaded_heavy(config) == ["urllib3"]


def test_a_database_endpoint_imports_sqlalchemy(tmp_path):
    config = write_config(tmp_path, """
        database: {url: "sqlite:///shop.db"}
        endpoints:
          orders: {path: /orders, mode: database, database: {table: orders, fields: {item: {type: string}}}}
    """)
    assert "sqlalchemy" in loaded_heavy(config)


def test_a_mock_template_imports_jinja2s_sandbox(tmp_path):
    config = write_config(tmp_path, """
        endpoints:
          hello: {path: "/hello/{name}", mock: {json: {greeting: "hi {{ path.name }}"}}}
    """)
    assert loaded_heavy(config) == ["jinja2.sandbox"]


def test_modes_map_every_registered_name_to_its_class():
    assert list(MODES) == list(REGISTRY)
    for name in MODES:
        assert name in MODES
        assert MODES[name].__module__ == f"backworks.modes.{name}"
        assert MODES[name].__name__ == REGISTRY[name][1]
    assert "nope" not in MODES
    with pytest.raises(KeyError):
        MODES["nope"]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_block_schema_of_a_mode_is_its_class_summary_and_schema(name):
    mode = MODES[name]
    assert block_schema(name) == (mode.__doc__.strip().splitlines()[0], mode.schema)


def test_the_trusted_config_schema_passes_cerberus_own_check_and_needs_no_expansion():
    cerberus.Validator(config_schema())  # raises SchemaError on a broken schema
    assert DefinitionSchema.expand(config_schema()) == config_schema()


def test_the_proxy_skip_marker_is_urllib3s():
    from urllib3.util import SKIP_HEADER

    from backworks.modes.proxy import SKIP_HEADER as ours

    assert ours == SKIP_HEADER


PRE_FORK = textwrap.dedent("""
    import gc, sys, weakref
    from backworks.server import lifecycle
    from backworks.server import gunicorn_hooks

    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage
    gone = weakref.ref(garbage)
    del garbage
    kept = [Cycle()]
    gc.disable()  # only the hook may collect
    lifecycle.validate_if_changed = lambda: []
    gunicorn_hooks.pre_fork(server=None, worker=None)
    print(gone() is None, gc.get_freeze_count() > len(kept), "backworks.app" in sys.modules)
""")


def test_pre_fork_loads_the_app_modules_collects_the_masters_garbage_then_freezes_the_rest():
    out = subprocess.run([sys.executable, "-c", PRE_FORK], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]
