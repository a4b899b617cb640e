"""The backstop of inline isolation, and the quarantine it feeds.

What in-process limits cannot stop (a C call that never checks signals, a C-stack overflow) ends the
worker instead. Each worker owns a slot of a board the gunicorn master maps before the first fork: while
an inline script runs, the slot holds the script's identity and a hard deadline (budget + margin). The
master's watchdog ends a worker whose deadline passed, and a worker that dies for any reason with a
deadline set died inside that script. Either way the master quarantines the script: its digest goes into
`quarantine.json` in the runtime directory and the board's generation counter moves on. Every worker
checks that counter once per inline phase (one read of shared memory) and runs a quarantined script with
process isolation from then on, until the script's file changes (a new digest).

Outside gunicorn with the shipped settings (tests, `backworks serve`) there is no board: nothing is
written, and nothing is quarantined.
"""
from __future__ import annotations

import json
import logging
import mmap
import os
import struct
import time
from pathlib import Path

logger = logging.getLogger(__name__)

RUNTIME_DIR_ENV = "BACKWORKS_RUNTIME_DIR"
QUARANTINE_FILE = "quarantine.json"
SLOT_SIZE = 128  # deadline (8) + digest prefix (16) + script name (104)
HEADER_SIZE = 64  # the generation counter and the number of quarantined scripts, on a cache line of their own
TABLE_SIZE = 256  # quarantined digests the board itself holds (16 bytes each): no file read on the hot path
SLOTS = 512
DEADLINE = struct.Struct("<q")  # CLOCK_MONOTONIC ns (shared by every process of the host); 0 = idle
IDENTITY = struct.Struct("<16s104s")
NAME_BYTES = 104


def runtime_dir() -> Path | None:
    """The server's runtime directory (set by gunicorn.conf.py), or None outside it."""
    value = os.environ.get(RUNTIME_DIR_ENV)
    return Path(value) if value else None


def digest_key(digest: str) -> str:
    """The part of a script's sha256 digest that identifies it in the board and the quarantine file."""
    return digest[:32]


class Board:
    """Shared memory of every worker's inline call in progress; made by the master, inherited by fork."""

    def __init__(self, slots: int = SLOTS):
        self.slots = slots
        self.buffer = mmap.mmap(-1, HEADER_SIZE + TABLE_SIZE * 16 + slots * SLOT_SIZE)  # anonymous, MAP_SHARED

    def offset(self, index: int) -> int:
        """Byte offset of slot `index`."""
        return HEADER_SIZE + TABLE_SIZE * 16 + index * SLOT_SIZE

    def clear(self, index: int) -> None:
        """Empty a slot (before a new worker gets it)."""
        start = self.offset(index)
        self.buffer[start:start + SLOT_SIZE] = bytes(SLOT_SIZE)

    def deadline(self, index: int) -> int:
        """The slot's deadline in monotonic ns, 0 when its worker runs no inline script."""
        return DEADLINE.unpack_from(self.buffer, self.offset(index))[0]

    def identity(self, index: int) -> tuple[str, str]:
        """(digest key, script name) of the script the slot's worker last entered."""
        raw, name = IDENTITY.unpack_from(self.buffer, self.offset(index) + DEADLINE.size)
        return raw.hex(), name.rstrip(b"\0").decode("utf-8", "replace")

    @property
    def generation(self) -> int:
        """How many times the quarantine changed since the server started."""
        return DEADLINE.unpack_from(self.buffer, 0)[0]

    def bump(self) -> None:
        """Tell every worker that the quarantine changed."""
        DEADLINE.pack_into(self.buffer, 0, self.generation + 1)

    def quarantine(self, key: str) -> bool:
        """Add a digest key to the board's table (master only); False when it is there already or full."""
        if key in self.quarantined():
            return False
        count = DEADLINE.unpack_from(self.buffer, 8)[0]
        if count >= TABLE_SIZE:
            return False
        start = HEADER_SIZE + count * 16
        self.buffer[start:start + 16] = bytes.fromhex(key)
        DEADLINE.pack_into(self.buffer, 8, count + 1)
        return True

    def quarantined(self) -> frozenset:
        """The digest keys in the board's table."""
        count = min(DEADLINE.unpack_from(self.buffer, 8)[0], TABLE_SIZE)
        return frozenset(self.buffer[HEADER_SIZE + i * 16:HEADER_SIZE + (i + 1) * 16].hex() for i in range(count))


