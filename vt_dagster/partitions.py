"""The one partitioning every asset shares: a UTC minute = one VT batch.

Bounded on purpose. The feed API keeps 7 days, so the partition set starts at the first
whole UTC day inside that window and ends at the newest batch VT serves (60 minutes ago):
about 8,600 to 10,000 partitions per asset, never the ever-growing set a fixed start
gives (Dagster's guideline is under 100k per asset). The start moves once a day, when the
code location is (re)loaded; older minutes cannot be downloaded anyway.
"""

from __future__ import annotations

import datetime as dt
import math

import dagster as dg

from vt_dagster.feeds import MINUTE_FORMAT, MINUTE_LAG, RETENTION

MINUTES_PER_RUN = 360
"""Largest range one backfill run covers: 6 whole hours (6 hourly requests per feed), small
enough that a failure costs little to redo, large enough that a week is 28 runs, not 10,080."""

BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=MINUTES_PER_RUN)


def partition_window_start(now: dt.datetime) -> dt.datetime:
    """First UTC midnight that is still inside the feed's 7-day retention at `now`."""
    oldest = now.astimezone(dt.timezone.utc) - RETENTION
    day = oldest.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day >= oldest else day + dt.timedelta(days=1)


def build_minute_partitions(now: dt.datetime | None = None) -> dg.TimeWindowPartitionsDefinition:
    """Per-minute partitions whose last key is the newest batch the feed serves."""
    now = now or dt.datetime.now(dt.timezone.utc)
    lag_minutes = math.ceil(MINUTE_LAG.total_seconds() / 60)
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="* * * * *",
        start=partition_window_start(now),
        fmt=MINUTE_FORMAT,
        timezone="UTC",
        # By default the last partition is the minute that just ended; VT's newest is
        # 60 minutes older than now, i.e. 59 partitions earlier.
        end_offset=1 - lag_minutes,
    )


minute_partitions = build_minute_partitions()
