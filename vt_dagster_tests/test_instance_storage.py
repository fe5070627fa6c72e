"""The single-machine instance's pooled SQLite storage: Dagster's files, read and written as
Dagster's own storage does, with a bounded number of them open and none left open once gone."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from vt_dagster.instance_storage import (
    OPEN_RUN_SHARDS,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    PooledSqliteScheduleStorage,
)
from vt_dagster.retention import delete_old_runs
from vt_dagster_tests.conftest import instance_from_service_yaml

UTC = dt.timezone.utc
LETTERS = dg.StaticPartitionsDefinition(["a", "b", "c"])


@dg.asset(partitions_def=LETTERS)
def letter(context):
    context.log.info(f"letter {context.partition_key}")
    return dg.MaterializeResult(metadata={"letter": context.partition_key})


def _open_database_files(under: Path) -> set[str]:
    """This process's open files under `under` that are SQLite databases or their WAL."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if Path(target).is_relative_to(under) and ".db" in target:
            found.add(target)
    return found


def _stock_sqlite_instance(home: Path) -> dg.DagsterInstance:
    """Dagster's own SQLite storage on the same folder (what `storage: sqlite` reads)."""
    config = home.parent / f"{home.name}-stock"
    config.mkdir(exist_ok=True)
    (config / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\ntelemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(config))


def test_the_shipped_instance_uses_the_pooled_storages(tmp_path: Path) -> None:
    with instance_from_service_yaml(tmp_path / "home") as instance:
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        assert isinstance(instance.schedule_storage, PooledSqliteScheduleStorage)
        assert (tmp_path / "home" / "history" / "runs.db").exists(), "Dagster's own layout"


def test_what_the_pooled_storage_writes_dagsters_sqlite_storage_reads_and_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with instance_from_service_yaml(home) as pooled:
        first = dg.materialize([letter], partition_key="a", instance=pooled)
        assert first.success
        pooled.run_storage.set_cursor_values({"vt-test": "1"})
        with _stock_sqlite_instance(home) as stock:
            assert [run.run_id for run in stock.get_runs()] == [first.run_id]
            assert stock.get_materialized_partitions(letter.key) == {"a"}
            assert any("letter a" in (e.user_message or "") for e in stock.all_logs(first.run_id))
            assert stock.run_storage.get_cursor_values({"vt-test"}) == {"vt-test": "1"}
            second = dg.materialize([letter], partition_key="b", instance=stock)
        assert pooled.get_materialized_partitions(letter.key) == {"a", "b"}, "its open connections see new writes"
        assert pooled.get_run_by_id(second.run_id).is_success
        assert dg.materialize([letter], partition_key="c", instance=pooled).success


def test_deleting_a_run_closes_its_event_file_and_retention_leaves_none_of_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with instance_from_service_yaml(home) as instance:
        run_id = dg.materialize([letter], partition_key="a", instance=instance).run_id
        shard = Path(instance.event_log_storage.path_for_shard(run_id))
        assert str(shard) in _open_database_files(home), "kept open for the next event"
        assert delete_old_runs(instance, dt.datetime.now(UTC) + dt.timedelta(days=8)).runs == 1
        assert not any(path.startswith(str(shard)) for path in _open_database_files(home))
        assert not list(shard.parent.glob(f"{run_id}.db*")), "no file, WAL or shared memory left"
        assert dg.materialize([letter], partition_key="b", instance=instance).success, "the instance works on"


def test_a_process_keeps_a_bounded_number_of_run_event_files_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with instance_from_service_yaml(home) as instance:
        run_ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(OPEN_RUN_SHARDS + 5)]
        for run_id in run_ids:
            assert instance.all_logs(run_id) == []
        open_runs = {Path(p).name.split(".db")[0] for p in _open_database_files(home / "history" / "runs")}
        open_runs.discard("index")
        assert open_runs == set(run_ids[-OPEN_RUN_SHARDS:]), "the most recently used ones"


def test_a_run_file_left_unused_is_closed_so_its_writers_wal_can_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    with instance_from_service_yaml(home) as instance:
        run_id = dg.materialize([letter], partition_key="a", instance=instance).run_id
        shard = instance.event_log_storage.path_for_shard(run_id)
        assert shard in _open_database_files(home)
        instance.all_logs("00000000-0000-4000-8000-000000000000")
        assert shard in _open_database_files(home), "used a moment ago"
        monkeypatch.setattr("vt_dagster.instance_storage.IDLE_RUN_SHARD_S", 0.0)
        instance.all_logs("00000000-0000-4000-8000-000000000000")
        assert shard not in _open_database_files(home)
        assert not Path(shard + "-wal").exists(), "its last connection closed: SQLite removed the WAL"
        assert len(instance.all_logs(run_id)) > 5, "and it opens again when asked"


def test_a_process_that_never_closes_its_instance_leaves_no_wal_behind(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with instance_from_service_yaml(home):
        pass
    worker = textwrap.dedent("""
        import dagster as dg
        from vt_dagster_tests.test_instance_storage import letter
        instance = dg.DagsterInstance.get()
        assert dg.materialize([letter], partition_key="a", instance=instance).success
    """)
    done = subprocess.run([sys.executable, "-c", worker], env={**os.environ, "DAGSTER_HOME": str(home)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((home / "history" / "runs").glob("*.db"))) == 2, "the index and the run's file"
    assert sorted(p.name for p in home.rglob("*.db-wal")) == []


def test_closing_the_instance_closes_every_database_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with instance_from_service_yaml(home) as instance:
        assert dg.materialize([letter], partition_key="a", instance=instance).success
        assert instance.get_runs()
        assert _open_database_files(home)
    assert _open_database_files(home) == set()


def test_processes_writing_the_instance_at_once_lose_no_event(tmp_path: Path) -> None:
    home = tmp_path / "home"
    writer = textwrap.dedent("""
        import sys
        import dagster as dg
        with dg.DagsterInstance.get() as instance:
            for n in range(60):
                instance.report_runless_asset_event(dg.AssetMaterialization("written", partition=f"{sys.argv[1]}-{n}"))
                instance.get_runs(limit=5)
    """)
    with instance_from_service_yaml(home) as instance:
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        writers = [subprocess.Popen([sys.executable, "-c", writer, str(n)], env=env) for n in range(3)]
        for n in range(60):
            instance.report_runless_asset_event(dg.AssetMaterialization("written", partition=f"main-{n}"))
        assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
        assert len(instance.get_materialized_partitions(dg.AssetKey("written"))) == 4 * 60


def _report_in_child(instance: dg.DagsterInstance) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("forked", partition="child"))
    instance.dispose()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(tmp_path: Path) -> None:
    with instance_from_service_yaml(tmp_path / "home") as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("forked", partition="parent-before"))
        child = multiprocessing.get_context("fork").Process(target=_report_in_child, args=(instance,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        instance.report_runless_asset_event(dg.AssetMaterialization("forked", partition="parent-after"))
        assert instance.get_materialized_partitions(dg.AssetKey("forked")) == {"parent-before", "child", "parent-after"}


def test_instances_the_commands_create_use_the_services_storage() -> None:
    import yaml

    from vt_dagster.vt_download import COMMAND_INSTANCE_YAML
    from vt_dagster_tests.conftest import SERVICE_DAGSTER_YAML

    service = yaml.safe_load(SERVICE_DAGSTER_YAML.read_text(encoding="utf-8"))
    assert yaml.safe_load(COMMAND_INSTANCE_YAML)["storage"] == service["storage"]
