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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from vt_dagster.feeds import HOUR_FORMAT, HOURLY_LAG, Feed, parse_minute_key
from vt_dagster.storage import (
    missing_marker_path,
    raw_batch_path,
    remove_stale_parts,
    verify_batch_file,
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
    """Some batches of a range could not be fetched; every other batch was kept."""


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
) -> FetchPlan:
    """Sort a range into batches already done, whole hours to fetch packaged, single minutes."""
    keys = sorted(set(batches))
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        check = in_callers_context(lambda key: _already_done(root, feed, key, refetch_missing))
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


def _already_done(root: Path, feed: Feed, batch: str, refetch_missing: bool) -> BatchOutcome | None:
    """A verified batch on disk, or a remembered 404; None when it must be fetched."""
    path = raw_batch_path(root, feed.name, batch)
    started = time.monotonic()
    if path.exists():
        check = verify_batch_file(path)
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
) -> list[BatchOutcome]:
    """Make every batch of the range present on disk (or known missing), in key order.

    Raises `FeedAuthError` at once for 401/403. Other failures are collected: every batch
    that could be fetched is kept, then `RawBatchError` names the rest. More than
    `max_consecutive_missing` 404s in a row is an incident (VT says so): it raises, and those
    404s are not remembered, so the next run asks again.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    plan = plan_fetch(
        root, feed, batches, now=now, refetch_missing=refetch_missing,
        hourly_min_minutes=hourly_min_minutes, workers=workers,
    )
    outcomes: dict[str, BatchOutcome] = dict(plan.present)
    remove_stale_parts(root / "raw" / feed.name)

    fallback: list[str] = []
    for hour, minutes in sorted(plan.hourly.items()):
        fetched = _fetch_hour(client, root, feed, hour, minutes)
        if fetched is None:
            fallback.extend(minutes)
        else:
            outcomes.update(fetched)

    minute_keys = sorted(plan.minutes + fallback)
    fetch = in_callers_context(lambda key: _fetch_minute(client, root, feed, key))
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        for outcome in pool.map(fetch, minute_keys):
            outcomes[outcome.batch] = outcome

    ordered = [outcomes[key] for key in sorted(outcomes)]
    streak = longest_missing_streak(ordered)
    if len(streak) <= max_consecutive_missing:
        for outcome in ordered:
            if outcome.status == STATUS_MISSING and outcome.source != "marker":
                write_missing_marker(root, feed.name, outcome.batch, outcome.http_status, "no batch (404)")
    if on_outcome:
        for outcome in ordered:
            on_outcome(outcome)

    failed = [outcome for outcome in ordered if outcome.status == STATUS_FAILED]
    if len(streak) > max_consecutive_missing:
        raise RawBatchError(
            f"{feed.name}: {len(streak)} consecutive minutes without a batch ({streak[0]}..{streak[-1]}), "
            f"more than the {max_consecutive_missing} VT calls normal: the feed may be down"
        )
    if failed:
        first = failed[0]
        raise RawBatchError(
            f"{feed.name}: {len(failed)} of {len(ordered)} batches could not be fetched "
            f"(first: {first.batch}: {first.error}); all others were kept"
        )
    return ordered


def in_callers_context(function: Callable[[T], R]) -> Callable[[T], R]:
    """`function` to run in pool threads, each call in its own copy of the caller's context.

    A new thread starts with an empty context: without this, the APM transaction (a
    contextvar) is not visible there and the spans of downloads and checks would be lost.
    A context cannot be entered by two threads at once, hence one copy per call.
    """
    callers = contextvars.copy_context()
    return lambda item: callers.copy().run(function, item)


def longest_missing_streak(outcomes: list[BatchOutcome]) -> list[str]:
    """The longest run of adjacent minutes answered 404 in this run (remembered ones excluded)."""
    best: list[str] = []
    current: list[str] = []
    previous: dt.datetime | None = None
    for outcome in outcomes:
        fresh_missing = outcome.status == STATUS_MISSING and outcome.source != "marker"
        moment = parse_minute_key(outcome.batch)
        if fresh_missing and current and previous == moment - dt.timedelta(minutes=1):
            current.append(outcome.batch)
        elif fresh_missing:
            current = [outcome.batch]
        else:
            current = []
        previous = moment
        if len(current) > len(best):
            best = list(current)
    return best


def _fetch_minute(client: FeedsClient, root: Path, feed: Feed, batch: str) -> BatchOutcome:
    started = time.monotonic()
    try:
        result = client.download_minute(feed, batch, raw_batch_path(root, feed.name, batch))
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
    with tempfile.TemporaryDirectory(dir=spool_dir, prefix=f".hourly-{hour}-") as tmp:
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
