"""`<feed>/raw_batch` through Dagster: range runs, per-partition metadata, the live schedule,
and the API key kept out of everything Dagster stores."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import dagster as dg
import pytest

from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.feeds import get_feed, minute_key
from vt_dagster.resources import VTFeedsResource, VTStorageResource
from vt_dagster.storage import missing_marker_path, raw_batch_path, verify_batch_file

SECRET_KEY = "vt-secret-key-5d1f0c7a9e"
UTC = dt.timezone.utc
FILES_RAW = dg.AssetKey(["files", "raw_batch"])


def hour_keys(hours_ago: int) -> list[str]:
    start = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=hours_ago)
    return [minute_key(start + dt.timedelta(minutes=m)) for m in range(60)]


@pytest.fixture
def secret_emulator():
    from vt_dagster.emulator import EmulatorConfig, FeedsEmulator

    with FeedsEmulator(EmulatorConfig(api_key=SECRET_KEY, objects_per_minute=3, seed=11)) as running:
        yield running


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def resources_for(emulator, data_dir: Path, monkeypatch: pytest.MonkeyPatch, key: str = SECRET_KEY) -> dict:
    monkeypatch.setenv("VT_API_KEY", key)
    return {
        "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url, backoff_base_s=0.01),
        "vt_storage": VTStorageResource(root=str(data_dir)),
    }


def range_tags(keys: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


def test_definitions_load_with_one_chain_per_enabled_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import vt_dagster.definitions as definitions

    monkeypatch.setenv("VT_FEEDS", "files,domains,file-behaviours")
    reloaded = importlib.reload(definitions)
    try:
        dg.Definitions.validate_loadable(reloaded.defs)
        specs = {spec.key.to_user_string(): spec for spec in reloaded.defs.resolve_all_asset_specs()}
        feeds = ("files", "domains", "file_behaviours")
        stages = ("raw_batch", "summaries", "summary_index", "report_cache")
        assert set(specs) == {f"{feed}/{stage}" for feed in feeds for stage in stages}
        lineage = {"summaries": "raw_batch", "summary_index": "summaries", "report_cache": "raw_batch"}
        for feed in feeds:
            for stage, upstream in lineage.items():
                assert [d.asset_key.to_user_string() for d in specs[f"{feed}/{stage}"].deps] == [f"{feed}/{upstream}"]
    finally:
        monkeypatch.delenv("VT_FEEDS")
        importlib.reload(definitions)


def test_range_run_records_each_partitions_own_metadata(secret_emulator, tmp_path, dagster_home, monkeypatch) -> None:
    keys = hour_keys(4)
    instance = dg.DagsterInstance.get()
    result = dg.materialize(
        [build_raw_batch_asset(get_feed("files"))],
        resources=resources_for(secret_emulator, tmp_path / "data", monkeypatch),
        instance=instance, tags=range_tags(keys),
    )
    assert result.success
    events = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert sorted(events) == keys
    for key in keys[::10]:
        check = verify_batch_file(raw_batch_path(tmp_path / "data", "files", key))
        metadata = events[key]
        assert metadata["status"].value == "downloaded" and metadata["source"].value == "hourly"
        assert metadata["sha256"].value == check.sha256
        assert metadata["objects"].value == check.objects and metadata["bytes"].value == check.bytes
    assert len({events[k]["sha256"].value for k in keys}) == 60, "each partition has its own figures"
    assert len([r for r in secret_emulator.requests if "/hourly/" in r.path and "/_download" not in r.path]) == 1


def test_api_key_never_reaches_logs_event_log_run_config_or_metadata(
    secret_emulator, tmp_path, dagster_home, monkeypatch, caplog, capfd
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = hour_keys(3)[:5]
    instance = dg.DagsterInstance.get()
    assets = [build_raw_batch_asset(get_feed("files"))]
    ok = dg.materialize(assets, resources=resources_for(secret_emulator, tmp_path / "data", monkeypatch),
                        instance=instance, tags=range_tags(keys))
    assert ok.success
    wrong = "wrong-" + SECRET_KEY
    failed = dg.materialize(assets, resources=resources_for(secret_emulator, tmp_path / "data2", monkeypatch, wrong),
                            instance=instance, tags=range_tags(keys), raise_on_error=False)
    assert not failed.success

    failure = failed.get_step_failure_events()[0].step_failure_data.error
    assert "401" in failure.message and "VT_API_KEY" in failure.message
    instance.dispose()

    stored = [p for p in dagster_home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in stored), "the event log must have been written to disk"
    for secret in (SECRET_KEY, wrong):
        for path in stored:
            assert secret.encode() not in path.read_bytes(), f"API key found in {path}"
        out, err = capfd.readouterr()
        assert secret not in out + err + caplog.text
        for run in (ok, failed):
            assert secret not in repr(run.dagster_run.run_config)


def database_text(url: str) -> str:
    """Every row of every table of the database, as text."""
    import psycopg2
    from psycopg2 import sql

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [name for (name,) in cursor.fetchall()]
        rows = []
        for table in tables:
            cursor.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table)))
            rows += [row for (row,) in cursor.fetchall()]
    return "\n".join(rows)


def test_api_key_never_reaches_the_postgres_instance(
    secret_emulator, tmp_path, monkeypatch, postgres_instance: dg.DagsterInstance, dagster_pg_url: str
) -> None:
    keys = hour_keys(3)[:3]
    assets = [build_raw_batch_asset(get_feed("files"))]
    assert dg.materialize(assets, resources=resources_for(secret_emulator, tmp_path / "data", monkeypatch),
                          instance=postgres_instance, tags=range_tags(keys)).success
    wrong = "wrong-" + SECRET_KEY
    failed = dg.materialize(assets, resources=resources_for(secret_emulator, tmp_path / "data2", monkeypatch, wrong),
                            instance=postgres_instance, tags=range_tags(keys), raise_on_error=False)
    assert not failed.success

    stored = database_text(dagster_pg_url)
    assert keys[0] in stored and "401" in stored, "the runs, their events and the failure are in the database"
    files = [p for p in Path(postgres_instance.root_directory).rglob("*") if p.is_file()]
    for secret in (SECRET_KEY, wrong):
        assert secret not in stored
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"API key found in {path}"


def test_wrong_key_fails_the_run_without_retries(secret_emulator, tmp_path, dagster_home, monkeypatch) -> None:
    keys = hour_keys(3)[:2]
    result = dg.materialize(
        [build_raw_batch_asset(get_feed("files"))],
        resources=resources_for(secret_emulator, tmp_path, monkeypatch, key="bad-key"),
        instance=dg.DagsterInstance.get(), tags=range_tags(keys), raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    asked = [r.path for r in secret_emulator.requests if "/_download" not in r.path]
    assert asked and all(r.status == 401 for r in secret_emulator.requests)
    assert len(asked) == len(set(asked)) <= len(keys), "a 401 is never retried"


def test_missing_minutes_materialized_one_run_each_fail_the_run_past_the_limit(
    secret_emulator, tmp_path, dagster_home, monkeypatch
) -> None:
    first = dt.datetime.now(UTC) - dt.timedelta(minutes=200)
    streak = [minute_key(first + dt.timedelta(minutes=m)) for m in range(4)]
    secret_emulator.config.gap_minutes.update(streak)
    assets = [build_raw_batch_asset(get_feed("files"))]
    resources = resources_for(secret_emulator, tmp_path, monkeypatch)
    instance = dg.DagsterInstance.get()
    runs = [dg.materialize(assets, resources=resources, instance=instance, partition_key=minute, raise_on_error=False)
            for minute in streak]
    assert [run.success for run in runs] == [True, True, True, False]
    assert [run.get_asset_materialization_events()[0].materialization.metadata["status"].value
            for run in runs[:3]] == ["missing"] * 3
    [failure] = runs[3].get_step_failure_events()
    assert failure.step_failure_data.user_failure_data.description == (
        f"files: 4 consecutive minutes without a batch ({streak[0]}..{streak[3]}), more than the 3 VT calls "
        "normal: the feed may be down; these minutes are not remembered as missing and will be asked for again")
    assert not [e for e in runs[3].all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert not [m for m in streak if missing_marker_path(tmp_path, "files", m).exists()]


def test_single_partition_run_of_the_newest_minute(secret_emulator, tmp_path, dagster_home, monkeypatch) -> None:
    newest = minute_key(dt.datetime.now(UTC) - dt.timedelta(minutes=61))
    result = dg.materialize(
        [build_raw_batch_asset(get_feed("files"))],
        resources=resources_for(secret_emulator, tmp_path, monkeypatch),
        instance=dg.DagsterInstance.get(), partition_key=newest,
    )
    [event] = result.get_asset_materialization_events()
    assert event.partition == newest and event.materialization.metadata["source"].value == "minute"
