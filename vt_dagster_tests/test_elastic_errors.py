"""An unreachable or silent cluster: every call fails fast with one line naming the URL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vt_dagster import elastic
from vt_dagster.elastic import (
    ElasticsearchUnavailable,
    EsSettings,
    batch_counts,
    index_summary_file,
    lookup,
    make_client,
    setup_elasticsearch,
)
from vt_dagster.emulator import generate_objects
from vt_dagster.local_es import free_port
from vt_dagster_tests.elastic_helpers import BATCH, SEED, write_summaries


def test_es_down_is_one_line_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = make_client(EsSettings(url=url))
    summaries = write_summaries(tmp_path, "files", BATCH, generate_objects("files", BATCH, SEED, 2))
    calls = [
        lambda: setup_elasticsearch(client, ["files"], prefix="vt"),
        lambda: index_summary_file(client, summaries, alias="vt-summaries-files"),
        lambda: batch_counts(client, "vt-summaries-files", [BATCH]),
        lambda: lookup(client, ["a" * 64], feeds=["files"]),
        lambda: elastic.alias_exists(client, "vt-summaries-files"),
        lambda: elastic.refresh_alias(client, "vt-summaries-files"),
    ]
    for call in calls:
        with pytest.raises(ElasticsearchUnavailable) as raised:
            call()
        message = str(raised.value)
        assert url in message and "\n" not in message and "unreachable" in message


def test_es_that_does_not_answer_fails_in_seconds_not_after_the_request_timeout(unanswering_es_url: str) -> None:
    client = make_client(EsSettings(url=unanswering_es_url, request_timeout=30))
    started = time.monotonic()
    with pytest.raises(ElasticsearchUnavailable, match=r"unreachable \(timed out\)") as raised:
        batch_counts(client, "vt-summaries-files", [BATCH])
    elapsed = time.monotonic() - started
    assert elapsed < elastic.CONNECT_TIMEOUT_S * (elastic.TRANSPORT_RETRIES + 1) + 2 <= 10
    assert unanswering_es_url in str(raised.value) and "\n" not in str(raised.value)
