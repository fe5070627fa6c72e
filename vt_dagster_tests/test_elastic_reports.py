"""The report cache: full reports by batch, never overwritten by an older one, bad lines counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from vt_dagster import elastic
from vt_dagster.elastic import index_reports, report_alias, report_doc_id
from vt_dagster_tests.elastic_helpers import BATCH, NEWER, sample, stored_report, write_raw_batch


def test_an_older_batch_never_overwrites_a_newer_report(
    es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path
) -> None:
    alias = report_alias(ready, "files")
    obj = sample(samples_dir, "msticpy_vt3_file_1.json")
    newer = write_raw_batch(tmp_path, "files", NEWER, [json.dumps(obj)])
    older = write_raw_batch(tmp_path, "files", BATCH, [json.dumps(obj)])

    assert index_reports(es_client, newer, alias=alias, feed="files", batch=NEWER).indexed == 1
    late = index_reports(es_client, older, alias=alias, feed="files", batch=BATCH)
    assert (late.indexed, late.skipped_older, late.failed) == (0, 1, 0)
    again = index_reports(es_client, newer, alias=alias, feed="files", batch=NEWER)
    assert (again.indexed, again.skipped_older, again.failed) == (1, 0, 0)

    [report] = stored_report(es_client, alias, obj["id"])
    assert report["vt.batch"] == NEWER and report["vt.batch_time"] == "2024-01-15T13:00:00Z"
    assert report["vt.feed"] == "files"
    assert {key: value for key, value in report.items() if not key.startswith("vt.")} == obj


def test_reports_accept_wrapped_objects_and_count_bad_lines(
    es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path
) -> None:
    alias = report_alias(ready, "domains")
    wrapped = sample(samples_dir, "opencti_vt_test_domain.json")
    path = write_raw_batch(tmp_path, "domains", BATCH,
                           [json.dumps(wrapped), "{truncated", json.dumps({"no": "id"}),
                            json.dumps({"id": 5, "type": "domain"}), "[1, 2]", '{"id": "", "type": "domain"}'])
    result = index_reports(es_client, path, alias=alias, feed="domains", batch=BATCH)
    assert (result.indexed, result.failed) == (1, 5)
    assert [e.split(":")[0] for e in result.errors] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert "invalid JSON" in result.errors[0] and "no 'id' string" in result.errors[2]
    assert "not a JSON object" in result.errors[3] and "no 'id' string" in result.errors[4]
    [report] = stored_report(es_client, alias, report_doc_id("tawuhoju.com"))
    assert report["id"] == "tawuhoju.com" and report["vt.batch"] == BATCH


def test_a_corrupt_raw_batch_raises_one_line(es_client: Elasticsearch, ready: str, tmp_path: Path) -> None:
    path = write_raw_batch(tmp_path, "files", BATCH, ['{"id": "x", "type": "file"}'] * 50)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(elastic.BatchReadError) as raised:
        index_reports(es_client, path, alias=report_alias(ready, "files"), feed="files", batch=BATCH)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)