class Slot:
    """This worker's slot: marks the inline script call in progress for the master's watchdog."""

    __slots__ = ("board", "buffer", "offset", "margin_ns", "current")

    def __init__(self, board: Board, index: int, margin_ms: int = 300):
        self.board = board
        self.buffer = board.buffer
        self.offset = board.offset(index)
        self.margin_ns = margin_ms * 1_000_000
        self.current = ""

    def enter(self, digest: str, name: str, timeout_ms: float) -> None:
        """Mark the start of an inline call of a script allowed `timeout_ms`."""
        if digest != self.current:
            self.identify(digest, name)
        mark(self.buffer, self.offset, time.monotonic_ns() + int(timeout_ms * 1_000_000) + self.margin_ns)

    def identify(self, digest: str, name: str) -> None:
        """Name the script the next deadlines are for (written only when it changes)."""
        self.current = digest
        IDENTITY.pack_into(self.buffer, self.offset + DEADLINE.size, bytes.fromhex(digest_key(digest)),
                           os.path.basename(name).encode("utf-8", "replace")[:NAME_BYTES])

    def leave(self) -> None:
        """Mark the end of the call."""
        mark(self.buffer, self.offset, 0)


mark = DEADLINE.pack_into  # mark(slot.buffer, slot.offset, deadline ns, or 0 when idle): what enter/leave write


slot: Slot | None = None  # this worker's, set after fork by the gunicorn hooks
_seen: dict = {"generation": -1, "digests": frozenset()}


def attach(board: Board, index: int) -> None:
    """Give this (newly forked) worker its slot."""
    global slot
    board.clear(index)
    slot = Slot(board, index)


def aborted() -> bool:
    """True when the script this worker is running inline was quarantined during the call (the master then
    sends SIGALRM: the timer's handler asks this, and ends the call as if its budget were spent)."""
    return slot is not None and slot.current != "" and digest_key(slot.current) in slot.board.quarantined()


def set_margin(margin_ms: int) -> None:
    """How far past its budget an inline call may run before the watchdog ends the worker."""
    if slot is not None:
        slot.margin_ns = margin_ms * 1_000_000


def quarantined() -> frozenset:
    """Digest keys of the quarantined scripts (read again only when the board says they changed)."""
    if slot is None:
        return _read_file_keys() if runtime_dir() else frozenset()
    generation = slot.board.generation
    if generation != _seen["generation"]:
        _seen["generation"] = generation
        _seen["digests"] = slot.board.quarantined() | _read_file_keys()
    return _seen["digests"]


def changed_since(generation: int) -> bool:
    """True when the quarantine moved on since `generation` (one read of shared memory)."""
    return slot is not None and slot.board.generation != generation


def current_generation() -> int:
    """The board's generation, -1 without a board."""
    return slot.board.generation if slot is not None else -1


def is_quarantined(digest: str) -> bool:
    """True when a script with this digest is quarantined to process isolation."""
    return digest_key(digest) in quarantined()


def entries() -> dict:
    """{digest key: {"script", "reason", "since"}} of every quarantined script."""
    directory = runtime_dir()
    if directory is None:
        return {}
    try:
        data = json.loads((directory / QUARANTINE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_file_keys() -> frozenset:
    return frozenset(entries())


def add(digest_key_: str, script: str, reason: str) -> bool:
    """Quarantine a script (master only); False when it already was."""
    directory = runtime_dir()
    if directory is None:
        return False
    current = entries()
    if digest_key_ in current:
        return False
    current[digest_key_] = {"script": script, "reason": reason,
                            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{QUARANTINE_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(current, indent=1), encoding="utf-8")
    os.replace(temporary, directory / QUARANTINE_FILE)
    return True
