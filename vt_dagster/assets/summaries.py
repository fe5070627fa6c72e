"""`<feed>/summaries`: every object of a raw batch reduced to its notable values (NDJSON)."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from vt_dagster.apm import StageTransaction, VTApmResource, optional_apm, record_finished_span, span
from vt_dagster.assets.raw_batch import raw_batch_key
from vt_dagster.config_errors import ConfigurationError
from vt_dagster.feeds import Feed
from vt_dagster.interrupts import raise_if_stopped
from vt_dagster.assets.common import (
    SMALL_RUN_BATCHES, Interruption, RangeOutcome, batch_check_result, conclude, present_files, stage_asset,
)
from vt_dagster.resources import VTStorageResource, VTSummarizerResource
from vt_dagster.storage import raw_batch_path, record_summary_count, remove_debris, summary_folder, summary_path
from vt_dagster.summaries import BatchSummaryResult, SummaryJob, summarize_many

CHECK_NAME = "objects_accounted_for"


def summaries_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey([feed.name, "summaries"])


def summary_metadata(result: BatchSummaryResult) -> dict:
    metadata: dict = {
        "status": "summarized",
        "objects": result.objects,
        "summaries": result.summaries,
        "documents": result.documents,
        "rejected": result.rejected,
        "dropped_urls": result.dropped_urls,
        "bytes_in": result.bytes_in,
        "bytes_out": result.bytes_out,
        "duration_s": round(result.seconds, 3),
        "path": dg.MetadataValue.path(result.path),
    }
    if result.rejected_lines:
        metadata["rejected_lines"] = dg.MetadataValue.md(
            "\n".join(f"- {line}" for line in result.rejected_lines)
        )
    return metadata


def raw_object_counts(context: dg.AssetExecutionContext, feed: Feed, keys: list[str]) -> dict[str, int]:
    """Objects per raw batch as counted at download time (one event-log query for the range)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_batch_key(feed), asset_partitions=keys), limit=len(keys) * 4
    ).records
    counts: dict[str, int] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        materialization = record.asset_materialization
        if materialization and "objects" in materialization.metadata:
            counts[materialization.partition] = int(materialization.metadata["objects"].value)
    return counts


def balance_check(feed: Feed, results: dict[str, BatchSummaryResult], raw_counts: dict[str, int]) -> dg.AssetCheckResult:
    """summaries + rejected lines == objects VT sent, for every batch of the run."""
    problems = {
        batch: (None if result.summaries + result.rejected == raw_counts[batch] else
                f"{result.summaries} summaries + {result.rejected} rejected != {raw_counts[batch]} objects")
        for batch, result in results.items() if batch in raw_counts
    }
    return batch_check_result(CHECK_NAME, summaries_key(feed), problems, {
        "objects": sum(raw_counts.get(batch, 0) for batch in results),
        "summaries": sum(r.summaries for r in results.values()),
        "rejected": sum(r.rejected for r in results.values()),
    })


def record_batch_span(result: BatchSummaryResult) -> None:
    """The batch's summarizing as an APM span, timed by the worker process that did it.

    `summarize_many` runs batches in worker processes the agent does not reach, and yields
    results in submission order: each span ends when its result reached the asset and lasts
    what the worker measured, so it sits inside the pool's span, at most a little late.
    """
    record_finished_span(
        "summarize batch", result.seconds, subtype="summarize",
        labels={"batch": result.batch, "objects": result.objects, "summaries": result.summaries,
                "rejected": result.rejected, "bytes_in": result.bytes_in},
    )


def summary_workers(batches: int, configured: int) -> int | None:
    """Worker processes for a run of `batches` (None: one per core)."""
    if batches <= SMALL_RUN_BATCHES:
        return 1
    return configured or None


def build_summaries_asset(feed: Feed, *, with_apm: bool = False) -> dg.AssetsDefinition:
    """`<feed>/summaries`; `with_apm`: it takes the `vt_apm` resource (else APM is off)."""
    key = summaries_key(feed)

    @stage_asset(
        feed, "summaries",
        deps=[raw_batch_key(feed)],
        kinds={"python", "json"},
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_NAME, asset=key,
                description="Every object of the raw batch became a summary or a reported rejected line.",
            )
        ],
        description=(
            f"One NDJSON summary per object of the `{feed.api_path}` batch "
            f"(`<VT_DATA_DIR>/summary/{feed.name}/<YYYYMMDDhhmm>.summary`): the notable values "
            "analysts search, schema in docs/summary-schema.md. A range uses every core."
        ),
    )
    @optional_apm(with_apm)
    def summaries(
        context: dg.AssetExecutionContext, vt_storage: VTStorageResource, vt_summarizer: VTSummarizerResource,
        vt_apm: VTApmResource,
    ):  # a generator; a return annotation would be read as the output's type
        batches = context.partition_keys
        with vt_apm.stage_transaction(feed.name, "summaries", batches) as transaction:
            yield from summarize(context, batches, vt_storage, vt_summarizer, transaction)

    def summarize(
        context: dg.AssetExecutionContext, batches: list[str], vt_storage: VTStorageResource,
        vt_summarizer: VTSummarizerResource, transaction: StageTransaction,
    ) -> Iterator[Any]:
        """Summaries of every downloaded batch of the run (one process per core), and their balance
        check; a batch that fails does not stop the others, which are kept (`conclude`)."""
        try:  # read here so a bad VT_URL_WHITELIST or VT_MAX_LINE_BYTES fails the run with its one line before any work
            vt_summarizer.url_whitelist()
            line_limit = vt_storage.line_limit()
        except ConfigurationError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        root = vt_storage.path
        outcome = RangeOutcome(f"{feed.name}/summaries", batches)
        results: dict[str, BatchSummaryResult] = {}
        with Interruption(outcome) as interruption:
            raise_if_stopped()
            if removed := remove_debris([summary_folder(root, feed.name)]):
                context.log.info(f"{feed.name}: removed {removed} temp file(s) crashed runs left behind")
            raws = present_files(feed, root, "raw file", raw_batch_path, raw_batch_key(feed),
                                 {"status": "no batch", "objects": 0, "summaries": 0}, outcome)
            for batch in outcome.finished:  # VT never served it: zero documents, which the sensor counts as done
                record_summary_count(root, feed.name, batch, 0)
            jobs = [SummaryJob(raw, summary_path(root, feed.name, batch), feed.name, batch,
                               vt_summarizer.whitelist_path, counts_root=root, max_line_bytes=line_limit)
                    for batch, raw in raws.items()]
            with span("summarize batches", subtype="summarize", labels={"batches": len(jobs)}):
                done = summarize_many(jobs, workers=summary_workers(len(jobs), vt_summarizer.workers),
                                      whitelist_path=vt_summarizer.whitelist_path)
                for job, result in zip(jobs, done, strict=True):
                    if isinstance(result, str):
                        outcome.fail(job.batch, result.removeprefix(f"{job.feed} batch {job.batch}: "))
                        continue
                    record_batch_span(result)
                    results[result.batch] = result
                    outcome.finish(result.batch, summary_metadata(result))
        if interruption.happened:
            yield from conclude(context, outcome, failure=interruption.failure())
            return
        objects = sum(r.objects for r in results.values())
        rejected = sum(r.rejected for r in results.values())
        context.log.info(f"{feed.name}: {len(results)} batch(es), {objects} objects, {rejected} rejected lines")
        transaction.label(objects=objects, rejected=rejected)
        check = balance_check(feed, results, raw_object_counts(context, feed, list(results)))
        yield from conclude(context, outcome, result=dg.MaterializeResult(check_results=[check]), checks=[check])

    return summaries
