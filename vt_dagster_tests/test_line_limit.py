"""A line longer than `VT_MAX_LINE_BYTES` is skipped and counted, never held whole: memory
stays flat whatever the line, in every stage that reads lines (measured on real processes)."""

from __future__ import annotations

import bz2
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vt_dagster import cli
from vt_dagster import batch_lines
from vt_dagster.batch_lines import (
    DEFAULT_MAX_LINE_BYTES, OversizedLine, iter_batch_lines, iter_lines, max_line_bytes_from_env,
    parse_max_line_bytes,
)
from vt_dagster.config_errors import ConfigurationError
from vt_dagster.elastic import batch_counts, setup_elasticsearch
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator, generate_batch
from vt_dagster.feeds import minute_key
from vt_dagster.storage import BatchVerifier, raw_batch_path, summary_path, verify_batch_file

MIB = 1 << 20
BOMB_MIB = 256
READ_SLACK_MIB = 32
"""What reading a line over the limit may add to a process's peak besides the limit itself (the
README's bound): the reader's 8 MiB read-ahead, the verifier's 4 MiB decoding step, 1 MiB
pieces, and what the allocator keeps of them."""


def lines_of(data: bytes, limit: int) -> list[tuple[int, bytes | OversizedLine]]:
    return list(iter_lines(io.BytesIO(data), limit))


# --- the reader --------------------------------------------------------------------------------


def test_lines_up_to_the_limit_come_whole_and_longer_ones_as_their_size() -> None:
    data = b"short\n" + b"x" * 10 + b"\n" + b"y" * 11 + b"\n" + b"z" * 40 + b"\nlast"
    assert lines_of(data, 10) == [
        (1, b"short\n"), (2, b"x" * 10 + b"\n"), (3, OversizedLine(11, 10)), (4, OversizedLine(40, 10)),
        (5, b"last"),
    ]


def test_an_oversized_last_line_without_newline_is_still_one_line() -> None:
    assert lines_of(b"a\n" + b"b" * 30, 10) == [(1, b"a\n"), (2, OversizedLine(30, 10))]


def test_a_line_of_many_pieces_within_the_limit_comes_whole(monkeypatch) -> None:
    monkeypatch.setattr(batch_lines, "PIECE", 8)
    long = b"0123456789" * 5
    assert lines_of(b"a\n" + long + b"\n" + long + b"tail" + b"\nb", 60) == [
        (1, b"a\n"), (2, long + b"\n"), (3, long + b"tail\n"), (4, b"b"),
    ]
    assert lines_of(long + b"+" * 20 + b"\nnext\n", 60) == [(1, OversizedLine(70, 60)), (2, b"next\n")]


def test_the_reason_names_the_limit_its_variable_and_the_size() -> None:
    assert OversizedLine(300 * MIB, 64 * MIB).reason == "longer than 64 MiB (VT_MAX_LINE_BYTES): 300 MiB, skipped"
    assert OversizedLine(1536 * MIB, 1 << 30).reason == "longer than 1 GiB (VT_MAX_LINE_BYTES): 1.5 GiB, skipped"


@pytest.mark.parametrize(("text", "size"), [
    ("67108864", 64 * MIB), ("64MiB", 64 * MIB), ("64 MiB", 64 * MIB), ("64m", 64 * MIB), ("64MB", 64 * MIB),
    ("1GiB", 1 << 30), ("512k", 512 << 10), ("2048b", 2048),
])
def test_the_limit_takes_bytes_or_binary_units(text: str, size: int) -> None:
    assert parse_max_line_bytes(text) == size
    assert max_line_bytes_from_env({"VT_MAX_LINE_BYTES": text}) == size


