"""Decoded batches kept in memory between the stages of one process, so a batch is decoded once.

bz2 decoding is nearly all of the pipeline's work, and three stages decode each batch: the
download check, the summaries and the report cache. A run that executes every stage in one
process (the live run; `dg.materialize`) keeps what the download check decoded, and the two
readers take it from here instead of decoding the file again: a third of the work for them.

Bounded on every side: at most `budget` bytes in all (the oldest go first), a batch only while
it decodes to at most `MAX_RATIO` times its compressed size (a bz2 bomb is dropped at its
first piece, never held), an entry goes once both readers had it or after `max_age_s`, and
only while the file is the one that was decoded (same inode, size and mtime). A miss is never
an error: the reader decodes the file, as it always did.

Free of Dagster; `vt_client` and `storage` fill it, `batch_lines.open_batch` takes from it.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_BUDGET = 256 << 20
"""Decoded bytes kept at once: a live run of all five feeds at real scale holds ~130 MB."""
MAX_RATIO = 50
"""Decoded / compressed bytes beyond which a batch is not kept (VT's JSON lines: ~12)."""
READERS = 2
"""The stages that read a raw batch after its download: summaries and the report cache."""
DEFAULT_MAX_AGE_S = 600.0


@dataclass
class _Kept:
    identity: Identity
    chunks: tuple[bytes, ...]
    size: int
    readers_left: int
    since: float


Identity = tuple[int, int, int]


def file_identity(path_or_fd: Path | int) -> Identity | None:
    """(inode, size, mtime) of a path or an open file: what says it is still the same file."""
    try:
        stat = os.stat(path_or_fd)
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class DecodedBatches:
    """A thread-safe store of decoded batches, keyed by path and checked against the file."""

    def __init__(self, budget: int = DEFAULT_BUDGET, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self.budget = budget
        self.max_age_s = max_age_s
        self._entries: OrderedDict[str, _Kept] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(entry.size for entry in self._entries.values())

    def keep(self, path: Path, chunks: Sequence[bytes], identity: Identity | None = None) -> bool:
        """Keep the decoded `chunks` of the file at `path` (`identity`: of the file that was
        decoded, when it was read through an open handle); False when they do not fit."""
        size = sum(len(chunk) for chunk in chunks)
        identity = identity or file_identity(path)
        if identity is None or size > self.budget:
            return False
        key = str(Path(path).resolve())
        with self._lock:
            self._entries.pop(key, None)
            self._drop_old()
            while self._entries and sum(e.size for e in self._entries.values()) + size > self.budget:
                self._entries.popitem(last=False)
            self._entries[key] = _Kept(identity, tuple(chunks), size, READERS, time.monotonic())
        return True

    def take(self, path: Path) -> tuple[bytes, ...] | None:
        """The decoded chunks of `path` if kept and the file is unchanged; each reader takes once."""
        key = str(Path(path).resolve())
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.identity != file_identity(path) or time.monotonic() - entry.since > self.max_age_s:
                del self._entries[key]
                return None
            entry.readers_left -= 1
            if entry.readers_left <= 0:
                del self._entries[key]
            return entry.chunks

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _drop_old(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if now - e.since > self.max_age_s]:
            del self._entries[key]


KEPT = DecodedBatches()
"""The process's store: downloads put batches here when asked to, readers always look."""


class DecodedCollector:
    """Gathers a verifier's decoded pieces while they stay keepable (see the module's bounds)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] | None = []
        self._size = 0

    def add(self, decoded: bytes, compressed_so_far: int) -> None:
        if self._chunks is None or not decoded:
            return
        self._size += len(decoded)
        if self._size > self._limit or self._size > MAX_RATIO * max(compressed_so_far, 1):
            self._chunks = None  # not keepable: let go of what was gathered at once
            return
        self._chunks.append(decoded)

    def chunks(self) -> list[bytes] | None:
        return self._chunks


class ChunksReader(io.RawIOBase):
    """A raw reader over kept chunks, for `io.BufferedReader`: nothing is joined or copied twice."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._index = 0
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            part = memoryview(chunk)[self._offset:self._offset + len(view) - filled]
            view[filled:filled + len(part)] = part
            filled += len(part)
            self._offset += len(part)
            if self._offset >= len(chunk):
                self._index, self._offset = self._index + 1, 0
        return filled
