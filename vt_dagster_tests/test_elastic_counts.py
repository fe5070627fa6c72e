"""Batch counts: documents per batch, present or absent, a week of minutes, in one request."""

from __future__ import annotations

from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from vt_dagster.elastic import batch_counts, index_summary_file, summary_alias
from vt_dagster.emulator import generate_objects
from vt_dagster_tests.elastic_helpers import SEED, recorded_requests, write_summaries


def test_batch_counts_are_exact_for_present_and_absent_batches_in_one_request(
    es_client: Elasticsearch, ready: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = summary_alias(ready, "urls")
    expected: dict[str, int] = {}
    for minute, batch in enumerate(("202401151200", "202401151201", "202401151203")):
        objects = generate_objects("urls", batch, SEED, 5 + 4 * minute)
        index_summary_file(es_client, write_summaries(tmp_path, "urls", batch, objects), alias=alias)
        expected[batch] = len(objects)
    es_client.indices.refresh(index=alias)
    asked = ["202401151203", "202401151202", "202401151200", "202401151201", "202401151159"]

    with recorded_requests(es_client, monkeypatch) as calls:
        counts = batch_counts(es_client, alias, asked)
    assert calls == [f"POST /{alias}/_search"]
    assert list(counts) == asked
    assert counts == {**expected, "202401151202": 0, "202401151159": 0}
    assert batch_counts(es_client, summary_alias(ready, "domains"), asked) == dict.fromkeys(asked, 0)


def test_batch_counts_answer_a_week_of_minutes_in_one_request(
    es_client: Elasticsearch, ready: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = summary_alias(ready, "files")
    week = [f"2024011{day}{hour:02d}{minute:02d}" for day in range(1, 8)
            for hour in range(24) for minute in range(60)]
    assert len(week) == 10_080
    with recorded_requests(es_client, monkeypatch) as calls:
        counts = batch_counts(es_client, alias, week)
    assert len(calls) == 1 and counts == dict.fromkeys(week, 0)
