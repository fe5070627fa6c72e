"""The local Elasticsearch node: a real server from Maven Central, not a stand-in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest
import requests
from elasticsearch import Elasticsearch

from vt_dagster.local_es import cache_root


def test_session_node_is_healthy(es_url: str) -> None:
    health = requests.get(f"{es_url}/_cluster/health", timeout=10).json()
    assert health["status"] in ("green", "yellow")
    assert health["number_of_nodes"] >= 1


def test_index_search_count_round_trip(es_client: Elasticsearch, index_prefix: str) -> None:
    index = f"{index_prefix}-roundtrip"
    es_client.indices.create(
        index=index,
        mappings={"properties": {"sha256": {"type": "keyword"}, "seen": {"type": "date", "format": "epoch_second"}}},
    )
    docs = [{"sha256": f"{i:064x}", "seen": 1700000000 + i} for i in range(5)]
    for number, doc in enumerate(docs):
        es_client.index(index=index, id=str(number), document=doc)
    es_client.indices.refresh(index=index)

    assert es_client.count(index=index)["count"] == 5
    hit = es_client.search(index=index, query={"term": {"sha256": f"{3:064x}"}})["hits"]["hits"]
    assert [h["_id"] for h in hit] == ["3"]
    newest = es_client.search(index=index, size=1, sort=[{"seen": "desc"}])["hits"]["hits"][0]
    assert newest["_source"] == docs[4]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vt_dagster.cli", "local-es", *args],
        capture_output=True, text=True, timeout=300,
    )


@pytest.mark.service
def test_cli_start_reuse_stop_and_restart_keeps_data() -> None:
    home = cache_root() / "nodes" / f"pytest-cli-{uuid.uuid4().hex[:8]}"
    where = ["--home", str(home), "--port", "0"]
    try:
        started = _cli("start", *where)
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url.startswith("http://127.0.0.1:")

        again = _cli("start", *where)
        assert again.stdout.strip().splitlines()[-1] == url, "a second start must reuse the node"

        status = _cli("status", *where)
        assert status.returncode == 0 and url in status.stdout and "health green" in status.stdout

        client = Elasticsearch(url)
        client.index(index="restart-check", id="1", document={"v": 1}, refresh=True)
        client.close()

        stopped = _cli("stop", *where)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        gone = _cli("status", *where)
        assert gone.returncode == 3 and "not running" in gone.stdout
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/_cluster/health", timeout=5)

        restarted = _cli("start", *where)
        assert restarted.returncode == 0, restarted.stderr
        client = Elasticsearch(restarted.stdout.strip().splitlines()[-1])
        assert client.count(index="restart-check")["count"] == 1
        client.close()
    finally:
        _cli("stop", *where)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.service
def test_start_refuses_a_port_taken_by_another_process(es_url: str) -> None:
    if os.environ.get("ES_URL"):
        pytest.skip("the session node is external: no local port to collide with")
    port = es_url.rsplit(":", 1)[1]
    home = cache_root() / "nodes" / f"pytest-port-{uuid.uuid4().hex[:8]}"
    try:
        clash = _cli("start", "--home", str(home), "--port", port)
        assert clash.returncode == 2
        assert f"port {port}" in clash.stderr and "already taken" in clash.stderr
        assert len(clash.stderr.strip().splitlines()) == 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
