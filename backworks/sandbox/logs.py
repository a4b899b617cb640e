"""`log` inside scripts, and every other log record a script can cause, bounded.

- a call keeps at most MAX_LOG_LINES lines and MAX_LOG_CALL_BYTES bytes; then one line says how many more
  were suppressed;
- the server log takes at most MAX_LOG_BYTES_PER_MINUTE bytes a minute from one script (its lines, its
  failures, its warnings); past that, one line says the limit was reached and, once the minute is over,
  another how many lines were suppressed;
- Python warnings raised while a script runs (`hmac.new` with a fake digest...) become lines of its `log`
  instead of going to stderr, and leave nothing in the warnings registries.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings

from backworks.logtext import log_safe
from backworks.sandbox import guards, limits, rules

logger = logging.getLogger("backworks.plugin")

_WARNING = logging.WARNING


class ScriptLog:
    """log.debug/info/warning/error(message, *args) for scripts: bounded per call (lines and bytes)."""

    __slots__ = ("_lines", "_name", "_bytes", "_suppressed")

    def __init__(self, name: str):
        self._lines: list[str] = []  # private: scripts reach only the methods
        self._name = name  # the script's file name, without folders
        self._bytes = 0
        self._suppressed = 0

    def _write(self, level: int, message, args) -> None:
        if self._suppressed:
            self._suppressed += 1
            self._lines[-1] = _call_summary(self._suppressed)
            return
        if len(self._lines) >= rules.MAX_LOG_LINES:
            return self._suppress()
        text = message[:rules.MAX_LOG_LINE] if type(message) is str else log_text(message)
        if args:
            args = tuple(_argument(a) for a in args)
            try:
                extra = (log_text(a, 80) for a in args)
                text = guards.guarded_mod(text, args) if "%" in text else " ".join([text, *extra])
            except (TypeError, ValueError, MemoryError):
                text = " ".join([text, *(log_text(a, 80) for a in args)])
        text = text[:rules.MAX_LOG_LINE]
        line = f"{logging.getLevelName(level)} {text}"
        if self._bytes + len(line) > rules.MAX_LOG_CALL_BYTES:
            return self._suppress()
        self._bytes += len(line)
        self._lines.append(line)
        emit(self._name, level, text)

    def _suppress(self) -> None:
        self._suppressed = 1
        self._lines.append(_call_summary(1))
        emit(self._name, _WARNING, _call_summary(0)[8:])

    def debug(self, message, *args) -> None:
        """Log a debug line."""
        self._write(logging.DEBUG, message, args)

    def info(self, message, *args) -> None:
        """Log an info line."""
        self._write(logging.INFO, message, args)

    def warning(self, message, *args) -> None:
        """Log a warning line."""
        self._write(logging.WARNING, message, args)

    def error(self, message, *args) -> None:
        """Log an error line."""
        self._write(logging.ERROR, message, args)


_NUMBERS = (int, float, bool, type(None))


def _argument(value):
    """A `%` argument as the log line needs it: numbers as they are (for %d), text cut, anything else shown."""
    kind = type(value)
    if kind is str:
        return value[:rules.MAX_LOG_LINE]
    if kind in _NUMBERS and (kind is not int or value.bit_length() <= 256):
        return value
    return log_text(value)


def log_text(value, room: int = rules.MAX_LOG_LINE) -> str:
    """Text of a logged value in O(room) host work: containers item by item until `room` characters are used.

    Never str() or repr() of a script's container: a 64-level shared `a = [a, a]` is 2**64 items to them.
    """
    parts: list[str] = []
    _show(value, parts, [room], 0)
    return "".join(parts)[:room]


_BRACKETS = {list: "[]", tuple: "()", set: "{}", frozenset: "{}", dict: "{}"}
MAX_SHOWN_DEPTH = 8


def _show(value, parts: list, room: list, depth: int) -> None:
    kind = type(value)
    brackets = _BRACKETS.get(kind) or ("{}" if isinstance(value, dict) else None)
    if brackets is None or depth >= MAX_SHOWN_DEPTH:
        text = _atom(value, room[0])
        parts.append(text)
        room[0] -= len(text)
        return
    parts.append(brackets[0])
    room[0] -= 1
    for index, item in enumerate(value.items() if isinstance(value, dict) else value):
        if room[0] <= 0:
            parts.append("...")
            return
        if index:
            parts.append(", ")
            room[0] -= 2
        if isinstance(value, dict):
            _show(item[0], parts, room, depth + 1)
            parts.append(": ")
            room[0] -= 2
            item = item[1]
        _show(item, parts, room, depth + 1)
    parts.append(brackets[1])
    room[0] -= 1


def _atom(value, room: int) -> str:
    kind = type(value)
    if kind is str or kind is bytes:
        return repr(value[:max(room, 0)])
    if kind is int and value.bit_length() > 256:
        return f"<int of {value.bit_length()} bits>"
    if kind in _NUMBERS:
        return repr(value)
    name = kind.__name__ if isinstance(kind.__name__, str) else "object"
    return f"<{name[:60]}>"


def _call_summary(count: int) -> str:
    limit = (f"WARNING log limit of {rules.MAX_LOG_LINES} lines or {rules.MAX_LOG_CALL_BYTES} bytes a call "
             "reached: ")
    return limit + (f"{count} more lines suppressed" if count else "further lines of this call suppressed")


class _Window:
    __slots__ = ("start", "used", "suppressed")

    def __init__(self, start: float):
        self.start, self.used, self.suppressed = start, 0, 0


_windows: dict[str, _Window] = {}
MAX_WINDOWS = 4096  # script names are the operator's, but bound the table anyway
WINDOW_S = 60.0


def admit(name: str, size: int) -> bool:
    """Tell whether a record of `size` bytes from script `name` may go to the server log this minute."""
    now = time.monotonic()
    window = _windows.get(name)
    if window is None:
        if len(_windows) >= MAX_WINDOWS:
            _windows.clear()
        window = _windows[name] = _Window(now)
    elif now - window.start >= WINDOW_S:
        if window.suppressed:
            logger.warning("%s: %d log lines suppressed in the last minute (limit: %d bytes a minute)", name,
                           window.suppressed, rules.MAX_LOG_BYTES_PER_MINUTE)
        window.start, window.used, window.suppressed = now, 0, 0
    if window.used + size > rules.MAX_LOG_BYTES_PER_MINUTE:
        if not window.suppressed:
            logger.warning("%s: log limit of %d bytes a minute reached: its lines and failures are suppressed "
                           "until the minute is over", name, rules.MAX_LOG_BYTES_PER_MINUTE)
        window.suppressed += 1
        return False
    window.used += size
    return True


def emit(name: str, level: int, text: str) -> None:
    """Write one line of script `name` to the server log, within its bytes a minute."""
    if admit(name, len(text)):
        logger.log(level, "%s: %s", name, log_safe(text))  # request data in it may not forge a line


# Python warnings raised inside script calls


_show_original = warnings._showwarnmsg
_filters_mutated = getattr(warnings, "_filters_mutated", None)


def _show_warning(message) -> None:
    """warnings' display hook: a warning raised while script code runs goes to that call's bounded log."""
    frame = sys._getframe(1)
    while frame is not None:
        scope = frame.f_globals
        if scope.get("_bw_tick") is limits.tick:
            log = scope.get("log")
            if type(log) is ScriptLog:
                log._write(_WARNING, f"{message.category.__name__}: {str(message.message)[:rules.MAX_LOG_LINE]}", ())
            if _filters_mutated is not None:
                # The registry of the module that warned remembers every distinct text ("once per
                # location"): a script choosing the text would grow it forever. This empties it.
                _filters_mutated()
            return
        frame = frame.f_back
    _show_original(message)


warnings._showwarnmsg = _show_warning  # C code (_warnings.warn) looks it up at each warning


def log_script_lines(display: str, lines) -> None:
    """Write a sandbox child's `log` lines ("LEVEL text") to the script log, as inline scripts do."""
    name = os.path.basename(display)
    for line in lines or ():
        level, _, text = str(line)[:rules.MAX_LOG_LINE + 16].partition(" ")
        emit(name, logging.getLevelName(level) if level.isupper() else logging.INFO, text)
