"""The gap-filling sensor: partitions not yet counted in Elasticsearch get runs, in ranges.

Per tick and feed it looks at the disk (raw batches, 404 notes, summaries, the day count
files the summaries asset writes) and asks Elasticsearch once (one aggregation over the
whole window) how many documents each batch has. A batch is done when that number is what
its summaries said; everything else is requested as partition ranges of the first stage it
needs, so a batch already on disk is never downloaded again.
"""

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from vt_dagster.elastic import ElasticsearchUnavailable, batch_counts
from vt_dagster.feeds import Feed
from vt_dagster.resources import VTElasticsearchResource, VTStorageResource
from vt_dagster.partitions import MINUTES_PER_RUN, minute_partitions
from vt_dagster.storage import read_summary_counts

STAGES = ("raw_batch", "summaries", "summary_index", "report_cache")
# What a batch still needs -> the assets a run for it selects.
SELECTIONS = {
    "download": ("raw_batch", "summaries", "summary_index", "report_cache"),
    "summarize": ("summaries", "summary_index"),
    "index": ("summary_index",),
}
GRACE_PARTITIONS = 10
"""The newest minutes belong to the live schedule; the sensor leaves them alone."""
MAX_RUNS_PER_TICK = 8
RETRY_AFTER = dt.timedelta(hours=1)


@dataclass(frozen=True)
class FeedState:
    """What the disk says about a feed's batches."""

    raw: frozenset[str]
    missing: frozenset[str]
    summarized: frozenset[str]
    expected: dict[str, int]


def feed_state(root: Path, feed: str, days: Iterable[str]) -> FeedState:
    """Globs a handful of folders and reads the day count files: no per-batch file reads."""
    days = list(days)
    raw_dir = root / "raw" / feed
    raw: set[str] = set()
    missing: set[str] = set()
    for day in days:
        for path in (raw_dir / day).glob("*"):
            if path.suffix == ".bz2":
                raw.add(path.stem)
            elif path.suffix == ".missing":
                missing.add(path.stem)
    summarized = {p.stem for p in (root / "summary" / feed).glob("*.summary")}
    return FeedState(frozenset(raw), frozenset(missing), frozenset(summarized),
                     read_summary_counts(root, feed, days))


def needed_stage(batch: str, state: FeedState, in_es: dict[str, int]) -> str | None:
    """The first stage a batch still needs, or None when Elasticsearch holds all of it."""
    if batch in state.missing and batch not in state.raw:
        return None
    if batch not in state.raw:
        return "download"
    if batch not in state.summarized:
        return "summarize"
    expected = state.expected.get(batch)
    if expected is None or in_es.get(batch, 0) != expected:
        return "index"
    return None


def plan_ranges(keys: Sequence[str], stages: dict[str, str | None], max_len: int = MINUTES_PER_RUN) -> list[tuple[str, str, str]]:
    """(stage, first key, last key) runs of adjacent partitions needing the same stage."""
    ranges: list[tuple[str, str, str]] = []
    start = 0
    for index in range(1, len(keys) + 1):
        if (index == len(keys) or stages.get(keys[index]) != stages.get(keys[start])
                or index - start >= max_len):
            stage = stages.get(keys[start])
            if stage is not None:
                ranges.append((stage, keys[start], keys[index - 1]))
            start = index
    return ranges


_STAGE_ORDER = {"index": 0, "summarize": 1, "download": 2}


