"""Bulk indexing of summaries: one document per summary, every field accepted, bad lines counted."""

from __future__ import annotations

import json
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from vt_dagster.elastic import (
    ElasticsearchUnavailable,
    IndexResult,
    index_summary_file,
    run_concurrently,
    summary_alias,
    summary_doc_id,
)
from vt_dagster.emulator import generate_objects
from vt_dagster.feeds import FEEDS
from vt_dagster_tests.elastic_helpers import BATCH, SEED, write_summaries
from vt_dagster_tests.vt_objects import MAXIMAL_OBJECTS, overfull_behaviour_object


def test_concurrent_bulk_jobs_overlap_and_results_keep_job_order() -> None:
    started = threading.Barrier(2, timeout=5)

    def job(n: int) -> IndexResult:
        if n < 2:
            started.wait()  # only passes if the first two jobs run at the same time
        time.sleep(0.02 * (3 - n))
        return IndexResult(indexed=n)

    jobs = [partial(job, n) for n in range(4)]
    assert [r.indexed for r in run_concurrently(jobs, streams=2)] == [0, 1, 2, 3]
    assert [r.indexed for r in run_concurrently(jobs[2:], streams=1)] == [2, 3]


def test_a_failing_bulk_job_stops_the_ones_not_started_and_is_raised() -> None:
    ran: list[int] = []

    def job(n: int) -> IndexResult:
        ran.append(n)
        if n == 0:
            raise ElasticsearchUnavailable("Elasticsearch at http://x is unreachable")
        time.sleep(0.05)
        return IndexResult(indexed=n)

    with pytest.raises(ElasticsearchUnavailable):
        list(run_concurrently([partial(job, n) for n in range(20)], streams=2))
    assert len(ran) < 20


# --- against the node -------------------------------------------------------------------------

def doc_count(client: Elasticsearch, alias: str) -> int:
    client.indices.refresh(index=alias)
    return client.count(index=alias)["count"]


def test_index_summary_file_twice_keeps_one_document_per_summary(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = summary_alias(ready, "files")
    objects = generate_objects("files", BATCH, SEED, 40)
    path = write_summaries(tmp_path, "files", BATCH, objects)

    first = index_summary_file(es_client, path, alias=alias, chunk_size=7)
    second = index_summary_file(es_client, path, alias=alias, refresh=True)
    assert (first.indexed, first.failed, first.errors) == (len(objects), 0, [])
    assert (second.indexed, second.failed) == (len(objects), 0)
    assert doc_count(es_client, alias) == len(objects)

    hits = es_client.search(index=alias, size=1000)["hits"]["hits"]
    assert {hit["_id"] for hit in hits} == {summary_doc_id(BATCH, obj["id"]) for obj in objects}
    assert all(hit["_id"] == summary_doc_id(hit["_source"]["vt.batch"], hit["_source"]["vt.id"])
               for hit in hits)


def test_every_summary_field_indexes_into_the_strict_template(
    es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path
) -> None:
    """Maximal objects (every documented field between them), the real samples and generated
    batches: the strict mapping accepts every document of every feed."""
    feed_of = {feed.object_type: name for name, feed in FEEDS.items()}
    objects: dict[str, list[dict[str, Any]]] = {name: [] for name in FEEDS}
    for feed, make in MAXIMAL_OBJECTS.items():
        objects[feed].append(make())
    objects["file_behaviours"].append(overfull_behaviour_object())
    for path in sorted(samples_dir.glob("*.json")):
        obj = json.loads(path.read_text(encoding="utf-8"))
        objects[feed_of[obj.get("data", obj)["type"]]].append(obj)
    fields: set[str] = set()
    for feed, listed in objects.items():
        listed += generate_objects(feed, BATCH, SEED, 20)
        path = write_summaries(tmp_path, feed, BATCH, listed)
        fields |= {key for line in path.read_text().splitlines() for key in json.loads(line)}
        result = index_summary_file(es_client, path, alias=summary_alias(ready, feed), refresh=True)
        assert (result.failed, result.errors) == (0, []), feed
        assert result.indexed == len(listed)
    assert {"vt.behaviour.registry_keys_set", "vt.behaviour.cut.files_written"} <= fields


def test_bad_lines_and_refused_documents_are_counted_and_the_rest_indexed(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = summary_alias(ready, "files")
    good = [json.loads(line) for line in
            write_summaries(tmp_path, "files", BATCH, generate_objects("files", BATCH, SEED, 3))
            .read_text().splitlines()]
    unknown_field = {**good[0], "vt.id": "extra-field", "vt.not_in_schema": "x"}
    type_conflict = {**good[0], "vt.id": "type-conflict", "file.size": "not a number"}
    no_id = {key: value for key, value in good[0].items() if key != "vt.id"}
    lines = [json.dumps(good[0]), json.dumps(unknown_field), "{not json", json.dumps(good[1]),
             "", json.dumps(type_conflict), json.dumps(no_id), "[1, 2]", json.dumps(good[2])]
    path = tmp_path / "mixed.summary"
    path.write_text("\n".join(lines) + "\n")

    result = index_summary_file(es_client, path, alias=alias, refresh=True)
    assert (result.indexed, result.failed) == (3, 5)
    assert doc_count(es_client, alias) == 3
    errors = "\n".join(result.errors)
    assert len(result.errors) == 5
    assert "line 2 " in errors and "strict_dynamic_mapping_exception" in errors
    assert "line 3: invalid JSON" in errors
    assert "line 6 " in errors and "file.size" in errors
    assert "line 7: no 'vt.id' string" in errors
    assert "line 8: not a JSON object" in errors


def test_indexing_into_a_missing_alias_fails_without_creating_an_index(
    es_client: Elasticsearch, index_prefix: str, tmp_path: Path
) -> None:
    alias = summary_alias(index_prefix, "files")
    objects = generate_objects("files", BATCH, SEED, 3)
    result = index_summary_file(es_client, write_summaries(tmp_path, "files", BATCH, objects), alias=alias)
    assert (result.indexed, result.failed) == (0, len(objects))
    assert "require_alias" in result.errors[0]
    assert not es_client.indices.exists(index=alias)
