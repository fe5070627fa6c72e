"""A batch decoded once per process: what the download check decoded serves the two readers."""

from __future__ import annotations

import bz2
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from vt_dagster import batch_lines
from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.batch_lines import iter_batch_lines
from vt_dagster.decoded_batches import KEPT, MAX_RATIO, DecodedBatches
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator, generate_batch
from vt_dagster.feeds import get_feed, minute_key
from vt_dagster.resources import VTFeedsResource, VTStorageResource, VTSummarizerResource
from vt_dagster.storage import BatchVerifier, atomic_writer, raw_batch_path, summary_path, verify_batch_file
from vt_dagster.summaries import summarize_batch_file

FILES = get_feed("files")
BATCH = "202612010000"


def write_batch(path: Path, lines: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as handle:
        handle.write(bz2.compress(lines))
    return path


def sample_lines() -> bytes:
    return bz2.decompress(generate_batch("files", BATCH, 1, 20))


@pytest.fixture
def counted_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files `batch_lines` decodes from disk, in order."""
    opened: list[str] = []
    real = batch_lines.indexed_bzip2

    def counting(path: str, **options):
        opened.append(path)
        return real.IndexedBzip2FileRaw(path, **options)

    monkeypatch.setattr(batch_lines, "indexed_bzip2", SimpleNamespace(IndexedBzip2FileRaw=counting))
    return opened


def test_both_readers_get_the_kept_batch_and_then_it_is_gone(tmp_path: Path, monkeypatch, counted_decodes) -> None:
    store = DecodedBatches()
    monkeypatch.setattr(batch_lines, "KEPT", store)
    path = write_batch(tmp_path / "a.bz2", sample_lines())

    assert verify_batch_file(path, keep=store).ok
    expected = [line for _, line in iter_batch_lines(path)]
    assert [line for _, line in iter_batch_lines(path)] == expected
    assert counted_decodes == [], "both readers were served from memory"
    assert store.held_bytes == 0
    assert [line for _, line in iter_batch_lines(path)] == expected
    assert counted_decodes == [str(path)], "a third reader decodes the file"
    assert b"".join(expected) == sample_lines()


def test_a_replaced_file_is_decoded_again_not_served_from_memory(tmp_path: Path, monkeypatch, counted_decodes) -> None:
    store = DecodedBatches()
    monkeypatch.setattr(batch_lines, "KEPT", store)
    path = write_batch(tmp_path / "a.bz2", sample_lines())
    verify_batch_file(path, keep=store)
    write_batch(path, b'{"id": "replaced", "type": "file"}\n')

    assert [line for _, line in iter_batch_lines(path)] == [b'{"id": "replaced", "type": "file"}\n']
    assert counted_decodes == [str(path)]


def test_the_store_keeps_within_its_budget_dropping_the_oldest_first(tmp_path: Path) -> None:
    store = DecodedBatches(budget=100)
    paths = [write_batch(tmp_path / f"{n}.bz2", b"x\n") for n in range(3)]
    assert store.keep(paths[0], [b"a" * 40])
    assert store.keep(paths[1], [b"b" * 40])
    assert store.keep(paths[2], [b"c" * 40])
    assert store.held_bytes == 80
    assert store.take(paths[0]) is None and store.take(paths[2]) == (b"c" * 40,)
    assert not store.keep(paths[0], [b"d" * 101]), "a batch larger than the whole budget is not kept"


def test_an_entry_older_than_its_age_is_not_served(tmp_path: Path) -> None:
    store = DecodedBatches(max_age_s=0.0)
    path = write_batch(tmp_path / "a.bz2", b"x\n")
    store.keep(path, [b"x\n"])
    assert store.take(path) is None


def test_a_bz2_bomb_is_never_gathered_while_real_lines_are(tmp_path: Path) -> None:
    bomb = bz2.compress(b"a" * (64 << 20))
    verifier = BatchVerifier(keep=DecodedBatches())
    verifier.update(bomb)
    assert verifier.result().ok
    assert verifier._collector.chunks() is None, f"{len(bomb)} bytes decoding to 64 MiB exceed {MAX_RATIO}x"

    lines = sample_lines()
    verifier = BatchVerifier(keep=DecodedBatches())
    verifier.update(bz2.compress(lines))
    assert b"".join(verifier._collector.chunks()) == lines


def test_a_damaged_batch_is_not_kept(tmp_path: Path) -> None:
    store = DecodedBatches()
    path = tmp_path / "a.bz2"
    path.write_bytes(bz2.compress(sample_lines())[:-20])
    assert not verify_batch_file(path, keep=store).ok
    assert store.held_bytes == 0


# --- through Dagster ----------------------------------------------------------------------------

def materialize_range(assets: list[dg.AssetsDefinition], keys: list[str], root: Path, emulator: FeedsEmulator,
                      monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """`assets` over the range `keys` in this process, as `dg.materialize` runs it, from `emulator`."""
    monkeypatch.setenv("VT_API_KEY", emulator.config.api_key)
    resources = {
        "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url),
        "vt_storage": VTStorageResource(root=str(root)),
        "vt_summarizer": VTSummarizerResource(workers=2),
    }
    return dg.materialize(assets, resources=resources, instance=instance,
                          tags={"dagster/asset_partition_range_start": keys[0],
                                "dagster/asset_partition_range_end": keys[-1]})


@pytest.mark.service
def test_a_one_process_run_decodes_each_batch_once_and_summarizes_it_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted_decodes: list[str], dagster_instance
) -> None:
    keys = [minute_key(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=m)) for m in (182, 181)]
    root = tmp_path / "data"
    with FeedsEmulator(EmulatorConfig(objects_per_minute=30, seed=5)) as emulator:
        result = materialize_range([build_raw_batch_asset(FILES), build_summaries_asset(FILES)], keys, root,
                                   emulator, monkeypatch, dagster_instance)
    assert result.success
    assert counted_decodes == [], "the summaries read what the download check decoded"
    raws = [raw_batch_path(root, "files", key) for key in keys]
    assert all(KEPT.take(raw) is not None for raw in raws), "the report cache's share is left"
    assert all(KEPT.take(raw) is None for raw in raws), "and then nothing"
    for key, raw in zip(keys, raws):
        again = tmp_path / f"{key}.again"
        summarize_batch_file(raw, again, feed="files", batch=key)
        assert summary_path(root, "files", key).read_bytes() == again.read_bytes()
    assert counted_decodes == [str(raw) for raw in raws]


@pytest.mark.service
def test_a_range_summarized_by_worker_processes_keeps_nothing_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_instance
) -> None:
    keys = [minute_key(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=m)) for m in range(190, 183, -1)]
    root = tmp_path / "data"
    with FeedsEmulator(EmulatorConfig(objects_per_minute=5, seed=6)) as emulator:
        result = materialize_range([build_raw_batch_asset(FILES)], keys, root, emulator, monkeypatch,
                                   dagster_instance)
    assert result.success
    assert all(KEPT.take(raw_batch_path(root, "files", key)) is None for key in keys)
