"""Where batches live on disk, how they are written (atomically) and how they are verified.

A raw batch counts as present only when its whole bz2 stream decodes: a file at the final
path was always verified before it was renamed there, and a file left by another tool is
checked again before it is trusted.
"""

from __future__ import annotations

import bz2
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import elasticapm

from vt_dagster.decoded_batches import DecodedBatches, DecodedCollector, Identity, file_identity
from vt_dagster.feeds import parse_minute_key

PART_SUFFIX = ".part"
_TEMP_TOKEN_BYTES = 6
_TEMP_NAME = re.compile(rf"\.(.+)\.[0-9a-f]{{{2 * _TEMP_TOKEN_BYTES}}}{re.escape(PART_SUFFIX)}")
"""`atomic_writer`'s temp file name: `.<final name>.<12 hex digits>.part`."""
SPOOL_PREFIX = ".hourly-"
"""The temp folders an hourly package is downloaded and split in, in `<root>/raw/<feed>/`."""
READ_CHUNK = 1 << 20
DECODE_STEP = 4 << 20
"""Most decompressed bytes a verification holds at once."""
# A temp file older than this is debris from a crashed writer, not a download in progress.
STALE_PART_AGE_S = 3600


def raw_batch_path(root: Path, feed: str, batch: str) -> Path:
    """`<root>/raw/<feed>/<YYYY-MM-DD>/<YYYYMMDDhhmm>.bz2`."""
    day = parse_minute_key(batch).strftime("%Y-%m-%d")
    return Path(root) / "raw" / feed / day / f"{batch}.bz2"


def missing_marker_path(root: Path, feed: str, batch: str) -> Path:
    """The note that VT answered 404 for a batch, so it is not asked for on every run."""
    return raw_batch_path(root, feed, batch).with_suffix(".missing")


def incident_note_path(root: Path, feed: str, batch: str) -> Path:
    """The note that a 404 belonged to a streak longer than VT calls normal (an incident).

    Unlike a missing marker it does not stop the batch from being asked for again; it only
    lets the next run see the streak it would extend.
    """
    return raw_batch_path(root, feed, batch).with_suffix(".incident")


def summary_path(root: Path, feed: str, batch: str) -> Path:
    """`<root>/summary/<feed>/<YYYYMMDDhhmm>.summary`."""
    parse_minute_key(batch)
    return summary_folder(root, feed) / f"{batch}.summary"


class NotARegularFileError(OSError):
    """Something other than a regular file (symlink, device, fifo, folder) is where a file goes."""


_FILE_KINDS = (
    (stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "fifo (named pipe)"), (stat.S_ISSOCK, "socket"),
)


