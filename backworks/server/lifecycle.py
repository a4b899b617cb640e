"""Process lifecycle under gunicorn: HUP only with a valid config, and the last good config for new workers.

A gunicorn worker that cannot load its app fails to boot, and gunicorn then stops altogether. So the
master validates the config (and compiles its scripts) at start, at every HUP and before every fork:
- a HUP while the config or a script is broken is refused; the running workers keep serving;
- the master remembers the config and the files it names (scripts, mock files) as they were when they
  last loaded cleanly, and workers inherit that memory through fork(). A worker (re)spawned while the
  files are broken serves the remembered versions instead, says so loudly in the log, the dashboard and
  /readyz, and its file watcher applies the fix as soon as it lands;
- a worker in which even the remembered files fail to load (a script that fails only later, only
  sometimes, or only in a sandbox child) boots with those scripts disabled: their plugins fail as their
  on_error says, their runtime endpoints answer 500. A worker never fails to boot because of a script.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

from backworks.config.load import load_config
from backworks.config.model import DEFAULT_CONFIG
from backworks.errors import ConfigError
from backworks.loaded import Runtime, load_runtime
from backworks.modes.base import DISABLE_FAILED_SCRIPTS
from backworks.server.watcher import file_stats, watched_mtimes

logger = logging.getLogger(__name__)

_last_good: dict[str, dict] = {}  # resolved config path -> {file: bytes} that last loaded cleanly
_checked: dict[str, dict] = {}  # resolved config path -> {file: (mtime_ns, size)} last validated


def config_path(path=None) -> Path:
    """The config file a worker will load: `path`, else BACKWORKS_CONFIG, else the default."""
    return Path(path or os.environ.get("BACKWORKS_CONFIG") or DEFAULT_CONFIG).resolve()


def last_good(path=None) -> dict[str, bytes] | None:
    """Return {path: content} of the last config (and the files it names) that loaded cleanly, if any."""
    return _last_good.get(str(config_path(path)))


def validate(path=None) -> list[str]:
    """Load the config and compile its scripts without serving; remember its files when it is good."""
    resolved = config_path(path)
    try:
        stat = resolved.stat()
        text = resolved.read_text(encoding="utf-8")
    except OSError as exc:
        return [f"{resolved}: cannot read config file: {exc.strerror or exc}"]
    _checked[str(resolved)] = {str(resolved): (stat.st_mtime_ns, stat.st_size)}
    try:
        runtime = Runtime(load_config(resolved, text=text), {"check_only": True})
    except ConfigError as exc:
        return list(exc.problems)
    except Exception as exc:
        return [f"{resolved}: {type(exc).__name__}: {exc}"]
    try:
        files = named_file_contents(runtime)
    finally:
        runtime.close()
    _checked[str(resolved)].update(file_stats(files))
    files[str(resolved)] = text.encode("utf-8")
    _last_good[str(resolved)] = files
    return []


def named_file_contents(runtime) -> dict[str, bytes]:
    """{path: bytes} of every file the config names (scripts, mock files) that exists."""
    contents = {}
    for name in watched_mtimes(runtime):
        try:
            contents[name] = Path(name).read_bytes()
        except OSError:
            continue
    return contents


def validate_if_changed(path=None) -> list[str]:
    """Validate again only when the config file or a file it names changed since the last validation."""
    resolved = config_path(path)
    seen = _checked.get(str(resolved))
    if seen is not None and file_stats(seen) == seen:
        return []
    return validate(path)


def load_or_fallback(path=None, overrides=None, options=None):
    """Load the runtime from disk; when that fails, from the last good files. Return (runtime, error)."""
    try:
        return load_runtime(path, overrides, options), None
    except Exception as exc:  # a ConfigError, or anything a script made the load raise: never a boot failure
        files = last_good(path)
        if files is None:
            raise
        error = _problems(exc)
    logger.error("config %s is broken; this worker serves the last good version instead:\n%s",
                 config_path(path), error)
    try:
        return load_remembered(config_path(path), overrides, options, files), error
    except Exception as exc:
        error = _problems(exc)
    # The files passed the master's check, yet a script fails to load here: it behaves differently in this
    # worker (the time, randomness, quarantine to a sandbox child). Refusing to boot would stop gunicorn
    # altogether; serve with the failing scripts disabled instead (each says so in the log).
    logger.error("config %s: the last good version fails to load in this worker too; it serves with the "
                 "failing scripts disabled:\n%s", config_path(path), error)
    lenient = {**(options or {}), DISABLE_FAILED_SCRIPTS: True}
    return load_remembered(config_path(path), overrides, lenient, files), error


def _problems(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"


def load_remembered(path: Path, overrides, options, files: dict[str, bytes]):
    """Build a runtime from remembered files: the config text, and copies of the scripts it names."""
    config = load_config(path, overrides, text=files[str(path)].decode("utf-8"))
    copies = _private_copies(files)
    real_resolve = config.resolve
    config.resolve = lambda relative: copies.get(str(real_resolve(relative)), real_resolve(relative))
    try:
        return Runtime(config, options)
    finally:
        del config.resolve  # from now on the file watcher looks at the real files, and sees the fix


def _private_copies(files: dict[str, bytes]) -> dict[str, Path]:
    directory = Path(tempfile.mkdtemp(prefix="backworks-last-good-"))
    atexit.register(shutil.rmtree, directory, True)
    copies = {}
    for index, (original, content) in enumerate(sorted(files.items())):
        copy = directory / str(index) / Path(original).name
        copy.parent.mkdir()
        copy.write_bytes(content)
        copies[original] = copy
    return copies


def guard_reload(arbiter) -> None:
    """Make a gunicorn HUP validate first: a broken config or script is refused, the workers keep serving."""
    reload = arbiter.reload

    def guarded_reload():
        problems = validate()
        if problems:
            arbiter.log.error("HUP refused: config %s is broken; the running workers keep serving the last "
                              "good config:\n%s", config_path(), "\n".join(problems))
            return
        arbiter.log.info("HUP: config %s is valid; replacing the workers", config_path())
        reload()

    arbiter.reload = guarded_reload


def reset_metrics_dir(directory: Path) -> None:
    """Create the multiprocess directory, emptied of a previous run's files."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    logger.info("Prometheus multiprocess directory: %s", directory)
