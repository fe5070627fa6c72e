"""Atomic writes, batch verification and the on-disk layout."""

from __future__ import annotations

import bz2
import os
import stat
import time
from pathlib import Path

import pytest

from vt_dagster.emulator import generate_batch
from vt_dagster.storage import (
    NotARegularFileError,
    atomic_writer,
    missing_marker_path,
    raw_batch_path,
    raw_write_folders,
    record_summary_count,
    remove_stale_parts,
    summary_counts_path,
    summary_path,
    verify_batch_file,
    write_missing_marker,
)
from vt_dagster.summaries import summarize_batch_file


def test_raw_and_summary_paths_follow_the_design_layout(tmp_path: Path) -> None:
    assert raw_batch_path(tmp_path, "files", "202611230759") == tmp_path / "raw/files/2026-11-23/202611230759.bz2"
    assert missing_marker_path(tmp_path, "urls", "202611230759").name == "202611230759.missing"
    assert summary_path(tmp_path, "files", "202611230759") == tmp_path / "summary/files/202611230759.summary"


@pytest.mark.parametrize("bad", ["2026112307", "20261123075x", "202613230759", "../../etc/pwd"])
def test_bad_batch_keys_are_refused_with_a_message_naming_them(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="batch key"):
        raw_batch_path(tmp_path, "files", bad)


def test_atomic_writer_replaces_only_after_success(tmp_path: Path) -> None:
    target = tmp_path / "a" / "batch.bz2"
    with atomic_writer(target) as handle:
        handle.write(b"first")
    assert target.read_bytes() == b"first"

    with pytest.raises(RuntimeError):
        with atomic_writer(target) as handle:
            handle.write(b"half of the second")
            raise RuntimeError("connection lost")
    assert target.read_bytes() == b"first"
    assert list(target.parent.iterdir()) == [target], "no temp file may remain"


def test_atomic_writer_refuses_a_symlink_even_to_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"kept")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(NotARegularFileError, match=f"^{link} is a symbolic link, not a regular file"):
        with atomic_writer(link) as handle:
            handle.write(b"new")
    assert link.is_symlink() and target.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


def test_atomic_writer_checks_the_destination_again_before_renaming(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(NotARegularFileError, match="is a fifo"):
        with atomic_writer(dest) as handle:
            handle.write(b"new")
            os.mkfifo(dest)
    assert stat.S_ISFIFO(os.lstat(dest).st_mode) and [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_files_written_follow_the_umask_so_other_users_can_read_them(
    tmp_path: Path, process_umask, umask: int, mode: int
) -> None:
    process_umask(umask)
    batch = "202611230700"
    written = tmp_path / "any" / "file.bz2"
    with atomic_writer(written) as handle:
        handle.write(b"x")
    raw = raw_batch_path(tmp_path, "files", batch)
    with atomic_writer(raw) as handle:
        handle.write(generate_batch("files", batch, 1, 2))
    summary = summarize_batch_file(raw, summary_path(tmp_path, "files", batch), feed="files", batch=batch)
    record_summary_count(tmp_path, "files", batch, summary.documents)
    files = [written, raw, Path(summary.path), summary_counts_path(tmp_path, "files", "2026-11-23"),
             write_missing_marker(tmp_path, "files", "202611230701", 404, "no batch")]
    assert {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in files} == \
        {path.name: oct(mode) for path in files}


def test_verify_counts_objects_of_a_complete_batch(tmp_path: Path) -> None:
    path = tmp_path / "ok.bz2"
    path.write_bytes(bz2.compress(b'{"id":"a"}\n{"id":"b"}\n{"id":"c"}'))
    check = verify_batch_file(path)
    assert check.ok and check.objects == 3 and check.bytes == path.stat().st_size and len(check.sha256) == 64


def test_verify_accepts_concatenated_streams_as_parallel_compressors_write_them(tmp_path: Path) -> None:
    path = tmp_path / "multi.bz2"
    path.write_bytes(bz2.compress(b'{"id":"a"}\n') + bz2.compress(b'{"id":"b"}\n'))
    assert verify_batch_file(path).objects == 2


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (bz2.compress(b'{"id":"a"}\n' * 1000)[:-20], "truncated"),
        (b"this is not bz2", "not a valid bz2"),
        (b"", "empty file"),
    ],
)
def test_verify_rejects_truncated_corrupt_and_empty_files(tmp_path: Path, content: bytes, error: str) -> None:
    path = tmp_path / "bad.bz2"
    path.write_bytes(content)
    check = verify_batch_file(path)
    assert not check.ok and error in check.error


def test_verify_reports_a_missing_file_instead_of_raising(tmp_path: Path) -> None:
    assert "unreadable" in verify_batch_file(tmp_path / "nope.bz2").error


def test_stale_temp_files_are_cleaned_but_fresh_ones_left_alone(tmp_path: Path) -> None:
    stale = tmp_path / ".202611230759.bz2.0123456789ab.part"
    fresh = tmp_path / ".202611230800.bz2.ba9876543210.part"
    not_ours = tmp_path / ".download.part"
    for path in (stale, fresh, not_ours):
        path.write_bytes(b"x")
    old = time.time() - 7200
    for path in (stale, not_ours):
        os.utime(path, (old, old))
    assert remove_stale_parts(tmp_path) == 1
    assert not stale.exists() and fresh.exists() and not_ours.exists()


def test_a_spool_folder_goes_once_nothing_in_it_changed_for_an_hour(tmp_path: Path) -> None:
    stale, busy = tmp_path / ".hourly-2026112307-abc", tmp_path / ".hourly-2026112308-def"
    for folder in (stale, busy):
        (folder / ".2026112307.tar.bz2.0123456789ab.part").parent.mkdir()
        (folder / ".2026112307.tar.bz2.0123456789ab.part").write_bytes(b"x")
    old = time.time() - 7200
    for path in (stale, *stale.iterdir(), busy):  # `busy` has a fresh file inside
        os.utime(path, (old, old))
    assert remove_stale_parts(tmp_path) == 1
    assert not stale.exists() and busy.exists()


def test_elsewhere_only_the_temp_files_of_the_one_output_go(tmp_path: Path) -> None:
    mine, theirs = tmp_path / ".out.summary.0123456789ab.part", tmp_path / ".other.0123456789ab.part"
    for path in (mine, theirs):
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_parts(tmp_path, of="out.summary") == 1
    assert not mine.exists() and theirs.exists()


def test_a_download_run_sweeps_the_feed_folder_its_day_folders_and_the_day_before(tmp_path: Path) -> None:
    assert raw_write_folders(tmp_path, "files", ["202611240001", "202611230700", "202611240002"]) == [
        tmp_path / "raw" / "files", tmp_path / "raw" / "files" / "2026-11-22",
        tmp_path / "raw" / "files" / "2026-11-23", tmp_path / "raw" / "files" / "2026-11-24"]
