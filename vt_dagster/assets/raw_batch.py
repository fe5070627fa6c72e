"""`<feed>/raw_batch`: every minute batch of a feed, on disk, complete or known missing."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from vt_dagster.apm import StageTransaction, VTApmResource, optional_apm
from vt_dagster.feeds import Feed
from vt_dagster.assets.common import Interruption, RangeOutcome, conclude, decoded_batches_for, stage_asset
from vt_dagster.interrupts import raise_if_stopped
from vt_dagster.raw_batches import (
    STATUS_DOWNLOADED, STATUS_PRESENT, BatchOutcome, RawBatchError, fetch_batches,
)
from vt_dagster.resources import VTFeedsResource, VTStorageResource
from vt_dagster.storage import raw_batch_path
from vt_dagster.vt_client import FeedAuthError


RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL)
"""A run that could not fetch some batches (network faults) is tried again, whole: what is on
disk is kept and only checked, so the retry asks VT only for the batches still missing."""


class RawBatchConfig(dg.Config):
    refetch_missing: bool = Field(
        default=False, description="Ask VT again for minutes it answered 404 before (normally remembered)"
    )


def raw_batch_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey([feed.name, "raw_batch"])


def partition_metadata(outcome: BatchOutcome, storage: VTStorageResource, feed: Feed) -> dict:
    """Per-partition figures: numbers the UI can plot, text for the rest (no secrets)."""
    metadata: dict = {
        "status": outcome.status,
        "source": outcome.source,
        "http_status": outcome.http_status,
        "attempts": outcome.attempts,
        "bytes": outcome.bytes,
        "objects": outcome.objects,
        "duration_s": round(outcome.duration_s, 3),
    }
    if outcome.sha256:
        metadata["sha256"] = outcome.sha256
        metadata["path"] = dg.MetadataValue.path(str(raw_batch_path(storage.path, feed.name, outcome.batch)))
    return metadata


def build_raw_batch_asset(feed: Feed, *, with_apm: bool = False) -> dg.AssetsDefinition:
    """`<feed>/raw_batch`; `with_apm`: it takes the `vt_apm` resource (else APM is off)."""

    @stage_asset(
        feed, "raw_batch",
        kinds={"python", "file"},
        retry_policy=RETRY_POLICY,
        description=(
            f"Minute batches of the VT `{feed.api_path}` feed as bz2 files on disk "
            f"(`<VT_DATA_DIR>/raw/{feed.name}/<day>/<YYYYMMDDhhmm>.bz2`), written atomically and "
            "verified; whole hours of a range come from the hourly package."
        ),
    )
    @optional_apm(with_apm)
    def raw_batch(
        context: dg.AssetExecutionContext,
        config: RawBatchConfig,
        vt_feeds: VTFeedsResource,
        vt_storage: VTStorageResource,
        vt_apm: VTApmResource,
    ):  # a generator; a return annotation would be read as the output's type
        batches = context.partition_keys
        with vt_apm.stage_transaction(feed.name, "raw_batch", batches) as transaction:
            yield from download(context, batches, config, vt_feeds, vt_storage, transaction)

    def download(
        context: dg.AssetExecutionContext, batches: list[str], config: RawBatchConfig, vt_feeds: VTFeedsResource,
        vt_storage: VTStorageResource, transaction: StageTransaction,
    ) -> Iterator[Any]:
        """Every batch of the run on disk or known missing; those that are not fail the run, the
        others are kept (`conclude`)."""
        context.log.info(f"{feed.name}: {len(batches)} batch(es) {batches[0]}..{batches[-1]}")
        outcome = RangeOutcome(f"{feed.name}/raw_batch", batches)
        error: RawBatchError | None = None
        heard: dict[str, BatchOutcome] = {}
        with Interruption(outcome) as interruption:
            raise_if_stopped()
            with vt_feeds.client() as client:
                try:
                    outcomes = fetch_batches(
                        client, vt_storage.path, feed, batches,
                        refetch_missing=config.refetch_missing,
                        workers=vt_feeds.download_workers,
                        hourly_min_minutes=vt_feeds.hourly_min_minutes,
                        max_consecutive_missing=vt_feeds.max_consecutive_missing,
                        on_outcome=lambda batch: heard.__setitem__(batch.batch, batch),
                        keep_decoded=decoded_batches_for(context, batches),
                    )
                except FeedAuthError as exc:
                    raise dg.Failure(str(exc), allow_retries=False) from None
                except RawBatchError as exc:
                    error, outcomes = exc, exc.outcomes
        if interruption.happened:  # what is on disk, or known missing from earlier runs, is done
            for batch in heard.values():
                if batch.status in (STATUS_DOWNLOADED, STATUS_PRESENT) or batch.source == "marker":
                    outcome.finish(batch.batch, partition_metadata(batch, vt_storage, feed))
            yield from conclude(context, outcome, failure=interruption.failure())
            return
        counts: dict[str, int] = {}
        for batch in outcomes:
            if error is not None and batch.batch in error.unfinished:
                outcome.fail(batch.batch, error.unfinished[batch.batch])
            else:
                outcome.finish(batch.batch, partition_metadata(batch, vt_storage, feed))
            counts[batch.status] = counts.get(batch.status, 0) + 1
        transaction.label(**counts)
        context.log.info(f"{feed.name}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
        failure = None if error is None else outcome.failure(str(error), allow_retries=error.retryable)
        yield from conclude(context, outcome, failure=failure)

    return raw_batch
