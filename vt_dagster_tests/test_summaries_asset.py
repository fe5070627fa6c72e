"""`<feed>/summaries` through Dagster, its balance check, and the summary CLI commands."""

from __future__ import annotations

import bz2
import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator, generate_batch
from vt_dagster.feeds import get_feed, minute_key
from vt_dagster.resources import VTFeedsResource, VTStorageResource, VTSummarizerResource
from vt_dagster.storage import raw_batch_path, summary_path

UTC = dt.timezone.utc
FILES = get_feed("files")


def recent_minutes(count: int, start_ago: int = 180) -> list[str]:
    first = dt.datetime.now(UTC) - dt.timedelta(minutes=start_ago)
    return [minute_key(first + dt.timedelta(minutes=m)) for m in range(count)]


def range_tags(keys: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


@pytest.fixture
def resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def build(emulator: FeedsEmulator, workers: int = 2) -> dict:
        monkeypatch.setenv("VT_API_KEY", emulator.config.api_key)
        return {
            "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url),
            "vt_storage": VTStorageResource(root=str(tmp_path / "data")),
            "vt_summarizer": VTSummarizerResource(workers=workers),
        }
    return build


def chain() -> list[dg.AssetsDefinition]:
    return [build_raw_batch_asset(FILES), build_summaries_asset(FILES)]


def check_evaluations(result: dg.ExecuteInProcessResult) -> list:
    return [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


@pytest.mark.service
def test_range_run_summarizes_every_batch_on_both_cores_and_the_check_passes(tmp_path, resources,
                                                                             dagster_instance) -> None:
    keys = recent_minutes(6)
    with FeedsEmulator(EmulatorConfig(objects_per_minute=5, seed=3, gap_minutes={keys[2]})) as emulator:
        result = dg.materialize(chain(), resources=resources(emulator), instance=dagster_instance,
                                tags=range_tags(keys))
    assert result.success
    metadata = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(["files", "summaries"])}
    assert sorted(metadata) == keys
    assert metadata[keys[2]]["status"].value == "no batch"
    for key in keys[:2] + keys[3:]:
        lines = summary_path(tmp_path / "data", "files", key).read_text().splitlines()
        assert metadata[key]["summaries"].value == len(lines) > 0
        assert metadata[key]["objects"].value == len(lines) and metadata[key]["rejected"].value == 0
    [evaluation] = check_evaluations(result)
    assert evaluation.passed and evaluation.metadata["batches_checked"].value == 5


@pytest.mark.service
def test_check_fails_when_summaries_do_not_account_for_every_object(tmp_path, resources, dagster_instance) -> None:
    keys = recent_minutes(2, start_ago=200)
    instance = dagster_instance
    with FeedsEmulator(EmulatorConfig(objects_per_minute=5, seed=4)) as emulator:
        res = resources(emulator, workers=1)
        assert dg.materialize(chain()[:1], resources=res, instance=instance, tags=range_tags(keys)).success
        raw = raw_batch_path(tmp_path / "data", "files", keys[0])
        lines = bz2.decompress(raw.read_bytes()).splitlines()
        raw.write_bytes(bz2.compress(b"\n".join(lines[:-2]) + b"\n"))
        result = dg.materialize(chain(), resources=res, instance=instance, tags=range_tags(keys),
                                selection=[dg.AssetKey(["files", "summaries"])])
    [evaluation] = check_evaluations(result)
    assert not evaluation.passed
    assert evaluation.metadata["batches_wrong"].value == 1
    assert keys[0] in evaluation.metadata["wrong"].value


@pytest.mark.service
def test_rejected_lines_balance_the_check_and_are_listed(tmp_path, resources, dagster_instance) -> None:
    key = recent_minutes(1, start_ago=210)[0]
    folder = tmp_path / "batches" / "files"
    folder.mkdir(parents=True)
    good = bz2.decompress(generate_batch("files", key, 1, 4)).splitlines()
    (folder / f"{key}.bz2").write_bytes(bz2.compress(b"\n".join([good[0], b"{not json", *good[1:]]) + b"\n"))
    with FeedsEmulator(EmulatorConfig(batch_dir=tmp_path / "batches")) as emulator:
        result = dg.materialize(chain(), resources=resources(emulator, workers=1),
                                instance=dagster_instance, partition_key=key)
    [evaluation] = check_evaluations(result)
    assert evaluation.passed and evaluation.metadata["rejected"].value == 1
    summaries = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "summaries"]
    assert "line 2: invalid JSON" in summaries[0].materialization.metadata["rejected_lines"].value


