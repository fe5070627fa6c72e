"""The Elasticsearch stages through Dagster against the real node: setup job, indexing,
counts, look-ups, and the sensor that requests only what is not counted yet."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
from elasticsearch import Elasticsearch

from vt_dagster.assets.elasticsearch import (
    build_report_cache_asset,
    build_summary_index_asset,
    setup_elasticsearch_job,
)
from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster import elastic
from vt_dagster.elastic import batch_counts, lookup, search_summaries
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
from vt_dagster.feeds import get_feed, minute_key
from vt_dagster.local_es import free_port
from vt_dagster.partitions import minute_partitions
from vt_dagster.resources import VTElasticsearchResource, VTFeedsResource, VTStorageResource, VTSummarizerResource
from vt_dagster.sensors import GRACE_PARTITIONS, build_backfill_sensor
from vt_dagster.storage import raw_batch_path, summary_path

UTC = dt.timezone.utc
FILES = get_feed("files")


def recent_minutes(count: int, start_ago: int) -> list[str]:
    first = dt.datetime.now(UTC) - dt.timedelta(minutes=start_ago)
    return [minute_key(first + dt.timedelta(minutes=m)) for m in range(count)]


def range_tags(keys: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


def chain() -> list[dg.AssetsDefinition]:
    return [build(FILES) for build in (build_raw_batch_asset, build_summaries_asset,
                                       build_summary_index_asset, build_report_cache_asset)]


@pytest.fixture
def emulator():
    with FeedsEmulator(EmulatorConfig(objects_per_minute=6, seed=21)) as running:
        yield running


@pytest.fixture
def resources(emulator, es_url: str, index_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("VT_API_KEY", emulator.config.api_key)
    monkeypatch.setenv("VT_FEEDS", "files")
    return {
        "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url),
        "vt_storage": VTStorageResource(root=str(tmp_path / "data")),
        "vt_summarizer": VTSummarizerResource(workers=1),
        "vt_elasticsearch": VTElasticsearchResource(url=es_url, index_prefix=index_prefix),
    }


def run_setup(resources: dict) -> dict:
    result = setup_elasticsearch_job.execute_in_process(
        resources={"vt_elasticsearch": resources["vt_elasticsearch"]}, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def test_setup_job_creates_then_finds_everything_present(resources) -> None:
    first = run_setup(resources)
    second = run_setup(resources)
    assert first.get("created", 0) >= 4
    assert "created" not in second and "updated" not in second
    assert second["present"] == first["created"] + first.get("present", 0)


def test_chain_indexes_each_batch_once_and_the_count_check_passes(resources, es_client: Elasticsearch,
                                                                    index_prefix: str, emulator,
                                                                    dagster_instance: dg.DagsterInstance) -> None:
    run_setup(resources)
    keys = recent_minutes(4, start_ago=150)
    emulator.config.gap_minutes.add(keys[1])
    instance = dagster_instance
    for _ in range(2):
        result = dg.materialize(chain(), resources=resources, instance=instance, tags=range_tags(keys))
        assert result.success
    alias = f"{index_prefix}-summaries-files"
    counts = batch_counts(es_client, alias, keys)
    root = Path(resources["vt_storage"].root)
    for key in (keys[0], keys[2], keys[3]):
        ids = {json.loads(line)["vt.id"] for line in summary_path(root, "files", key).read_text().splitlines()}
        assert counts[key] == len(ids) > 0, "re-running the batch must not duplicate"
    assert counts[keys[1]] == 0
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert {c.check_name: c.passed for c in checks} == {"objects_accounted_for": True, "documents_counted": True}
    assert all(c.partition is None and c.metadata["batches_checked"].value == 3 for c in checks)

    sha256 = json.loads(summary_path(root, "files", keys[3]).read_text().splitlines()[0])["vt.id"]
    es_client.indices.refresh(index=f"{index_prefix}-reports-files")  # the asset leaves it to the 1 s refresh
    found = lookup(es_client, [sha256], feeds=["files"], prefix=index_prefix)
    assert found[sha256]["id"] == sha256 and found[sha256]["vt.batch"] == keys[3]
    hits = search_summaries(es_client, f'vt.id:"{sha256}"', feeds=["files"], prefix=index_prefix)
    assert [hit["vt.id"] for hit in hits] == [sha256]


def test_indexing_without_setup_fails_in_one_line_naming_the_alias(resources, index_prefix: str,
                                                                    dagster_instance: dg.DagsterInstance) -> None:
    keys = recent_minutes(1, start_ago=160)
    result = dg.materialize(chain(), resources=resources, instance=dagster_instance,
                            partition_key=keys[0], raise_on_error=False)
    messages = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert any(f"alias {index_prefix}-summaries-files does not exist" in m and "setup_elasticsearch" in m
               for m in messages)


def test_a_partial_bulk_failure_fails_the_partition_and_says_why(resources, index_prefix: str,
                                                                  dagster_instance: dg.DagsterInstance) -> None:
    run_setup(resources)
    keys = recent_minutes(1, start_ago=170)
    instance = dagster_instance
    assert dg.materialize(chain()[:2], resources=resources, instance=instance, partition_key=keys[0]).success
    path = summary_path(Path(resources["vt_storage"].root), "files", keys[0])
    lines = path.read_text().splitlines()
    broken = {**json.loads(lines[0]), "file.size": "not a number"}
    path.write_text("\n".join([json.dumps(broken), *lines[1:]]) + "\n")
    result = dg.materialize(chain(), resources=resources, instance=instance, partition_key=keys[0],
                            selection=[dg.AssetKey(["files", "summary_index"])], raise_on_error=False)
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "1 document(s) not indexed" in message and "line 1" in message and "file.size" in message


def evaluate_sensor(resources: dict, cursor: str | None = None,
                    instance: dg.DagsterInstance | None = None) -> dg.SensorResult:
    sensor = build_backfill_sensor([FILES])
    definitions = dg.Definitions(assets=chain(), sensors=[sensor], resources=resources)
    context = dg.build_sensor_context(instance=instance or dg.DagsterInstance.ephemeral(), cursor=cursor,
                                      definitions=definitions,
                                      resources={k: resources[k] for k in ("vt_storage", "vt_elasticsearch")})
    return sensor.evaluate_tick(context)


def test_sensor_requests_exactly_what_is_not_counted_and_never_twice(resources, emulator,
                                                                     dagster_instance: dg.DagsterInstance) -> None:
    run_setup(resources)
    root = Path(resources["vt_storage"].root)
    done, summarize, index = recent_minutes(3, start_ago=GRACE_PARTITIONS + 80)[0::1]
    instance = dagster_instance
    assert dg.materialize(chain(), resources=resources, instance=instance, partition_key=done).success
    assert dg.materialize(chain()[:2], resources=resources, instance=instance, partition_key=index).success
    assert dg.materialize(chain()[:1], resources=resources, instance=instance, partition_key=summarize).success

    tick = evaluate_sensor(resources, instance=instance)
    requested = {(r.tags["vt/stage"], r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"]): r
                 for r in tick.run_requests}
    assert ("summarize", summarize, summarize) in requested
    assert ("index", index, index) in requested
    assert [k.to_user_string() for k in requested[("index", index, index)].asset_selection] == ["files/summary_index"]
    keys = minute_partitions.get_partition_keys()
    for stage, first, last in requested:
        covered = keys[keys.index(first): keys.index(last) + 1]
        assert done not in covered, "a batch counted in Elasticsearch is never requested"
        if stage == "download":
            assert not {summarize, index} & set(covered), "batches on disk are never downloaded again"
            assert len(covered) <= 360
    assert len(tick.run_requests) <= 8

    again = evaluate_sensor(resources, cursor=tick.cursor, instance=instance)
    before = {(r.tags["vt/stage"], r.tags["dagster/asset_partition_range_start"]) for r in tick.run_requests}
    after = {(r.tags["vt/stage"], r.tags["dagster/asset_partition_range_start"]) for r in again.run_requests}
    assert not before & after, "the cursor keeps a range from being requested twice"


def test_sensor_skips_with_a_reason_when_elasticsearch_is_down(resources, tmp_path: Path) -> None:
    raw = raw_batch_path(Path(resources["vt_storage"].root), "files", recent_minutes(1, start_ago=200)[0])
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"")
    summary = summary_path(Path(resources["vt_storage"].root), "files", raw.stem)
    summary.parent.mkdir(parents=True)
    summary.write_text("")
    down = {**resources, "vt_elasticsearch": VTElasticsearchResource(url="http://127.0.0.1:1")}
    tick = evaluate_sensor(down)
    assert not tick.run_requests and "unreachable" in tick.skip_message


def retried(result: dg.ExecuteInProcessResult) -> list:
    return [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def resources_without_es(emulator, root: Path, es_url: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The chain's resources with Elasticsearch at `es_url` (no node of the session needed)."""
    monkeypatch.setenv("VT_API_KEY", emulator.config.api_key)
    return {
        "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url),
        "vt_storage": VTStorageResource(root=str(root)),
        "vt_summarizer": VTSummarizerResource(workers=1),
        "vt_elasticsearch": VTElasticsearchResource(url=es_url),
    }


