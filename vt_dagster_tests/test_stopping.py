"""SIGTERM and SIGINT stop every command within seconds, nothing half-written, with one line
saying what was done: against a slow VT and an APM server that is not there."""

from __future__ import annotations

import bz2
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from vt_dagster.apm import CLOSE_BUDGET_S, close_process_agent, process_agent
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator, generate_batch
from vt_dagster.local_es import free_port
from vt_dagster.storage import raw_batch_path, summary_folder, summary_path, verify_batch_file

STOP_WITHIN_S = 10.0
"""A few seconds, with room for a busy 2-core machine (a worker finishes the line it is on);
what this guards against is a command that needed kill -9."""
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def half_written(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.name.endswith(".part") or path.name.startswith(".hourly-"))


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the command ended before {what}: {process.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"never saw {what}")
        time.sleep(0.02)


def stop(process: subprocess.Popen[str], signum: int) -> tuple[float, str]:
    """Send `signum`; (seconds until the process ended, its stderr). Killed after 30 s."""
    started = time.monotonic()
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"still running 30 s after {signum.name}: {err[-3000:]}")
    return time.monotonic() - started, err


def line_starting(text: str, start: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(start)]
    return line


@pytest.mark.service
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_vt_download_stops_mid_backfill_within_seconds_keeping_what_it_finished(
    signum: signal.Signals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, home = tmp_path / "data", tmp_path / "home"
    with FeedsEmulator(EmulatorConfig(objects_per_minute=3, seed=41, slow_seconds=0.5)) as emulator:
        env = {**os.environ, "VT_API_URL": emulator.base_url, "VT_API_KEY": emulator.config.api_key,
               "VT_DATA_DIR": str(root), "DAGSTER_HOME": str(home), "VT_FEEDS": "files",
               "ELASTIC_APM_SERVER_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens there
        command = [sys.executable, "-m", "vt_dagster.vt_download", "--download-feed", "files", "--num-days-ago", "1",
                   "--max-minutes", "40", "--create-summaries", "True"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(list(root.glob("raw/files/*/*.bz2"))) >= 3, process, "3 batches on disk")
        emulator.inject_fault("stall", count=8, seconds=300)  # the next downloads hang mid-body
        wait_for(lambda: any(root.glob("raw/files/*/.*.part")), process, "a download mid-write")
        seconds, err = stop(process, signum)

    assert seconds < STOP_WITHIN_S, err[-3000:]
    assert process.returncode == EXIT_CODES[signum], err[-3000:]
    # 40 minutes are one run, or two when they cross a 6-hour slot of the UTC clock.
    line = line_starting(err, f"vt-download: interrupted ({signum.name}): files: ")
    assert " materialized (it recorded that and failed)" in line and "run the same command again to resume" in line
    assert half_written(root) == []
    on_disk = {path.stem for path in root.glob("raw/files/*/*.bz2")}
    assert all(verify_batch_file(raw_batch_path(root, "files", key)).ok for key in on_disk)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        *earlier, last = reversed(instance.get_runs())
        assert [run.status for run in earlier] == [dg.DagsterRunStatus.SUCCESS] * len(earlier)
        assert last.status == dg.DagsterRunStatus.FAILURE
        assert instance.get_materialized_partitions(dg.AssetKey(["files", "raw_batch"])) == on_disk
        summarized = instance.get_materialized_partitions(dg.AssetKey(["files", "summaries"]))
    assert summarized <= on_disk and all(summary_path(root, "files", key).exists() for key in summarized)


def big_batch(tmp_path: Path, key: str, objects: int) -> Path:
    raw = raw_batch_path(tmp_path / "data", "files", key)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(generate_batch("files", key, 3, objects))
    return raw


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_create_single_summary_stops_mid_write_and_leaves_nothing(signum: signal.Signals, tmp_path: Path) -> None:
    key = "202611230700"
    raw = big_batch(tmp_path, key, 2500)
    folder = summary_folder(tmp_path / "data", "files")
    process = subprocess.Popen([sys.executable, "-m", "vt_dagster", "create-single-summary", str(raw)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(folder.glob(f".{key}.summary.*.part")), process, "the summary mid-write")
    seconds, err = stop(process, signum)

    assert seconds < STOP_WITHIN_S and process.returncode == EXIT_CODES[signum], err
    assert err.strip().splitlines()[-1] == (
        f"vt-dagster create-single-summary: interrupted ({signum.name}): no summary written "
        f"({summary_path(tmp_path / 'data', 'files', key)} is as it was)")
    assert half_written(tmp_path / "data") == [] and not summary_path(tmp_path / "data", "files", key).exists()


def test_back_populate_summaries_stops_its_worker_processes_and_keeps_the_whole_summaries(tmp_path: Path) -> None:
    keys = [f"2026112307{minute:02d}" for minute in range(4)]
    for key in keys:
        big_batch(tmp_path, key, 1500)
    root = tmp_path / "data"
    process = subprocess.Popen([sys.executable, "-m", "vt_dagster", "back-populate-summaries", "files",
                                "--data-dir", str(root), "--workers", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(list(summary_folder(root, "files").glob(".*.part"))) == 2, process, "two summaries mid-write")
    seconds, err = stop(process, signal.SIGTERM)

    assert seconds < STOP_WITHIN_S and process.returncode == 143, err
    line = line_starting(err, "vt-dagster back-populate-summaries: interrupted (SIGTERM): ")
    written = [key for key in keys if summary_path(root, "files", key).exists()]
    assert f"{len(written)} of 4 summaries written" in line
    assert half_written(root) == []
    for key in written:
        objects = len(bz2.decompress(raw_batch_path(root, "files", key).read_bytes()).splitlines())
        assert len(summary_path(root, "files", key).read_bytes().splitlines()) == objects


def test_closing_the_apm_agent_waits_at_most_its_budget_for_a_server_that_does_not_answer(
    unanswering_es_url: str,
) -> None:
    agent = process_agent({"server_url": unanswering_es_url, "service_name": "vt-dagster-test",
                           "central_config": False, "cloud_provider": "none", "metrics_interval": "0ms",
                           "collect_local_variables": "off"})
    agent.begin_transaction("test")
    agent.end_transaction("stop test", "success")
    seconds = close_process_agent()
    assert seconds is not None and seconds < CLOSE_BUDGET_S + 0.5


@pytest.mark.parametrize("fault", ["stall", "slow"])
def test_abort_ends_a_download_waiting_on_vt_at_once_and_removes_its_temp_file(
    fault: str, emulator: FeedsEmulator, feeds_client, tmp_path: Path
) -> None:
    import datetime as dt
    import threading

    from vt_dagster.feeds import minute_key
    from vt_dagster.interrupts import StopRequested

    batch = minute_key(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=90))
    dest = raw_batch_path(tmp_path, "files", batch)
    emulator.inject_fault(fault, seconds=60, count=10)  # `slow` holds the answer, `stall` the body's second half
    writing: list[Path] = []

    def abort() -> None:
        writing.extend(half_written(tmp_path))
        feeds_client.abort()

    threading.Timer(1.0, abort).start()
    started = time.monotonic()
    with pytest.raises(StopRequested):
        feeds_client.download_minute("files", batch, dest)
    assert time.monotonic() - started < 3
    assert bool(writing) == (fault == "stall"), "a stalled body is written to its temp file as it comes"
    assert half_written(tmp_path) == [] and not dest.exists()
