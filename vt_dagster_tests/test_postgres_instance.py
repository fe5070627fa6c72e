"""Dagster on PostgreSQL: `vt-dagster local-postgres`, deploy/dagster.yaml as shipped, and what
the instance promises: one feed's stage never runs twice at once, and runs starting together on
a new database all succeed (what SQLite cannot promise)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
from vt_dagster.feeds import minute_key
from vt_dagster.local_es import cache_root
from vt_dagster.local_postgres import LocalPostgres
from vt_dagster_tests.conftest import DEPLOY_DAGSTER_YAML, PG_URL_ENV, SERVICE_DAGSTER_YAML

URL = re.compile(r"^postgresql://vt_dagster:([0-9a-f]{32})@127\.0\.0\.1:(\d+)/vt_dagster$")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vt_dagster", "local-postgres", *args], capture_output=True,
                          text=True, timeout=180)


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A cluster folder of this test's own, under the cache root (see `local_postgres` in conftest)."""
    folder = cache_root() / "postgres" / f"pytest-{os.getpid()}-cli-{uuid.uuid4().hex[:8]}"
    yield folder
    LocalPostgres(home=folder).stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.service
def test_local_postgres_starts_once_says_where_and_stops(cluster_dir: Path) -> None:
    where = ("--data-dir", str(cluster_dir))
    before = _cli("status", *where)
    assert before.returncode == 3 and before.stdout.startswith("local PostgreSQL: not running")

    started = _cli("start", *where, "--port", "0")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    password, port = URL.match(url).groups()
    again = _cli("start", *where, "--port", "0")
    assert again.returncode == 0 and again.stdout.strip() == url, "a second start reuses the running server"

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database(), current_setting('listen_addresses')")
        assert cursor.fetchone() == ("vt_dagster", "vt_dagster", "127.0.0.1")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(url.replace(password, "0" * 32)).close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres").close()
    assert stat.S_IMODE((cluster_dir / "password").stat().st_mode) == 0o600

    status = _cli("status", *where)
    assert status.returncode == 0, status.stderr
    assert f"running at postgresql://vt_dagster@127.0.0.1:{port}/vt_dagster (pid " in status.stdout
    assert password not in status.stdout + status.stderr + again.stderr
    pid = int(re.search(r"\(pid (\d+)", status.stdout).group(1))
    uid = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
    assert uid.split()[1] != "0", "PostgreSQL never runs as root"

    assert _cli("stop", *where).stdout.strip() == "local PostgreSQL: stopped"
    assert _cli("status", *where).returncode == 3
    assert _cli("stop", *where).stdout.strip() == "local PostgreSQL: was not running"


