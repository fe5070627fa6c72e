"""What every stage's asset shares: partitions, backfill policy, group, owners, freshness."""

import datetime as dt
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from vt_dagster.feeds import Feed
from vt_dagster.interrupts import is_interrupt, request_stop
from vt_dagster.partitions import BACKFILL_POLICY, minute_partitions
from vt_dagster.decoded_batches import KEPT, DecodedBatches
from vt_dagster.storage import missing_marker_path

OWNERS = ["team:security-data"]
# The live schedule materializes every minute; a stage quiet for this long is falling behind.
LIVE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(minutes=30), warn_window=dt.timedelta(minutes=10)
)

SMALL_RUN_BATCHES = 5
"""Up to this many batches (a live run's few minutes) are summarized in the run's own
process: starting a pool of workers costs more CPU than it saves on so little work."""
_ONE_PROCESS_EXECUTORS = frozenset({dg.in_process_executor.name, "execute_in_process_executor"})
"""The live job's executor, and the one `dg.materialize` and `execute_in_process` use."""


def decoded_batches_for(context: dg.AssetExecutionContext, batches: list[str]) -> DecodedBatches | None:
    """Where the raw stage keeps the batches it decodes, so that the summaries and the report
    cache, which read them next, do not decode them again: the process's store when those
    stages run in this same process (the in-process executor) on few enough `batches` to be
    summarized here too; None otherwise (each step's own process would hold them for nothing)."""
    one_process = context.job_def.executor_def.name in _ONE_PROCESS_EXECUTORS
    return KEPT if one_process and len(batches) <= SMALL_RUN_BATCHES else None


def stage_pool(feed: Feed, stage: str) -> str:
    """The concurrency pool of `<feed>/<stage>`, named like the asset. An instance whose
    dagster.yaml gives pools one slot (deploy/dagster.yaml) never runs one feed's stage twice at
    once, whichever runs ask; the SQLite one leaves them unlimited (see its dagster.yaml)."""
    return f"{feed.name}/{stage}"


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
            pool=stage_pool(feed, stage),
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


BACKFILL_TAG = "dagster/backfill"
"""The tag Dagster puts on a backfill's runs and their materializations."""
NAMED_FAILURES = 3
"""Failed batches a failure's one line names; its metadata lists up to LISTED_FAILURES."""
LISTED_FAILURES = 100


@dataclass
class RangeOutcome:
    """What a stage run did to each batch of its range: finished (with the partition's
    metadata) or failed (with why, in one line).

    Dagster marks every partition of a range run materialized when the step succeeds, and
    none when it fails: a run failing one batch of 131 showed 0 done although 130 were safely
    on disk. So a run that fails some batches records each finished one itself, an
    `AssetMaterialization` of its partition, before failing naming the others (`conclude`):
    the UI shows them done, and a re-run of the failed partitions redoes only those.
    """

    stage: str
    """`<feed>/<stage>`, the failure's first words."""
    batches: list[str]
    """The run's partition keys, read from the context once: each read of
    `context.partition_keys` walks the minute cron again (~10 ms, many times a step)."""
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    retryable: bool = False
    """Whether asking again soon may mend one of the failures (Dagster's retry policy)."""

    def finish(self, batch: str, metadata: dict[str, Any]) -> None:
        self.finished[batch] = metadata

    def fail(self, batch: str, reason: str, *, retryable: bool = False) -> None:
        self.finished.pop(batch, None)
        self.failed[batch] = reason
        self.retryable = self.retryable or retryable

    def kept(self) -> str:
        """`; 53 of the run's 131 batch(es) are done and kept`, or nothing when none is."""
        if not self.finished:
            return ""
        return f"; {len(self.finished)} of the run's {len(self.batches)} batch(es) are done and kept"

    def failure(self, cause: str | None = None, *, allow_retries: bool | None = None,
                interrupted: bool = False) -> dg.Failure:
        """The run's failure in one line, with what was kept: `cause` when one error says it
        all (Elasticsearch down, a VT incident), else the failed batches, the first few named."""
        if cause is None:
            named = "; ".join(f"{batch}: {reason}" for batch, reason in list(self.failed.items())[:NAMED_FAILURES])
            more = f"; and {len(self.failed) - NAMED_FAILURES} more" if len(self.failed) > NAMED_FAILURES else ""
            cause = f"{self.stage}: {len(self.failed)} of {len(self.batches)} batch(es) failed ({named}{more})"
        listed = dict(list(self.failed.items())[:LISTED_FAILURES])
        return dg.Failure(
            f"{cause}{self.kept()}",
            allow_retries=self.retryable if allow_retries is None else allow_retries,
            metadata={"failed_batches": dg.MetadataValue.json(listed), "failed": len(self.failed),
                      "kept": len(self.finished), **({"interrupted": True} if interrupted else {})},
        )


class Interruption:
    """Around a stage's work: an interrupt (Ctrl-C, SIGTERM, a stop request, Dagster terminating
    the run) is caught there, so the stage still records the batches it finished and then fails
    without a retry. Escaping the step, Dagster would turn it into a retry of the whole range
    30 s later. A stop requested before the stage began (another step of the run was
    interrupted) stops it before any work: call `raise_if_stopped` first thing in the block.
    """

    def __init__(self, outcome: RangeOutcome) -> None:
        self.outcome = outcome
        self.happened = False

    def __enter__(self) -> "Interruption":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> bool:
        if exc is None or not is_interrupt(exc):
            return False
        request_stop()  # what else runs in this process for the run stops too
        self.happened = True
        return True

    def failure(self) -> dg.Failure:
        return self.outcome.failure(f"{self.outcome.stage}: interrupted before it was done", allow_retries=False,
                                    interrupted=True)


def conclude(context: dg.AssetExecutionContext, outcome: RangeOutcome, *, result: dg.MaterializeResult | None = None,
             checks: list[dg.AssetCheckResult] | None = None, failure: dg.Failure | None = None) -> Iterator[Any]:
    """Yield the end of a stage run (its body is a generator).

    Nothing failed: each partition's metadata and `result`, so Dagster materializes every
    partition of the range once. Else one materialization per finished batch, the `checks`
    of those batches, then `failure` (default: the failed batches named).
    """
    if failure is None and not outcome.failed:
        for batch, metadata in outcome.finished.items():
            context.add_asset_metadata(metadata, partition_key=batch)
        yield result or dg.MaterializeResult()
        return
    backfill = context.run.tags.get(BACKFILL_TAG)
    for batch, metadata in outcome.finished.items():
        yield dg.AssetMaterialization(asset_key=context.asset_key, partition=batch, metadata=metadata,
                                      tags={BACKFILL_TAG: backfill} if backfill else None)
    yield from checks or []
    raise failure or outcome.failure()


def present_files(
    feed: Feed, root: Path, what: str,
    path_of: Callable[[Path, str, str], Path], upstream: dg.AssetKey, no_batch_metadata: dict[str, Any],
    outcome: RangeOutcome,
) -> dict[str, Path]:
    """The input file of each batch of the run, looked for before any work starts.

    A batch VT never served (its missing marker) is finished with `no_batch_metadata` and
    left out; a batch whose file is simply not there is failed, naming the asset to
    materialize first (not retried: waiting does not bring the file).
    """
    paths: dict[str, Path] = {}
    for batch in outcome.batches:
        path = path_of(root, feed.name, batch)
        if path.exists():
            paths[batch] = path
        elif missing_marker_path(root, feed.name, batch).exists():
            outcome.finish(batch, no_batch_metadata)
        else:
            outcome.fail(batch, f"the {what} is not on disk ({path}): materialize {upstream.to_user_string()} first")
    return paths
