"""Fetching a range of minute batches of one feed: what is on disk stays, the rest is fetched.

Free of Dagster: the asset, the CLI and the tests call `fetch_batches`. Whole UTC hours the
range needs come from the hourly package (one request instead of 60), the rest from minute
requests, in a bounded thread pool (downloads wait on the network, and bz2 verification
releases the GIL). Pool threads run in a copy of the caller's context, so the APM spans they
open belong to the caller's transaction.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from vt_dagster.decoded_batches import DecodedBatches
from vt_dagster.feeds import HOUR_FORMAT, HOURLY_LAG, Feed, minute_key, parse_minute_key
from vt_dagster.interrupts import on_stop, stop_on_interrupt
from vt_dagster.storage import (
    SPOOL_PREFIX,
    forget_absence,
    incident_note_path,
    missing_marker_path,
    raw_batch_path,
    raw_write_folders,
    remove_debris,
    verify_batch_file,
    write_incident_note,
    write_missing_marker,
)
from vt_dagster.vt_client import FeedAuthError, FeedError, FeedsClient, split_hourly_package

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

STATUS_DOWNLOADED = "downloaded"
STATUS_PRESENT = "present"
STATUS_MISSING = "missing"
STATUS_FAILED = "failed"
STREAK_LOOKAROUND_MINUTES = 24 * 60
"""How far a streak of 404s is followed on disk beyond a run's range, each way."""


@dataclass
class BatchOutcome:
    """One partition's fate in a run; numeric fields are what the UI plots."""

    batch: str
    status: str
    source: str
    http_status: int = 0
    attempts: int = 0
    bytes: int = 0
    objects: int = 0
    sha256: str = ""
    duration_s: float = 0.0
    error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class RawBatchError(RuntimeError):
    """Some batches of a range could not be fetched; every other batch was kept.

    `retryable`: whether asking again soon may help (network faults may heal; a VT incident,
    404s VT gave on purpose, is asked again by the next runs, not by a retry 30 s later).
    `outcomes`: every batch of the range in key order; `unfinished`: why each batch that is
    neither on disk nor remembered as missing is not (failed, or a 404 of the incident).
    """

    def __init__(self, message: str, *, retryable: bool = True, outcomes: list[BatchOutcome] | None = None,
                 unfinished: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.outcomes = outcomes or []
        self.unfinished = unfinished or {}


@dataclass
class FetchPlan:
    present: dict[str, BatchOutcome]
    hourly: dict[str, list[str]]
    minutes: list[str]


def hourly_package_available(hour_start: dt.datetime, now: dt.datetime) -> bool:
    """VT serves hour H once `now - 2h` falls in or after it."""
    return hour_start <= (now - HOURLY_LAG).replace(minute=0, second=0, microsecond=0)


def plan_fetch(
    root: Path,
    feed: Feed,
    batches: Iterable[str],
    *,
    now: dt.datetime,
    refetch_missing: bool = False,
    hourly_min_minutes: int = 10,
    workers: int = 4,
    keep_decoded: DecodedBatches | None = None,
) -> FetchPlan:
    """Sort a range into batches already done, whole hours to fetch packaged, single minutes
    (`keep_decoded`: see `fetch_batches`)."""
    keys = sorted(set(batches))
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        check = in_callers_context(lambda key: _already_done(root, feed, key, refetch_missing, keep_decoded))
        done = dict(zip(keys, pool.map(check, keys)))
    present = {key: outcome for key, outcome in done.items() if outcome is not None}
    needed = [key for key in keys if key not in present]

    in_range_by_hour: dict[str, int] = defaultdict(int)
    for key in keys:
        in_range_by_hour[key[:10]] += 1
    needed_by_hour: dict[str, list[str]] = defaultdict(list)
    for key in needed:
        needed_by_hour[key[:10]].append(key)

    hourly = {
        hour: minutes
        for hour, minutes in needed_by_hour.items()
        if in_range_by_hour[hour] == 60
        and len(minutes) >= hourly_min_minutes
        and hourly_package_available(dt.datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=dt.timezone.utc), now)
    }
    minutes = [key for key in needed if key[:10] not in hourly]
    return FetchPlan(present, hourly, minutes)


