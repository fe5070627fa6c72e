"""What every stage's asset shares: partitions, backfill policy, group, owners, freshness."""

import datetime as dt
from typing import Any

import dagster as dg

from vt_dagster.feeds import Feed
from vt_dagster.partitions import BACKFILL_POLICY, minute_partitions

OWNERS = ["team:security-data"]
# The live schedule materializes every minute; a stage quiet for this long is falling behind.
LIVE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(minutes=30), warn_window=dt.timedelta(minutes=10)
)


def stage_asset_options(feed: Feed, stage: str) -> dict[str, Any]:
    """Keyword arguments of `@dg.asset` common to `<feed>/<stage>` for every feed and stage."""
    return {
        "key": dg.AssetKey([feed.name, stage]),
        "partitions_def": minute_partitions,
        "backfill_policy": BACKFILL_POLICY,
        "group_name": feed.name,
        "owners": OWNERS,
        "tags": {"feed": feed.name, "stage": stage},
        "freshness_policy": LIVE_FRESHNESS,
    }
