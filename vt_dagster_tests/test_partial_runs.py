"""A range run that fails some batches keeps the others: they are materialized (the UI shows
them done), the failure names the rest, and a re-run of those partitions alone finishes the
range."""

from __future__ import annotations

import bz2
import datetime as dt
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from vt_dagster.assets.elasticsearch import build_report_cache_asset
from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.elastic import batch_counts, setup_elasticsearch
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
from vt_dagster.feeds import get_feed, minute_key
from vt_dagster.partitions import minute_partitions
from vt_dagster.resources import VTElasticsearchResource, VTFeedsResource, VTStorageResource, VTSummarizerResource
from vt_dagster.storage import raw_batch_path, summary_path

UTC = dt.timezone.utc
FILES = get_feed("files")
RAW, SUMMARIES, REPORTS = (dg.AssetKey(["files", stage]) for stage in ("raw_batch", "summaries", "report_cache"))


def recent_minutes(count: int, start_ago: int) -> list[str]:
    first = dt.datetime.now(UTC) - dt.timedelta(minutes=start_ago)
    return [minute_key(first + dt.timedelta(minutes=m)) for m in range(count)]


def range_tags(keys: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


def materialized_once_each(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> list[str]:
    """The partitions the run materialized for `key`, checked to be recorded once each."""
    counts = Counter(e.partition for e in result.get_asset_materialization_events() if e.asset_key == key)
    assert all(n == 1 for n in counts.values()), counts
    return sorted(counts)


def ui_status(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[set[str], set[str]]:
    """(materialized, failed) partitions as the UI's partition bar shows them."""
    cached = get_and_update_asset_status_cache_value(instance, key, minute_partitions)
    materialized = cached.deserialize_materialized_partition_subsets(minute_partitions)
    failed = cached.deserialize_failed_partition_subsets(minute_partitions)
    return set(materialized.get_partition_keys()), set(failed.get_partition_keys())


def failure_of(result: dg.ExecuteInProcessResult, step: str) -> dg.Failure:
    [failure] = [e for e in result.get_step_failure_events() if e.step_key == step]
    return failure.step_failure_data.user_failure_data


@pytest.fixture
def emulator():
    with FeedsEmulator(EmulatorConfig(objects_per_minute=4, seed=31)) as running:
        yield running


@pytest.fixture
def resources(emulator: FeedsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("VT_API_KEY", emulator.config.api_key)
    return {
        "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url, max_attempts=2,
                                    backoff_base_s=0.01),
        "vt_storage": VTStorageResource(root=str(tmp_path / "data")),
        "vt_summarizer": VTSummarizerResource(workers=2),
    }


@pytest.mark.service
def test_a_batch_vt_keeps_failing_fails_the_download_run_and_the_others_are_materialized(
    emulator: FeedsEmulator, resources: dict, monkeypatch: pytest.MonkeyPatch, dagster_instance: dg.DagsterInstance
) -> None:
    from vt_dagster.assets import raw_batch

    monkeypatch.setattr(raw_batch, "RETRY_POLICY", None)  # one attempt (Dagster would try again in 30 s)
    keys = recent_minutes(6, start_ago=190)
    bad = keys[3]
    emulator.inject_fault("503", count=100, path_contains=f"/files/{bad}")
    instance = dagster_instance
    result = dg.materialize([build_raw_batch_asset(FILES)], resources=resources, instance=instance,
                            tags=range_tags(keys), raise_on_error=False)

    assert not result.success
    failure = failure_of(result, "files__raw_batch")
    assert bad in failure.description and "503" in failure.description
    assert "; 5 of the run's 6 batch(es) are done and kept" in failure.description
    assert failure.metadata["failed_batches"].value == {bad: failure.metadata["failed_batches"].value[bad]}
    good = [key for key in keys if key != bad]
    assert materialized_once_each(result, RAW) == good
    assert instance.get_materialized_partitions(RAW) == set(good)
    assert ui_status(instance, RAW) == (set(good), {bad})

    emulator.clear_faults()
    again = dg.materialize([build_raw_batch_asset(FILES)], resources=resources, instance=instance,
                           partition_key=bad)
    assert materialized_once_each(again, RAW) == [bad]
    assert instance.get_materialized_partitions(RAW) == set(keys)
    assert ui_status(instance, RAW) == (set(keys), set())


@pytest.mark.service
def test_a_corrupt_raw_batch_fails_the_summaries_run_and_the_others_are_materialized_and_checked(
    resources: dict, tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    keys = recent_minutes(5, start_ago=180)
    bad = keys[1]
    instance = dagster_instance
    assert dg.materialize([build_raw_batch_asset(FILES)], resources=resources, instance=instance,
                          tags=range_tags(keys)).success
    raw = raw_batch_path(tmp_path / "data", "files", bad)
    whole = raw.read_bytes()
    raw.write_bytes(whole[: len(whole) // 2])  # a bz2 stream cut short: unreadable
    assets = [build_raw_batch_asset(FILES), build_summaries_asset(FILES)]

    result = dg.materialize(assets, resources=resources, instance=instance, tags=range_tags(keys),
                            selection=[SUMMARIES], raise_on_error=False)
    assert not result.success
    failure = failure_of(result, "files__summaries")
    assert failure.description.startswith(f"files/summaries: 1 of 5 batch(es) failed ({bad}: {raw}: not a readable bz2")
    assert failure.description.endswith("; 4 of the run's 5 batch(es) are done and kept")
    good = [key for key in keys if key != bad]
    assert materialized_once_each(result, SUMMARIES) == good
    assert instance.get_materialized_partitions(SUMMARIES) == set(good)
    assert ui_status(instance, SUMMARIES) == (set(good), {bad})
    assert not summary_path(tmp_path / "data", "files", bad).exists()
    [check] = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert check.passed and check.metadata["batches_checked"].value == 4

    raw.write_bytes(whole)
    again = dg.materialize(assets, resources=resources, instance=instance, partition_key=bad, selection=[SUMMARIES])
    assert materialized_once_each(again, SUMMARIES) == [bad]
    assert instance.get_materialized_partitions(SUMMARIES) == set(keys)


def test_a_successful_range_run_materializes_each_partition_once(resources: dict, emulator: FeedsEmulator,
                                                                  dagster_instance: dg.DagsterInstance) -> None:
    keys = recent_minutes(4, start_ago=170)
    emulator.config.gap_minutes.add(keys[2])
    result = dg.materialize([build_raw_batch_asset(FILES), build_summaries_asset(FILES)], resources=resources,
                            instance=dagster_instance, tags=range_tags(keys))
    assert result.success
    assert materialized_once_each(result, RAW) == materialized_once_each(result, SUMMARIES) == keys


@pytest.mark.es
def test_an_unreadable_raw_batch_fails_the_report_run_and_the_others_are_indexed_and_materialized(
    resources: dict, tmp_path: Path, es_url: str, es_client, index_prefix: str, dagster_instance: dg.DagsterInstance
) -> None:
    keys = recent_minutes(4, start_ago=160)
    bad = keys[2]
    setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    resources = {**resources, "vt_elasticsearch": VTElasticsearchResource(url=es_url, index_prefix=index_prefix)}
    instance = dagster_instance
    assets = [build_raw_batch_asset(FILES), build_report_cache_asset(FILES)]
    assert dg.materialize(assets[:1], resources=resources, instance=instance, tags=range_tags(keys)).success
    raw = raw_batch_path(tmp_path / "data", "files", bad)
    whole = raw.read_bytes()
    raw.write_bytes(bz2.compress(b"")[:-4] + b"junk")

    result = dg.materialize(assets, resources=resources, instance=instance, tags=range_tags(keys),
                            selection=[REPORTS], raise_on_error=False)
    failure = failure_of(result, "files__report_cache")
    assert f"{bad}: {raw}: not a readable bz2 batch" in failure.description and "\n" not in failure.description
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    good = [key for key in keys if key != bad]
    assert materialized_once_each(result, REPORTS) == good
    assert instance.get_materialized_partitions(REPORTS) == set(good)
    es_client.indices.refresh(index=f"{index_prefix}-reports-files")
    counts = batch_counts(es_client, f"{index_prefix}-reports-files", keys)
    assert all(counts[key] > 0 for key in good) and counts.get(bad, 0) == 0

    raw.write_bytes(whole)
    again = dg.materialize(assets, resources=resources, instance=instance, partition_key=bad, selection=[REPORTS])
    assert materialized_once_each(again, REPORTS) == [bad]
    assert instance.get_materialized_partitions(REPORTS) == set(keys)
