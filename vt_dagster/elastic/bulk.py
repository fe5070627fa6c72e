"""Bulk indexing: summary files and raw batches' full reports streamed through `_bulk` as
ready NDJSON bytes, failures counted per document, never raised per document. Each bulk
request's ids are looked up across the alias first, so that a document ends up in one index
of the alias only, whatever rolled over (`copies`)."""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import elasticapm
import msgspec
from elasticsearch import Elasticsearch
from elasticsearch.helpers import streaming_bulk

from vt_dagster.batch_lines import DEFAULT_MAX_LINE_BYTES, OversizedLine, iter_batch_lines, iter_lines
from vt_dagster.elastic.copies import CopyFinder, GroupPlan, StaleCopy, delete_action
from vt_dagster.elastic.counts import refresh_alias
from vt_dagster.elastic.errors import cause_text, cluster_url, one_line, talking_to
from vt_dagster.elastic.names import batch_time, batch_version, report_doc_id, summary_doc_id
from vt_dagster.feeds import get_feed
from vt_dagster.interrupts import raise_if_stopped, stop_on_interrupt
from vt_dagster.summaries import results_in_order

# Bulk requests: ~10 MiB is Elastic's usual sweet spot; VT file reports can be 100s of kB each.
DEFAULT_CHUNK_SIZE = 500
DEFAULT_MAX_CHUNK_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_RETRIES = 5
DEFAULT_INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
RETRY_ON_STATUS = (429, 503)
# Failures beyond this many are counted but their reasons are not kept.
MAX_ERROR_MESSAGES = 20


@dataclass
class IndexResult:
    """What a bulk run did: documents written, failures (with the first reasons), how long.

    `skipped_older`: reports not written because the alias holds a newer batch of the same
    object (not a failure). `duplicates`: lines whose `_id` an earlier line of the same file
    had; they overwrite it, so the alias holds `indexed - duplicates` documents of the file.
    `copies_removed`: older copies of the documents deleted from other indices of the alias
    (a batch indexed again after a rollover, an object seen again). `copies_left`: copies
    Elasticsearch refused to delete (a read-only index): the alias holds those documents
    twice until the batch is indexed again, which the caller treats as a failure.
    """

    indexed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped_older: int = 0
    duplicates: int = 0
    copies_removed: int = 0
    copies_left: int = 0


class _Doc(NamedTuple):
    """One document ready to send: its `_id`, its batch, the action line and the source."""

    doc_id: str
    batch: str
    action: bytes
    source: bytes


class _Tally:
    """Counts while actions stream out and bulk answers stream back."""

    def __init__(self) -> None:
        self.sent = 0
        self.bad_lines = 0
        self.failed_documents = 0
        self.skipped_older = 0
        self.duplicates = 0
        self.copies_removed = 0
        self.copies_left = 0
        self.errors: list[str] = []
        self.line_of: dict[str, int] = {}

    def send(self, doc_id: str, line: int) -> None:
        self.sent += 1
        if doc_id in self.line_of:
            self.duplicates += 1
        self.line_of[doc_id] = line

    def reject_line(self, line: int, reason: str) -> None:
        self.bad_lines += 1
        self._note(f"line {line}: {one_line(reason, 300)}")

    def fail_document(self, info: Mapping[str, Any]) -> None:
        self.failed_documents += 1
        self._note(f"{self._where(info)}: {self._reason(info)}")

    def keep_copy(self, info: Mapping[str, Any], index: str) -> None:
        """A copy in another index that Elasticsearch refused to delete."""
        self.copies_left += 1
        self._note(f"{self._where(info)}: its older copy in {index} could not be removed, so the alias "
                   f"holds it twice until the batch is indexed again: {self._reason(info)}")

    def _where(self, info: Mapping[str, Any]) -> str:
        doc_id = str(info.get("_id", "?"))
        return f"{f'line {self.line_of[doc_id]}' if doc_id in self.line_of else 'document'} (_id {doc_id})"

    @staticmethod
    def _reason(info: Mapping[str, Any]) -> str:
        error = info.get("error")
        return f"{info.get('status', '?')} {cause_text(error) if isinstance(error, dict) else one_line(error)}"

    def _note(self, message: str) -> None:
        if len(self.errors) < MAX_ERROR_MESSAGES:
            self.errors.append(message)

    def result(self, started: float) -> IndexResult:
        return IndexResult(
            indexed=self.sent - self.skipped_older - self.failed_documents,
            failed=self.bad_lines + self.failed_documents,
            errors=list(self.errors),
            seconds=round(time.monotonic() - started, 3),
            skipped_older=self.skipped_older,
            duplicates=self.duplicates,
            copies_removed=self.copies_removed,
            copies_left=self.copies_left,
        )