def test_summaries_refuse_a_batch_that_was_never_downloaded(tmp_path, monkeypatch) -> None:
    result = dg.materialize(
        [build_summaries_asset(FILES)],
        resources={"vt_storage": VTStorageResource(root=str(tmp_path)), "vt_summarizer": VTSummarizerResource()},
        partition_key=recent_minutes(1)[0], raise_on_error=False, instance=dg.DagsterInstance.ephemeral(),
    )
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "not on disk" in failure and "files/raw_batch" in failure


def _cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vt_dagster", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


def test_create_single_summary_writes_beside_the_raw_layout_and_prints_the_path(tmp_path: Path) -> None:
    key = "202611230700"
    raw = raw_batch_path(tmp_path, "urls", key)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(generate_batch("urls", key, 1, 5))
    done = _cli("create-single-summary", str(raw))
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == summary_path(tmp_path, "urls", key)
    assert all(json.loads(line)["vt.batch"] == key for line in Path(done.stdout.strip()).read_text().splitlines())


@pytest.mark.parametrize(("content", "message"), [(b"plain text", "not a readable bz2 batch"), (None, "no such file")])
def test_create_single_summary_refuses_what_is_not_a_batch_in_one_line(tmp_path: Path, content, message) -> None:
    path = tmp_path / "raw" / "files" / "2026-11-23" / "202611230700.bz2"
    if content is not None:
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
    done = _cli("create-single-summary", str(path))
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "summary").exists()


def make_node(kind: str, path: Path, target: Path) -> None:
    """Put a `kind` of file system node at `path` (skips when this user may not make it)."""
    if kind == "symbolic link":
        path.symlink_to(target)
    elif kind == "fifo (named pipe)":
        os.mkfifo(path)
    elif kind == "character device":
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
        except PermissionError:
            pytest.skip("making a character device needs CAP_MKNOD (root), which this user lacks")
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["symbolic link", "fifo (named pipe)", "character device", "directory"])
def test_create_single_summary_output_never_replaces_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    key = "202611230700"
    raw = raw_batch_path(tmp_path, "files", key)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(generate_batch("files", key, 1, 3))
    target = tmp_path / "a-regular-file.txt"
    target.write_text("kept\n")
    dest = tmp_path / "out" / "summary.ndjson"
    dest.parent.mkdir()
    make_node(kind, dest, target)
    before = os.lstat(dest)

    done = _cli("create-single-summary", str(raw), "--output", str(dest))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"vt-dagster create-single-summary: {dest} is a {kind}, not a regular file: refusing to replace it"]
    after = os.lstat(dest)
    assert (after.st_ino, stat.S_IFMT(after.st_mode)) == (before.st_ino, stat.S_IFMT(before.st_mode))
    assert target.read_text() == "kept\n", "a symlink's target is left alone"
    assert [p.name for p in dest.parent.iterdir()] == [dest.name], "no temp file is left beside it"


def test_back_populate_summarizes_only_batches_without_a_summary(tmp_path: Path) -> None:
    keys = ["202611230700", "202611230701", "202611230702"]
    for feed in ("files", "domains"):
        for key in keys:
            raw = raw_batch_path(tmp_path, feed, key)
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.write_bytes(generate_batch(feed, key, 1, 3))
    existing = summary_path(tmp_path, "files", keys[0])
    existing.parent.mkdir(parents=True)
    existing.write_text("kept\n")
    done = _cli("back-populate-summaries", "files", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "2 summaries written" in done.stdout and "summarizing" in done.stderr
    assert existing.read_text() == "kept\n"
    assert all(summary_path(tmp_path, "files", k).exists() for k in keys)
    assert not (tmp_path / "summary" / "domains").exists()
    again = _cli("back-populate-summaries", "--data-dir", str(tmp_path))
    assert "3 summaries written" in again.stdout
    assert all(summary_path(tmp_path, "domains", k).exists() for k in keys)
