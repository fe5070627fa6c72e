"""kill -9 mid-download or mid-summary leaves temp files; the next run removes them once they
are older than the documented hour, and never a running writer's fresh one."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vt_dagster.emulator import EmulatorConfig, FeedsEmulator, generate_batch
from vt_dagster.feeds import minute_key
from vt_dagster.storage import (
    STALE_PART_AGE_S, raw_batch_path, raw_write_folders, remove_debris, summary_folder, summary_path,
    verify_batch_file,
)

UTC = dt.timezone.utc

STAGES_RUN = """
import sys
import dagster as dg
from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.feeds import get_feed
from vt_dagster.resources import VTFeedsResource, VTSummarizerResource, storage_resource_from_env

first, last, *stages = sys.argv[1:]
files = get_feed("files")
builders = {"raw_batch": build_raw_batch_asset, "summaries": build_summaries_asset}
result = dg.materialize(
    [builders[stage](files) for stage in stages],
    resources={"vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=dg.EnvVar("VT_API_URL")),
               "vt_storage": storage_resource_from_env(), "vt_summarizer": VTSummarizerResource(workers=2)},
    instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
    tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
)
sys.exit(0 if result.success else 1)
"""


def debris(root: Path) -> list[Path]:
    """Every temp file and hourly spool folder under the data root."""
    return sorted(path for path in root.rglob("*") if path.name.endswith(".part") or path.name.startswith(".hourly-"))


def start_stages(env: dict[str, str], first: str, last: str, *stages: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", STAGES_RUN, first, last, *stages], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_once(process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 90) -> None:
    """SIGKILL `process` as soon as `ready()` holds (it is mid-write then)."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                pytest.fail(f"the run ended before it was caught mid-write: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the run was never caught mid-write")
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()


def age(paths: list[Path], seconds: float) -> None:
    """Make files and folders (and what a folder holds) look `seconds` old."""
    then = time.time() - seconds
    for path in paths:
        for each in [path, *(path.rglob("*") if path.is_dir() else [])]:
            os.utime(each, (then, then), follow_symlinks=False)


@pytest.mark.service
def test_kill_9_mid_download_and_mid_summary_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    root = tmp_path / "data"
    hour = (dt.datetime.now(UTC) - dt.timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    whole_hour = [minute_key(hour), minute_key(hour + dt.timedelta(minutes=59))]
    minutes = [minute_key(hour + dt.timedelta(hours=1, minutes=m)) for m in (10, 13)]
    big = minute_key(hour + dt.timedelta(hours=2, minutes=5))
    raw_big = raw_batch_path(root, "files", big)
    raw_big.parent.mkdir(parents=True)
    raw_big.write_bytes(generate_batch("files", big, 9, 1200))

    with FeedsEmulator(EmulatorConfig(objects_per_minute=3, seed=13)) as emulator:
        env = {**os.environ, "VT_API_KEY": emulator.config.api_key, "VT_API_URL": emulator.base_url,
               "VT_DATA_DIR": str(root), "VT_FEEDS": "files"}
        # A whole hour comes as the hourly package, into a spool folder: killed while it streams.
        emulator.inject_fault("stall", seconds=300)
        kill_once(start_stages(env, *whole_hour, "raw_batch"),
                  lambda: any(root.glob("raw/files/.hourly-*/.*.part")))
        # Single minutes stream into temp files beside their final paths: killed while they do.
        emulator.inject_fault("stall", count=4, seconds=300)
        day = raw_batch_path(root, "files", minutes[0]).parent
        kill_once(start_stages(env, *minutes, "raw_batch"), lambda: len(list(day.glob(".*.part"))) == 4)
        emulator.clear_faults()
        # A big summary is killed while it is written.
        kill_once(start_stages(env, big, big, "summaries"),
                  lambda: any(summary_folder(root, "files").glob(f".{big}.summary.*.part")))

        left = debris(root)
        assert any(path.name.startswith(".hourly-") for path in left), left
        assert len(list(day.glob(".*.part"))) == 4 and any(summary_folder(root, "files").glob(".*.part"))
        # A running writer's temp file is fresh: the sweep every run makes leaves it alone.
        everywhere = [*raw_write_folders(root, "files", [whole_hour[0], minutes[0], big]), summary_folder(root, "files")]
        assert remove_debris(everywhere) == 0 and debris(root) == left

        age([path for path in left if path.parent in everywhere], STALE_PART_AGE_S + 60)
        rerun = start_stages(env, whole_hour[0], big, "raw_batch", "summaries")
        _, errors = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, errors.decode()[-3000:]

    assert debris(root) == []
    keys = [minute_key(hour + dt.timedelta(minutes=m)) for m in range(125 + 1)]
    for key in keys:
        check = verify_batch_file(raw_batch_path(root, "files", key))
        assert check.ok, (key, check.error)
        assert len(summary_path(root, "files", key).read_bytes().splitlines()) == check.objects


def test_the_summary_commands_sweep_where_they_write(tmp_path: Path) -> None:
    from vt_dagster import cli

    key = "202611230700"
    raw = raw_batch_path(tmp_path, "files", key)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(generate_batch("files", key, 1, 2))
    folder = summary_folder(tmp_path, "files")
    folder.mkdir(parents=True)
    stale = [folder / f".{name}.summary.0123456789ab.part" for name in (key, "202611230701")]
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    stale_out, not_ours = elsewhere / ".x.summary.0123456789ab.part", elsewhere / ".y.summary.0123456789ab.part"
    for path in (*stale, stale_out, not_ours):
        path.write_bytes(b"half")
    age([*stale, stale_out, not_ours], STALE_PART_AGE_S + 60)

    assert cli.main(["create-single-summary", str(raw), "--output", str(elsewhere / "x.summary")]) == 0
    assert not stale_out.exists() and not_ours.exists(), "elsewhere only the output's own temp files go"
    assert all(path.exists() for path in stale)
    assert cli.main(["create-single-summary", str(raw)]) == 0
    assert not any(path.exists() for path in stale)


def test_a_killed_elasticsearch_fetch_is_swept_by_the_next_start(tmp_path: Path) -> None:
    from vt_dagster.local_es import ensure_distribution

    home = tmp_path / "elasticsearch-8.19.21"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "elasticsearch").write_text("#!/bin/sh\n")
    killed, running = tmp_path / ".fetch-abc", tmp_path / ".fetch-def"
    for folder in (killed, running):
        folder.mkdir()
        (folder / "elasticsearch-8.19.21.zip").write_bytes(b"PK")
    age([killed], STALE_PART_AGE_S + 60)
    assert ensure_distribution("8.19.21", root=tmp_path) == home
    assert not killed.exists() and running.exists()