@pytest.mark.parametrize(("text", "message"), [
    ("lots", "VT_MAX_LINE_BYTES: 'lots' is not a size: give bytes, or KiB/MiB/GiB (e.g. 64MiB)"),
    ("-5", "VT_MAX_LINE_BYTES: '-5' is not a size: give bytes, or KiB/MiB/GiB (e.g. 64MiB)"),
    ("100", "VT_MAX_LINE_BYTES: 100 bytes is below the minimum of 1 KiB"),
])
def test_a_bad_limit_is_one_line_naming_the_variable(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        max_line_bytes_from_env({"VT_MAX_LINE_BYTES": text})
    assert str(raised.value) == message


def test_unset_or_empty_means_64_mib() -> None:
    assert max_line_bytes_from_env({}) == max_line_bytes_from_env({"VT_MAX_LINE_BYTES": " "}) == DEFAULT_MAX_LINE_BYTES == 64 * MIB


# --- a bz2 bomb inside a real batch ------------------------------------------------------------


@pytest.fixture(scope="session")
def bomb_stream() -> bytes:
    """One bz2 stream of BOMB_MIB MiB of `a` (a few hundred bytes), compressed piece by piece so
    the test never holds the line either."""
    compressor = bz2.BZ2Compressor(9)
    piece = b"a" * MIB
    out = [compressor.compress(piece) for _ in range(BOMB_MIB)]
    return b"".join(out) + compressor.flush()


def valid_lines(batch: str) -> list[bytes]:
    """The emulator's lines of a files batch (at least 3; how many depends on the minute)."""
    return bz2.decompress(generate_batch("files", batch, 5, 4)).splitlines(keepends=True)


def batch_with_bomb(batch: str, bomb_stream: bytes | None) -> bytes:
    """The valid lines of a files batch with the bomb as line 3 (concatenated bz2 streams, which
    parallel bzip2 tools write too); without a bomb, an empty line 3 stands in its place."""
    good = valid_lines(batch)
    middle = bomb_stream if bomb_stream is not None else b""
    return bz2.compress(b"".join(good[:2])) + middle + bz2.compress(b"\n" + b"".join(good[2:]))


def run_measuring_peak(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, peak RSS in MiB) of one process, measured by the kernel."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, out.read_text(), err.read_text(), usage.ru_maxrss / 1024


def test_verifying_a_bomb_counts_its_lines_in_bounded_steps(tmp_path: Path, bomb_stream: bytes) -> None:
    verifier = BatchVerifier()
    verifier.update(batch_with_bomb("202611230700", bomb_stream))
    check = verifier.result()
    assert check.ok and check.objects == len(valid_lines("202611230700")) + 1


def test_create_single_summary_skips_a_256_mib_line_at_the_default_limit_in_flat_memory(
    tmp_path: Path, bomb_stream: bytes
) -> None:
    key = "202611230700"
    raw = raw_batch_path(tmp_path / "data", "files", key)
    raw.parent.mkdir(parents=True)
    env = {name: value for name, value in os.environ.items() if name not in ("VT_MAX_LINE_BYTES", "VT_FEEDS")}
    argv = [sys.executable, "-m", "vt_dagster", "create-single-summary", str(raw)]

    raw.write_bytes(batch_with_bomb(key, None))
    code, _, _, usual_peak = run_measuring_peak(argv, env, tmp_path)
    assert code == 0
    raw.write_bytes(batch_with_bomb(key, bomb_stream))
    code, out, err, bomb_peak = run_measuring_peak(argv, env, tmp_path)

    assert code == 0, err
    assert Path(out.strip()) == summary_path(tmp_path / "data", "files", key)
    assert err.splitlines() == [f"files {key}: 1 rejected line(s):",
                                f"  line 3: longer than 64 MiB (VT_MAX_LINE_BYTES): {BOMB_MIB} MiB, skipped"]
    assert len(Path(out.strip()).read_text().splitlines()) == len(valid_lines(key)) == verify_batch_file(raw).objects - 1
    assert bomb_peak < usual_peak + 64 + READ_SLACK_MIB, (usual_peak, bomb_peak)


CHAIN_RUN = """
import json, re, sys
import dagster as dg
from vt_dagster.assets.elasticsearch import build_report_cache_asset, build_summary_index_asset
from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.feeds import get_feed
from vt_dagster.resources import (
    VTElasticsearchResource, VTFeedsResource, VTSummarizerResource, storage_resource_from_env)

def peak_mib():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

files = get_feed("files")
url, prefix = sys.argv[1:3]
resources = {
    "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=dg.EnvVar("VT_API_URL")),
    "vt_storage": storage_resource_from_env(),
    "vt_summarizer": VTSummarizerResource(workers=1),
    "vt_elasticsearch": VTElasticsearchResource(url=url, index_prefix=prefix),
}
assets = [build(files) for build in (build_raw_batch_asset, build_summaries_asset,
                                     build_summary_index_asset, build_report_cache_asset)]
instance = dg.DagsterInstance.ephemeral()
report = {}
for label, partition in zip(("usual", "bomb"), sys.argv[3:5]):
    open("/proc/self/clear_refs", "w").write("5")  # the peak from here on
    result = dg.materialize(assets, resources=resources, instance=instance, partition_key=partition,
                            raise_on_error=False)
    report[label] = {
        "peak_mib": peak_mib(),
        "metadata": {event.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()
                                                if isinstance(v.value, (int, float, str))}
                     for event in result.get_asset_materialization_events()},
        "failures": {event.step_key: event.step_failure_data.user_failure_data.description
                     for event in result.get_step_failure_events() if event.step_failure_data.user_failure_data},
        "checks": {e.event_specific_data.check_name: e.event_specific_data.passed
                   for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"},
    }
print(json.dumps(report))
"""


def test_every_stage_skips_the_line_over_the_limit_and_keeps_the_lines_around_it_in_flat_memory(
    tmp_path: Path, bomb_stream: bytes, es_url: str, es_client, index_prefix: str
) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    usual, bombed = (minute_key(now - dt.timedelta(minutes=ago)) for ago in (200, 199))
    folder = tmp_path / "batches" / "files"
    folder.mkdir(parents=True)
    (folder / f"{usual}.bz2").write_bytes(batch_with_bomb(usual, None))
    (folder / f"{bombed}.bz2").write_bytes(batch_with_bomb(bombed, bomb_stream))
    setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    limit_mib = 8
    with FeedsEmulator(EmulatorConfig(batch_dir=tmp_path / "batches")) as emulator:
        env = {**os.environ, "VT_API_KEY": emulator.config.api_key, "VT_API_URL": emulator.base_url,
               "VT_DATA_DIR": str(tmp_path / "data"), "VT_MAX_LINE_BYTES": f"{limit_mib}MiB", "VT_FEEDS": "files"}
        code, out, err, _ = run_measuring_peak(
            [sys.executable, "-c", CHAIN_RUN, es_url, index_prefix, usual, bombed], env, tmp_path)
    assert code == 0, err
    report = json.loads(out.splitlines()[-1])
    bomb = report["bomb"]
    reason = f"line 3: longer than {limit_mib} MiB (VT_MAX_LINE_BYTES): {BOMB_MIB} MiB, skipped"

    valid = len(valid_lines(bombed))
    assert bomb["metadata"]["raw_batch"]["objects"] == valid + 1, report
    summaries = bomb["metadata"]["summaries"]
    assert (summaries["summaries"], summaries["rejected"]) == (valid, 1)
    assert summaries["rejected_lines"] == f"- {reason}"
    assert bomb["checks"] == {"objects_accounted_for": True, "documents_counted": True}
    assert bomb["metadata"]["summary_index"]["indexed"] == valid
    # A line that cannot be stored as a report is a lost document, as an invalid one is: the
    # stage fails naming it, and every other report of the batch is in the cache.
    assert reason in bomb["failures"]["files__report_cache"]
    assert batch_counts(es_client, f"{index_prefix}-reports-files", [bombed]) == {bombed: valid}
    assert batch_counts(es_client, f"{index_prefix}-summaries-files", [bombed]) == {bombed: valid}
    assert bomb["peak_mib"] < report["usual"]["peak_mib"] + limit_mib + READ_SLACK_MIB, report


def test_a_bad_limit_is_refused_by_the_summary_command_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    raw = raw_batch_path(tmp_path, "files", "202611230700")
    raw.parent.mkdir(parents=True)
    raw.write_bytes(generate_batch("files", "202611230700", 1, 2))
    monkeypatch.setenv("VT_MAX_LINE_BYTES", "big")
    assert cli.main(["create-single-summary", str(raw)]) == 2
    assert capsys.readouterr().err == (
        "vt-dagster create-single-summary: VT_MAX_LINE_BYTES: 'big' is not a size: "
        "give bytes, or KiB/MiB/GiB (e.g. 64MiB)\n")
    assert not summary_path(tmp_path, "files", "202611230700").exists()


def test_iter_batch_lines_reads_a_file_with_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "batch.bz2"
    path.write_bytes(bz2.compress(b"one\n" + b"x" * 5000 + b"\nthree\n"))
    assert list(iter_batch_lines(path, 4096)) == [(1, b"one\n"), (2, OversizedLine(5000, 4096)), (3, b"three\n")]


def test_a_bad_limit_fails_the_stages_that_read_lines_with_that_line(tmp_path: Path) -> None:
    import dagster as dg

    from vt_dagster.assets.elasticsearch import build_report_cache_asset
    from vt_dagster.assets.summaries import build_summaries_asset
    from vt_dagster.feeds import get_feed
    from vt_dagster.resources import VTElasticsearchResource, VTStorageResource, VTSummarizerResource

    partition = minute_key(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=200))
    storage = VTStorageResource(root=str(tmp_path), max_line_bytes="12 bananas")
    for asset, resources in (
        (build_summaries_asset(get_feed("files")), {"vt_summarizer": VTSummarizerResource()}),
        (build_report_cache_asset(get_feed("files")), {"vt_elasticsearch": VTElasticsearchResource()}),
    ):
        result = dg.materialize([asset], resources={"vt_storage": storage, **resources}, partition_key=partition,
                                raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
        [failure] = result.get_step_failure_events()
        assert failure.step_failure_data.user_failure_data.description == (
            "VT_MAX_LINE_BYTES: '12 bananas' is not a size: give bytes, or KiB/MiB/GiB (e.g. 64MiB)")


def test_vt_download_refuses_a_bad_limit_before_summarizing(tmp_path: Path, monkeypatch, capsys) -> None:
    from vt_dagster import vt_download

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VT_API_KEY", "never-used")
    monkeypatch.setenv("VT_MAX_LINE_BYTES", "0")
    assert vt_download.main(["--download-feed", "files", "--num-days-ago", "1", "--create-summaries", "True"]) == 2
    assert capsys.readouterr().err == (
        "vt-download: error: VT_MAX_LINE_BYTES: 0 bytes is below the minimum of 1 KiB\n")
    assert not (tmp_path / ".dagster_home").exists()
