"""Summarizing whole batches: raw bz2 JSON lines in, one NDJSON summary line per object out.

Free of Dagster; the asset, the CLI and the benchmark call `summarize_batch_file`. It streams
(memory stays flat whatever the batch size) and keeps the JSON side cheap, because bz2
decompression is ~90 % of the work (measured: see README, Performance):
- `indexed_bzip2` decodes a little faster than Python's `bz2` (same format, same result);
- `msgspec` reads each line with the attributes left as raw JSON and decodes only those a
  summarizer reads (`ATTRIBUTES_READ`): never the 70 engine results that are half of
  every file object.
A line that is not JSON, or not a VT object, or longer than the line limit
(`VT_MAX_LINE_BYTES`, see `batch_lines`), is counted with its line number and reported; it
never stops the batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypedDict, TypeVar

import msgspec

from vt_dagster.batch_lines import BatchReadError as BatchReadError  # raised by summarize_batch_file
from vt_dagster.batch_lines import DEFAULT_MAX_LINE_BYTES, OversizedLine, iter_batch_lines
from vt_dagster.feeds import get_feed, parse_minute_key
from vt_dagster.interrupts import StopRequested, on_stop, request_stop, stop_on_interrupt, stop_requested
from vt_dagster.storage import atomic_writer, record_summary_count
from vt_dagster.summarize import (
    ATTRIBUTES_READ, NESTED_KEYS_READ, TOP_LEVEL_KEYS_READ, NotAVTObjectError, summarize_object,
)
from vt_dagster.whitelist import UrlWhitelist

MAX_REPORTED_REJECTS = 20


T = TypeVar("T")


def _narrowed(name: str, keys: tuple[str, ...]) -> type:
    """An object keeping only `keys` (msgspec skips the others unparsed)."""
    return TypedDict(f"_{name}", {key: Any for key in keys}, total=False)  # type: ignore[operator]


# Lists of objects and mappings of objects keep the same keys per item.
_NESTED_SHAPES = {
    "sigma_analysis_results": list, "crowdsourced_yara_results": list,
    "crowdsourced_ids_results": list, "sandbox_verdicts": dict,
    "registry_keys_set": list, "files_dropped": list,
}


def _attribute_type(name: str) -> Any:
    keys = NESTED_KEYS_READ.get(name)
    if keys is None:
        return Any
    item = _narrowed(name, keys)
    shape = _NESTED_SHAPES.get(name)
    if shape is list:
        return list[item] | None
    if shape is dict:
        return dict[str, item] | None
    return item | None


# Only the attributes a summarizer reads are declared: msgspec skips every other one
# (the 70 engine results above all) without building Python objects for it, and inside
# the bulky ones it keeps only the keys summaries use. TypedDicts decode straight to dicts
# (in the line's own key order), so the summarizers get them without a conversion copy.
_Attributes = TypedDict(  # type: ignore[operator]
    "_Attributes", {name: _attribute_type(name) for name in sorted(ATTRIBUTES_READ)}, total=False
)
_FeedLine = TypedDict(  # type: ignore[operator]
    "_FeedLine",
    {"id": Any, "type": Any, "attributes": _Attributes,
     **{name: _narrowed(name, keys) | None for name, keys in TOP_LEVEL_KEYS_READ.items()}},
    total=False,
)

_decode_line = msgspec.json.Decoder(_FeedLine).decode
_encode = msgspec.json.Encoder().encode
# Summaries are gathered into chunks this large before a write (a summary is ~2.5 KB).
_WRITE_CHUNK = 1 << 20


def _is_text(value: Any) -> bool:
    """An `id` or `type` the summarizer accepts (a non-blank string)."""
    return isinstance(value, str) and bool(value.strip())


def parse_feed_line(line: bytes) -> Any:
    """A feed line as the summarizer wants it: a dict holding only the members it reads.

    Anything unusual (an API `{"data": ...}` wrapper, an array, `attributes` that is not an
    object, no usable `id` or `type`) goes through the plain JSON parser so the summarizer
    sees it whole and can say precisely what is wrong. Raises ValueError for text that is
    not JSON.
    """
    try:
        obj = _decode_line(line)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return json.loads(line)
    if _is_text(obj.get("id")) and _is_text(obj.get("type")):
        return obj
    return json.loads(line)


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
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> BatchSummaryResult:
    """Summarize one raw batch into `dest` (atomically); the old `dest` survives any failure.

    A line longer than `max_line_bytes` is rejected without ever being held whole.
    """
    started = time.monotonic()
    get_feed(feed)
    parse_minute_key(batch)
    whitelist = whitelist or UrlWhitelist.default()
    result = BatchSummaryResult(feed=feed, batch=batch, path=str(dest), bytes_in=raw_path.stat().st_size)
    with atomic_writer(dest) as out:
        _summarize_lines(iter_batch_lines(raw_path, max_line_bytes), out, result, whitelist)
    result.seconds = time.monotonic() - started
    return result


def _summarize_lines(
    lines: Iterator[tuple[int, bytes | OversizedLine]], out: IO[bytes], result: BatchSummaryResult,
    whitelist: UrlWhitelist,
) -> None:
    """The per-line loop: counts kept in locals, summaries written in large chunks (a write
    per summary would be a syscall every two lines)."""
    feed, batch = result.feed, result.batch
    ids: set[str] = set()
    pending: list[bytes] = []
    pending_size = objects = summaries = dropped_urls = bytes_out = 0
    stopping = stop_requested
    for number, line in lines:
        if stopping():  # a stop requested from another thread (an interrupt reaches only the main one)
            raise StopRequested()
        objects += 1
        if isinstance(line, OversizedLine):
            result.reject(number, line.reason)
            continue
        if not line or line.isspace():
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
        pending.append(encoded)
        pending_size += len(encoded)
        summaries += 1
        ids.add(summary["vt.id"])
        dropped_urls += dropped
        if pending_size >= _WRITE_CHUNK:
            bytes_out += _write_lines(out, pending)
            pending_size = 0
    bytes_out += _write_lines(out, pending)
    result.objects, result.summaries, result.documents = objects, summaries, len(ids)
    result.dropped_urls, result.bytes_out = dropped_urls, bytes_out


def _write_lines(out: IO[bytes], pending: list[bytes]) -> int:
    """Write `pending` as NDJSON lines in one call and empty it; returns the bytes written.

    One joined chunk rather than a growing bytearray: the chunk's memory is reused from one
    write to the next instead of being returned to the system and faulted in again.
    """
    pending.append(b"")
    chunk = b"\n".join(pending)
    out.write(chunk)
    pending.clear()
    return len(chunk)


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
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


_worker_whitelist: UrlWhitelist | None = None


def _init_worker(whitelist_path: Path | None) -> None:
    global _worker_whitelist
    _worker_whitelist = UrlWhitelist.from_file(whitelist_path) if whitelist_path else UrlWhitelist.default()


def _init_worker_process(whitelist_path: Path | None) -> None:
    """A worker process stops on SIGTERM as on Ctrl-C: the summary it writes removes its temp file."""
    signal.signal(signal.SIGTERM, _stop_worker)
    _init_worker(whitelist_path)


def _stop_worker(signum: int, frame: object) -> None:
    """The batch being summarized stops now, and so does every batch the pool had already queued
    for this worker (they cannot be cancelled any more): each stops at its first line."""
    request_stop()
    raise KeyboardInterrupt


def _run_job(job: SummaryJob) -> BatchSummaryResult | str:
    if stop_requested():  # a batch queued for a worker told to stop: not even opened
        raise StopRequested()
    try:
        result = summarize_batch_file(job.raw_path, job.dest, feed=job.feed, batch=job.batch,
                                      whitelist=_worker_whitelist, max_line_bytes=job.max_line_bytes)
        if job.counts_root is not None:
            record_summary_count(job.counts_root, job.feed, job.batch, result.documents)
        return result
    except (BatchReadError, OSError) as exc:
        return f"{job.feed} batch {job.batch}: {exc}"


def summarize_many(
    jobs: list[SummaryJob], *, workers: int | None = None, whitelist_path: Path | None = None
) -> Iterator[BatchSummaryResult | str]:
    """Summarize batches on every core, yielding each result (or error line) in job order.

    One process per core: decompression is CPU-bound and holds no lock worth sharing, so
    two batches at once is what uses a 2-core machine fully. The biggest batches start
    first; results still come in the order of `jobs`.
    """
    if not jobs:
        return
    if len(jobs) == 1 or workers == 1:
        _init_worker(whitelist_path)
        for job in jobs:
            yield _run_job(job)
        return
    import multiprocessing

    workers = workers or os.cpu_count() or 1
    context = multiprocessing.get_context("forkserver")
    # Workers fork from a server that has imported this module, and the main module, once:
    # a worker re-imports the main script unless the server already has (and then exits
    # slower for it), which cost ~25 ms per pool.
    context.set_forkserver_preload(["__main__", __name__])
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=context,
        initializer=_init_worker_process, initargs=(whitelist_path,),
    ) as pool, on_stop(lambda: _stop_workers(pool)), stop_on_interrupt():
        biggest_first = sorted(range(len(jobs)), key=lambda index: _raw_size(jobs[index]), reverse=True)
        started = {index: pool.submit(_run_job, jobs[index]) for index in biggest_first}
        yield from results_in_order([started[index] for index in range(len(jobs))])


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """SIGTERM to the pool's worker processes: each stops the batch it is on (its temp file goes)
    instead of the pool waiting for it to finish. `_processes` is the executor's own record of
    its workers (forkserver children are not this process's children, so not otherwise found)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.kill(process.pid, signal.SIGTERM)


def results_in_order(futures: list[Future[T]]) -> Iterator[T]:
    """Each future's result in list order; when the caller stops early or one raises, the
    futures not started yet are cancelled (the pool then only finishes what is running)."""
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


def _raw_size(job: SummaryJob) -> int:
    """The work a batch is: big ones start first, so the cores finish together (a range of
    batches in submission order can leave one core summarizing a big last batch alone)."""
    try:
        return job.raw_path.stat().st_size
    except OSError:
        return 0
