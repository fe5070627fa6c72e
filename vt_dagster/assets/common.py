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


def batch_check_result(check_name: str, asset_key: dg.AssetKey, problems: dict[str, str | None],
                       metadata: dict[str, Any]) -> dg.AssetCheckResult:
    """One check result for every batch of a run: `problems` maps each batch checked to None
    (passed) or what is wrong with it; the wrong ones are listed in the metadata.

    The checks are not partitioned: Dagster 1.13 attaches a check result to a partition only
    in single-partition runs, so a partitioned check would show nothing for range backfills.
    """
    wrong = {batch: problem for batch, problem in problems.items() if problem is not None}
    return dg.AssetCheckResult(
        check_name=check_name, asset_key=asset_key, passed=not wrong,
        metadata={**metadata, "batches_checked": len(problems), "batches_wrong": len(wrong),
                  **({"wrong": dg.MetadataValue.json(wrong)} if wrong else {})},
    )
