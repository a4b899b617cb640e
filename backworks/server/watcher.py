"""The file watcher: poll the config and the files it names, reload the app when one changes."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.25


def watch(ref) -> None:
    """Poll the watched files of a Backworks app until the app itself is gone."""
    while True:
        time.sleep(WATCH_INTERVAL_S)
        backworks = ref()
        if backworks is None:
            return
        try:
            backworks.check_files()
            backworks.close_retired()
        except Exception:
            logger.exception("file watcher failed; it keeps watching")
        del backworks


def watched_mtimes(runtime) -> dict:
    """Return {path: mtime} for the config file and every file it names (scripts, mock files)."""
    config = runtime.config
    paths = {Path(config.path)}
    for value in _named_files(config.data):
        paths.add(config.resolve(value))
    return file_stats(str(path) for path in paths)


def _named_files(data):
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("script", "file") and isinstance(value, str):
                yield value
            else:
                yield from _named_files(value)
    elif isinstance(data, list):
        for item in data:
            yield from _named_files(item)


def file_stats(paths) -> dict[str, tuple | None]:
    """{path: (mtime_ns, size)} for each path (None when it cannot be read)."""
    stats = {}
    for name in paths:
        try:
            stat = os.stat(name)
            stats[name] = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stats[name] = None
    return stats
