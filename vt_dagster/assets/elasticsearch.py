"""`<feed>/summary_index` and `<feed>/report_cache`: the two Elasticsearch stages, and the setup job."""

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from vt_dagster.apm import StageTransaction, VTApmResource, optional_apm
from vt_dagster.assets.raw_batch import raw_batch_key
from vt_dagster.assets.summaries import summaries_key
from vt_dagster.elastic import (
    BatchReadError,
    ElasticsearchError,
    ElasticsearchUnavailable,
    IndexResult,
    alias_exists,
    batch_counts,
    index_reports,
    index_summary_file,
    refresh_alias,
    run_concurrently,
    setup_elasticsearch,
)
from vt_dagster.config_errors import ConfigurationError
from vt_dagster.feeds import Feed, enabled_feeds
from vt_dagster.interrupts import raise_if_stopped
from vt_dagster.assets.common import (
    Interruption, RangeOutcome, batch_check_result, conclude, present_files, stage_asset,
)
from vt_dagster.resources import VTElasticsearchResource, VTStorageResource
from vt_dagster.storage import raw_batch_path, read_summary_counts, summary_path

COUNT_CHECK = "documents_counted"
# What a batch VT never served records in place of an index result.
NO_BATCH = {"status": "no batch", "indexed": 0}


def summary_index_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey([feed.name, "summary_index"])


def report_cache_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey([feed.name, "report_cache"])


def index_metadata(result: IndexResult) -> dict:
    metadata = {
        "status": "indexed" if not result.failed else "failed",
        "indexed": result.indexed,
        "failed": result.failed,
        "duplicates": result.duplicates,
        "skipped_older": result.skipped_older,
        "copies_removed": result.copies_removed,
        "duration_s": result.seconds,
        "docs_per_s": round(result.indexed / result.seconds) if result.seconds else 0,
    }
    if result.errors:
        metadata["errors"] = dg.MetadataValue.md("\n".join(f"- {e}" for e in result.errors[:10]))
    return metadata


def elasticsearch_failure(stage: str, exc: ElasticsearchError | BatchReadError | OSError) -> dg.Failure:
    """The one-line failure of an Elasticsearch stage.

    Not retried by Dagster when waiting cannot help or would only delay the failure: an
    unreadable input file, and a cluster that does not answer (the client already retried
    within seconds; the gap-filling sensor asks for the batches again once it answers).
    """
    retry = isinstance(exc, ElasticsearchError) and not isinstance(exc, ElasticsearchUnavailable)
    return dg.Failure(f"{stage}: {exc}", allow_retries=retry)


def configured_line_limit(vt_storage: VTStorageResource) -> int:
    """`VT_MAX_LINE_BYTES` in bytes; a bad value fails the run with its one line, before any work."""
    try:
        return vt_storage.line_limit()
    except ConfigurationError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None


def require_alias(client, alias: str) -> None:
    """One clear line instead of every document failing when setup was never run."""
    if not alias_exists(client, alias):
        raise dg.Failure(
            f"Elasticsearch alias {alias} does not exist: run the setup_elasticsearch job "
            "(or `vt-dagster setup-elasticsearch`) first", allow_retries=False,
        )


def index_batches(outcome: RangeOutcome, files: dict[str, Path], index_one: Callable[[str, Path], IndexResult],
                  streams: int) -> ElasticsearchError | None:
    """Index each batch's file (`index_one`), `streams` at a time, finishing or failing each batch
    in `outcome`: a file that cannot be read, or a document Elasticsearch refuses, fails its
    batch only. An Elasticsearch error stops the run and is returned; the batches indexed before
    it stay finished, the others fail with it."""

    def job(batch: str, path: Path) -> IndexResult | str:
        try:
            return index_one(batch, path)
        except (BatchReadError, OSError) as exc:  # the file, not the cluster: waiting does not mend it
            return str(exc)

    try:
        results = run_concurrently([partial(job, batch, path) for batch, path in files.items()], streams)
        for batch, result in zip(files, results, strict=True):
            if isinstance(result, str):
                outcome.fail(batch, result)
            elif result.failed or result.copies_left:
                outcome.fail(batch, batch_problem(result))
            else:
                outcome.finish(batch, index_metadata(result))
    except ElasticsearchError as exc:
        for batch in files:
            if batch not in outcome.finished and batch not in outcome.failed:
                outcome.fail(batch, str(exc), retryable=not isinstance(exc, ElasticsearchUnavailable))
        return exc
    return None


