"""What the Elasticsearch tests share: batch files to index, the requests a client sends, a stored report."""

from __future__ import annotations

import bz2
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from vt_dagster.storage import raw_batch_path, summary_path
from vt_dagster.summarize import summarize_object
from vt_dagster.whitelist import UrlWhitelist

BATCH = "202401151200"
NEWER = "202401151300"
SEED = 7


def write_summaries(root: Path, feed: str, batch: str, objects: list[dict[str, Any]]) -> Path:
    """Summaries of `objects` as the summaries asset writes them (NDJSON)."""
    path = summary_path(root, feed, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    whitelist = UrlWhitelist.default()
    lines = [json.dumps(summarize_object(obj, feed=feed, batch=batch, whitelist=whitelist)[0])
             for obj in objects]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_raw_batch(root: Path, feed: str, batch: str, lines: list[str]) -> Path:
    path = raw_batch_path(root, feed, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress("".join(line + "\n" for line in lines).encode("utf-8")))
    return path


def sample(samples_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((samples_dir / name).read_text(encoding="utf-8"))


@contextmanager
def recorded_requests(client: Elasticsearch, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every HTTP request the client sends, as "METHOD /path" (the transport is wrapped, so
    whatever the code under test does is seen, however it builds its requests)."""
    calls: list[str] = []
    send = client.transport.perform_request

    def recording(method: str, target: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"{method} {target.split('?')[0]}")
        return send(method, target, *args, **kwargs)

    monkeypatch.setattr(client.transport, "perform_request", recording)
    yield calls
    monkeypatch.undo()


def stored_report(client: Elasticsearch, alias: str, doc_id: str) -> list[dict[str, Any]]:
    client.indices.refresh(index=alias)
    return [hit["_source"] for hit in
            client.search(index=alias, query={"ids": {"values": [doc_id]}})["hits"]["hits"]]
