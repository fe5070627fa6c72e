"""The benchmarks still run and print the figures the README and issue notes quote.

Smoke runs on tiny batches: they prove each script works end to end and keeps its output
contract (the last lines), not any speed; the figures come from full runs on a quiet machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from vt_dagster.local_cluster import LocalCluster

BENCH = Path(__file__).resolve().parents[1] / "bench"
RATIO_LINE = re.compile(r"ratio=\d+\.\d\d")


def run_bench(name: str, args: list[str], cache: Path, timeout: float = 240, **env: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, str(BENCH / name), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "VT_BENCH_CACHE": str(cache), **env},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout.strip().splitlines()


def test_summarize_bench_prints_throughputs_spread_and_ends_with_the_ratio(tmp_path: Path) -> None:
    lines = run_bench("summarize", ["--batches", "2", "--objects", "40", "--repeat", "2", "--cores", "2"], tmp_path)

    assert re.match(r"2 batches, \d+ file objects, [\d.]+ MB bz2, 2 core\(s\)", lines[0])
    assert any(line.startswith("bzip2 -dc > /dev/null") and "objects/s" in line for line in lines)
    assert any(line.startswith("summarize to NDJSON") and "MB/s" in line for line in lines)
    assert any(line.startswith("round ratios (2): min ") for line in lines)
    assert RATIO_LINE.fullmatch(lines[-1])


@pytest.mark.es
def test_instance_storage_bench_compares_every_operation_and_ends_with_the_ratio(tmp_path: Path) -> None:
    lines = run_bench("instance_storage", ["--calls", "5", "--repeat", "1"], tmp_path)

    for operation in ("run log event", "asset materialization", "run-queue poll", "sensor/schedule states"):
        assert any(re.fullmatch(rf"{operation} +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d", line) for line in lines), operation
    assert RATIO_LINE.fullmatch(lines[-1])


def test_index_bench_ends_with_the_ratio_and_the_sensor_tick(tmp_path: Path, es_url: str) -> None:
    lines = run_bench("index", ["--batches", "2", "--objects", "20", "--repeat", "1"], tmp_path, ES_URL=es_url)

    assert RATIO_LINE.fullmatch(lines[-2])
    assert re.fullmatch(r"sensor_tick_s=\d+\.\d\d", lines[-1])
    assert any(re.match(r"reports_ratio=\d+\.\d\d ", line) for line in lines)
    assert any(re.match(r"reports_rerun_ratio=\d+\.\d\d ", line) for line in lines)
    assert any(line.startswith("sensor tick") and "run request(s)" in line for line in lines)


def test_index_bench_on_a_cluster_compares_with_as_many_curl_streams(tmp_path: Path, es_cluster: LocalCluster) -> None:
    lines = run_bench("index", ["--cluster", "3", "--batches", "2", "--objects", "20", "--repeat", "1",
                                        "--report-batches", "0"], tmp_path,
                      ES_URL=es_cluster.urls[0])

    assert any(line.startswith(f"Elasticsearch         : 3 node(s) at {es_cluster.urls[0]}, replicas from settings: 1 ")
               for line in lines)
    assert any(line.startswith("curl _bulk x2 streams :") for line in lines)
    assert not any(line.startswith("curl _bulk            :") for line in lines), "one stream is not compared"
    assert lines[-3] == f"ratio below: asset / curl x2 streams, both to {es_cluster.urls[0]} of the 3-node cluster"
    assert RATIO_LINE.fullmatch(lines[-2])
    assert re.fullmatch(r"sensor_tick_s=\d+\.\d\d", lines[-1])


def test_index_bench_refuses_an_es_url_that_is_not_the_cluster_asked_for(tmp_path: Path, es_url: str) -> None:
    nodes = requests.get(f"{es_url}/_cluster/health", timeout=10).json()["number_of_nodes"]
    completed = subprocess.run(
        [sys.executable, str(BENCH / "index"), "--cluster", str(nodes + 1), "--batches", "1", "--objects", "5"],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "VT_BENCH_CACHE": str(tmp_path), "ES_URL": es_url},
    )
    assert completed.returncode == 1
    assert f"ES_URL {es_url} answers with {nodes} node(s), not the {nodes + 1} of --cluster" in completed.stderr


@pytest.mark.es
@pytest.mark.timeout(600)
def test_live_bench_runs_the_service_and_ends_with_cpu_overhead_and_lag(tmp_path: Path, es_url: str) -> None:
    """Two minutes of the real service (code server, daemon, live schedule) on small batches."""
    lines = run_bench("live", ["--minutes", "2", "--interval", "1", "--feeds", "files,urls", "--objects", "3"],
                      tmp_path, timeout=540, ES_URL=es_url)

    runs = re.fullmatch(r"runs=(\d+) failed_runs=(\d+) unfinished_runs=(\d+)", next(
        line for line in lines if line.startswith("runs=")))
    assert runs and int(runs[1]) >= 1 and runs[2] == "0" and runs[3] == "0", lines
    assert any(re.match(r"run_s_p50=[\d.]+ run_s_max=[\d.]+", line) for line in lines)
    assert any(re.match(r"instance_growth_mb_per_day=\d+ instance_mb_with_7_days_history=\d+", line)
               for line in lines)
    decode = next(line for line in lines if line.startswith("bzip2_decode_per_min="))
    assert re.match(r"bzip2_decode_per_min=\d+\.\d\d cpu_per_min_in_bzip2_decodes=\d+\.\d ", decode), decode
    assert re.fullmatch(r"cpu_per_min=\d+\.\d\d", lines[-3])
    assert re.fullmatch(r"overhead=-?\d+\.\d\d", lines[-2])
    assert re.fullmatch(r"lag_minutes=\d+\.\d", lines[-1]), lines