def test_es_stopped_fails_both_stages_in_one_line_within_10_s(emulator, tmp_path: Path, monkeypatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    resources = resources_without_es(emulator, tmp_path, url, monkeypatch)
    key = recent_minutes(1, start_ago=210)[0]
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(chain()[:2], resources=resources, instance=instance, partition_key=key).success

    started = time.monotonic()
    result = dg.materialize(chain()[2:], resources=resources, instance=instance, partition_key=key,
                            raise_on_error=False)
    assert time.monotonic() - started < 10
    descriptions = sorted(e.step_failure_data.user_failure_data.description for e in result.get_step_failure_events())
    assert [d.split(":")[0] for d in descriptions] == ["files/report_cache", "files/summary_index"]
    for description in descriptions:
        assert f"Elasticsearch at {url} is unreachable (Connection refused)" in description and "\n" not in description
    assert not retried(result), "nothing answers: the stage fails at once instead of waiting 90 s for retries"


def test_an_unreadable_raw_batch_fails_report_cache_at_once_without_retries(resources) -> None:
    run_setup(resources)
    key = recent_minutes(1, start_ago=220)[0]
    raw = raw_batch_path(Path(resources["vt_storage"].root), "files", key)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"BZh91AY&SY not the rest of a bz2 stream")
    started = time.monotonic()
    result = dg.materialize([build_report_cache_asset(FILES)], resources=resources, partition_key=key,
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert time.monotonic() - started < 10
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert f"{raw}: not a readable bz2 batch" in description and "\n" not in description
    assert not retried(result), "a broken file does not heal by waiting"


def test_sensor_waits_once_per_tick_for_a_cluster_that_does_not_answer(
    emulator, tmp_path: Path, unanswering_es_url: str, monkeypatch
) -> None:
    feeds = [FILES, get_feed("urls")]
    resources = resources_without_es(emulator, tmp_path, unanswering_es_url, monkeypatch)
    key = recent_minutes(1, start_ago=200)[0]
    for feed in feeds:
        summary = summary_path(tmp_path, feed.name, key)
        summary.parent.mkdir(parents=True)
        summary.write_text("")
    sensor = build_backfill_sensor(feeds)
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        definitions=dg.Definitions(assets=[b(f) for f in feeds for b in (build_raw_batch_asset, build_summaries_asset,
                                   build_summary_index_asset, build_report_cache_asset)],
                                   sensors=[sensor], resources=resources),
        resources={k: resources[k] for k in ("vt_storage", "vt_elasticsearch")},
    )
    started = time.monotonic()
    tick = sensor.evaluate_tick(context)
    one_wait = elastic.CONNECT_TIMEOUT_S * (elastic.TRANSPORT_RETRIES + 1)
    assert time.monotonic() - started < one_wait + 2 < 2 * one_wait
    assert not tick.run_requests and "\n" not in tick.skip_message
    assert tick.skip_message.startswith(f"files: Elasticsearch at {unanswering_es_url} is unreachable (timed out)")
