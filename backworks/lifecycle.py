"""Process lifecycle under gunicorn: the last good config, kept by the master for the workers it forks.

`kill -HUP` makes gunicorn fork new workers that load the config from disk. When that file is broken,
a worker that cannot load it would fail to boot and gunicorn would stop altogether. So the master
validates the config (and compiles its scripts) at start, at every HUP and before every fork, and
remembers the text of the last version that loaded cleanly. Workers inherit that memory through
fork(); a worker that finds the file broken serves the remembered text instead, says so loudly in
the log, the dashboard and /readyz, and its file watcher picks up the fix as soon as it lands.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from backworks.config import DEFAULT_CONFIG, load_config
from backworks.errors import ConfigError

logger = logging.getLogger(__name__)

_last_good: dict[str, str] = {}  # resolved config path -> text that last loaded cleanly
_checked: dict[str, tuple] = {}  # resolved config path -> (mtime_ns, size) last validated


def config_path(path=None) -> Path:
    """The config file a worker will load: `path`, else BACKWORKS_CONFIG, else the default."""
    return Path(path or os.environ.get("BACKWORKS_CONFIG") or DEFAULT_CONFIG).resolve()


def last_good(path=None) -> str | None:
    """Return the remembered text of the last config that loaded cleanly, if any."""
    return _last_good.get(str(config_path(path)))


def validate(path=None) -> list[str]:
    """Load the config and compile its scripts without serving; remember its text when it is good."""
    from backworks.runtime import Runtime

    resolved = config_path(path)
    try:
        stat = resolved.stat()
        text = resolved.read_text(encoding="utf-8")
    except OSError as exc:
        return [f"{resolved}: cannot read config file: {exc.strerror or exc}"]
    _checked[str(resolved)] = (stat.st_mtime_ns, stat.st_size)
    try:
        Runtime(load_config(resolved, text=text), {"check_only": True}).close()
    except ConfigError as exc:
        return list(exc.problems)
    except Exception as exc:
        return [f"{resolved}: {type(exc).__name__}: {exc}"]
    _last_good[str(resolved)] = text
    return []


def validate_if_changed(path=None) -> list[str]:
    """Validate again only when the config file changed since the last validation."""
    resolved = config_path(path)
    try:
        stat = resolved.stat()
    except OSError:
        return validate(path)
    if _checked.get(str(resolved)) == (stat.st_mtime_ns, stat.st_size):
        return []
    return validate(path)


def load_or_fallback(path=None, overrides=None, options=None):
    """Load the runtime from disk; when that fails, from the last good text. Return (runtime, error)."""
    from backworks.runtime import Runtime, load_runtime

    try:
        return load_runtime(path, overrides, options), None
    except ConfigError as exc:
        text = last_good(path)
        if text is None:
            raise
        logger.error("config %s is broken; this worker serves the last good version instead:\n%s",
                     config_path(path), exc)
        return Runtime(load_config(path, overrides, text=text), options), str(exc)


def reset_metrics_dir(directory: Path) -> None:
    """Create the multiprocess directory, emptied of a previous run's files."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    logger.info("Prometheus multiprocess directory: %s", directory)
