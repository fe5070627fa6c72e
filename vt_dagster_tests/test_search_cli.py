"""`vt-dagster search` against the real node: the table fitted to COLUMNS, `--columns`, `--json`,
and one-line errors for a query Lucene cannot parse and for a node that does not answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from vt_dagster.elastic import index_summary_file, setup_elasticsearch, summary_alias
from vt_dagster.emulator import generate_batch
from vt_dagster.local_es import free_port
from vt_dagster.search_output import ELLIPSIS, display_width
from vt_dagster.storage import raw_batch_path, summary_path
from vt_dagster.summaries import summarize_batch_file

BATCH = "202611230700"
PIPE_BUFFER = 65536


def search(es_url: str, prefix: str, *args: str, columns: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, output piped (not a terminal); COLUMNS only when given."""
    env = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
    env.update(ES_URL=es_url, ES_INDEX_PREFIX=prefix)
    if columns is not None:
        env["COLUMNS"] = columns
    return subprocess.run([sys.executable, "-m", "vt_dagster", "search", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def indexed(es_client: Elasticsearch, index_prefix: str, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Summaries of a files batch and a urls batch, indexed and searchable under `index_prefix`."""
    setup_elasticsearch(es_client, ["files", "urls"], prefix=index_prefix)
    found = {}
    for feed in ("files", "urls"):
        raw = raw_batch_path(tmp_path, feed, BATCH)
        raw.parent.mkdir(parents=True)
        raw.write_bytes(generate_batch(feed, BATCH, 8, 60))
        summarize_batch_file(raw, summary_path(tmp_path, feed, BATCH), feed=feed, batch=BATCH)
        index_summary_file(es_client, summary_path(tmp_path, feed, BATCH),
                           alias=summary_alias(index_prefix, feed), refresh=True)
        found[feed] = [json.loads(line) for line in summary_path(tmp_path, feed, BATCH).read_text().splitlines()]
    return found


def by_id(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(summaries, key=lambda summary: summary["vt.id"])


def test_json_prints_each_summary_as_indexed_and_nothing_else(
    es_url: str, index_prefix: str, indexed: dict[str, list[dict[str, Any]]]
) -> None:
    done = search(es_url, index_prefix, "vt.feed:files", "--json", "--size", "500")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert by_id(printed) == by_id(indexed["files"])
    stamps = [summary["@timestamp"] for summary in printed]
    assert stamps == sorted(stamps, reverse=True)


def test_the_default_table_fits_columns(es_url: str, index_prefix: str,
                                        indexed: dict[str, list[dict[str, Any]]]) -> None:
    done = search(es_url, index_prefix, "vt.feed:(files OR urls)", "--size", "500", columns="80")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 + len(indexed["files"]) + len(indexed["urls"])
    assert max(display_width(line) for line in lines) <= 80
    assert lines[0].split() == ["value", "detections"]
    assert all(summary["hash.sha256"] in done.stdout for summary in indexed["files"])
    assert ELLIPSIS in done.stdout, "the longest URLs are cut"

    wider = search(es_url, index_prefix, "vt.feed:files", "--size", "500", columns="130").stdout.splitlines()
    assert max(display_width(line) for line in wider) <= 130
    assert wider[0].split()[:4] == ["@timestamp", "type", "value", "detections"]


def test_piped_output_and_wide_are_not_cut(es_url: str, index_prefix: str,
                                           indexed: dict[str, list[dict[str, Any]]]) -> None:
    piped = search(es_url, index_prefix, "vt.feed:urls", "--size", "500")
    wide = search(es_url, index_prefix, "vt.feed:urls", "--size", "500", "--wide", columns="80")
    assert piped.returncode == wide.returncode == 0
    assert piped.stdout == wide.stdout
    assert "vt.type" in piped.stdout.splitlines()[0].split()
    assert all(summary["url.full"] in wide.stdout for summary in indexed["urls"])


def test_columns_picks_columns_in_their_order(es_url: str, index_prefix: str,
                                              indexed: dict[str, list[dict[str, Any]]]) -> None:
    done = search(es_url, index_prefix, "vt.feed:files", "--size", "500",
                  "--columns", "hash.md5,threat_label,file.size,detections")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["hash.md5", "vt.threat_label", "file.size", "detections"]
    for summary in indexed["files"]:
        row = next(line for line in lines if line.startswith(summary["hash.md5"]))
        assert str(summary["file.size"]) in row
        assert f"{summary['vt.last_analysis_stats.malicious']}/{summary['vt.last_analysis_stats.total']}" in row


def test_a_query_lucene_cannot_parse_says_where(es_url: str, index_prefix: str,
                                                indexed: dict[str, list[dict[str, Any]]]) -> None:
    expected = {
        "vt.feed:(files": 'invalid query: Encountered "<EOF>" at line 1, column 14 (query: vt.feed:(files)',
        "vt.last_analysis_stats.malicious:[5 TO": 'invalid query: Encountered "<EOF>" at line 1, column 38',
        'file.name:"unterminated': "invalid query: Lexical error at line 1, column 24",
    }
    for query, message in expected.items():
        done = search(es_url, index_prefix, query)
        assert done.returncode == 2 and done.stdout == "", query
        assert done.stderr.startswith(f"vt-dagster search: {message}"), done.stderr
        assert len(done.stderr.splitlines()) == 1 and "search_phase_execution_exception" not in done.stderr


def test_an_unreachable_node_is_one_line() -> None:
    done = search(dead_url(), "vt", "vt.feed:files")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "is unreachable" in done.stderr


def test_an_unknown_column_is_refused_before_asking_elasticsearch() -> None:
    done = search(dead_url(), "vt", "*", "--columns", "value,malicious")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("vt-dagster search: unknown column 'malicious': did you mean ")
    assert "vt.last_analysis_stats.malicious" in done.stderr and "docs/summary-schema.md" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_json_goes_with_neither_wide_nor_columns() -> None:
    wide = search(dead_url(), "vt", "*", "--json", "--wide")
    assert wide.returncode == 2 and "not allowed with argument" in wide.stderr
    columns = search(dead_url(), "vt", "*", "--json", "--columns", "value")
    assert columns.returncode == 2 and columns.stderr.startswith("vt-dagster search: --json prints whole summaries")
    size = search(dead_url(), "vt", "*", "--size", "0")
    assert size.returncode == 2 and size.stderr.strip() == "vt-dagster search: --size must be between 1 and 10,000, not 0"


def test_a_reader_that_stops_early_is_no_error(es_url: str, index_prefix: str,
                                               indexed: dict[str, list[dict[str, Any]]]) -> None:
    assert sum(len(json.dumps(summary)) for summary in indexed["files"] + indexed["urls"]) > 2 * PIPE_BUFFER
    env = {**os.environ, "ES_URL": es_url, "ES_INDEX_PREFIX": index_prefix}
    with subprocess.Popen([sys.executable, "-m", "vt_dagster", "search", "*", "--json", "--size", "500"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as reader:
        assert reader.stdout is not None and reader.stderr is not None
        first = json.loads(reader.stdout.readline())
        reader.stdout.close()
        assert reader.wait(timeout=120) == 0
        assert reader.stderr.read() == b""
    assert first["vt.feed"] in ("files", "urls")
