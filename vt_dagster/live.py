"""The live service: one cheap range run every few minutes instead of one run a minute.

Measured on 2 cores (README, Performance): a run costs Dagster a few CPU-seconds whatever
it holds (a run worker process, and with the multiprocess executor one process per step),
while the pipeline's own work for one minute of all five feeds is a few CPU-seconds too.
So the live schedule ticks every `VT_LIVE_INTERVAL_MINUTES` (default 3) and asks for the
minutes that became available since its previous tick as one range run, executed in a
single process. Partitions stay one per minute; the UI shows each as materialized.

Worst-case lag from VT publishing a minute to it being indexed: the interval plus one
run (about 20-40 s at real scale).
"""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from vt_dagster.config_errors import ConfigurationError
from vt_dagster.feeds import minute_key, newest_available_minute

LIVE_INTERVAL_ENV = "VT_LIVE_INTERVAL_MINUTES"
DEFAULT_LIVE_INTERVAL_MINUTES = 3
# Divisors of 60, so `*/N` ticks are evenly spaced and consecutive ticks tile the hour.
LIVE_INTERVALS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
LIVE_TAG = "vt/live"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def live_interval_from_env(environ: dict[str, str] | None = None) -> int:
    """`VT_LIVE_INTERVAL_MINUTES`, refused in one line unless it divides the hour."""
    text = (os.environ if environ is None else environ).get(LIVE_INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_LIVE_INTERVAL_MINUTES
    if not text.isdigit() or int(text) not in LIVE_INTERVALS:
        allowed = ", ".join(map(str, LIVE_INTERVALS))
        raise ConfigurationError(LIVE_INTERVAL_ENV, f"must be one of {allowed} (minutes), not {text!r}")
    return int(text)


def live_cron(interval_minutes: int) -> str:
    return "* * * * *" if interval_minutes == 1 else f"*/{interval_minutes} * * * *"


def live_range(tick: dt.datetime, interval_minutes: int) -> tuple[str, str]:
    """First and last minute a tick asks for: those that became available since the tick
    before it, so consecutive ticks cover every minute exactly once."""
    last = newest_available_minute(tick)
    first = last - dt.timedelta(minutes=interval_minutes - 1)
    return minute_key(first), minute_key(last)


def build_live_job(assets: list[dg.AssetsDefinition]) -> dg.UnresolvedAssetJobDefinition:
    """Every enabled feed's chain in one process: a live run holds a few batches, and a
    process per step would cost more than the steps (backfills from the UI keep the
    multiprocess executor of the code location)."""
    return dg.define_asset_job(
        "vt_live_job",
        selection=dg.AssetSelection.assets(*assets),
        executor_def=dg.in_process_executor,
        # Every event is in the instance, where the UI shows it; the console copy would only
        # fill the service's log file, hundreds of lines a run, a run every few minutes.
        config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        description="The minutes that became available since the last live tick, every enabled feed, "
        "as far as the pipeline goes, in one process.",
    )


def build_live_schedule(job: dg.UnresolvedAssetJobDefinition, interval_minutes: int) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="vt_live_schedule",
        job=job,
        cron_schedule=live_cron(interval_minutes),
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"The live service: every {interval_minutes} minute(s) ({LIVE_INTERVAL_ENV}), one run of the "
        "minutes VT published since the previous tick, for every enabled feed. Turn it on to run live.",
    )
    def vt_live_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
        first, last = live_range(tick, interval_minutes)
        return dg.RunRequest(
            run_key=f"live:{first}-{last}",
            tags={RANGE_START_TAG: first, RANGE_END_TAG: last, LIVE_TAG: "true"},
        )

    return vt_live_schedule