def test_local_postgres_refuses_a_taken_port_in_one_line(cluster_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _cli("start", "--data-dir", str(cluster_dir), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr == (f"vt-dagster local-postgres: port {port} on 127.0.0.1 is already taken by another "
                             "process: choose --port\n")
    assert not cluster_dir.exists(), "nothing is created before the port is known to be free"


def test_the_service_yaml_says_what_the_deploy_yaml_says_but_storage_and_the_pools_limit() -> None:
    deploy = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())
    service = yaml.safe_load(SERVICE_DAGSTER_YAML.read_text())
    assert deploy.pop("storage") == {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    assert deploy["concurrency"]["pools"].pop("default_limit") == 1
    assert service.pop("storage") == {"custom": {
        "module": "vt_dagster.instance_storage", "class": "PooledSqliteStorage",
        "config": {"base_dir": {"env": "DAGSTER_HOME"}},
    }}, "the service's instance is Dagster's SQLite files in DAGSTER_HOME"
    assert deploy == service


@pytest.mark.service
def test_the_deploy_instance_is_postgres_with_the_queue_pools_monitoring_and_retention(
    postgres_instance: dg.DagsterInstance,
) -> None:
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.instance.config import PoolGranularity
    from dagster._core.scheduler.instigation import TickStatus
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance = postgres_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    assert instance.event_log_storage.supports_global_concurrency_limits
    concurrency = instance.get_concurrency_config()
    assert concurrency.pool_config.default_pool_limit == 1
    assert concurrency.pool_config.pool_granularity == PoolGranularity.OP
    queue = concurrency.run_queue_config
    assert queue.max_concurrent_runs == 10
    assert {"key": "vt/live", "limit": 1} in queue.tag_concurrency_limits
    assert instance.run_monitoring_enabled and instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
    assert not instance.telemetry_enabled
    assert instance.get_tick_retention_settings(InstigatorType.SENSOR)[TickStatus.SKIPPED] == 1


def step_times(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """When the run's one step started and ended, and when it found its pool full, if it did."""
    times = {}
    for record in instance.all_logs(run_id):
        kind = record.dagster_event.event_type_value if record.dagster_event else None
        if kind in ("STEP_START", "STEP_SUCCESS"):
            times[kind] = record.timestamp
        elif "blocked by limit for pool files/raw_batch" in (record.user_message or ""):
            times.setdefault("BLOCKED", record.timestamp)
    return times


@pytest.mark.service
def test_one_feeds_stage_never_runs_twice_at_once_other_feeds_go_on(
    postgres_instance: dg.DagsterInstance, tmp_path: Path,
) -> None:
    """Two runs of files/raw_batch (other minutes) and one of urls/raw_batch start together on the
    deploy instance, each in its own process; the second files step waits for the first, the urls
    step never waits."""
    instance = postgres_instance
    now = dt.datetime.now(dt.timezone.utc)
    minutes = [minute_key(now - dt.timedelta(minutes=m)) for m in (200, 199, 190, 189)]
    runs = {"files_a": ("files", *minutes[:2]), "files_b": ("files", *minutes[2:]), "urls": ("urls", *minutes[:2])}
    # What the queue daemon does before it launches a run: give the run's first pools their row.
    # Two runs started outside the queue at the same instant, both the first ever to use a pool,
    # can fail one step: Dagster 1.13 inserts that row in a transaction that the other insert's
    # unique violation aborts (README, Dagster on PostgreSQL).
    for feed in ("files", "urls"):
        instance.event_log_storage.initialize_concurrency_limit_to_default(f"{feed}/raw_batch")
    with FeedsEmulator(EmulatorConfig(objects_per_minute=2, seed=5, slow_seconds=0.5)) as emulator:
        env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "VT_API_KEY": emulator.config.api_key}
        processes = {name: subprocess.Popen(
            [sys.executable, "-m", "vt_dagster_tests.stage_run", *args, emulator.base_url, str(tmp_path / "data")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name, args in runs.items()}
        outputs = {name: process.communicate(timeout=240) for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, f"{name}: {outputs[name][1][-2000:]}"

    steps = {name: step_times(instance, outputs[name][0].strip()) for name in runs}
    first, second = sorted(("files_a", "files_b"), key=lambda name: steps[name]["STEP_START"])
    assert steps[second]["STEP_START"] >= steps[first]["STEP_SUCCESS"], steps
    assert "BLOCKED" in steps[second] and "BLOCKED" not in steps["urls"], steps
    pool = instance.event_log_storage.get_concurrency_info("files/raw_batch")
    assert pool.slot_count == 1 and pool.active_slot_count == 0, "every slot is given back"


@pytest.mark.service
def test_two_runs_starting_at_once_on_a_new_database_both_succeed(
    local_postgres: LocalPostgres, tmp_path: Path,
) -> None:
    """What breaks a new SQLite instance ("alembic_version has more than one head"): two
    processes creating the instance's tables at the same moment."""
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    url = local_postgres.create_database(name)  # empty: no tables yet
    try:
        home = tmp_path / "home"
        home.mkdir()
        shutil.copyfile(DEPLOY_DAGSTER_YAML, home / "dagster.yaml")
        script = (
            "import dagster as dg\n"
            "@dg.op\ndef hello():\n    return 1\n"
            "@dg.job\ndef at_once():\n    hello()\n"
            f"with dg.DagsterInstance.from_config({str(home)!r}) as instance:\n"
            "    print(at_once.execute_in_process(instance=instance).success)\n"
        )
        env = {**os.environ, PG_URL_ENV: url}
        processes = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outcomes = [process.communicate(timeout=180) for process in processes]
        for process, (out, err) in zip(processes, outcomes):
            assert process.returncode == 0 and out.strip() == "True", err[-2000:]
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(PG_URL_ENV, url)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                runs = instance.get_runs()
                assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    finally:
        local_postgres.drop_database(name)
