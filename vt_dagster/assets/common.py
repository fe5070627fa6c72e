"""What every stage's asset shares: partitions, backfill policy, group, owners, freshness."""

import datetime as dt
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from vt_dagster.feeds import Feed
from vt_dagster.partitions import BACKFILL_POLICY, minute_partitions
from vt_dagster.storage import missing_marker_path

OWNERS = ["team:security-data"]
# The live schedule materializes every minute; a stage quiet for this long is falling behind.
LIVE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(minutes=30), warn_window=dt.timedelta(minutes=10)
)


def stage_asset(feed: Feed, stage: str, **options: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """`@dg.asset` for `<feed>/<stage>`: what every feed and stage shares, plus the stage's `options`.

    `backfill_policy` is a beta parameter of `@dg.asset` in Dagster 1.13 and warns once per
    asset (a console full of them on every load of the code location). The project pins
    dagster to 1.13.* so the parameter cannot change under it: that warning, of this call, is
    silenced; any other warning (another beta parameter too) still shows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parameter `backfill_policy` ", category=dg.BetaWarning)
        return dg.asset(
            key=dg.AssetKey([feed.name, stage]),
            partitions_def=minute_partitions,
            backfill_policy=BACKFILL_POLICY,
            group_name=feed.name,
            owners=OWNERS,
            tags={"feed": feed.name, "stage": stage},
            freshness_policy=LIVE_FRESHNESS,
            **options,
        )


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


def present_files(
    context: dg.AssetExecutionContext, feed: Feed, root: Path, what: str,
    path_of: Callable[[Path, str, str], Path], upstream: dg.AssetKey, no_batch_metadata: dict[str, Any],
) -> dict[str, Path]:
    """The input file of each batch of the run, checked before any work starts.

    A batch VT never served (its missing marker) gets `no_batch_metadata` and is left out;
    batches whose file is simply not there fail the run, counted, naming the asset to
    materialize.
    """
    paths: dict[str, Path] = {}
    absent: list[str] = []
    for batch in context.partition_keys:
        path = path_of(root, feed.name, batch)
        if path.exists():
            paths[batch] = path
        elif missing_marker_path(root, feed.name, batch).exists():
            context.add_asset_metadata(no_batch_metadata, partition_key=batch)
        else:
            absent.append(batch)
    if absent:
        raise dg.Failure(
            f"{feed.name}: the {what} of {len(absent)} batch(es) is not on disk (first {absent[0]}: "
            f"{path_of(root, feed.name, absent[0])}): materialize {upstream.to_user_string()} for them first",
            allow_retries=False,
        )
    return paths
