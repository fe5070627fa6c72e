"""Reading batches line by line with a bound on what one line may cost in memory.

A feed line is one VT object, a few hundred KB at most; but a bz2 file of a few KB can hold a
line of gigabytes that passes every download check, and reading it whole took 2.2 GB for a
1 GiB line. Here a line is read in pieces: once it is longer than the limit
(`VT_MAX_LINE_BYTES`, default 64 MiB) the rest of it is read and dropped until the next
newline, and the caller gets an `OversizedLine` in its place, to count and report like any
other invalid line. No stage ever holds more than the limit of one line (plus one piece).

Free of Dagster: the summarizer, the report indexer and the summary indexer read through it.
"""

from __future__ import annotations

import bz2
import io
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vt_dagster.config_errors import ConfigurationError
from vt_dagster.decoded_batches import KEPT, ChunksReader

try:
    import indexed_bzip2
except ImportError:  # pragma: no cover - the package is a dependency; bz2 is the fallback
    indexed_bzip2 = None

MAX_LINE_BYTES_VARIABLE = "VT_MAX_LINE_BYTES"
DEFAULT_MAX_LINE_BYTES = 64 << 20
MIN_MAX_LINE_BYTES = 1 << 10
# Decompressed bytes read ahead at once. Decoding and summarizing evict each other's data
# from the CPU caches: taking turns every 8 MiB rather than every bzip2 block (~900 KB)
# saved ~20 % of the CPU summarizing takes beside decoding.
READ_AHEAD = 8 << 20
# A line is read in pieces this large: one `readline` for nearly every VT object, and a piece is
# a slice of the reader's buffer, where a larger one would be gathered from several and joined.
PIECE = 1 << 20
_NEWLINE = ord("\n")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE = re.compile(r"\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*", re.IGNORECASE)


class BatchReadError(ValueError):
    """The raw batch itself is unreadable (not bz2, truncated): nothing was written."""


def format_size(size: int) -> str:
    """`64 MiB`, `1.5 GiB`, `900 bytes`: binary units, as the limit is given."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class OversizedLine:
    """In place of a line longer than the limit: it was read in pieces and dropped, never held."""

    size: int
    """The line's length without its newline."""
    limit: int

    @property
    def reason(self) -> str:
        return (f"longer than {format_size(self.limit)} ({MAX_LINE_BYTES_VARIABLE}): "
                f"{format_size(self.size)}, skipped")


def parse_max_line_bytes(text: str, setting: str = MAX_LINE_BYTES_VARIABLE) -> int:
    """A line limit given as bytes, or with a binary unit (`64MiB`, `64M`, `1 GiB`, `512k`)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ConfigurationError(setting, f"{text.strip()!r} is not a size: give bytes, or KiB/MiB/GiB (e.g. 64MiB)")
    size = int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if size < MIN_MAX_LINE_BYTES:
        raise ConfigurationError(setting, f"{format_size(size)} is below the minimum of {format_size(MIN_MAX_LINE_BYTES)}")
    return size


def max_line_bytes_from_env(environ: Mapping[str, str] | None = None) -> int:
    """`VT_MAX_LINE_BYTES`, else the default; a bad value is a `ConfigurationError` naming it."""
    text = (os.environ if environ is None else environ).get(MAX_LINE_BYTES_VARIABLE, "").strip()
    return parse_max_line_bytes(text) if text else DEFAULT_MAX_LINE_BYTES


def iter_lines(stream: IO[bytes], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | OversizedLine]]:
    """(line number, line) for every line of a binary stream, the newline kept; an
    `OversizedLine` stands for a line longer than `max_line_bytes` (newline not counted)."""
    readline = stream.readline
    piece = min(max_line_bytes + 1, PIECE)
    number = 0
    while line := readline(piece):
        number += 1
        # Shorter than a piece: whole, or the last line. A full piece is whole if it ends the line.
        if len(line) < piece or line[-1] == _NEWLINE:
            yield number, line
        else:
            yield number, _rest_of_long_line(readline, line, max_line_bytes)


def _rest_of_long_line(readline: object, first: bytes, limit: int) -> bytes | OversizedLine:
    """A line longer than a piece: read up to the limit, then whole or dropped to its newline."""
    parts = [first]
    size = len(first)
    while parts[-1][-1] != _NEWLINE and size <= limit:
        more = readline(min(PIECE, limit + 1 - size))  # type: ignore[operator]
        if not more:
            break
        parts.append(more)
        size += len(more)
    ended = parts[-1][-1] == _NEWLINE
    if size - ended <= limit:
        return b"".join(parts)
    parts.clear()
    while not ended:
        rest = readline(PIECE)  # type: ignore[operator]
        if not rest:
            break
        size += len(rest)
        ended = rest[-1] == _NEWLINE
    return OversizedLine(size - ended, limit)


DECODE_PIECE = 1 << 20
"""Decompressed bytes one call into the decoder produces (see `_PiecewiseRaw`)."""


class _PiecewiseRaw(io.RawIOBase):
    """Fills the reader's READ_AHEAD buffer one DECODE_PIECE at a time.

    A signal handler (Ctrl-C, SIGTERM) runs only between two calls into C: one 8 MiB decoding
    call took a second here, during which a stopping summarizer could not stop. The buffer is
    filled as one 8 MiB turn all the same, which is what keeps decoding cache-friendly.
    """

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            got = self._raw.readinto(view[filled:filled + DECODE_PIECE])
            if not got:
                break
            filled += got
        return filled

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_batch(path: Path) -> IO[bytes]:
    """A buffered reader over the decompressed batch: the bytes its download check decoded
    when this process kept them (`decoded_batches`), else the file decoded now."""
    if (kept := KEPT.take(path)) is not None:
        return io.BufferedReader(ChunksReader(kept), buffer_size=READ_AHEAD)
    if indexed_bzip2 is not None:
        raw = indexed_bzip2.IndexedBzip2FileRaw(str(path), parallelization=1)
        return io.BufferedReader(_PiecewiseRaw(raw), buffer_size=READ_AHEAD)
    return bz2.open(path, "rb")


def iter_batch_lines(path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | OversizedLine]]:
    """(line number, line or `OversizedLine`) for every line of a bz2 batch; BatchReadError if the bz2 is bad."""
    try:
        with open_batch(path) as reader:
            yield from iter_lines(reader, max_line_bytes)
    except (OSError, EOFError, ValueError, RuntimeError) as exc:
        raise BatchReadError(f"{path}: not a readable bz2 batch ({exc})") from None