def batch_problem(result: IndexResult) -> str:
    """Why a batch's indexing failed, in one line: documents refused, or older copies that
    stayed in another index of the alias (the batch is then held twice)."""
    problems = []
    if result.failed:
        problems.append(f"{result.failed} document(s) not indexed")
    if result.copies_left:
        problems.append(f"{result.copies_left} older copy(ies) not removed from other indices of the alias")
    first = result.errors[0] if result.errors else "no reason given"
    return f"{' and '.join(problems)} ({first})"


def end_on_cluster_error(outcome: RangeOutcome, error: ElasticsearchError | OSError) -> dg.Failure:
    """The run's failure when the cluster (or its client) failed: its one line, and what was kept."""
    failure = elasticsearch_failure(outcome.stage, error)
    return outcome.failure(failure.description, allow_retries=failure.allow_retries)


def build_summary_index_asset(feed: Feed, *, with_apm: bool = False) -> dg.AssetsDefinition:
    """`<feed>/summary_index`; `with_apm`: it takes the `vt_apm` resource (else APM is off)."""
    key = summary_index_key(feed)

    @stage_asset(
        feed, "summary_index",
        deps=[summaries_key(feed)],
        kinds={"elasticsearch"},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
        check_specs=[dg.AssetCheckSpec(
            COUNT_CHECK, asset=key,
            description="Elasticsearch holds exactly one document per distinct object of each batch.",
        )],
        description=(
            f"The `{feed.name}` summaries in Elasticsearch (write alias `<prefix>-summaries-{feed.name}`), "
            "`_id` = sha256(batch:VT id), and copies in older indices of the alias are removed, so "
            "re-indexing never duplicates, before or after a rollover."
        ),
    )
    @optional_apm(with_apm)
    def summary_index(
        context: dg.AssetExecutionContext, vt_storage: VTStorageResource, vt_elasticsearch: VTElasticsearchResource,
        vt_apm: VTApmResource,
    ):  # a generator; a return annotation would be read as the output's type
        batches = context.partition_keys
        with vt_apm.stage_transaction(feed.name, "summary_index", batches) as transaction:
            yield from index_summaries(context, batches, vt_storage, vt_elasticsearch, transaction)

    def index_summaries(
        context: dg.AssetExecutionContext, batches: list[str], vt_storage: VTStorageResource,
        vt_elasticsearch: VTElasticsearchResource, transaction: StageTransaction,
    ) -> Iterator[Any]:
        """Bulk-index the summary file of every batch of the run, then count what Elasticsearch
        holds; a batch that fails does not stop the others, which are kept (`conclude`)."""
        root = vt_storage.path
        line_limit = configured_line_limit(vt_storage)
        alias = vt_elasticsearch.settings().summary_alias(feed.name)
        outcome = RangeOutcome(f"{feed.name}/summary_index", batches)
        client = vt_elasticsearch.client()
        failure: dg.Failure | None = None
        checks: list[dg.AssetCheckResult] = []
        try:
            with Interruption(outcome) as interruption:
                raise_if_stopped()
                require_alias(client, alias)
                paths = present_files(feed, root, "summary file", summary_path, summaries_key(feed),
                                      NO_BATCH, outcome)
                error = index_batches(
                    outcome, paths, lambda batch, path: index_summary_file(client, path, alias=alias,
                                                                          max_line_bytes=line_limit),
                    vt_elasticsearch.bulk_streams)
                indexed = [batch for batch in paths if batch in outcome.finished]
                transaction.label(indexed=sum(outcome.finished[b]["indexed"] for b in indexed),
                                  failed_batches=len(outcome.failed))
                if error is not None:
                    failure = end_on_cluster_error(outcome, error)
                else:
                    refresh_alias(client, alias)
                    checks = [count_check(feed, root, indexed, batch_counts(client, alias, indexed))]
        except (ElasticsearchError, OSError) as exc:
            failure = end_on_cluster_error(outcome, exc)
        finally:
            client.close()
        if interruption.happened:
            failure = interruption.failure()
        yield from conclude(context, outcome, result=dg.MaterializeResult(check_results=checks), checks=checks,
                            failure=failure)

    return summary_index


def count_check(feed: Feed, root, batches: list[str], in_es: dict[str, int]) -> dg.AssetCheckResult:
    """ES documents per batch == distinct objects the summaries asset recorded."""
    days = {f"{b[:4]}-{b[4:6]}-{b[6:8]}" for b in batches}
    expected = read_summary_counts(root, feed.name, sorted(days))
    problems = {
        b: None if in_es.get(b, 0) == expected[b] else f"{in_es.get(b, 0)} in Elasticsearch, {expected[b]} expected"
        for b in batches if b in expected
    }
    return batch_check_result(COUNT_CHECK, summary_index_key(feed), problems,
                              {"documents": sum(in_es.get(b, 0) for b in batches)})