def _already_done(
    root: Path, feed: Feed, batch: str, refetch_missing: bool, keep: DecodedBatches | None = None
) -> BatchOutcome | None:
    """A verified batch on disk, or a remembered 404; None when it must be fetched."""
    path = raw_batch_path(root, feed.name, batch)
    started = time.monotonic()
    if path.exists():
        check = verify_batch_file(path, keep)
        if check.ok:
            return BatchOutcome(
                batch, STATUS_PRESENT, "disk", bytes=check.bytes, objects=check.objects,
                sha256=check.sha256, duration_s=time.monotonic() - started,
            )
        log.warning("%s batch %s on disk is damaged (%s): fetching it again", feed.name, batch, check.error)
    elif not refetch_missing and missing_marker_path(root, feed.name, batch).exists():
        return BatchOutcome(batch, STATUS_MISSING, "marker", http_status=404)
    return None


def fetch_batches(
    client: FeedsClient,
    root: Path,
    feed: Feed,
    batches: Iterable[str],
    *,
    now: dt.datetime | None = None,
    refetch_missing: bool = False,
    workers: int = 4,
    hourly_min_minutes: int = 10,
    max_consecutive_missing: int = 3,
    on_outcome: Callable[[BatchOutcome], None] | None = None,
    keep_decoded: DecodedBatches | None = None,
) -> list[BatchOutcome]:
    """Make every batch of the range present on disk (or known missing), in key order.

    Raises `FeedAuthError` at once for 401/403. Other failures are collected: every batch
    that could be fetched is kept, then `RawBatchError` names the rest (and carries every
    batch's outcome).

    More than `max_consecutive_missing` 404s in a row is an incident (VT says so), and the
    rule holds across runs: a live run fetches one minute, so the streak also counts the
    404s earlier (or later) runs noted on disk around the range. The run that takes a streak
    past the limit fails, naming its first..last minute, and none of the streak's minutes
    stays remembered as missing: the markers earlier runs wrote for it are removed, so every
    one of them is asked for again once VT recovers. Each gets an incident note instead,
    which does not stop it from being asked again but keeps the streak visible: a retry, the
    next live minute or a gap-filling run that meets the same 404s fails as loudly instead
    of starting a new count. A download removes a batch's notes.

    `on_outcome` hears each batch's fate as soon as it is known (before any 404 is noted on
    disk): what a run stopped midway had done. A stop (`interrupts`) aborts the requests in
    flight, removes their temp files and raises StopRequested.

    `keep_decoded`: where the batches the checks decoded go (minute downloads and files found
    on disk), when the stages that read them next run in this process (`decoded_batches`).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    keys = list(batches)
    if removed := remove_debris(raw_write_folders(root, feed.name, keys)):
        log.info("%s: removed %d temp file(s) or folder(s) crashed runs left behind", feed.name, removed)
    plan = plan_fetch(
        root, feed, keys, now=now, refetch_missing=refetch_missing,
        hourly_min_minutes=hourly_min_minutes, workers=workers, keep_decoded=keep_decoded,
    )
    outcomes: dict[str, BatchOutcome] = {}
    heard = on_outcome or (lambda outcome: None)

    def known(outcome: BatchOutcome) -> None:
        outcomes[outcome.batch] = outcome
        heard(outcome)

    for outcome in plan.present.values():
        known(outcome)
    with on_stop(client.abort), stop_on_interrupt():
        fallback: list[str] = []
        for hour, minutes in sorted(plan.hourly.items()):
            fetched = _fetch_hour(client, root, feed, hour, minutes)
            if fetched is None:
                fallback.extend(minutes)
            else:
                for outcome in fetched.values():
                    known(outcome)

        minute_keys = sorted(plan.minutes + fallback)
        fetch = in_callers_context(lambda key: _fetch_minute(client, root, feed, key, keep_decoded))
        futures: list[Future[BatchOutcome]] = []
        try:
            with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
                futures = [pool.submit(fetch, key) for key in minute_keys]
                try:
                    for future in as_completed(futures):  # as they come: a stop keeps every one done so far
                        known(future.result())
                finally:
                    for future in futures:
                        future.cancel()
        except BaseException:
            for future in futures:  # done while the error (a stop) went up: on disk and whole, heard too
                if future.done() and not future.cancelled() and future.exception() is None:
                    if future.result().batch not in outcomes:
                        known(future.result())
            raise

    ordered = [outcomes[key] for key in sorted(outcomes)]
    incidents = [streak for streak in missing_streaks(root, feed, ordered) if len(streak) > max_consecutive_missing]
    _note_absences(root, feed, ordered, incidents)

    failed = [outcome for outcome in ordered if outcome.status == STATUS_FAILED]
    unfinished = {outcome.batch: outcome.error for outcome in failed}
    for streak in incidents:
        unfinished.update({batch: f"404 in an incident ({streak[0]}..{streak[-1]})"
                           for batch in streak if batch in outcomes})
    if incidents:
        streak = max(incidents, key=len)
        others = f" and {len(incidents) - 1} more such streak(s)" if len(incidents) > 1 else ""
        raise RawBatchError(
            f"{feed.name}: {len(streak)} consecutive minutes without a batch ({streak[0]}..{streak[-1]}){others}, "
            f"more than the {max_consecutive_missing} VT calls normal: the feed may be down; "
            "these minutes are not remembered as missing and will be asked for again",
            retryable=bool(failed), outcomes=ordered, unfinished=unfinished,
        )
    if failed:
        first = failed[0]
        raise RawBatchError(
            f"{feed.name}: {len(failed)} of {len(ordered)} batches could not be fetched "
            f"(first: {first.batch}: {first.error})",
            outcomes=ordered, unfinished=unfinished,
        )
    return ordered


def _note_absences(root: Path, feed: Feed, ordered: list[BatchOutcome], incidents: list[list[str]]) -> None:
    """Markers for this run's 404s outside incidents, incident notes for every minute of one."""
    in_incident = {batch for streak in incidents for batch in streak}
    for outcome in ordered:
        if outcome.batch in in_incident:
            continue
        if outcome.status == STATUS_MISSING and outcome.source != "marker":
            write_missing_marker(root, feed.name, outcome.batch, outcome.http_status, "no batch (404)")
            forget_absence(root, feed.name, outcome.batch, marker=False)
        elif outcome.status == STATUS_DOWNLOADED:
            forget_absence(root, feed.name, outcome.batch)
    for streak in incidents:
        for batch in streak:
            write_incident_note(root, feed.name, batch, streak)
            forget_absence(root, feed.name, batch, incident=False)


