"""`log` inside scripts: a bounded list of lines, also written to the server log under the script's name."""
from __future__ import annotations

import logging

from backworks.sandbox import guards, rules

logger = logging.getLogger("backworks.plugin")


class ScriptLog:
    """log.debug/info/warning/error(message, *args) for scripts: at most MAX_LOG_LINES lines per call."""

    __slots__ = ("_lines", "_name")

    def __init__(self, name: str):
        self._lines: list[str] = []  # private: scripts reach only the methods
        self._name = name  # the script's file name, without folders

    def _write(self, level: int, message, args) -> None:
        if len(self._lines) >= rules.MAX_LOG_LINES:
            return
        text = str(message)[:rules.MAX_LOG_LINE]
        if args:
            try:
                extra = (repr(a)[:80] for a in args)
                text = guards.guarded_mod(text, args) if "%" in text else " ".join([text, *extra])
            except (TypeError, ValueError, MemoryError):
                text = " ".join([text, *(repr(a)[:80] for a in args)])
        line = f"{logging.getLevelName(level)} {text[:rules.MAX_LOG_LINE]}"
        self._lines.append(line)
        if len(self._lines) == rules.MAX_LOG_LINES:
            self._lines.append(f"WARNING log limit of {rules.MAX_LOG_LINES} lines reached")
        logger.log(level, "%s: %s", self._name, text[:rules.MAX_LOG_LINE])

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


