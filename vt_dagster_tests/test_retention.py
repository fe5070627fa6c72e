"""Retention keeps the instance and the data folder bounded; time is fast-forwarded, not waited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from vt_dagster.feeds import minute_key
from vt_dagster.retention import (
    RetentionDays,
    delete_old_runs,
    prune_data_folder,
    retention_days_from_env,
)
from vt_dagster.storage import incident_note_path, missing_marker_path, raw_batch_path, summary_counts_path, summary_path

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAYS = RetentionDays(runs=7, raw=3, summaries=7)


def _batch(days_ago: float, minute: int = 0) -> str:
    return minute_key(NOW - dt.timedelta(days=days_ago) + dt.timedelta(minutes=minute))


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _everything_done(feed: str, stage: str) -> set[str]:
    return {_batch(d, m) for d in (0.5, 4, 8, 9) for m in range(3)}


def test_old_raw_batches_go_once_their_readers_are_done_and_recent_ones_stay(tmp_path: Path) -> None:
    recent = _write(raw_batch_path(tmp_path, "files", _batch(0.5)))
    old = _write(raw_batch_path(tmp_path, "files", _batch(4)))
    old_summary = _write(summary_path(tmp_path, "files", _batch(4)))
    report = prune_data_folder(tmp_path, ["files"], _everything_done, DAYS, NOW)
    assert recent.exists() and not old.exists()
    assert old_summary.exists(), "summaries have their own, longer retention"
    assert report.files == 1 and report.by_folder == {"raw": 1}
    assert not old.parent.exists(), "an emptied day folder goes too"


def test_a_file_an_unfinished_stage_needs_is_kept(tmp_path: Path) -> None:
    batch = _batch(4)
    raw = _write(raw_batch_path(tmp_path, "files", batch))

    def report_cache_not_done(feed: str, stage: str) -> set[str]:
        return set() if stage == "report_cache" else {batch}

    report = prune_data_folder(tmp_path, ["files"], report_cache_not_done, DAYS, NOW)
    assert raw.exists() and report.kept_unfinished == 1 and report.files == 0
    summary = _write(summary_path(tmp_path, "files", _batch(8)))
    prune_data_folder(tmp_path, ["files"], lambda feed, stage: set(), DAYS, NOW - dt.timedelta(days=1))
    assert summary.exists(), "7 days old and never indexed: summary_index still needs it"


def test_past_vts_window_nothing_can_need_a_file_anymore(tmp_path: Path) -> None:
    raw = _write(raw_batch_path(tmp_path, "urls", _batch(8)))
    summary = _write(summary_path(tmp_path, "urls", _batch(8)))
    report = prune_data_folder(tmp_path, ["urls"], lambda feed, stage: set(), DAYS, NOW)
    assert not raw.exists() and not summary.exists()
    assert report.past_window_unfinished == 2


def test_summaries_counts_and_missing_notes_expire_with_time_fast_forwarded(tmp_path: Path) -> None:
    summary = _write(summary_path(tmp_path, "files", _batch(4)))
    marker = _write(missing_marker_path(tmp_path, "files", _batch(4, 1)))
    incident = _write(incident_note_path(tmp_path, "files", _batch(4, 2)))
    counts = _write(summary_counts_path(tmp_path, "files", (NOW - dt.timedelta(days=4)).strftime("%Y-%m-%d")))
    prune_data_folder(tmp_path, ["files"], _everything_done, DAYS, NOW)
    assert summary.exists() and marker.exists() and incident.exists() and counts.exists(), "inside every retention"
    later = NOW + dt.timedelta(days=5)
    report = prune_data_folder(tmp_path, ["files"], _everything_done, DAYS, later)
    assert not any(path.exists() for path in (summary, marker, incident, counts))
    assert report.files == 4


def test_files_not_named_like_batches_are_never_touched(tmp_path: Path) -> None:
    stranger = _write(tmp_path / "raw" / "files" / "2020-01-01" / "notes.bz2")
    mine = _write(tmp_path / "summary" / "files" / "README.summary")
    prune_data_folder(tmp_path, ["files"], _everything_done, DAYS, NOW + dt.timedelta(days=30))
    assert stranger.exists() and mine.exists()


def test_retention_days_come_from_the_environment() -> None:
    assert retention_days_from_env({}) == RetentionDays(7, 3, 7)
    assert retention_days_from_env({"VT_RAW_RETENTION_DAYS": "1", "VT_RUN_RETENTION_DAYS": "30"}) == \
        RetentionDays(runs=30, raw=1, summaries=7)
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match="^VT_SUMMARY_RETENTION_DAYS: must be a whole number of days"):
            retention_days_from_env({"VT_SUMMARY_RETENTION_DAYS": bad})


@dg.op
def _say_something(context) -> None:
    print("compute log line")
    context.log.info("event log line")


@dg.job
def _small_job() -> None:
    _say_something()


def test_old_runs_go_with_their_events_shards_and_compute_logs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_ids = [_small_job.execute_in_process(instance=instance).run_id for _ in range(3)]
        shards = [Path(instance.event_log_storage.path_for_shard(run_id)) for run_id in run_ids]
        assert all(shard.exists() for shard in shards)
        assert delete_old_runs(instance, dt.datetime.now(UTC) - dt.timedelta(days=7)).runs == 0
        report = delete_old_runs(instance, dt.datetime.now(UTC) + dt.timedelta(days=8))
        assert report.runs == 3
        assert instance.get_runs() == []
        assert not any(shard.exists() for shard in shards)
        storage = home / "storage"
        assert not any((storage / run_id).exists() for run_id in run_ids)
        assert _small_job.execute_in_process(instance=instance).success, "the instance works on"


def test_old_runs_go_with_their_events_on_postgres(postgres_instance: dg.DagsterInstance) -> None:
    instance = postgres_instance
    run_ids = [_small_job.execute_in_process(instance=instance).run_id for _ in range(3)]
    assert all(instance.all_logs(run_id) for run_id in run_ids)
    assert delete_old_runs(instance, dt.datetime.now(UTC) - dt.timedelta(days=7)).runs == 0
    assert delete_old_runs(instance, dt.datetime.now(UTC) + dt.timedelta(days=8)).runs == 3
    assert instance.get_runs() == []
    assert not any(instance.all_logs(run_id) for run_id in run_ids), "their events go with them"
    assert _small_job.execute_in_process(instance=instance).success, "the instance works on"


def test_runs_still_going_are_never_deleted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        running = instance.create_run_for_job(_small_job, status=dg.DagsterRunStatus.STARTED)
        done = _small_job.execute_in_process(instance=instance).run_id
        delete_old_runs(instance, dt.datetime.now(UTC) + dt.timedelta(days=8))
        assert [run.run_id for run in instance.get_runs()] == [running.run_id]
        assert instance.get_run_by_id(done) is None


def test_the_retention_job_removes_what_every_reader_has_materialized(tmp_path: Path, monkeypatch) -> None:
    """The hourly job on a real instance: which stage is done comes from its materializations."""
    from vt_dagster.definitions import defs

    monkeypatch.setenv("VT_DATA_DIR", str(tmp_path / "data"))
    now = dt.datetime.now(UTC)
    done, unfinished = (minute_key(now - dt.timedelta(days=4, minutes=m)) for m in (0, 1))
    raws = {b: _write(raw_batch_path(tmp_path / "data", "files", b)) for b in (done, unfinished)}
    with dg.DagsterInstance.ephemeral() as instance:
        for stage in ("summaries", "report_cache"):
            instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["files", stage]), partition=done))
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["files", "summaries"]),
                                                                    partition=unfinished))
        from vt_dagster.resources import VTStorageResource

        result = defs.resolve_job_def("vt_retention_job").execute_in_process(
            instance=instance, resources={"vt_storage": VTStorageResource(root=str(tmp_path / "data"))})
    assert result.success
    assert not raws[done].exists() and raws[unfinished].exists()
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["files_removed"].value == 1 and metadata["kept_for_unfinished_stages"].value == 1


def test_the_retention_schedule_is_on_by_default() -> None:
    from vt_dagster.definitions import defs

    schedule = defs.resolve_schedule_def("vt_retention_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "vt_retention_job"
