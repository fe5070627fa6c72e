"""One document per `_id` across every index behind an alias, whatever rolled over when.

Batches indexed again before and after rollovers (done by hand: the local node has no ILM,
`_rollover` works), newer and older analyses of an object, a rollover in the middle of a run,
a crash between writing and deleting, duplicates left by earlier versions, a read-only older
index; then counts, checks, the sensor and look-ups across the alias, through Dagster too.
And `setup_elasticsearch(update=True)` bringing new template fields to the current write
index instead of waiting for the next rollover. Real Elasticsearch node, real Dagster.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from elasticsearch import Elasticsearch

from vt_dagster import elastic
from vt_dagster.assets.elasticsearch import batch_problem
from vt_dagster.elastic import (
    IndexResult,
    batch_counts,
    batch_version,
    index_reports,
    index_summary_file,
    lookup,
    report_alias,
    report_doc_id,
    setup_elasticsearch,
    summary_alias,
    summary_doc_id,
)
from vt_dagster.elastic.copies import Copy, StaleCopy, delete_action, plan_group
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator, generate_objects
from vt_dagster.partitions import minute_partitions
from vt_dagster.resources import VTElasticsearchResource, VTFeedsResource, VTStorageResource, VTSummarizerResource
from vt_dagster.sensors import GRACE_PARTITIONS
from vt_dagster.storage import summary_path
from vt_dagster_tests.elastic_helpers import recorded_requests, write_raw_batch, write_summaries
from vt_dagster_tests.test_es_pipeline import chain, evaluate_sensor, range_tags, recent_minutes, run_setup

OLDEST = "202401151100"
BATCH = "202401151200"
NEWER = "202401151300"
SEED = 11


# --- pure: what a group of documents needs -----------------------------------------------------

def test_a_report_older_than_a_copy_anywhere_is_skipped_and_its_older_duplicates_go() -> None:
    copies = {"a": [Copy("r-000001", 30), Copy("r-000002", 10)], "b": [Copy("r-000001", 10)], "c": []}
    plan = plan_group(["a", "b", "c", "d"], copies, version=20)
    assert plan.skip == {"a"}
    assert plan.stale == [StaleCopy("a", "r-000002", 30)], "the newest copy is kept, the older one goes"
    assert plan.elsewhere == {"b": [Copy("r-000001", 10)]}
    assert plan.left_behind({"b": "r-000003", "d": "r-000003"}) == [StaleCopy("b", "r-000001", 20)]
    assert plan.left_behind({"b": "r-000001"}) == [], "written over in place: nothing to delete"


def test_summaries_are_always_written_and_every_other_copy_goes() -> None:
    copies = {"s": [Copy("s-000001", 1), Copy("s-000002", 3)]}
    plan = plan_group(["s", "s"], copies, version=None)
    assert not plan.skip and not plan.stale
    assert plan.left_behind({"s": "s-000002"}) == [StaleCopy("s", "s-000001", None)]


def test_an_equal_version_is_written_again_not_skipped() -> None:
    plan = plan_group(["a"], {"a": [Copy("r-000001", 20)]}, version=20)
    assert not plan.skip and plan.left_behind({"a": "r-000002"}) == [StaleCopy("a", "r-000001", 20)]


def test_deletes_of_reports_are_conditional_on_the_version_kept() -> None:
    assert json.loads(delete_action(StaleCopy("ab", "r-000001", 20))) == {
        "delete": {"_index": "r-000001", "_id": "ab", "version": 20, "version_type": "external_gte"}}
    assert json.loads(delete_action(StaleCopy("ab", "s-000001", None))) == {
        "delete": {"_index": "s-000001", "_id": "ab"}}


# --- helpers ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """Summaries or reports of the files feed: how to write a batch's file and index it."""

    name: str
    alias: Callable[[str], str]
    write: Callable[[Path, str, list[dict[str, Any]]], Path]
    index: Callable[..., IndexResult]
    doc_id: Callable[[str, str], str]


