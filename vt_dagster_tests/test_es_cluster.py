"""The pipeline on a real 3-node cluster on loopback: health, the pipeline through every node, and
a node killed with SIGKILL in the middle of a backfill's indexing losing and doubling nothing."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import requests
from elasticsearch import Elasticsearch

from vt_dagster.elastic import batch_counts, report_alias, summary_alias
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
from vt_dagster.local_cluster import TRANSPORT_OFFSET, LocalCluster
from vt_dagster.resources import VTElasticsearchResource, VTFeedsResource, VTStorageResource, VTSummarizerResource
from vt_dagster.storage import summary_path
from vt_dagster_tests.bulk_gate import BulkGate
from vt_dagster_tests.conftest import CLUSTER_NODES, local_es_cli
from vt_dagster_tests.test_es_pipeline import chain, range_tags, recent_minutes, run_setup

pytestmark = pytest.mark.timeout(600)  # the first test waits for the cluster to start, the last for a node
BACKFILL_BATCHES = 6
KILL_AT_BULK_REQUEST = 3
"""With two streams, one batch per `_bulk` request: when the third arrives, one or two batches
are indexed, the others not."""


@pytest.fixture
def emulator():
    with FeedsEmulator(EmulatorConfig(objects_per_minute=6, seed=33)) as running:
        yield running


def pipeline_resources(emulator: FeedsEmulator, url: str, prefix: str, root: Path,
                       monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("VT_API_KEY", emulator.config.api_key)
    monkeypatch.setenv("VT_FEEDS", "files")
    return {
        "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_API_KEY"), api_url=emulator.base_url),
        "vt_storage": VTStorageResource(root=str(root)),
        "vt_summarizer": VTSummarizerResource(workers=1),
        "vt_elasticsearch": VTElasticsearchResource(url=url, index_prefix=prefix),
    }


def expected_documents(root: Path, keys: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(summaries per batch, reports per batch) the aliases must hold: one summary per distinct
    object of a batch, one report per object, in the newest batch holding it."""
    summaries: dict[str, int] = {}
    newest: dict[str, str] = {}
    for key in keys:
        ids = {json.loads(line)["vt.id"] for line in summary_path(root, "files", key).read_text().splitlines()}
        summaries[key] = len(ids)
        newest.update(dict.fromkeys(ids, key))
    reports = Counter(newest.values())
    return summaries, {key: reports.get(key, 0) for key in keys}


def assert_every_batch_has_exactly_its_documents(client: Elasticsearch, prefix: str, root: Path,
                                                 keys: list[str]) -> None:
    summaries, reports = expected_documents(root, keys)
    for alias, expected in ((summary_alias(prefix, "files"), summaries), (report_alias(prefix, "files"), reports)):
        client.indices.refresh(index=alias)
        assert batch_counts(client, alias, keys) == expected, alias
        assert client.count(index=alias)["count"] == sum(expected.values()), f"{alias} holds stray documents"


def shard_copies(client: Elasticsearch, index: str) -> list[dict]:
    return client.cat.shards(index=index, format="json", h="index,prirep,state,docs,node").body


def test_the_cluster_is_green_with_three_nodes_on_their_own_ports(es_cluster: LocalCluster) -> None:
    first = int(es_cluster.urls[0].rsplit(":", 1)[1])
    assert es_cluster.urls == [f"http://127.0.0.1:{first + n}" for n in range(CLUSTER_NODES)]
    for url in es_cluster.urls:
        health = requests.get(f"{url}/_cluster/health", timeout=10).json()
        assert (health["status"], health["number_of_nodes"], health["number_of_data_nodes"]) == ("green", 3, 3)
    nodes = requests.get(f"{es_cluster.urls[0]}/_nodes/http,transport", timeout=10).json()["nodes"].values()
    assert sorted((n["name"], n["http"]["publish_address"], n["transport"]["publish_address"]) for n in nodes) == [
        (f"node-{n + 1}", f"127.0.0.1:{first + n}", f"127.0.0.1:{first + TRANSPORT_OFFSET + n}")
        for n in range(CLUSTER_NODES)
    ]

    flags = ["--nodes", "3", "--home", str(es_cluster.home), "--port", "0"]
    status = local_es_cli("status", *flags)
    assert status.returncode == 0 and "3 of 3 nodes running, health green" in status.stdout
    again = local_es_cli("start", *flags)
    assert (again.returncode, again.stdout.strip()) == (0, es_cluster.urls[0]), "a running cluster is reused"
    wrong = local_es_cli("status", "--nodes", "2", "--home", str(es_cluster.home))
    assert wrong.returncode == 2 and "holds a 3-node cluster" in wrong.stderr


