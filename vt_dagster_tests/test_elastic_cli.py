"""`vt-dagster setup-elasticsearch`, `lookup` and `search` against the real node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from elasticsearch import Elasticsearch

from vt_dagster.elastic import index_reports, index_summary_file
from vt_dagster.emulator import generate_batch
from vt_dagster.local_es import free_port
from vt_dagster.storage import raw_batch_path, summary_path
from vt_dagster.summaries import summarize_batch_file

BATCH = "202611230700"


def cli(es_url: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ES_URL": es_url, "ES_INDEX_PREFIX": prefix, "VT_FEEDS": "files,domains"}
    return subprocess.run([sys.executable, "-m", "vt_dagster", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_setup_lookup_and_search_from_the_command_line(es_url: str, es_client: Elasticsearch,
                                                       index_prefix: str, tmp_path: Path) -> None:
    first = cli(es_url, index_prefix, "setup-elasticsearch")
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and f"{index_prefix}-summaries-files" in first.stdout
    assert sum("ILM is not available" in line for line in first.stdout.splitlines()) <= 1
    again = cli(es_url, index_prefix, "setup-elasticsearch")
    assert "created" not in again.stdout and "present" in again.stdout

    for feed in ("files", "domains"):
        raw = raw_batch_path(tmp_path, feed, BATCH)
        raw.parent.mkdir(parents=True)
        raw.write_bytes(generate_batch(feed, BATCH, 8, 5))
        summarize_batch_file(raw, summary_path(tmp_path, feed, BATCH), feed=feed, batch=BATCH)
        index_summary_file(es_client, summary_path(tmp_path, feed, BATCH), alias=f"{index_prefix}-summaries-{feed}",
                           refresh=True)
        index_reports(es_client, raw, alias=f"{index_prefix}-reports-{feed}", feed=feed, batch=BATCH, refresh=True)

    file_summary = json.loads(summary_path(tmp_path, "files", BATCH).read_text().splitlines()[0])
    domain = json.loads(summary_path(tmp_path, "domains", BATCH).read_text().splitlines()[0])["vt.id"]
    found = cli(es_url, index_prefix, "lookup", file_summary["hash.md5"], domain, "unknown.example")
    assert found.returncode == 1, "a value not in the cache makes the exit code 1"
    lines = found.stdout.splitlines()
    assert lines[0].startswith(f"{file_summary['hash.md5']}: file {file_summary['vt.id']} batch {BATCH}")
    assert lines[1].startswith(f"{domain}: domain {domain}")
    assert lines[2] == "unknown.example: not in the report cache"

    table = cli(es_url, index_prefix, "search", f'vt.id:"{file_summary["vt.id"]}"')
    assert table.returncode == 0 and file_summary["vt.id"] in table.stdout and "detections" in table.stdout

    broken = cli(es_url, index_prefix, "search", "vt.id:(")
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1


def test_each_command_says_elasticsearch_is_unreachable_in_one_line_within_seconds() -> None:
    port = free_port()
    secret = "pw-9c1e7a0b"
    for args in (["setup-elasticsearch"], ["lookup", "a" * 64], ["search", "vt.id:x"]):
        started = time.monotonic()
        done = cli(f"http://elastic:{secret}@127.0.0.1:{port}", "vt", *args)
        assert time.monotonic() - started < 10
        assert done.returncode == 2 and done.stdout == "", args
        [line] = done.stderr.splitlines()
        assert f"Elasticsearch at http://127.0.0.1:{port} is unreachable (Connection refused)" in line, line
        assert secret not in line