def build_report_cache_asset(feed: Feed, *, with_apm: bool = False) -> dg.AssetsDefinition:
    """`<feed>/report_cache`; `with_apm`: it takes the `vt_apm` resource (else APM is off)."""

    @stage_asset(
        feed, "report_cache",
        deps=[raw_batch_key(feed)],
        kinds={"elasticsearch"},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
        description=(
            f"Full `{feed.name}` reports in Elasticsearch for look-ups without VT quota (write alias "
            f"`<prefix>-reports-{feed.name}`), `_id` = VT id (64 hex) else sha256(id), as Assemblyline "
            "reads it; external versioning by batch, so a late older batch never overwrites a newer report, "
            "and one report per object across every index of the alias."
        ),
    )
    @optional_apm(with_apm)
    def report_cache(
        context: dg.AssetExecutionContext, vt_storage: VTStorageResource, vt_elasticsearch: VTElasticsearchResource,
        vt_apm: VTApmResource,
    ):  # a generator; a return annotation would be read as the output's type
        batches = context.partition_keys
        with vt_apm.stage_transaction(feed.name, "report_cache", batches) as transaction:
            yield from index_full_reports(context, batches, vt_storage, vt_elasticsearch, transaction)

    def index_full_reports(
        context: dg.AssetExecutionContext, batches: list[str], vt_storage: VTStorageResource,
        vt_elasticsearch: VTElasticsearchResource, transaction: StageTransaction,
    ) -> Iterator[Any]:
        """Bulk-index the full VT objects of every raw batch of the run; a batch that fails does
        not stop the others, which are kept (`conclude`)."""
        root = vt_storage.path
        line_limit = configured_line_limit(vt_storage)
        alias = vt_elasticsearch.settings().report_alias(feed.name)
        outcome = RangeOutcome(f"{feed.name}/report_cache", batches)
        client = vt_elasticsearch.client()
        failure: dg.Failure | None = None
        try:
            with Interruption(outcome) as interruption:
                raise_if_stopped()
                require_alias(client, alias)
                raws = present_files(feed, root, "raw file", raw_batch_path, raw_batch_key(feed),
                                     NO_BATCH, outcome)
                error = index_batches(
                    outcome, raws, lambda batch, raw: index_reports(client, raw, alias=alias, feed=feed.name,
                                                                    batch=batch, max_line_bytes=line_limit),
                    vt_elasticsearch.bulk_streams)
                transaction.label(indexed=sum(m.get("indexed", 0) for m in outcome.finished.values()),
                                  failed_batches=len(outcome.failed))
                if error is not None:
                    failure = end_on_cluster_error(outcome, error)
        except (ElasticsearchError, OSError) as exc:
            failure = end_on_cluster_error(outcome, exc)
        finally:
            client.close()
        if interruption.happened:
            failure = interruption.failure()
        yield from conclude(context, outcome, failure=failure)

    return report_cache


class SetupConfig(dg.Config):
    update: bool = Field(default=False, description=(
        "Rewrite policies and templates that differ from the JSON files, and put the templates' mappings "
        "onto each alias's current write index"))


@dg.op(description="ILM policies, index templates and bootstrap write indices/aliases of every enabled feed; idempotent.")
def setup_elasticsearch_op(context: dg.OpExecutionContext, config: SetupConfig,
                           vt_elasticsearch: VTElasticsearchResource) -> dg.Output[None]:
    settings = vt_elasticsearch.settings()
    client = vt_elasticsearch.client()
    try:
        actions = setup_elasticsearch(
            client, [feed.name for feed in enabled_feeds()], prefix=settings.index_prefix,
            update=config.update, report_aliases=settings.report_aliases, replicas=settings.index_replicas,
        )
    except ElasticsearchError as exc:
        raise elasticsearch_failure("setup_elasticsearch", exc) from None
    finally:
        client.close()
    for action in actions:
        context.log.info(str(action))
    table = "\n".join(f"| {a.kind} | {a.name} | {a.status} | {a.detail} |" for a in actions)
    counts = {status: sum(a.status == status for a in actions) for status in {a.status for a in actions}}
    return dg.Output(None, metadata={
        "actions": dg.MetadataValue.md("| kind | name | status | detail |\n|---|---|---|---|\n" + table),
        **{f"{status}": n for status, n in counts.items()},
    })


@dg.job(name="setup_elasticsearch", description="Create what Elasticsearch needs (policies, templates, aliases); safe to run again.")
def setup_elasticsearch_job() -> None:
    setup_elasticsearch_op()