SUMMARIES = Family(
    "summaries", lambda prefix: summary_alias(prefix, "files"),
    lambda root, batch, objects: write_summaries(root, "files", batch, objects),
    lambda client, path, alias, batch, **options: index_summary_file(client, path, alias=alias, **options),
    summary_doc_id,
)
REPORTS = Family(
    "reports", lambda prefix: report_alias(prefix, "files"),
    lambda root, batch, objects: write_raw_batch(root, "files", batch, [json.dumps(obj) for obj in objects]),
    lambda client, path, alias, batch, **options: index_reports(client, path, alias=alias, feed="files",
                                                                batch=batch, **options),
    lambda batch, vt_id: report_doc_id(vt_id),
)
BOTH = pytest.mark.parametrize("family", [SUMMARIES, REPORTS], ids=["summaries", "reports"])


@pytest.fixture
def ready(es_client: Elasticsearch, index_prefix: str) -> str:
    setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    return index_prefix


def where_held(client: Elasticsearch, alias: str) -> dict[str, list[str]]:
    """Every `_id` in the alias and the indices holding it (several = a duplicate)."""
    client.indices.refresh(index=alias)
    hits = client.search(index=alias, size=10_000, source=False, query={"match_all": {}})["hits"]["hits"]
    held: dict[str, list[str]] = {}
    for hit in hits:
        held.setdefault(hit["_id"], []).append(hit["_index"])
    return held


def write_index(client: Elasticsearch, alias: str) -> str:
    indices = client.indices.get_alias(name=alias).body
    return next(name for name, info in indices.items() if info["aliases"][alias].get("is_write_index"))


def rollover(client: Elasticsearch, alias: str, times: int = 1) -> str:
    """Roll `alias` over as ILM does, a day after the writes, which are searchable by then; the
    index that was written to before."""
    client.indices.refresh(index=alias)
    before = write_index(client, alias)
    for _ in range(times):
        client.indices.rollover(alias=alias)
    return before


def expected_ids(family: Family, batch: str, objects: list[dict[str, Any]]) -> set[str]:
    return {family.doc_id(batch, obj["id"]) for obj in objects}


def write_duplicates(client: Elasticsearch, index: str, family: Family, batch: str,
                     objects: list[dict[str, Any]]) -> None:
    """Copies written straight into one concrete index, as the indexer did before it removed
    copies (or as a crash between its writes and its deletes leaves them)."""
    for obj in objects:
        source = {"vt.batch": batch, "vt.id": obj["id"]} if family is SUMMARIES else {**obj, "vt.batch": batch}
        versioning = {"version": batch_version(batch), "version_type": "external_gte"} if family is REPORTS else {}
        client.index(index=index, id=family.doc_id(batch, obj["id"]), document=source, **versioning)


# --- a batch again, before and after rollovers -----------------------------------------------

