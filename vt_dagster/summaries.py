"""Summarizing whole batches: raw bz2 JSON lines in, one NDJSON summary line per object out.

Free of Dagster; the asset, the CLI and the benchmark call `summarize_batch_file`. It streams
(memory stays flat whatever the batch size) and keeps the JSON side cheap, because bz2
decompression is ~90 % of the work (see shared notes):
- `indexed_bzip2` decodes a little faster than Python's `bz2` (same format, same result);
- `msgspec` reads each line with the attributes left as raw JSON and decodes only those a
  summarizer reads (`ATTRIBUTES_READ`): never the 70 engine results that are half of
  every file object.
A line that is not JSON, or not a VT object, is counted with its line number and reported;
it never stops the batch.
"""

from __future__ import annotations

import bz2
import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from vt_dagster.feeds import get_feed, parse_minute_key
from vt_dagster.storage import atomic_writer, record_summary_count
from vt_dagster.summarize import ATTRIBUTES_READ, NESTED_KEYS_READ, NotAVTObjectError, summarize_object
from vt_dagster.whitelist import UrlWhitelist

try:
    import indexed_bzip2
except ImportError:  # pragma: no cover - the package is a dependency; bz2 is the fallback
    indexed_bzip2 = None

MAX_REPORTED_REJECTS = 20


class BatchReadError(ValueError):
    """The raw batch itself is unreadable (not bz2, truncated): nothing was written."""


def _narrow_struct(attribute: str, keys: tuple[str, ...]) -> type[msgspec.Struct]:
    """A struct keeping only `keys` of one nested attribute (others are skipped unparsed)."""
    fields = [(f"k{index}", Any, msgspec.UNSET) for index in range(len(keys))]
    rename = {f"k{index}": key for index, key in enumerate(keys)}
    return msgspec.defstruct(f"_{attribute}", fields, rename=rename)


# Lists of objects and mappings of objects keep the same keys per item.
_NESTED_SHAPES = {
    "sigma_analysis_results": list, "crowdsourced_yara_results": list,
    "crowdsourced_ids_results": list, "sandbox_verdicts": dict,
}


def _attribute_type(name: str) -> Any:
    keys = NESTED_KEYS_READ.get(name)
    if keys is None:
        return Any
    item = _narrow_struct(name, keys)
    shape = _NESTED_SHAPES.get(name)
    if shape is list:
        return list[item] | None
    if shape is dict:
        return dict[str, item] | None
    return item | None


# Only the attributes a summarizer reads are declared: msgspec skips every other one
# (the 70 engine results above all) without building Python objects for it, and inside
# the bulky ones it keeps only the keys summaries use.
_Attributes = msgspec.defstruct(
    "_Attributes", [(name, _attribute_type(name), msgspec.UNSET) for name in sorted(ATTRIBUTES_READ)]
)


class _FeedLine(msgspec.Struct):
    """A feed line's top level, with `attributes` cut down to what summaries use."""

    id: Any = None
    type: Any = None
    attributes: _Attributes = msgspec.field(default_factory=_Attributes)
    context_attributes: Any = msgspec.UNSET
    relationships: Any = msgspec.UNSET
    links: Any = msgspec.UNSET


_decode_line = msgspec.json.Decoder(_FeedLine).decode
_encode = msgspec.json.Encoder().encode
_to_builtins = msgspec.to_builtins
_UNSET = msgspec.UNSET


def parse_feed_line(line: bytes) -> Any:
    """A feed line as the summarizer wants it: a dict holding only the attributes it reads.

    Anything unusual (an API `{"data": ...}` wrapper, an array, `attributes` that is not an
    object) goes through the plain JSON parser so the summarizer sees it as it is and can
    say precisely what is wrong. Raises ValueError for text that is not JSON.
    """
    try:
        head = _decode_line(line)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return json.loads(line)
    if head.id is None and head.type is None:
        return json.loads(line)
    # to_builtins leaves out UNSET attributes and turns the narrowed structs into dicts, in C.
    attributes = _to_builtins(head.attributes)
    obj: dict[str, Any] = {"id": head.id, "type": head.type, "attributes": attributes}
    for name in ("context_attributes", "relationships", "links"):
        value = getattr(head, name)
        if value is not _UNSET:
            obj[name] = value
    return obj


def open_batch(path: Path) -> IO[bytes]:
    """A buffered line reader over the decompressed batch."""
    if indexed_bzip2 is not None:
        return io.BufferedReader(indexed_bzip2.open(str(path), parallelization=1), buffer_size=1 << 20)
    return bz2.open(path, "rb")


