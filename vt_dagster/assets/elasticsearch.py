"""`<feed>/summary_index` and `<feed>/report_cache`: the two Elasticsearch stages, and the setup job."""

from functools import partial

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
from vt_dagster.assets.common import batch_check_result, present_files, stage_asset
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


def fail_on_lost_documents(feed: Feed, stage: str, failures: dict[str, IndexResult]) -> None:
    if failures:
        first_batch, first = next(iter(failures.items()))
        raise dg.Failure(
            f"{feed.name}/{stage}: {sum(r.failed for r in failures.values())} document(s) not indexed in "
            f"{len(failures)} batch(es); first {first_batch}: {first.errors[0] if first.errors else 'unknown'}",
            metadata={"batches": dg.MetadataValue.json(sorted(failures))},
            allow_retries=False,
        )


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
            "`_id` = sha256(batch:VT id) so re-indexing never duplicates."
        ),
    )
    @optional_apm(with_apm)
    def summary_index(
        context: dg.AssetExecutionContext, vt_storage: VTStorageResource, vt_elasticsearch: VTElasticsearchResource,
        vt_apm: VTApmResource,
    ) -> dg.MaterializeResult:
        with vt_apm.stage_transaction(feed.name, "summary_index", context.partition_keys) as transaction:
            return index_summaries(context, vt_storage, vt_elasticsearch, transaction)

    def index_summaries(
        context: dg.AssetExecutionContext, vt_storage: VTStorageResource, vt_elasticsearch: VTElasticsearchResource,
        transaction: StageTransaction,
    ) -> dg.MaterializeResult:
        """Bulk-index the summary file of every batch of the run, then count what Elasticsearch holds."""
        root = vt_storage.path
        line_limit = configured_line_limit(vt_storage)
        alias = vt_elasticsearch.settings().summary_alias(feed.name)
        client = vt_elasticsearch.client()
        try:
            require_alias(client, alias)
            failures: dict[str, IndexResult] = {}
            paths = present_files(context, feed, root, "summary file", summary_path, summaries_key(feed),
                                  NO_BATCH)
            indexed_batches = list(paths)
            jobs = [partial(index_summary_file, client, path, alias=alias, max_line_bytes=line_limit)
                    for path in paths.values()]
            documents = 0
            for batch, result in zip(indexed_batches, run_concurrently(jobs, vt_elasticsearch.bulk_streams)):
                context.add_asset_metadata(index_metadata(result), partition_key=batch)
                documents += result.indexed
                if result.failed:
                    failures[batch] = result
            transaction.label(indexed=documents, failed=sum(r.failed for r in failures.values()))
            fail_on_lost_documents(feed, "summary_index", failures)
            refresh_alias(client, alias)
            check = count_check(feed, root, indexed_batches, batch_counts(client, alias, indexed_batches))
        except (ElasticsearchError, OSError) as exc:
            raise elasticsearch_failure(f"{feed.name}/summary_index", exc) from None
        finally:
            client.close()
        return dg.MaterializeResult(check_results=[check])

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
            "reads it; external versioning by batch, so a late older batch never overwrites a newer report."
        ),
    )
    @optional_apm(with_apm)
    def report_cache(
        context: dg.AssetExecutionContext, vt_storage: VTStorageResource, vt_elasticsearch: VTElasticsearchResource,
        vt_apm: VTApmResource,
    ) -> None:
        with vt_apm.stage_transaction(feed.name, "report_cache", context.partition_keys) as transaction:
            index_full_reports(context, vt_storage, vt_elasticsearch, transaction)

    def index_full_reports(
        context: dg.AssetExecutionContext, vt_storage: VTStorageResource, vt_elasticsearch: VTElasticsearchResource,
        transaction: StageTransaction,
    ) -> None:
        """Bulk-index the full VT objects of every raw batch of the run."""
        root = vt_storage.path
        line_limit = configured_line_limit(vt_storage)
        alias = vt_elasticsearch.settings().report_alias(feed.name)
        client = vt_elasticsearch.client()
        try:
            require_alias(client, alias)
            failures: dict[str, IndexResult] = {}
            raws = present_files(context, feed, root, "raw file", raw_batch_path, raw_batch_key(feed), NO_BATCH)
            jobs = [partial(index_reports, client, raw, alias=alias, feed=feed.name, batch=batch,
                            max_line_bytes=line_limit)
                    for batch, raw in raws.items()]
            documents = 0
            for batch, result in zip(raws, run_concurrently(jobs, vt_elasticsearch.bulk_streams)):
                context.add_asset_metadata(index_metadata(result), partition_key=batch)
                documents += result.indexed
                if result.failed:
                    failures[batch] = result
            transaction.label(indexed=documents, failed=sum(r.failed for r in failures.values()))
            fail_on_lost_documents(feed, "report_cache", failures)
        except (ElasticsearchError, BatchReadError, OSError) as exc:
            raise elasticsearch_failure(f"{feed.name}/report_cache", exc) from None
        finally:
            client.close()

    return report_cache


class SetupConfig(dg.Config):
    update: bool = Field(default=False, description="Rewrite policies and templates that differ from the JSON files")


@dg.op(description="ILM policies, index templates and bootstrap write indices/aliases of every enabled feed; idempotent.")
def setup_elasticsearch_op(context: dg.OpExecutionContext, config: SetupConfig,
                           vt_elasticsearch: VTElasticsearchResource) -> dg.Output[None]:
    settings = vt_elasticsearch.settings()
    client = vt_elasticsearch.client()
    try:
        actions = setup_elasticsearch(
            client, [feed.name for feed in enabled_feeds()], prefix=settings.index_prefix,
            update=config.update, report_aliases=settings.report_aliases,
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