@pytest.mark.parametrize("node", range(CLUSTER_NODES), ids=lambda n: f"node-{n + 1}")
def test_the_pipeline_through_any_node_indexes_every_batch_once_with_one_replica(
    node: int, es_cluster: LocalCluster, cluster_client: Elasticsearch, cluster_prefix: str, emulator,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    resources = pipeline_resources(emulator, es_cluster.urls[node], cluster_prefix, tmp_path, monkeypatch)
    setup = run_setup(resources)
    assert "replicas from settings: 1 (3 data nodes, ES_INDEX_REPLICAS unset)" in setup["actions"]
    for alias in (summary_alias(cluster_prefix, "files"), report_alias(cluster_prefix, "files")):
        settings = cluster_client.indices.get_settings(index=alias).body
        assert [s["settings"]["index"]["number_of_replicas"] for s in settings.values()] == ["1"]
    keys = recent_minutes(2, start_ago=140 + 10 * node)
    result = dg.materialize(chain(), resources=resources, instance=dg.DagsterInstance.ephemeral(),
                            tags=range_tags(keys))
    assert result.success
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert [(c.check_name, c.passed) for c in checks if c.check_name == "documents_counted"] == [
        ("documents_counted", True)]
    assert_every_batch_has_exactly_its_documents(cluster_client, cluster_prefix, tmp_path, keys)


def test_a_node_killed_during_a_backfill_loses_and_doubles_nothing(
    es_cluster: LocalCluster, cluster_client: Elasticsearch, cluster_prefix: str, emulator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL of the node holding the primary shard a `_bulk` request is about to write to, in
    the middle of a backfill's indexing; restart, green again: every batch holds exactly its
    documents, on every shard copy."""
    direct = pipeline_resources(emulator, es_cluster.urls[0], cluster_prefix, tmp_path, monkeypatch)
    run_setup(direct)
    indices = f"{cluster_prefix}-*"
    # Both copies of each index away from node-1, the node the pipeline talks to: it stays up and
    # only coordinates, while the primary written to is on a node that can be killed.
    cluster_client.indices.put_settings(index=indices, settings={"index.routing.allocation.exclude._name": "node-1"})
    cluster_client.cluster.health(index=indices, wait_for_status="green", wait_for_no_relocating_shards=True,
                                  timeout="120s")
    keys = recent_minutes(BACKFILL_BATCHES, start_ago=100)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(chain()[:2], resources=direct, instance=instance, tags=range_tags(keys)).success

    at_kill: dict[str, int] = {}
    killed: list[str] = []
    restarted: list[str | BaseException] = []

    def restart() -> None:
        try:
            restarted.append(es_cluster.start(timeout=420))
        except BaseException as exc:  # reported by the test thread
            restarted.append(exc)

    restarter = threading.Thread(target=restart, name="restart-node")

    def kill_the_primary(bulk_body: bytes) -> None:
        """Count what is indexed, then kill the node holding the primary this request writes to."""
        for family in ("summaries", "reports"):
            alias = f"{cluster_prefix}-{family}-files"
            cluster_client.indices.refresh(index=alias)
            at_kill[family] = sum(1 for n in batch_counts(cluster_client, alias, keys).values() if n)
        alias = json.loads(bulk_body.split(b"\n", 1)[0])["index"]["_index"]
        [primary] = [c["node"] for c in shard_copies(cluster_client, alias) if c["prirep"] == "p"]
        victim = next(node for node in es_cluster.members() if node.name == primary)
        victim.kill()
        assert not victim.status().running
        killed.append(primary)
        restarter.start()

    with BulkGate(es_cluster.urls[0], KILL_AT_BULK_REQUEST, kill_the_primary) as gate:
        gated = VTElasticsearchResource(url=gate.url, index_prefix=cluster_prefix)
        through_gate = {**direct, "vt_elasticsearch": gated}
        run = dg.materialize(chain()[2:], resources=through_gate, instance=instance, tags=range_tags(keys),
                             raise_on_error=False)
        if killed:
            restarter.join(timeout=480)
        assert restarted and restarted[0] == es_cluster.urls[0], f"the node did not come back: {restarted}"
        if not run.success:  # what an operator (or the sensor) does: the same range again
            run = dg.materialize(chain()[2:], resources=through_gate, instance=instance, tags=range_tags(keys))

    assert killed and killed[0] != "node-1" and gate.bulk_requests > KILL_AT_BULK_REQUEST
    assert 0 < sum(at_kill.values()) < 2 * BACKFILL_BATCHES, f"some, not all, batches indexed at the kill: {at_kill}"
    assert run.success
    health = cluster_client.cluster.health(wait_for_status="green", timeout="120s")
    assert (health["status"], health["number_of_nodes"]) == ("green", 3)
    assert_every_batch_has_exactly_its_documents(cluster_client, cluster_prefix, tmp_path, keys)
    for family in ("summaries", "reports"):
        copies = shard_copies(cluster_client, f"{cluster_prefix}-{family}-files-*")
        assert len(copies) == 2 and len({c["docs"] for c in copies}) == 1, f"copies differ: {copies}"
        assert all(c["state"] == "STARTED" for c in copies)
