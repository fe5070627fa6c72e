"""Lookup: a hash, URL, domain or IP gives its newest report, one search per feed asked for."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from vt_dagster.elastic import LookupKey, index_reports, lookup, lookup_keys, report_alias, report_doc_id
from vt_dagster.emulator import generate_objects
from vt_dagster_tests.elastic_helpers import (
    BATCH,
    NEWER,
    SEED,
    recorded_requests,
    sample,
    stored_report,
    write_raw_batch,
)


def test_lookup_keys_classify_each_kind_of_value() -> None:
    sha256 = "a" * 64
    url = "http://218.54.47.77/"
    assert lookup_keys("B" * 32) == [LookupKey("files", "attributes.md5", "b" * 32)]
    assert lookup_keys("c" * 40) == [LookupKey("files", "attributes.sha1", "c" * 40)]
    assert lookup_keys(sha256) == [LookupKey("files", "_id", sha256), LookupKey("urls", "_id", sha256)]
    assert lookup_keys(url) == [LookupKey("urls", "_id", hashlib.sha256(url.encode()).hexdigest()),
                                LookupKey("urls", "attributes.url", url)]
    assert lookup_keys("Tawuhoju.COM.") == [LookupKey("domains", "_id", report_doc_id("tawuhoju.com"))]
    assert lookup_keys("138.128.150.133") == [
        LookupKey("ip_addresses", "_id", report_doc_id("138.128.150.133"))]
    assert len(lookup_keys("2001:db8::1")) == 2
    assert lookup_keys("nonsense") == [] and lookup_keys("  ") == []


# --- against the node -------------------------------------------------------------------------

@pytest.fixture
def report_cache(es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path) -> dict[str, Any]:
    """The four real samples plus generated objects, each feed in its report alias."""
    objects = {
        "files": [sample(samples_dir, "msticpy_vt3_file_1.json"), *generate_objects("files", BATCH, SEED, 5)],
        "urls": [sample(samples_dir, "msticpy_vt3_url_0.json"), *generate_objects("urls", BATCH, SEED, 5)],
        "domains": [sample(samples_dir, "opencti_vt_test_domain.json")],
        "ip_addresses": [sample(samples_dir, "opencti_vt_test_ipv4.json")],
    }
    for feed, batch_objects in objects.items():
        path = write_raw_batch(tmp_path, feed, BATCH, [json.dumps(obj) for obj in batch_objects])
        result = index_reports(es_client, path, alias=report_alias(ready, feed), feed=feed, batch=BATCH,
                               refresh=True)
        assert (result.indexed, result.failed) == (len(batch_objects), 0)
    return objects


def test_lookup_finds_every_object_type_with_one_search_per_feed(
    es_client: Elasticsearch, ready: str, report_cache: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    file_attributes = report_cache["files"][0]["attributes"]
    url_object = report_cache["urls"][0]
    generated_url = report_cache["urls"][1]
    values = {
        file_attributes["sha256"].upper(): report_cache["files"][0]["id"],
        file_attributes["sha1"]: report_cache["files"][0]["id"],
        file_attributes["md5"]: report_cache["files"][0]["id"],
        url_object["attributes"]["url"]: url_object["id"],
        generated_url["id"]: generated_url["id"],
        generated_url["attributes"]["url"]: generated_url["id"],
        "TAWUHOJU.com": "tawuhoju.com",
        "138.128.150.133": "138.128.150.133",
        "f" * 64: None,
        "unknown.example": None,
        "nonsense": None,
    }
    feeds = ["files", "urls", "domains", "ip_addresses"]
    with recorded_requests(es_client, monkeypatch) as calls:
        found = lookup(es_client, list(values), feeds=feeds, prefix=ready)
    assert {value: (report or {}).get("id") for value, report in found.items()} == values
    assert sorted(calls) == sorted(f"POST /{report_alias(ready, feed)}/_search" for feed in feeds)
    assert found["138.128.150.133"]["attributes"]["as_owner"] == "CLOUD-SOUTH"
    assert found["TAWUHOJU.com"]["vt.feed"] == "domains"


def test_lookup_only_searches_the_feeds_asked_for(
    es_client: Elasticsearch, ready: str, report_cache: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = report_cache["files"][0]["id"]
    with recorded_requests(es_client, monkeypatch) as calls:
        assert lookup(es_client, [sha256, "tawuhoju.com"], feeds=["domains"], prefix=ready) == {
            sha256: None, "tawuhoju.com": report_cache["domains"][0]["data"] | {
                "vt.feed": "domains", "vt.batch": BATCH, "vt.batch_time": "2024-01-15T12:00:00Z"}}
    assert calls == [f"POST /{report_alias(ready, 'domains')}/_search"]


def test_lookup_returns_the_newest_report_across_rolled_over_indices(
    es_client: Elasticsearch, ready: str, tmp_path: Path, samples_dir: Path
) -> None:
    alias = report_alias(ready, "files")
    obj = sample(samples_dir, "msticpy_vt3_file_1.json")
    newer = {**obj, "attributes": {**obj["attributes"], "times_submitted": 999}}
    index_reports(es_client, write_raw_batch(tmp_path, "files", NEWER, [json.dumps(newer)]),
                  alias=alias, feed="files", batch=NEWER)
    es_client.indices.rollover(alias=alias)
    # An older copy in the new write index, as another writer sharing the alias (or a crash
    # between the indexer's writes and its deletes) can leave it...
    es_client.index(index=alias, id=obj["id"], document={**obj, "vt.batch": BATCH,
                                                         "vt.batch_time": "2024-01-15T12:00:00Z"})
    assert len(stored_report(es_client, alias, obj["id"])) == 2
    # ...and lookups still answer with the newest batch.
    found = lookup(es_client, [obj["id"], obj["attributes"]["md5"]], feeds=["files"], prefix=ready)
    assert {report["vt.batch"] for report in found.values()} == {NEWER}
    assert found[obj["id"]]["attributes"]["times_submitted"] == 999
