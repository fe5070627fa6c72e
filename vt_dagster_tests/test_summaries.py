"""Summarizing whole batches: streaming, rejected lines reported, nothing lost on bad input."""

from __future__ import annotations

import bz2
import json
import tracemalloc
from pathlib import Path

import pytest

from vt_dagster.emulator import generate_batch, generate_objects
from vt_dagster.summaries import BatchReadError, parse_feed_line, summarize_batch_file
from vt_dagster.summarize import ATTRIBUTES_READ, summarize_object
from vt_dagster.whitelist import UrlWhitelist
from vt_dagster_tests.vt_objects import MAXIMAL_OBJECTS, overfull_behaviour_object

BATCH = "202611230700"
WHITELIST = UrlWhitelist.default()
FEEDS = ["files", "urls", "domains", "ip_addresses", "file_behaviours"]


def write_batch(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(bz2.compress(b"\n".join(lines) + (b"\n" if lines else b"")))
    return path


def read_summaries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("feed", FEEDS)
def test_fast_parse_gives_the_same_summary_as_full_json(feed: str) -> None:
    objects = generate_objects(feed, BATCH, 3, 25)
    for obj in objects:
        line = json.dumps(obj).encode()
        assert summarize_object(parse_feed_line(line), feed=feed, batch=BATCH, whitelist=WHITELIST) == \
            summarize_object(json.loads(line), feed=feed, batch=BATCH, whitelist=WHITELIST)


def test_fast_parse_agrees_on_the_real_samples_and_maximal_objects(samples_dir: Path) -> None:
    objects = [(json.loads(p.read_text()), None) for p in sorted(samples_dir.glob("*.json"))]
    objects += [(make(), feed) for feed, make in MAXIMAL_OBJECTS.items()]
    objects.append((overfull_behaviour_object(), "file_behaviours"))
    feed_of = {"file": "files", "url": "urls", "domain": "domains", "ip_address": "ip_addresses",
               "file_behaviour": "file_behaviours"}
    for obj, feed in objects:
        bare = obj.get("data", obj)
        feed = feed or feed_of[bare["type"]]
        for shape in (obj, bare):
            line = json.dumps(shape).encode()
            assert summarize_object(parse_feed_line(line), feed=feed, batch=BATCH, whitelist=WHITELIST) == \
                summarize_object(json.loads(line), feed=feed, batch=BATCH, whitelist=WHITELIST)


@pytest.mark.parametrize(("traces", "expected"), [
    ({"registry_keys_set": ["HKCU\\Run\\a", {"key": "HKCU\\Run\\b", "value": "x" * 5000}, 3]},
     {"vt.behaviour.registry_keys_set": ["HKCU\\Run\\a", "HKCU\\Run\\b", "3"]}),
    ({"registry_keys_set": {"key": "HKCU\\Run\\lone"}, "files_dropped": "C:\\lone.exe"},
     {"vt.behaviour.registry_keys_set": ["HKCU\\Run\\lone"], "vt.behaviour.files_dropped": ["C:\\lone.exe"]}),
    ({"files_dropped": [{"path": "C:\\a.exe", "sha256": "5" * 64, "type": "Win32 EXE"}, "C:\\b.exe"]},
     {"vt.behaviour.files_dropped": ["C:\\a.exe", "C:\\b.exe"], "vt.behaviour.dropped_sha256": ["5" * 64]}),
    ({"files_dropped": [{"path": ["not", "a", "path"]}], "registry_keys_set": [{"key": {"k": 1}}]}, {}),
])
def test_fast_parse_agrees_on_odd_sandbox_trace_shapes(traces: dict, expected: dict) -> None:
    """The fast parser keeps only `key`, `path` and `sha256` of trace items; shapes it does not
    expect fall back to the full parser and must summarize the same."""
    obj = {"type": "file_behaviour", "id": "a" * 64 + "_Zenbox", "attributes": traces}
    line = json.dumps(obj).encode()
    fast, _ = summarize_object(parse_feed_line(line), feed="file_behaviours", batch=BATCH, whitelist=WHITELIST)
    full, _ = summarize_object(json.loads(line), feed="file_behaviours", batch=BATCH, whitelist=WHITELIST)
    assert fast == full
    assert {key: value for key, value in fast.items() if key.startswith("vt.behaviour.")} == expected


def test_every_attribute_a_summarizer_reads_is_decoded_by_the_fast_parser() -> None:
    read: set[str] = set()

    class Recording(dict):
        def get(self, key, default=None):
            read.add(key)
            return super().get(key, default)

        def __getitem__(self, key):
            read.add(key)
            return super().__getitem__(key)

    objects = [(make(), feed) for feed, make in MAXIMAL_OBJECTS.items()]
    objects += [(obj, feed) for feed in FEEDS for obj in generate_objects(feed, BATCH, 5, 20)]
    for obj, feed in objects:
        summarize_object({**obj, "attributes": Recording(obj.get("attributes", {}))},
                         feed=feed, batch=BATCH, whitelist=WHITELIST)
    assert read - ATTRIBUTES_READ == set()


def test_batch_summary_has_one_line_per_object_carrying_feed_batch_and_id(tmp_path: Path) -> None:
    raw = tmp_path / "raw.bz2"
    raw.write_bytes(generate_batch("urls", BATCH, 2, 40))
    result = summarize_batch_file(raw, tmp_path / "out.summary", feed="urls", batch=BATCH)
    summaries = read_summaries(tmp_path / "out.summary")
    objects = [json.loads(line) for line in bz2.decompress(raw.read_bytes()).splitlines()]
    assert result.objects == result.summaries == len(summaries) == len(objects)
    assert [s["vt.id"] for s in summaries] == [o["id"] for o in objects]
    assert {(s["vt.feed"], s["vt.batch"]) for s in summaries} == {("urls", BATCH)}
    assert result.bytes_out == (tmp_path / "out.summary").stat().st_size


def test_invalid_lines_are_counted_with_their_line_numbers_and_do_not_stop_the_batch(tmp_path: Path) -> None:
    good = [json.dumps(o).encode() for o in generate_objects("files", BATCH, 4, 3)]
    lines = [good[0], b'{"id": "broken', good[1], b"[1, 2, 3]", b"", b'{"error": {"code": "X", "message": "m"}}', good[2]]
    result = summarize_batch_file(write_batch(tmp_path / "b.bz2", lines), tmp_path / "o.summary",
                                  feed="files", batch=BATCH)
    assert (result.objects, result.summaries, result.rejected) == (7, 3, 4)
    assert [reason.split(":")[0] for reason in result.rejected_lines] == ["line 2", "line 4", "line 5", "line 6"]
    assert "invalid JSON" in result.rejected_lines[0]
    assert "expected a JSON object, got an array" in result.rejected_lines[1]
    assert "empty line" in result.rejected_lines[2]
    assert "API error" in result.rejected_lines[3]
    assert len(read_summaries(tmp_path / "o.summary")) == 3


def test_empty_batch_gives_an_empty_summary(tmp_path: Path) -> None:
    result = summarize_batch_file(write_batch(tmp_path / "e.bz2", []), tmp_path / "e.summary",
                                  feed="domains", batch=BATCH)
    assert (result.objects, result.summaries, result.rejected) == (0, 0, 0)
    assert (tmp_path / "e.summary").read_bytes() == b""


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_bz2_fails_clearly_and_keeps_the_previous_summary(tmp_path: Path, damage: str) -> None:
    data = generate_batch("files", BATCH, 5, 20)
    raw = tmp_path / "bad.bz2"
    raw.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:200] + b"\x00" * 500 + data[700:])
    dest = tmp_path / "keep.summary"
    dest.write_text('{"previous": true}\n')
    with pytest.raises(BatchReadError, match="not a readable bz2 batch"):
        summarize_batch_file(raw, dest, feed="files", batch=BATCH)
    assert dest.read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bz2", "keep.summary"], "no temp file left"


def test_bad_feed_or_batch_key_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    raw = write_batch(tmp_path / "b.bz2", [b"{}"])
    with pytest.raises(ValueError, match="batch key"):
        summarize_batch_file(raw, tmp_path / "o.summary", feed="files", batch="yesterday")
    assert not (tmp_path / "o.summary").exists()


def test_memory_stays_flat_for_a_batch_of_10000_objects(tmp_path: Path) -> None:
    lines = [json.dumps(o).encode() for o in generate_objects("files", BATCH, 6, 40)]
    decompressed = 0
    compressor = bz2.BZ2Compressor(1)
    with open(tmp_path / "big.bz2", "wb") as out:
        for number in range(10_000):
            line = lines[number % len(lines)] + b"\n"
            decompressed += len(line)
            out.write(compressor.compress(line))
        out.write(compressor.flush())
    tracemalloc.start()
    try:
        result = summarize_batch_file(tmp_path / "big.bz2", tmp_path / "big.summary", feed="files", batch=BATCH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.summaries == 10_000
    assert decompressed > 100 * 2**20, "the batch must be much larger than the bound"
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB: summarizing must stream"