def in_callers_context(function: Callable[[T], R]) -> Callable[[T], R]:
    """`function` to run in pool threads, each call in its own copy of the caller's context.

    A new thread starts with an empty context: without this, the APM transaction (a
    contextvar) is not visible there and the spans of downloads and checks would be lost.
    A context cannot be entered by two threads at once, hence one copy per call.
    """
    callers = contextvars.copy_context()
    return lambda item: callers.copy().run(function, item)


def missing_streaks(
    root: Path, feed: Feed, outcomes: list[BatchOutcome], *, lookaround: int = STREAK_LOOKAROUND_MINUTES
) -> list[list[str]]:
    """Every run of adjacent minutes without a batch that holds a 404 VT gave in this run.

    Inside the run a minute counts when its outcome is missing (answered now or remembered);
    outside it, up to `lookaround` minutes each way, when an earlier run left its missing
    marker or incident note and no batch. Runs with no fresh 404 cost no disk access.
    """
    by_key = {outcome.batch: outcome for outcome in outcomes}
    streaks: list[list[str]] = []
    seen: set[str] = set()
    for outcome in outcomes:
        fresh_missing = outcome.status == STATUS_MISSING and outcome.source != "marker"
        if not fresh_missing or outcome.batch in seen:
            continue
        before = _absent_neighbours(root, feed, by_key, outcome.batch, -1, lookaround)
        after = _absent_neighbours(root, feed, by_key, outcome.batch, 1, lookaround)
        streak = [*reversed(before), outcome.batch, *after]
        seen.update(streak)
        streaks.append(streak)
    return streaks