def _run_bulk(
    client: Elasticsearch,
    docs: Iterable[_Doc],
    tally: _Tally,
    *,
    what: str,
    alias: str,
    batch: str,
    version: int | None,
    chunk_size: int,
    max_chunk_bytes: int,
    max_retries: int,
    initial_backoff: float,
) -> None:
    """Write `docs` into `alias`, one bulk request per group, keeping one copy of each `_id`.

    Per group of `chunk_size` documents or `max_chunk_bytes`: where the alias already holds
    them (`CopyFinder`), the writes through `streaming_bulk` (retrying 429/503 with backoff),
    then the deletes of the copies left in other indices. Documents come as ready NDJSON lines
    (action, source): the helper forwards bytes as they are, so nothing is parsed or
    serialised twice. The answer keeps only each item's index, status, error and `_id`
    (`filter_path`). `require_alias` makes a missing alias fail every document with a clear
    reason instead of Elasticsearch auto-creating a concrete index under the alias's name.
    `version`: the reports' external version (their 409 means an older batch, not a failure).
    """
    finder = CopyFinder(client, alias, version)
    options: dict[str, Any] = {
        "chunk_size": chunk_size, "max_chunk_bytes": max_chunk_bytes, "expand_action_callback": _prebuilt_action,
        "raise_on_error": False, "max_retries": max_retries, "initial_backoff": initial_backoff,
        "max_backoff": MAX_BACKOFF_S, "retry_on_status": RETRY_ON_STATUS, "filter_path": _BULK_ANSWER_FIELDS,
    }
    with talking_to(client, what), _bulk_span(alias, batch) as apm_span:
        _describe_node(apm_span, client)
        for group in _groups(docs, chunk_size, max_chunk_bytes):
            plan = finder.plan([doc.doc_id for doc in group], {doc.batch for doc in group})
            writes = [doc for doc in group if doc.doc_id not in plan.skip]
            tally.skipped_older += len(group) - len(writes)
            landed = _write(client, writes, plan, tally, options, versioned=version is not None)
            _delete_copies(client, plan.stale + plan.left_behind(landed), tally, options)
        _record_bulk_result(apm_span, tally)


def _groups(docs: Iterable[_Doc], chunk_size: int, max_chunk_bytes: int) -> Iterator[list[_Doc]]:
    """`docs` in groups of one bulk request each, cut as `streaming_bulk` cuts its chunks."""
    group: list[_Doc] = []
    size = 0
    for doc in docs:
        doc_size = len(doc.action) + len(doc.source) + 2
        if group and (len(group) == chunk_size or size + doc_size > max_chunk_bytes):
            yield group
            group, size = [], 0
        group.append(doc)
        size += doc_size
    if group:
        yield group


def _write(client: Elasticsearch, docs: list[_Doc], plan: GroupPlan, tally: _Tally, options: Mapping[str, Any],
           *, versioned: bool) -> dict[str, str]:
    """Send `docs`; the index each document with copies elsewhere landed in, by `_id`."""
    landed: dict[str, str] = {}
    for ok, item in streaming_bulk(client, ((doc.action, doc.source) for doc in docs), yield_ok=bool(plan.elsewhere),
                                   require_alias=True, **options):
        info = next(iter(item.values()))
        if ok:
            if info.get("_id") in plan.elsewhere:
                landed[info["_id"]] = info["_index"]
        elif versioned and info.get("status") == 409:
            tally.skipped_older += 1
        else:
            tally.fail_document(info)
    return landed


def _delete_copies(client: Elasticsearch, stale: list[StaleCopy], tally: _Tally, options: Mapping[str, Any]) -> None:
    """Delete copies from their concrete indices. Gone already (404) or newer than the copy
    kept (409, a run racing this one wrote it) is no failure; a refusal is counted."""
    if not stale:
        return
    not_deleted = 0
    index_of = {copy.doc_id: copy.index for copy in stale}  # a refusal may not say where
    for _, item in streaming_bulk(client, ((delete_action(copy), None) for copy in stale), yield_ok=False, **options):
        info = next(iter(item.values()))
        not_deleted += 1
        if info.get("status") not in (404, 409):
            tally.keep_copy(info, info.get("_index") or index_of.get(str(info.get("_id")), "another index"))
    tally.copies_removed += len(stale) - not_deleted


# What a bulk answer keeps: per item only where it went, and whether and why it failed.
_BULK_ANSWER_FIELDS = "errors,items.*._id,items.*._index,items.*.status,items.*.error"


def _prebuilt_action(action: tuple[bytes, bytes | None]) -> tuple[bytes, bytes | None]:
    """The helper's `expand_action_callback` for actions that are already NDJSON lines."""
    return action