def prioritized(ranges: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Cheapest work first (data already on disk), then the newest gaps first."""
    newest_first = sorted(ranges, key=lambda r: r[1], reverse=True)
    return sorted(newest_first, key=lambda r: _STAGE_ORDER[r[0]])


def load_cursor(raw: str | None) -> dict[str, str]:
    """`<feed>:<stage>:<first minute>` of a requested range -> when (ISO); an unreadable cursor starts afresh."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def build_backfill_sensor(feeds: list[Feed]) -> dg.SensorDefinition:
    asset_keys = {feed.name: {stage: dg.AssetKey([feed.name, stage]) for stage in STAGES} for feed in feeds}

    @dg.sensor(
        name="vt_backfill_sensor",
        minimum_interval_seconds=60,
        asset_selection=dg.AssetSelection.assets(*[k for keys in asset_keys.values() for k in keys.values()]),
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Requests ranges of partitions not yet counted in Elasticsearch (gaps, failed runs, "
        "backfills after downtime), at most 8 runs a tick; batches on disk are never fetched again.",
    )
    def vt_backfill_sensor(
        context: dg.SensorEvaluationContext, vt_storage: VTStorageResource, vt_elasticsearch: VTElasticsearchResource
    ) -> dg.SensorResult:
        now = dt.datetime.now(dt.timezone.utc)
        keys = minute_partitions.get_partition_keys(current_time=now)[:-GRACE_PARTITIONS]
        days = _days_between(keys)
        cursor = load_cursor(context.cursor)
        requests: list[dg.RunRequest] = []
        skipped: list[str] = []
        for feed in feeds:
            state = feed_state(vt_storage.path, feed.name, days)
            counted = [k for k in keys if k in state.summarized]
            try:
                in_es = es_summary_counts(vt_elasticsearch, feed.name, counted) if counted else {}
            except ElasticsearchUnavailable as exc:
                skipped.append(f"{feed.name}: {exc}")
                break  # one cluster serves every feed: not worth waiting for it once per feed
            except Exception as exc:  # noqa: BLE001 - a refused query is a reason to skip, not a crash
                skipped.append(f"{feed.name}: {str(exc).splitlines()[0][:300]}")
                continue
            stages = {k: needed_stage(k, state, in_es) for k in keys}
            for stage, first, last in prioritized(plan_ranges(keys, stages)):
                # Keyed by where the range starts: the newest range's end moves a minute every
                # minute, and a run asked for it a tick ago is still fetching those batches.
                started = f"{feed.name}:{stage}:{first}"
                requested = cursor.get(started)
                if requested and now - dt.datetime.fromisoformat(requested) < RETRY_AFTER:
                    continue
                if len(requests) >= MAX_RUNS_PER_TICK:
                    break
                cursor[started] = now.isoformat()
                requests.append(dg.RunRequest(
                    run_key=f"{started}-{last}@{now:%Y%m%d%H%M}",
                    asset_selection=[asset_keys[feed.name][s] for s in SELECTIONS[stage]],
                    # A range run is asked for with these tags (RunRequest has no range argument).
                    tags={"vt/feed": feed.name, "vt/stage": stage,
                          "dagster/asset_partition_range_start": first,
                          "dagster/asset_partition_range_end": last},
                ))
        oldest_kept = now - 2 * RETRY_AFTER
        cursor = {k: v for k, v in cursor.items() if dt.datetime.fromisoformat(v) >= oldest_kept}
        if not requests:
            reason = "; ".join(skipped) if skipped else "every partition in the window is counted in Elasticsearch"
            return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=json.dumps(cursor))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return vt_backfill_sensor


def _days_between(keys: Sequence[str]) -> list[str]:
    """The UTC days (`YYYY-MM-DD`) the sorted partition keys span."""
    if not keys:
        return []
    first = dt.datetime.strptime(keys[0][:8], "%Y%m%d")
    last = dt.datetime.strptime(keys[-1][:8], "%Y%m%d")
    return [(first + dt.timedelta(days=n)).strftime("%Y-%m-%d") for n in range((last - first).days + 1)]


def es_summary_counts(vt_elasticsearch: VTElasticsearchResource, feed: str, batches: list[str]) -> dict[str, int]:
    """The production question: one aggregation over the feed's summary alias."""
    client = vt_elasticsearch.client()
    try:
        return batch_counts(client, vt_elasticsearch.settings().summary_alias(feed), batches)
    finally:
        client.close()
