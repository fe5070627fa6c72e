"""The README's first command: the offline demo end to end (emulator, Elasticsearch, `dagster dev`,
a real backfill launched through the webserver)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import requests

from vt_dagster.dagster_ui import BACKFILL_TAG, AssetProgress, BackfillState
from vt_dagster.demo import STAGES, demo_partitions
from vt_dagster.feeds import minute_key, newest_available_minute
from vt_dagster.local_es import free_port
from vt_dagster_tests.conftest import PG_URL_ENV, DemoRun

FEEDS = ("files", "urls")


def test_demo_backfills_every_enabled_feed_and_prints_what_it_did(any_demo: DemoRun) -> None:
    demo = any_demo
    text = demo.output
    for feed in FEEDS:
        match = re.search(rf"  {feed}: ok; objects=(\d+), summaries=(\d+), rejected=0, "
                          rf"summaries_indexed=(\d+), reports_indexed=(\d+), reports_older_skipped=(\d+)", text)
        assert match, text[-3000:]
        objects, summaries, indexed, reports, older = map(int, match.groups())
        assert objects == summaries == indexed == reports + older > 0 and reports > 0
    targeted = demo.partitions * len(FEEDS) * len(STAGES)
    assert re.search(rf"^backfill {demo.backfill_id}: completed_success, \d+ runs? \(\d+ success\), "
                     rf"{targeted}/{targeted} asset partitions materialized, 0 failed \(", text, re.MULTILINE), text
    assert re.search(r"Setting up Elasticsearch: run \w{8} of setup_elasticsearch \.\.\. success", text)
    assert re.search(r"\$ vt-dagster lookup ([0-9a-f]{64})\n\1: file \1 batch \d{12} malicious=", text)
    assert "$ vt-dagster search" in text and "detections" in text


def test_demo_leaves_the_ui_up_on_its_backfill(demo: DemoRun) -> None:
    assert f"{demo.ui_url}/runs/b/{demo.backfill_id}" in demo.output
    assert requests.get(f"{demo.ui_url}/server_info", timeout=10).ok


def test_demo_backfill_is_a_dagster_backfill_whose_runs_the_daemon_launched(
    any_demo: DemoRun, monkeypatch: pytest.MonkeyPatch,
) -> None:
    demo = any_demo
    if demo.pg_url:
        monkeypatch.setenv(PG_URL_ENV, demo.pg_url)
    monkeypatch.setenv("DAGSTER_HOME", str(demo.dagster_home))
    with dg.DagsterInstance.from_config(str(demo.dagster_home)) as instance:
        storage = type(instance.run_storage).__name__
        assert storage == ("PostgresRunStorage" if demo.pg_url else "PooledSqliteRunStorage")
        backfills = instance.get_backfills()
        assert [backfill.backfill_id for backfill in backfills] == [demo.backfill_id]
        backfill = backfills[0]
        assert backfill.status.value == "COMPLETED_SUCCESS"
        assert set(backfill.asset_selection) == {dg.AssetKey([f, s]) for f in FEEDS for s in STAGES}
        assert backfill.tags["vt_dagster/launched_by"] == "vt-dagster demo"
        runs = instance.get_runs()
        in_backfill = [run for run in runs if run.tags.get(BACKFILL_TAG) == demo.backfill_id]
        assert in_backfill and all(run.status == dg.DagsterRunStatus.SUCCESS for run in in_backfill)
        # The backfill policy plans ranges: a handful of runs, never one per minute.
        assert len(in_backfill) < demo.partitions
        others = [run for run in runs if run not in in_backfill]
        # Only the hourly retention schedule, on by default, may have run beside the setup.
        assert [run.job_name for run in others if run.job_name != "vt_retention_job"] == ["setup_elasticsearch"]
        assert not [state.name for state in instance.all_instigator_state()
                    if state.status.value == "RUNNING" and state.name != "vt_retention_schedule"], \
            "the demo turned no automation on"


def test_demo_refuses_an_unknown_feed_before_starting_anything(tmp_path: Path) -> None:
    env = {**os.environ, "VT_FEEDS": "files,nonsense", "ES_URL": f"http://127.0.0.1:{free_port()}"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "vt_dagster", "demo", "--no-ui", "--data-dir", "data", "--dagster-home", "home"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "'nonsense'" in result.stderr, result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "home").exists()
    assert time.monotonic() - started < 30


def test_demo_partitions_are_the_newest_minutes_vt_serves() -> None:
    now = dt.datetime(2026, 12, 2, 18, 30, 40, tzinfo=dt.timezone.utc)
    keys = demo_partitions(3, now)
    assert len(keys) == 180 and keys[-1] == minute_key(newest_available_minute(now)) == "202612021730"
    assert keys[0] == "202612021431"
    assert demo_partitions(0.01, now) == ["202612021730"]


@pytest.mark.parametrize(("hours", "message"), [(0, "more than 0"), (-1, "more than 0"),
                                                (24 * 8, "reaches back past the oldest partition")])
def test_demo_refuses_hours_outside_the_partitions(hours: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        demo_partitions(hours, dt.datetime(2026, 12, 2, 18, 30, tzinfo=dt.timezone.utc))


def test_backfill_progress_line_counts_runs_and_asset_partitions() -> None:
    state = BackfillState("abcdefgh", "REQUESTED", ("SUCCESS", "STARTED", "SUCCESS"), {
        ("files", "raw_batch"): AssetProgress(180, 0, 180, 0),
        ("files", "summaries"): AssetProgress(180, 180, 0, 0),
        ("urls", "raw_batch"): AssetProgress(180, 0, 170, 10),
    })
    assert state.describe() == ("backfill abcdefgh: requested, 3 runs (1 started, 2 success), "
                                "350/540 asset partitions materialized, 10 failed")
    assert not state.done and state.feed_progress("urls") == AssetProgress(180, 0, 170, 10)
    finished = BackfillState("abcdefgh", "COMPLETED_SUCCESS", ("SUCCESS",),
                             {("files", "raw_batch"): AssetProgress(3, 0, 3, 0)})
    assert finished.done and finished.succeeded