@BOTH
def test_a_batch_indexed_again_after_rollovers_is_held_once_in_the_newest_index(
    family: Family, es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = family.alias(ready)
    objects = generate_objects("files", BATCH, SEED, 12)
    others = generate_objects("files", OLDEST, SEED, 5)
    other_path = family.write(tmp_path / "other", OLDEST, others)
    path = family.write(tmp_path, BATCH, objects)
    assert family.index(es_client, other_path, alias, OLDEST).indexed == len(others)
    first = family.index(es_client, path, alias, BATCH, chunk_size=5)
    assert (first.indexed, first.copies_removed) == (len(objects), 0)
    again = family.index(es_client, path, alias, BATCH, chunk_size=5)
    assert (again.indexed, again.copies_removed) == (len(objects), 0), "same index: written over in place"

    for rollovers in (1, 2):
        rollover(es_client, alias, rollovers)
        result = family.index(es_client, path, alias, BATCH, chunk_size=5)
        assert (result.indexed, result.failed, result.copies_removed, result.copies_left) == (
            len(objects), 0, len(objects), 0)
        held = where_held(es_client, alias)
        ids = expected_ids(family, BATCH, objects)
        assert {doc_id: held[doc_id] for doc_id in ids} == dict.fromkeys(ids, [write_index(es_client, alias)])
        assert len(held) == len(ids | expected_ids(family, OLDEST, others)), "one copy of each, nothing else"
    assert batch_counts(es_client, alias, [OLDEST, BATCH]) == {OLDEST: len(others), BATCH: len(objects)}


def test_a_new_batch_costs_one_count_and_its_bulk_requests(
    es_client: Elasticsearch, ready: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live case for summaries: no index holds the batch yet, so no id is looked up."""
    alias = SUMMARIES.alias(ready)
    rollover(es_client, alias)
    objects = generate_objects("files", BATCH, SEED, 12)
    path = SUMMARIES.write(tmp_path, BATCH, objects)
    with recorded_requests(es_client, monkeypatch) as calls:
        assert index_summary_file(es_client, path, alias=alias, chunk_size=5).indexed == len(objects)
    assert calls == [f"POST /{alias}/_search"] + ["PUT /_bulk"] * -(-len(objects) // 5)


def test_reports_cost_one_id_search_per_bulk_request(
    es_client: Elasticsearch, ready: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = REPORTS.alias(ready)
    objects = generate_objects("files", BATCH, SEED, 12)
    path = REPORTS.write(tmp_path, BATCH, objects)
    with recorded_requests(es_client, monkeypatch) as calls:
        assert index_reports(es_client, path, alias=alias, feed="files", batch=BATCH, chunk_size=5).indexed \
            == len(objects)
    groups = -(-len(objects) // 5)
    assert calls == [f"POST /{alias}/_refresh"] + [f"POST /{alias}/_search", "PUT /_bulk"] * groups


# --- newer and older analyses of an object ----------------------------------------------------

def with_times_submitted(objects: list[dict[str, Any]], times: int) -> list[dict[str, Any]]:
    return [{**obj, "attributes": {**obj["attributes"], "times_submitted": times}} for obj in objects]


def test_a_newer_analysis_after_rollover_leaves_one_report_the_newer(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = REPORTS.alias(ready)
    objects = generate_objects("files", BATCH, SEED, 8)
    index_reports(es_client, REPORTS.write(tmp_path, BATCH, objects), alias=alias, feed="files", batch=BATCH)
    old_index = rollover(es_client, alias)
    newer = with_times_submitted(objects, 999)
    result = index_reports(es_client, REPORTS.write(tmp_path, NEWER, newer), alias=alias, feed="files",
                           batch=NEWER, refresh=True)
    assert (result.indexed, result.skipped_older, result.copies_removed) == (len(objects), 0, len(objects))
    held = where_held(es_client, alias)
    assert held == {report_doc_id(obj["id"]): [write_index(es_client, alias)] for obj in objects}
    assert es_client.count(index=old_index)["count"] == 0
    assert batch_counts(es_client, alias, [BATCH, NEWER]) == {BATCH: 0, NEWER: len(objects)}

    sha256 = objects[0]["id"]
    md5 = objects[0]["attributes"]["md5"]
    found = lookup(es_client, [sha256, md5], feeds=["files"], prefix=ready)
    assert {value: (report["vt.batch"], report["attributes"]["times_submitted"]) for value, report in found.items()} \
        == {sha256: (NEWER, 999), md5: (NEWER, 999)}


def test_an_older_analysis_after_rollover_is_skipped_and_only_its_new_objects_written(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = REPORTS.alias(ready)
    objects = generate_objects("files", NEWER, SEED, 8)
    index_reports(es_client, REPORTS.write(tmp_path, NEWER, objects), alias=alias, feed="files", batch=NEWER)
    newer_index = rollover(es_client, alias)
    unseen = generate_objects("files", BATCH, SEED + 1, 3)
    late = index_reports(es_client, REPORTS.write(tmp_path, BATCH, [*objects, *unseen]), alias=alias, feed="files",
                         batch=BATCH, refresh=True)
    assert (late.indexed, late.skipped_older, late.failed, late.copies_removed) == (len(unseen), len(objects), 0, 0)
    held = where_held(es_client, alias)
    assert {doc_id: held[doc_id] for doc_id in expected_ids(REPORTS, NEWER, objects)} == dict.fromkeys(
        expected_ids(REPORTS, NEWER, objects), [newer_index])
    assert len(held) == len(objects) + len(unseen)
    assert batch_counts(es_client, alias, [BATCH, NEWER]) == {BATCH: len(unseen), NEWER: len(objects)}


# --- rollovers and failures in the middle of a run --------------------------------------------

@BOTH
def test_a_rollover_in_the_middle_of_a_run_still_leaves_one_copy(
    family: Family, es_client: Elasticsearch, ready: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = family.alias(ready)
    objects = generate_objects("files", BATCH, SEED, 12)
    path = family.write(tmp_path, BATCH, objects)
    family.index(es_client, path, alias, BATCH)
    rollover(es_client, alias)
    send = es_client.transport.perform_request
    bulks: list[str] = []

    def roll_over_after_the_first_bulk(method: str, target: str, *args: Any, **kwargs: Any) -> Any:
        answer = send(method, target, *args, **kwargs)
        if target.startswith("/_bulk"):
            bulks.append(target)
            if len(bulks) == 1:
                send("POST", f"/{alias}/_rollover", headers={"accept": "application/json"})
        return answer

    monkeypatch.setattr(es_client.transport, "perform_request", roll_over_after_the_first_bulk)
    result = family.index(es_client, path, alias, BATCH, chunk_size=5)
    monkeypatch.undo()
    assert (result.indexed, result.copies_removed, result.copies_left) == (len(objects), len(objects), 0)
    held = where_held(es_client, alias)
    assert sorted(held) == sorted(expected_ids(family, BATCH, objects))
    assert all(len(indices) == 1 for indices in held.values())
    assert len({index for indices in held.values() for index in indices}) == 2, "the run wrote on both sides"
    assert batch_counts(es_client, alias, [BATCH]) == {BATCH: len(objects)}


class Killed(RuntimeError):
    """The process dying between a group's writes and its deletes."""


@BOTH
def test_a_crash_between_writing_and_deleting_leaves_a_duplicate_the_next_run_removes(
    family: Family, es_client: Elasticsearch, ready: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = family.alias(ready)
    objects = generate_objects("files", BATCH, SEED, 6)
    path = family.write(tmp_path, BATCH, objects)
    family.index(es_client, path, alias, BATCH)
    rollover(es_client, alias)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed("killed before deleting")

    monkeypatch.setattr("vt_dagster.elastic.bulk._delete_copies", killed)
    with pytest.raises(Killed):
        family.index(es_client, path, alias, BATCH)
    monkeypatch.undo()
    held = where_held(es_client, alias)
    assert all(len(held[doc_id]) == 2 for doc_id in expected_ids(family, BATCH, objects)), "nothing lost"

    healed = family.index(es_client, path, alias, BATCH, refresh=True)
    assert (healed.indexed, healed.copies_removed) == (len(objects), len(objects))
    assert all(len(indices) == 1 for indices in where_held(es_client, alias).values())
    assert batch_counts(es_client, alias, [BATCH]) == {BATCH: len(objects)}


@BOTH
def test_several_older_copies_left_by_earlier_versions_are_all_removed(
    family: Family, es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = family.alias(ready)
    objects = generate_objects("files", BATCH, SEED, 4)
    for _ in range(3):
        write_duplicates(es_client, write_index(es_client, alias), family, BATCH, objects)
        rollover(es_client, alias)
    assert all(len(indices) == 3 for indices in where_held(es_client, alias).values())
    result = family.index(es_client, family.write(tmp_path, BATCH, objects), alias, BATCH, refresh=True,
                          chunk_size=1)  # a search sized for 2 copies finds 3
    assert result.copies_removed == 3 * len(objects)
    assert where_held(es_client, alias) == dict.fromkeys(expected_ids(family, BATCH, objects),
                                                          [write_index(es_client, alias)])


def test_an_older_analysis_removes_the_older_duplicates_of_the_report_it_does_not_replace(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = REPORTS.alias(ready)
    objects = generate_objects("files", NEWER, SEED, 4)
    newest_index = write_index(es_client, alias)
    write_duplicates(es_client, newest_index, REPORTS, NEWER, objects)
    rollover(es_client, alias)
    write_duplicates(es_client, write_index(es_client, alias), REPORTS, BATCH, objects)
    late = index_reports(es_client, REPORTS.write(tmp_path, OLDEST, objects), alias=alias, feed="files",
                         batch=OLDEST, refresh=True)
    assert (late.indexed, late.skipped_older, late.copies_removed) == (0, len(objects), len(objects))
    assert where_held(es_client, alias) == dict.fromkeys(expected_ids(REPORTS, NEWER, objects), [newest_index])
    assert batch_counts(es_client, alias, [OLDEST, BATCH, NEWER]) == {OLDEST: 0, BATCH: 0, NEWER: len(objects)}


@BOTH
def test_a_read_only_older_index_fails_the_batch_in_one_line_and_loses_nothing(
    family: Family, es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    alias = family.alias(ready)
    objects = generate_objects("files", BATCH, SEED, 5)
    path = family.write(tmp_path, BATCH, objects)
    family.index(es_client, path, alias, BATCH)
    old_index = rollover(es_client, alias)
    es_client.indices.put_settings(index=old_index, settings={"index.blocks.write": True})
    try:
        result = family.index(es_client, path, alias, BATCH, refresh=True)
        assert (result.indexed, result.failed, result.copies_removed, result.copies_left) == (
            len(objects), 0, 0, len(objects))
        problem = batch_problem(result)
        assert "\n" not in problem and problem.startswith(
            f"{len(objects)} older copy(ies) not removed from other indices of the alias (line 1 (_id ")
        assert f"its older copy in {old_index} could not be removed" in problem
        assert "cluster_block_exception" in problem
        assert all(len(indices) == 2 for indices in where_held(es_client, alias).values()), "both copies kept"
    finally:
        es_client.indices.put_settings(index=old_index, settings={"index.blocks.write": None})
    healed = family.index(es_client, path, alias, BATCH, refresh=True)
    assert (healed.copies_removed, healed.copies_left) == (len(objects), 0)
    assert batch_counts(es_client, alias, [BATCH]) == {BATCH: len(objects)}


# --- through Dagster --------------------------------------------------------------------------

@pytest.fixture
def pipeline(es_url: str, index_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with FeedsEmulator(EmulatorConfig(objects_per_minute=8, seed=SEED)) as emulator:
        monkeypatch.setenv("VT_API_KEY", emulator.config.api_key)
        monkeypatch.setenv("VT_FEEDS", "files")
        yield {
            "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url),
            "vt_storage": VTStorageResource(root=str(tmp_path / "data")),
            "vt_summarizer": VTSummarizerResource(workers=1),
            "vt_elasticsearch": VTElasticsearchResource(url=es_url, index_prefix=index_prefix),
        }


def test_a_partition_materialized_again_after_rollover_passes_its_checks_and_is_not_requested_again(
    pipeline: dict, es_client: Elasticsearch, index_prefix: str
) -> None:
    run_setup(pipeline)
    [key] = recent_minutes(1, start_ago=GRACE_PARTITIONS + 170)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(chain(), resources=pipeline, instance=instance, tags=range_tags([key])).success
    root = Path(pipeline["vt_storage"].root)
    objects = {json.loads(line)["vt.id"] for line in summary_path(root, "files", key).read_text().splitlines()}
    aliases = [summary_alias(index_prefix, "files"), report_alias(index_prefix, "files")]
    for alias in aliases:
        rollover(es_client, alias)

    index_stages = [dg.AssetKey(["files", "summary_index"]), dg.AssetKey(["files", "report_cache"])]
    again = dg.materialize(chain(), resources=pipeline, instance=instance, tags=range_tags([key]),
                           selection=index_stages)
    assert again.success
    checks = [e.event_specific_data for e in again.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert [(c.check_name, c.passed) for c in checks] == [("documents_counted", True)]
    metadata = {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
                for e in again.get_asset_materialization_events()}
    for stage in ("summary_index", "report_cache"):
        assert (metadata[stage]["indexed"], metadata[stage]["copies_removed"]) == (len(objects), len(objects))
    for alias in aliases:
        assert all(len(indices) == 1 for indices in where_held(es_client, alias).values())
        assert batch_counts(es_client, alias, [key]) == {key: len(objects)}

    tick = evaluate_sensor(pipeline)
    keys = minute_partitions.get_partition_keys()
    for request in tick.run_requests:
        first, last = (request.tags[f"dagster/asset_partition_range_{end}"] for end in ("start", "end"))
        assert key not in keys[keys.index(first): keys.index(last) + 1], "a counted batch is never requested"


# --- setup --update and the current write index ------------------------------------------------

def edited_templates(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the project's template files with the summaries template edited."""
    templates = tmp_path / "index_templates"
    shutil.copytree(elastic.TEMPLATES_DIR, templates)
    path = templates / "vt_summaries.template.json"
    body = json.loads(path.read_text())
    edit(body)
    path.write_text(json.dumps(body))
    return templates


def test_setup_update_puts_a_new_field_on_the_current_write_index_without_a_rollover(
    es_client: Elasticsearch, index_prefix: str, tmp_path: Path
) -> None:
    setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    alias = summary_alias(index_prefix, "files")
    path = write_summaries(tmp_path, "files", BATCH, generate_objects("files", BATCH, SEED, 2))
    lines = [{**json.loads(line), "vt.behaviour.new_field": "x"} for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    refused = index_summary_file(es_client, path, alias=alias)
    assert refused.failed == len(lines) and "strict_dynamic_mapping_exception" in refused.errors[0]

    def add_field(body: dict[str, Any]) -> None:
        behaviour = body["template"]["mappings"]["properties"]["vt"]["properties"]["behaviour"]
        behaviour["properties"]["new_field"] = {"type": "keyword"}

    templates = edited_templates(tmp_path, add_field)
    actions = setup_elasticsearch(es_client, ["files"], prefix=index_prefix, templates_dir=templates, update=True)
    mapping = next(a for a in actions if a.kind == "mapping" and a.name == write_index(es_client, alias))
    assert mapping.status == "updated" and alias in mapping.detail
    assert index_summary_file(es_client, path, alias=alias).failed == 0
    again = setup_elasticsearch(es_client, ["files"], prefix=index_prefix, templates_dir=templates, update=True)
    assert {a.status for a in again if a.kind == "mapping"} == {"present"}
    assert not [a for a in setup_elasticsearch(es_client, ["files"], prefix=index_prefix, templates_dir=templates)
                if a.kind == "mapping"], "only --update touches the write indices"


def test_setup_update_says_a_conflicting_mapping_needs_a_rollover(
    es_client: Elasticsearch, index_prefix: str, tmp_path: Path
) -> None:
    setup_elasticsearch(es_client, ["files"], prefix=index_prefix)
    alias = summary_alias(index_prefix, "files")

    def retype(body: dict[str, Any]) -> None:
        body["template"]["mappings"]["properties"]["file"]["properties"]["size"] = {"type": "keyword"}

    templates = edited_templates(tmp_path, retype)
    actions = setup_elasticsearch(es_client, ["files"], prefix=index_prefix, templates_dir=templates, update=True)
    index = write_index(es_client, alias)
    [conflict] = [a for a in actions if a.kind == "mapping" and a.status == "skipped"]
    text = str(conflict)
    assert conflict.name == index and "\n" not in text
    assert "file.size" in text and f"POST {alias}/_rollover" in text
    assert next(a for a in actions if a.name == f"{index_prefix}-summaries").status == "updated"
    es_client.indices.rollover(alias=alias)
    mapping = es_client.indices.get_mapping(index=write_index(es_client, alias)).body
    assert next(iter(mapping.values()))["mappings"]["properties"]["file"]["properties"]["size"]["type"] == "keyword"
