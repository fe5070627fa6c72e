"""The live schedule: one range run of the newest minutes every few minutes, in one process."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from vt_dagster.feeds import minute_key, parse_minute_key
from vt_dagster.live import (
    LIVE_INTERVAL_ENV,
    LIVE_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    live_cron,
    live_interval_from_env,
    live_range,
)

UTC = dt.timezone.utc


def test_consecutive_ticks_cover_every_minute_exactly_once() -> None:
    start = dt.datetime(2026, 12, 1, 23, 57, tzinfo=UTC)
    for interval in (1, 3, 5, 15):
        covered: list[str] = []
        for tick_number in range(8):
            first, last = live_range(start + dt.timedelta(minutes=interval * tick_number), interval)
            first_at, last_at = parse_minute_key(first), parse_minute_key(last)
            covered += [minute_key(first_at + dt.timedelta(minutes=m))
                        for m in range(int((last_at - first_at).total_seconds() // 60) + 1)]
        assert len(covered) == len(set(covered)) == 8 * interval
        steps = {parse_minute_key(b) - parse_minute_key(a) for a, b in zip(covered, covered[1:])}
        assert steps == {dt.timedelta(minutes=1)}, f"interval {interval}: a minute is skipped"


def test_a_tick_asks_for_minutes_vt_already_serves() -> None:
    tick = dt.datetime(2026, 12, 2, 12, 3, 0, tzinfo=UTC)
    assert live_range(tick, 3) == ("202612021101", "202612021103")


def test_interval_comes_from_the_environment_and_must_divide_the_hour() -> None:
    assert live_interval_from_env({}) == 3
    assert live_interval_from_env({LIVE_INTERVAL_ENV: "5"}) == 5
    for bad in ("7", "0", "abc", "-3", "60"):
        with pytest.raises(ValueError, match=f"^{LIVE_INTERVAL_ENV}: must be one of 1, 2, 3"):
            live_interval_from_env({LIVE_INTERVAL_ENV: bad})
    assert live_cron(1) == "* * * * *" and live_cron(3) == "*/3 * * * *"


def test_live_schedule_requests_one_range_run_in_one_process() -> None:
    from vt_dagster.definitions import defs

    schedule = defs.resolve_schedule_def("vt_live_schedule")
    assert schedule.cron_schedule == "*/3 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    tick = dt.datetime.now(UTC).replace(minute=6, second=0, microsecond=0)
    [request] = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert request.tags[RANGE_START_TAG] == minute_key(tick - dt.timedelta(minutes=62))
    assert request.tags[RANGE_END_TAG] == minute_key(tick - dt.timedelta(minutes=60))
    assert request.tags[LIVE_TAG] == "true"
    job = defs.resolve_job_def("vt_live_job")
    assert job.executor_def.name == dg.in_process_executor.name


def test_a_live_tick_is_one_run_of_every_feeds_new_minutes_in_one_process(
    dagster_instance: dg.DagsterInstance, es_client, es_url: str, index_prefix: str, tmp_path, monkeypatch,
) -> None:
    """What the daemon does at a tick, on each instance: the schedule's request, then its run."""
    from vt_dagster.assets.elasticsearch import build_report_cache_asset, build_summary_index_asset
    from vt_dagster.assets.raw_batch import build_raw_batch_asset
    from vt_dagster.assets.summaries import build_summaries_asset
    from vt_dagster.elastic import setup_elasticsearch
    from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
    from vt_dagster.feeds import get_feed
    from vt_dagster.live import build_live_job, build_live_schedule
    from vt_dagster.resources import (
        VTElasticsearchResource, VTFeedsResource, VTStorageResource, VTSummarizerResource,
    )

    feeds = [get_feed("files"), get_feed("urls")]
    assets = [build(feed) for feed in feeds for build in (build_raw_batch_asset, build_summaries_asset,
                                                          build_summary_index_asset, build_report_cache_asset)]
    job = build_live_job(assets)
    schedule = build_live_schedule(job, 3)
    tick = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    context = dg.build_schedule_context(instance=dagster_instance, scheduled_execution_time=tick)
    [request] = schedule.evaluate_tick(context).run_requests
    setup_elasticsearch(es_client, [feed.name for feed in feeds], prefix=index_prefix)
    with FeedsEmulator(EmulatorConfig(objects_per_minute=3, seed=9)) as emulator:
        monkeypatch.setenv("VT_API_KEY", emulator.config.api_key)
        resources = {
            "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url),
            "vt_storage": VTStorageResource(root=str(tmp_path / "data")),
            "vt_summarizer": VTSummarizerResource(workers=1),
            "vt_elasticsearch": VTElasticsearchResource(url=es_url, index_prefix=index_prefix),
        }
        defs = dg.Definitions(assets=assets, jobs=[job], schedules=[schedule], resources=resources)
        result = defs.resolve_job_def("vt_live_job").execute_in_process(instance=dagster_instance, tags=request.tags)
    assert result.success
    first = parse_minute_key(request.tags[RANGE_START_TAG])
    minutes = {minute_key(first + dt.timedelta(minutes=m)) for m in range(3)}
    assert max(minutes) == request.tags[RANGE_END_TAG]
    for asset in assets:
        assert dagster_instance.get_materialized_partitions(asset.key) == minutes, asset.key
    assert dagster_instance.get_run_by_id(result.run_id).tags[LIVE_TAG] == "true"