def _index_action(alias: str, doc_id: str, extra: str = "") -> bytes:
    """The `_bulk` action line indexing `doc_id` into `alias` (both need no JSON escaping:
    names are checked by `check_name`, ids are hex)."""
    return f'{{"index":{{"_index":"{alias}","_id":"{doc_id}"{extra}}}}}'.encode()


def _bulk_span(alias: str, batch: str) -> elasticapm.capture_span:
    """One APM exit span per bulk run of a batch (all its chunks); a no-op without a transaction.

    A leaf: were the agent's own Elasticsearch instrumentation ever switched on, its span per
    `_bulk` request would be dropped inside this one instead of doubling it.
    """
    return elasticapm.capture_span(
        f"ES bulk {alias}", span_type="db", span_subtype="elasticsearch", span_action="bulk",
        labels={"batch": batch}, leaf=True,
    )


def _record_bulk_result(apm_span: Any, tally: _Tally) -> None:
    if apm_span is not None:
        failed = tally.bad_lines + tally.failed_documents
        apm_span.label(documents=tally.sent, failed=failed, skipped_older=tally.skipped_older,
                       copies_removed=tally.copies_removed)
        apm_span.outcome = "failure" if failed or tally.copies_left else "success"


def _describe_node(apm_span: Any, client: Elasticsearch) -> None:
    """Where the bulk span went (host and port only: credentials travel in headers)."""
    if apm_span is not None:
        node = urlsplit(cluster_url(client))
        apm_span.update_context("db", {"type": "elasticsearch"})
        apm_span.update_context("destination", {"address": node.hostname, "port": node.port})


def run_concurrently(jobs: Sequence[Callable[[], IndexResult]], streams: int) -> Iterator[IndexResult]:
    """Run bulk jobs (one per batch) on `streams` threads; results come in job order.

    One `_bulk` stream leaves a node's write threads idle while the client reads the next
    chunk and waits for the answer: two streams keep a 2-core node busy, as Elastic's tuning
    guide advises. Each job runs in a copy of the caller's context, so its APM span nests in
    the stage's transaction. An error stops the jobs not yet started and is raised.
    """
    if streams <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job()
        return
    with ThreadPoolExecutor(max_workers=min(streams, len(jobs)), thread_name_prefix="vt-bulk") as pool, \
            stop_on_interrupt():  # the streams stop at their next line instead of finishing their batch
        yield from results_in_order([pool.submit(contextvars.copy_context().run, job) for job in jobs])