def _absent_neighbours(
    root: Path, feed: Feed, by_key: dict[str, BatchOutcome], batch: str, step: int, lookaround: int
) -> list[str]:
    """The adjacent minutes without a batch next to `batch`, going `step` minutes at a time."""
    found: list[str] = []
    moment = parse_minute_key(batch)
    looked_on_disk = 0
    while True:
        moment += dt.timedelta(minutes=step)
        key = minute_key(moment)
        outcome = by_key.get(key)
        if outcome is not None:
            if outcome.status != STATUS_MISSING:
                return found
        else:
            looked_on_disk += 1
            if looked_on_disk > lookaround or not _noted_absent(root, feed, key):
                return found
        found.append(key)


def _noted_absent(root: Path, feed: Feed, batch: str) -> bool:
    """An earlier run found no batch: a marker or incident note and no batch file (checked first:
    the usual neighbour has one)."""
    return not raw_batch_path(root, feed.name, batch).exists() and (
        missing_marker_path(root, feed.name, batch).exists() or incident_note_path(root, feed.name, batch).exists()
    )


def _fetch_minute(
    client: FeedsClient, root: Path, feed: Feed, batch: str, keep: DecodedBatches | None
) -> BatchOutcome:
    started = time.monotonic()
    try:
        result = client.download_minute(feed, batch, raw_batch_path(root, feed.name, batch), keep)
    except FeedAuthError:
        raise
    except (FeedError, OSError) as exc:
        return BatchOutcome(batch, STATUS_FAILED, "minute", error=str(exc), duration_s=time.monotonic() - started)
    status = STATUS_DOWNLOADED if result.status == "downloaded" else STATUS_MISSING
    return BatchOutcome(
        batch, status, "minute", result.http_status, result.attempts, result.bytes, result.objects,
        result.sha256, result.duration_s,
    )


def _fetch_hour(
    client: FeedsClient, root: Path, feed: Feed, hour: str, minutes: list[str]
) -> dict[str, BatchOutcome] | None:
    """The hour's needed minutes from one hourly package; None means fall back to minutes."""
    started = time.monotonic()
    spool_dir = root / "raw" / feed.name
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=spool_dir, prefix=f"{SPOOL_PREFIX}{hour}-") as tmp:
        package = Path(tmp) / f"{hour}.tar.bz2"
        try:
            available, attempts = client.download_hour(feed, hour, package)
            if not available:
                log.warning("%s hourly package %s: 404, fetching its minutes one by one", feed.name, hour)
                return None
            checks = split_hourly_package(
                package, hour, set(minutes), lambda key: raw_batch_path(root, feed.name, key)
            )
        except FeedAuthError:
            raise
        except (FeedError, OSError) as exc:
            log.warning("%s hourly package %s failed (%s): fetching its minutes one by one", feed.name, hour, exc)
            return None
    elapsed = time.monotonic() - started
    share = elapsed / max(len(minutes), 1)
    outcomes: dict[str, BatchOutcome] = {}
    for key in minutes:
        check = checks.get(key)
        if check is None:
            outcomes[key] = BatchOutcome(key, STATUS_MISSING, "hourly", 404, attempts, duration_s=share)
        else:
            outcomes[key] = BatchOutcome(
                key, STATUS_DOWNLOADED, "hourly", 200, attempts, check.bytes, check.objects, check.sha256, share
            )
    return outcomes