def refuse_non_regular_destination(path: Path) -> None:
    """NotARegularFileError when `path` exists and is not a regular file.

    A rename replaces the name, whatever it names: `--output /dev/null` would turn the device
    into a regular file, and a symlink would become a file while its target kept the old
    content. `lstat`, so a symlink is refused even when it points at a regular file.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    kind = next((name for is_kind, name in _FILE_KINDS if is_kind(mode)), "special file")
    raise NotARegularFileError(f"{path} is a {kind}, not a regular file: refusing to replace it")


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Write to a temp file beside `path`, fsync it, then rename over `path`.

    On any exception (disk full, a dropped connection, a failed verification) the temp
    file is removed and `path` keeps whatever it held before. The file gets the mode any
    new file of the process gets (0644 under umask 022), so a Logstash or an analyst
    running as another user can read it. Only a regular file (or nothing) at `path` is
    replaced: anything else raises NotARegularFileError, before and again after writing.
    """
    refuse_non_regular_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        refuse_non_regular_destination(path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _create_temp_beside(path: Path) -> tuple[int, Path]:
    """A new, exclusively created `.<name>.<random>.part` file in `path`'s folder, opened for writing.

    Created with mode 0666 so the kernel applies the umask (and a default ACL of the folder,
    if any), exactly as for any file the process creates: `tempfile.mkstemp` would force
    0600, and reading the umask to chmod afterwards is racy, since `os.umask` can only be
    read by setting it, for every thread of the process at once.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(_TEMP_TOKEN_BYTES)}{PART_SUFFIX}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path} after 100 tries")


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_parts(directory: Path, now: float | None = None, *, of: str | None = None,
                       spool_prefix: str = SPOOL_PREFIX) -> int:
    """Delete what crashed writers left directly in `directory`: `atomic_writer`'s temp files and
    temp folders (`spool_prefix`: hourly spool folders) untouched for STALE_PART_AGE_S; returns
    how many went. `of`: only the temp files of that final name (in a folder other programs
    write to as well).

    Age is the newest modification time (a spool folder's: of itself and what it holds): a
    writer at work touches its temp file with every write, so only a dead writer's gets old.
    """
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        name = entry.name
        try:
            temp = _TEMP_NAME.fullmatch(name)
            if temp and (of is None or temp.group(1) == of) and entry.is_file(follow_symlinks=False):
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_PART_AGE_S:
                    os.unlink(entry.path)
                    removed += 1
            elif of is None and name.startswith(spool_prefix) and entry.is_dir(follow_symlinks=False):
                if now - _newest_mtime(Path(entry.path)) > STALE_PART_AGE_S:
                    shutil.rmtree(entry.path)
                    removed += 1
        except FileNotFoundError:  # another run removed it first
            continue
    return removed


def _newest_mtime(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for path in folder.rglob("*"):
        try:
            newest = max(newest, path.lstat().st_mtime)
        except FileNotFoundError:
            continue
    return newest


def raw_write_folders(root: Path, feed: str, batches: Iterable[str]) -> list[Path]:
    """Where a download run of `batches` writes: the feed's raw folder (hourly spool folders) and
    the day folders of the batches, with the day before the first (a run that died just before
    midnight left its temp files there, and the runs after it write the next day)."""
    days = {raw_batch_path(root, feed, batch).parent for batch in batches}
    if days:
        first = min(days)
        before = (dt.date.fromisoformat(first.name) - dt.timedelta(days=1)).isoformat()
        days.add(first.parent / before)
    return [Path(root) / "raw" / feed, *sorted(days)]


def summary_folder(root: Path, feed: str) -> Path:
    """`<root>/summary/<feed>`: every summary and day counts file of a feed."""
    return Path(root) / "summary" / feed


def remove_debris(folders: Iterable[Path], now: float | None = None) -> int:
    """`remove_stale_parts` in each of `folders`; the total removed."""
    return sum(remove_stale_parts(folder, now) for folder in folders)


@dataclass(frozen=True)
class BatchCheck:
    """What verifying a bz2 batch found: `ok` only when the whole stream decoded."""

    ok: bool
    bytes: int = 0
    objects: int = 0
    sha256: str = ""
    error: str = ""


class BatchVerifier:
    """Fed the compressed bytes chunk by chunk; decodes them and counts lines on the way.

    Used while a download streams to disk and when checking a file already there, so both
    paths apply the same rule. bz2 decompression releases the GIL: threads verify in parallel.
    `decode_seconds` sums the decoding time, for the APM span of a verification done while
    a download streams (interleaved with network reads, so not timed as one block).
    With `keep`, it also gathers the decoded bytes while they stay keepable
    (`decoded_batches`), to hand them to that store for the stages after it in the same process.
    """

    def __init__(self, keep: DecodedBatches | None = None) -> None:
        self._keep = keep
        self._collector = DecodedCollector(keep.budget) if keep is not None else None
        self._sha = hashlib.sha256()
        self._decoder = bz2.BZ2Decompressor()
        self._bytes = 0
        self._newlines = 0
        self._last_byte = b"\n"
        self._decoded_any = False
        self._error = ""
        self.decode_seconds = 0.0

    def update(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self._bytes += len(chunk)
        if self._error:
            return
        started = time.perf_counter()
        try:
            self._decode(chunk)
        except (OSError, EOFError, ValueError) as exc:
            self._error = f"not a valid bz2 stream ({exc})"
        finally:
            self.decode_seconds += time.perf_counter() - started

    def _decode(self, data: bytes) -> None:
        """Decode `data` at most DECODE_STEP bytes of output at a time: a few KB of bz2 can
        decode to gigabytes, which one unbounded call would hold at once."""
        while True:
            if self._decoder.eof:
                if not data:
                    return
                # Concatenated bz2 streams (pbzip2/lbzip2 output) are valid batches too.
                self._decoder = bz2.BZ2Decompressor()
            self._count(self._decoder.decompress(data, DECODE_STEP))
            if self._decoder.eof:
                data = self._decoder.unused_data
            elif self._decoder.needs_input:
                return
            else:  # more output is waiting for the input already given
                data = b""

    def _count(self, data: bytes) -> None:
        if data:
            if self._collector is not None:
                self._collector.add(data, self._bytes)
            self._decoded_any = True
            self._newlines += data.count(b"\n")
            self._last_byte = data[-1:]

    def result(self) -> BatchCheck:
        if self._bytes == 0:
            return BatchCheck(False, error="empty file (0 bytes)")
        if self._error:
            return BatchCheck(False, self._bytes, error=self._error)
        if not self._decoder.eof:
            return BatchCheck(False, self._bytes, error="truncated bz2 stream (ended before its end marker)")
        objects = self._newlines + (0 if self._last_byte == b"\n" else 1)
        return BatchCheck(True, self._bytes, objects if self._decoded_any else 0, self._sha.hexdigest())

    def keep_decoded(self, path: Path, identity: Identity | None = None) -> None:
        """Hand the decoded batch, now whole and verified at `path`, to the store if it was gathered."""
        chunks = self._collector.chunks() if self._collector is not None else None
        if self._keep is not None and chunks is not None and self.result().ok:
            self._keep.keep(path, chunks, identity)


def verify_batch_file(path: Path, keep: DecodedBatches | None = None) -> BatchCheck:
    """Decode a bz2 batch on disk to its end; never raises for a bad or missing file.

    An APM span (`bz2 verify file`) when a transaction is active, nothing otherwise. With
    `keep`, a good batch's decoded bytes go there for the stages that read it next.
    """
    with elasticapm.capture_span(
        "bz2 verify file", span_type="app", span_subtype="bz2", span_action="verify",
        labels={"file": Path(path).name},
    ) as apm_span:
        check = _verify_file(path, keep)
        if apm_span is not None:
            apm_span.label(bytes=check.bytes, objects=check.objects, ok=check.ok)
            apm_span.outcome = "success" if check.ok else "failure"
    return check


def _verify_file(path: Path, keep: DecodedBatches | None) -> BatchCheck:
    verifier = BatchVerifier(keep)
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                verifier.update(chunk)
            read = file_identity(handle.fileno())  # the file decoded, even if replaced since
    except OSError as exc:
        return BatchCheck(False, error=f"unreadable ({exc.strerror or exc})")
    verifier.keep_decoded(path, read)
    return verifier.result()


def write_missing_marker(root: Path, feed: str, batch: str, http_status: int, detail: str) -> Path:
    """Remember a 404 (atomically, like everything else we write)."""
    marker = missing_marker_path(root, feed, batch)
    note = {
        "batch": batch,
        "feed": feed,
        "http_status": http_status,
        "detail": detail,
        "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_writer(marker) as handle:
        handle.write(json.dumps(note).encode())
    return marker


def write_incident_note(root: Path, feed: str, batch: str, streak: list[str]) -> Path:
    """Note a 404 of an incident streak (kept as first written: a long incident is not rewritten every run)."""
    note = incident_note_path(root, feed, batch)
    if not note.exists():
        detail = {
            "batch": batch,
            "feed": feed,
            "http_status": 404,
            "streak": f"{streak[0]}..{streak[-1]}",
            "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        with atomic_writer(note) as handle:
            handle.write(json.dumps(detail).encode())
    return note


def forget_absence(root: Path, feed: str, batch: str, *, marker: bool = True, incident: bool = True) -> None:
    """Remove what earlier runs noted about a batch VT did not serve: its missing marker, incident note."""
    if marker:
        missing_marker_path(root, feed, batch).unlink(missing_ok=True)
    if incident:
        incident_note_path(root, feed, batch).unlink(missing_ok=True)


def summary_counts_path(root: Path, feed: str, day: str) -> Path:
    """`<root>/summary/<feed>/<YYYY-MM-DD>.counts`: documents each batch of that day should have."""
    return summary_folder(root, feed) / f"{day}.counts"


def record_summary_count(root: Path, feed: str, batch: str, documents: int) -> None:
    """Append `{"batch", "documents"}` to the day's counts file (the last line for a batch wins).

    The sensor reads these few small files instead of 10,080 summary files to know how many
    documents each batch should have in Elasticsearch. One short line with O_APPEND is
    written whole even when several processes append at once.
    """
    day = parse_minute_key(batch).strftime("%Y-%m-%d")
    path = summary_counts_path(root, feed, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"batch": batch, "documents": documents}, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_summary_counts(root: Path, feed: str, days: Iterable[str]) -> dict[str, int]:
    """Documents per batch for the given days; torn or odd lines are skipped."""
    counts: dict[str, int] = {}
    for day in days:
        try:
            lines = summary_counts_path(root, feed, day).read_bytes().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
                counts[str(entry["batch"])] = int(entry["documents"])
            except (ValueError, KeyError, TypeError):
                continue
    return counts