def index_summary_file(
    client: Elasticsearch,
    path: Path,
    *,
    alias: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    max_retries: int = DEFAULT_MAX_RETRIES,
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF_S,
    refresh: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> IndexResult:
    """Index an NDJSON summary file into `alias`, `_id` = summary_doc_id(vt.batch, vt.id).

    Each line is checked (JSON object with `vt.batch` and `vt.id` strings) and then sent as
    its original bytes, not re-serialised. When an index of the alias already holds a batch
    of the file (a re-run), the copies of its summaries in other indices than the one written
    are deleted (`copies_removed`). Bad lines (a line longer than `max_line_bytes`
    too, never held whole) and refused documents are counted in `failed` with their line
    numbers; nothing is raised per document. `refresh` makes the documents searchable before
    returning (for counting right away).
    """
    tally = _Tally()
    started = time.monotonic()
    _run_bulk(client, _summary_actions(Path(path), alias, tally, max_line_bytes), tally,
              what=f"index {path} into {alias}", alias=alias, batch=Path(path).stem, version=None,
              chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes, max_retries=max_retries,
              initial_backoff=initial_backoff)
    if refresh:
        refresh_alias(client, alias)
    return tally.result(started)


def _summary_actions(path: Path, alias: str, tally: _Tally, max_line_bytes: int) -> Iterator[_Doc]:
    with open(path, "rb") as handle:
        for number, line in iter_lines(handle, max_line_bytes):
            raise_if_stopped()
            if isinstance(line, OversizedLine):
                tally.reject_line(number, line.reason)
                continue
            line = line.strip()
            if not line:
                continue
            try:
                batch, doc_id = _summary_line_id(line)
            except ValueError as exc:
                tally.reject_line(number, str(exc))
                continue
            tally.send(doc_id, number)
            yield _Doc(doc_id, batch, _index_action(alias, doc_id), line)


class _SummaryIds(msgspec.Struct):
    """The members a summary's `_id` is made of: msgspec checks the whole line is JSON but
    builds nothing for the others (json.loads of every summary was a third of the indexer's time)."""

    batch: Any = msgspec.field(name="vt.batch", default=None)
    vt_id: Any = msgspec.field(name="vt.id", default=None)


_decode_summary_ids = msgspec.json.Decoder(_SummaryIds).decode


def _summary_line_id(line: bytes) -> tuple[str, str]:
    """(`vt.batch`, `_id`) of a summary line; ValueError saying what is wrong with a line that has none."""
    try:
        ids = _decode_summary_ids(line)
    except msgspec.DecodeError:
        ids = None
    if ids is not None and isinstance(ids.batch, str) and ids.batch and isinstance(ids.vt_id, str) and ids.vt_id:
        return ids.batch, summary_doc_id(ids.batch, ids.vt_id)
    summary = _json_object(line)  # the slow path, for its precise error
    batch = _text_field(summary, "vt.batch")
    return batch, summary_doc_id(batch, _text_field(summary, "vt.id"))


def _json_object(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"invalid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object but {type(value).__name__}")
    return value


def _text_field(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"no {key!r} string")
    return value


def index_reports(
    client: Elasticsearch,
    raw_batch_path: Path,
    *,
    alias: str,
    feed: str,
    batch: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    max_retries: int = DEFAULT_MAX_RETRIES,
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF_S,
    refresh: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> IndexResult:
    """Index the full VT objects of a raw bz2 batch into the report alias `alias`.

    Each object is stored as delivered plus `vt.feed`, `vt.batch`, `vt.batch_time`, with
    `_id` = report_doc_id(id), `version_type=external_gte` and version = batch_version(batch):
    the same batch again rewrites the same documents (idempotent); an older batch arriving
    after a newer one is counted in `skipped_older` and not written. That holds across the
    alias: each group of ids is looked up in every index behind it first, a report the alias
    holds newer anywhere is skipped, and once a report is written its copies in other indices
    are deleted (`copies_removed`), so each object has one report in the alias, the newest.
    Lines may be bare objects or `{"data": object}`; bad lines count as failed with their
    number, a line longer than `max_line_bytes` too (it is never held whole). A corrupt or
    truncated bz2 file raises BatchReadError (what was sent stays).
    """
    feed_name = get_feed(feed).name
    version = batch_version(batch)
    extra = {"vt.feed": feed_name, "vt.batch": batch, "vt.batch_time": batch_time(batch)}
    tally = _Tally()
    started = time.monotonic()
    docs = _report_actions(Path(raw_batch_path), alias, batch, extra, version, tally, max_line_bytes)
    _run_bulk(client, docs, tally, what=f"index reports of {raw_batch_path} into {alias}",
              alias=alias, batch=batch, version=version, chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes,
              max_retries=max_retries, initial_backoff=initial_backoff)
    if refresh:
        refresh_alias(client, alias)
    return tally.result(started)


def _report_actions(
    path: Path, alias: str, batch: str, extra: dict[str, str], version: int, tally: _Tally, max_line_bytes: int,
) -> Iterator[_Doc]:
    extra_members = json.dumps(extra, ensure_ascii=False)[1:-1].encode("utf-8")
    versioning = f',"version":{version},"version_type":"external_gte"'
    for number, line in iter_batch_lines(path, max_line_bytes):
        raise_if_stopped()
        if isinstance(line, OversizedLine):
            tally.reject_line(number, line.reason)
            continue
        line = line.strip()
        if not line:
            continue
        try:
            vt_id = _bare_report_id(line)
            if vt_id is not None:
                source = _append_members(line, extra_members)
            else:  # wrapped in {"data": ...}, or not a VT object: the slow path says which
                obj, wrapped = _vt_object(_json_object(line))
                vt_id = _text_field(obj, "id")
                source = (json.dumps({**obj, **extra}, ensure_ascii=False).encode("utf-8") if wrapped
                          else _append_members(line, extra_members))
        except ValueError as exc:
            tally.reject_line(number, str(exc))
            continue
        doc_id = report_doc_id(vt_id)
        tally.send(doc_id, number)
        yield _Doc(doc_id, batch, _index_action(alias, doc_id, versioning), source)


class _ReportId(msgspec.Struct):
    """A feed line's `id`, the rest of the (often 100 kB) report validated but not built."""

    id: Any = None


_decode_report_id = msgspec.json.Decoder(_ReportId).decode


def _bare_report_id(line: bytes) -> str | None:
    """The `id` of a bare VT object line, else None (not JSON, wrapped, no usable id)."""
    try:
        vt_id = _decode_report_id(line).id
    except msgspec.DecodeError:
        return None
    return vt_id if isinstance(vt_id, str) and vt_id else None


def _vt_object(value: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(object, whether it came wrapped in {"data": ...})."""
    if "id" not in value and isinstance(value.get("data"), dict):
        return value["data"], True
    return value, False


def _append_members(line: bytes, members: bytes) -> bytes:
    """Add `"k": v` members to a JSON object's text: much cheaper than dumping a 100 kB
    report again. `line` was parsed as a non-empty object, so it ends with `}`."""
    return line[:-1].rstrip() + b"," + members + b"}"