def iter_batch_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for every line; BatchReadError if the bz2 is bad."""
    try:
        with open_batch(path) as reader:
            yield from enumerate(reader, start=1)
    except (OSError, EOFError, ValueError, RuntimeError) as exc:
        raise BatchReadError(f"{path}: not a readable bz2 batch ({exc})") from None


@dataclass
class BatchSummaryResult:
    """What summarizing one batch did; `objects` (lines) == `summaries + rejected` always.

    `documents`: distinct VT ids, i.e. the documents the batch makes in Elasticsearch (an
    object twice in one batch is one document).
    """

    feed: str
    batch: str
    path: str
    objects: int = 0
    summaries: int = 0
    documents: int = 0
    rejected: int = 0
    rejected_lines: list[str] = field(default_factory=list)
    dropped_urls: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0

    def reject(self, number: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejected_lines) < MAX_REPORTED_REJECTS:
            self.rejected_lines.append(f"line {number}: {reason}")


def summarize_batch_file(
    raw_path: Path,
    dest: Path,
    *,
    feed: str,
    batch: str,
    whitelist: UrlWhitelist | None = None,
) -> BatchSummaryResult:
    """Summarize one raw batch into `dest` (atomically); the old `dest` survives any failure."""
    started = time.monotonic()
    get_feed(feed)
    parse_minute_key(batch)
    whitelist = whitelist or UrlWhitelist.default()
    result = BatchSummaryResult(feed=feed, batch=batch, path=str(dest), bytes_in=raw_path.stat().st_size)
    ids: set[str] = set()
    with atomic_writer(dest) as out:
        for number, line in iter_batch_lines(raw_path):
            result.objects += 1
            if not line.strip():
                result.reject(number, "empty line")
                continue
            try:
                summary, dropped = summarize_object(parse_feed_line(line), feed=feed, batch=batch, whitelist=whitelist)
            except NotAVTObjectError as exc:
                result.reject(number, str(exc))
                continue
            except ValueError as exc:
                result.reject(number, f"invalid JSON ({_first_line(exc)})")
                continue
            except Exception as exc:  # noqa: BLE001 - one odd object must not stop the batch
                result.reject(number, f"could not summarize ({type(exc).__name__}: {_first_line(exc)})")
                continue
            encoded = _encode(summary)
            out.write(encoded)
            out.write(b"\n")
            result.summaries += 1
            ids.add(summary["vt.id"])
            result.dropped_urls += dropped
            result.bytes_out += len(encoded) + 1
    result.documents = len(ids)
    result.seconds = time.monotonic() - started
    return result


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class SummaryJob:
    """One batch to summarize, picklable for a worker process."""

    raw_path: Path
    dest: Path
    feed: str
    batch: str
    whitelist_path: Path | None = None
    counts_root: Path | None = None
    """Data root whose day counts file records the batch's document count (see storage)."""


_worker_whitelist: UrlWhitelist | None = None


def _init_worker(whitelist_path: Path | None) -> None:
    global _worker_whitelist
    _worker_whitelist = UrlWhitelist.from_file(whitelist_path) if whitelist_path else UrlWhitelist.default()


def _run_job(job: SummaryJob) -> BatchSummaryResult | str:
    try:
        result = summarize_batch_file(job.raw_path, job.dest, feed=job.feed, batch=job.batch,
                                      whitelist=_worker_whitelist)
        if job.counts_root is not None:
            record_summary_count(job.counts_root, job.feed, job.batch, result.documents)
        return result
    except (BatchReadError, OSError) as exc:
        return f"{job.feed} batch {job.batch}: {exc}"


def summarize_many(
    jobs: list[SummaryJob], *, workers: int | None = None, whitelist_path: Path | None = None
) -> Iterator[BatchSummaryResult | str]:
    """Summarize batches on every core, yielding each result (or error line) as it finishes.

    One process per core: decompression is CPU-bound and holds no lock worth sharing, so
    two batches at once is what uses a 2-core machine fully.
    """
    if not jobs:
        return
    if len(jobs) == 1 or workers == 1:
        _init_worker(whitelist_path)
        for job in jobs:
            yield _run_job(job)
        return
    import multiprocessing
    import os

    workers = workers or os.cpu_count() or 1
    context = multiprocessing.get_context("forkserver")
    # Workers fork from a server that has imported this module once (no import per pool).
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=context,
        initializer=_init_worker, initargs=(whitelist_path,),
    ) as pool:
        yield from pool.map(_run_job, jobs, chunksize=1)
