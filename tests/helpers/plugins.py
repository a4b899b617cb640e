"""Build apps with plugin scripts for tests: scripts and config written into a temporary folder."""
from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from backworks.app import create_app

ECHO = {
    "path": "/echo",
    "methods": ["GET", "POST"],
    "mock": {"status": 200, "json": {"tag": "{{ headers.get('x-tag', 'none') }}", "body": "{{ body }}"}},
}


def write_plugins(tmp_path: Path, scripts: dict, plugins: dict, endpoints: dict | None = None,
                  extra: dict | None = None) -> Path:
    """Write scripts (name -> source) and a config using them; return the config path."""
    for name, source in scripts.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    for name, settings in plugins.items():
        settings.setdefault("script", f"{name}.py")
    data = {"name": "plugins-test", "server": {"watch": False, "access_log": False},
            "plugins": plugins, "endpoints": endpoints or {"echo": ECHO}, **(extra or {})}
    path = tmp_path / "backworks.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def plugin_app(tmp_path: Path, scripts: dict, plugins: dict, endpoints: dict | None = None,
               extra: dict | None = None):
    """Return (app, test client) for a config with these plugins."""
    app = create_app(write_plugins(tmp_path, scripts, plugins, endpoints, extra))
    return app, app.test_client()


def plugin_set(app):
    """The PluginSet of the app's live runtime."""
    return app.extensions["backworks"].runtime.plugins


def plugin_status(app, name: str) -> dict:
    """The status entry of one plugin."""
    return next(item for item in plugin_set(app).status() if item["name"] == name)
