"""Retention: the instance and the data folder stay bounded on a service that runs for months.

Dagster never deletes a run, and the live schedule makes hundreds a day; raw batches of the
`files` feed alone are ~3 GB a day. Retention removes:
- finished runs older than `VT_RUN_RETENTION_DAYS` (default 7) with their event logs (the
  SQLite shard file included) and compute logs; runs still queued or running are kept;
- raw batches (and 404 and incident notes, once VT's window has passed them) older than `VT_RAW_RETENTION_DAYS` (default 3) and summaries
  (with their day count files) older than `VT_SUMMARY_RETENTION_DAYS` (default 7), but only
  once every stage that reads them has materialized that partition. A file older than VT's
  own 7-day window is removed whatever its stages say: no partition can ask for it anymore.

Every function takes `now`, so tests fast-forward the clock instead of waiting.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vt_dagster.config_errors import ConfigurationError
from vt_dagster.feeds import RETENTION as VT_RETENTION
from vt_dagster.feeds import parse_minute_key

DEFAULT_RUN_RETENTION_DAYS = 7
DEFAULT_RAW_RETENTION_DAYS = 3
DEFAULT_SUMMARY_RETENTION_DAYS = 7
RETENTION_ENV = {
    "runs": ("VT_RUN_RETENTION_DAYS", DEFAULT_RUN_RETENTION_DAYS),
    "raw": ("VT_RAW_RETENTION_DAYS", DEFAULT_RAW_RETENTION_DAYS),
    "summaries": ("VT_SUMMARY_RETENTION_DAYS", DEFAULT_SUMMARY_RETENTION_DAYS),
}
# Which stages read a file: it may go only once they have all materialized its partition.
READERS = {"raw": ("summaries", "report_cache"), "summaries": ("summary_index",)}
RUN_BATCH = 200
# What earlier runs noted about a minute VT did not serve (404, incident): kept while the
# minute can still be asked for, so the alarm still counts it.
NOTE_SUFFIXES = (".missing", ".incident")


@dataclass(frozen=True)
class RetentionDays:
    runs: int = DEFAULT_RUN_RETENTION_DAYS
    raw: int = DEFAULT_RAW_RETENTION_DAYS
    summaries: int = DEFAULT_SUMMARY_RETENTION_DAYS


def retention_days_from_env(environ: Mapping[str, str] | None = None) -> RetentionDays:
    """The three retentions, each refused in one line unless a whole number of days >= 1."""
    environ = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for what, (variable, default) in RETENTION_ENV.items():
        text = environ.get(variable, "").strip()
        if not text:
            values[what] = default
        elif text.isdigit() and int(text) >= 1:
            values[what] = int(text)
        else:
            raise ConfigurationError(variable, f"must be a whole number of days (1 or more), not {text!r}")
    return RetentionDays(**values)


@dataclass
class PruneReport:
    """What one pass removed and what it kept back because a stage still needs it."""

    files: int = 0
    bytes: int = 0
    kept_unfinished: int = 0
    past_window_unfinished: int = 0
    by_folder: dict[str, int] = field(default_factory=dict)

    def removed(self, path: Path, folder: str) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        self.files += 1
        self.bytes += size
        self.by_folder[folder] = self.by_folder.get(folder, 0) + 1


Finished = Callable[[str, str], set[str]]
"""(feed, stage) -> the partitions that stage has materialized."""


def _older(batch: str, cutoff: dt.datetime) -> bool:
    try:
        return parse_minute_key(batch) < cutoff
    except ValueError:
        return False  # not a file of ours: never touched


def prune_data_folder(root: Path, feeds: Iterable[str], finished: Finished, days: RetentionDays,
                      now: dt.datetime) -> PruneReport:
    """Remove raw batches and summaries past their retention whose readers are done."""
    report = PruneReport()
    window_start = now - VT_RETENTION
    for feed in feeds:
        done = {stage: finished(feed, stage) for stage in {s for stages in READERS.values() for s in stages}}

        def may_go(batch: str, readers: tuple[str, ...]) -> bool:
            if all(batch in done[stage] for stage in readers):
                return True
            if parse_minute_key(batch) < window_start:
                report.past_window_unfinished += 1
                return True
            report.kept_unfinished += 1
            return False

        raw_cutoff = now - dt.timedelta(days=days.raw)
        raw_dir = root / "raw" / feed
        for day_dir in sorted(raw_dir.glob("????-??-??")):
            for path in day_dir.iterdir():
                batch, suffix = path.stem, path.suffix
                if suffix == ".bz2" and _older(batch, raw_cutoff) and may_go(batch, READERS["raw"]):
                    report.removed(path, "raw")
                elif suffix in NOTE_SUFFIXES and _older(batch, min(raw_cutoff, window_start)):
                    report.removed(path, "raw")
            _remove_if_empty(day_dir)
        summary_cutoff = now - dt.timedelta(days=days.summaries)
        summary_dir = root / "summary" / feed
        for path in summary_dir.glob("*.summary"):
            if _older(path.stem, summary_cutoff) and may_go(path.stem, READERS["summaries"]):
                report.removed(path, "summaries")
        count_cutoff = min(summary_cutoff, window_start).replace(hour=0, minute=0, second=0, microsecond=0)
        for path in summary_dir.glob("????-??-??.counts"):
            day = dt.datetime.strptime(path.stem, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
            if day + dt.timedelta(days=1) <= count_cutoff:
                report.removed(path, "summaries")
    return report


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


@dataclass
class RunPruneReport:
    runs: int = 0
    compute_log_folders: int = 0


def delete_old_runs(instance, older_than: dt.datetime, limit: int | None = None) -> RunPruneReport:
    """Delete finished runs created before `older_than`: run, events, event shard and compute logs."""
    import dagster as dg
    from dagster._core.storage.dagster_run import FINISHED_STATUSES

    report = RunPruneReport()
    while limit is None or report.runs < limit:
        records = instance.get_run_records(
            filters=dg.RunsFilter(created_before=older_than, statuses=list(FINISHED_STATUSES)),
            limit=RUN_BATCH if limit is None else min(RUN_BATCH, limit - report.runs),
            ascending=True,
        )
        if not records:
            break
        for record in records:
            run_id = record.dagster_run.run_id
            instance.delete_run(run_id)
            report.runs += 1
            _remove_event_shard(instance, run_id)
            if _delete_compute_logs(instance, run_id):
                report.compute_log_folders += 1
    return report


def _remove_event_shard(instance, run_id: str) -> None:
    """SQLite keeps one event file per run (with its WAL beside it while it is open);
    deleting its rows leaves the (empty) files."""
    storage = instance.event_log_storage
    path_for_shard = getattr(storage, "path_for_shard", None)
    if path_for_shard is None:
        return
    shard = Path(path_for_shard(run_id))
    for suffix in ("", "-wal", "-shm"):
        shard.with_name(shard.name + suffix).unlink(missing_ok=True)


def _delete_compute_logs(instance, run_id: str) -> bool:
    manager = instance.compute_log_manager
    base = getattr(manager, "_base_dir", None)
    existed = base is not None and (Path(base) / run_id).exists()
    manager.delete_logs(prefix=[run_id])
    return existed
