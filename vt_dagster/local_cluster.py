"""A real multi-node Elasticsearch cluster on loopback: several `LocalElasticsearch` nodes of the
same Maven Central distribution, each with its own home, HTTP and transport port.

Ports: the first node's HTTP port is P and the others follow (P, P+1, ...); transport ports are
P+100, P+101, ... (9200 gives Elasticsearch's usual 9300). Discovery stays on loopback:
`discovery.seed_hosts` lists the cluster's own transport ports only, so two clusters on one
machine never meet, and `cluster.initial_master_nodes` names the nodes on the cluster's first
start only (Elasticsearch's rule: a formed cluster must not be bootstrapped again).

The cluster home holds `cluster.json` (its name, node count, ports, whether it formed) and one
node home per node (`node-1`, ...). `start` starts the nodes that do not run (all on a first
start, or one that died) and returns the first node's URL once the cluster is green with every
node: green, not yellow, because yellow on a cluster means a shard copy has no node yet, which
is exactly what waiting for the cluster is meant to rule out.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vt_dagster.local_es import (
    DEFAULT_HEAP, DEFAULT_PORT, ES_VERSION, STATE_FILE, Launched, LocalElasticsearch,
    LocalElasticsearchError, NodeStatus, cache_root, free_port, health_report, port_in_use, wait_for_health,
)

CLUSTER_FILE = "cluster.json"
MAX_NODES = 9
TRANSPORT_OFFSET = 100
"""A node's transport port is its HTTP port plus this: the HTTP and transport ranges of up to
MAX_NODES nodes never overlap."""


def default_cluster_home() -> Path:
    return cache_root() / "clusters" / "default"


class ClusterNode(LocalElasticsearch):
    """One node of a loopback cluster: fixed transport port, seeds = the cluster's transport ports."""

    def __init__(self, home: Path, port: int, heap: str, version: str, *, name: str, cluster_name: str,
                 transport_port: int, seed_ports: list[int], bootstrap_masters: list[str] | None) -> None:
        super().__init__(home=home, port=port, heap=heap, version=version)
        self.name = name
        self.cluster_name = cluster_name
        self.transport_port = transport_port
        self.seed_ports = seed_ports
        self.bootstrap_masters = bootstrap_masters

    def node_settings(self, port: int) -> dict[str, str]:
        settings = {
            "cluster.name": self.cluster_name,
            "node.name": self.name,
            "http.port": str(port),
            "transport.port": str(self.transport_port),
            "discovery.seed_hosts": ",".join(f"127.0.0.1:{p}" for p in self.seed_ports),
        }
        if self.bootstrap_masters:
            settings["cluster.initial_master_nodes"] = ",".join(self.bootstrap_masters)
        return settings


@dataclass
class ClusterStatus:
    """Every node's status and the cluster's health as the first running node reports it."""

    name: str
    nodes: list[tuple[str, NodeStatus]]
    health: dict | None = None

    @property
    def running(self) -> bool:
        """Every node runs (exit code 0 of `status`)."""
        return all(status.running for _, status in self.nodes)

    def describe(self) -> str:
        up = sum(status.running for _, status in self.nodes)
        if not up:
            return f"local Elasticsearch cluster: not running ({len(self.nodes)} nodes)"
        health = "no answer" if self.health is None else (
            f"health {self.health.get('status')}, {self.health.get('number_of_nodes')} node(s) joined")
        lines = [f"local Elasticsearch cluster {self.name}: {up} of {len(self.nodes)} nodes running, {health}"]
        for name, status in self.nodes:
            lines.append(f"  {name}: " + (f"{status.url} (pid {status.pid})" if status.running else "not running"))
        return "\n".join(lines)


class LocalCluster:
    """`nodes` nodes under one home, started, watched and stopped together."""

    def __init__(self, nodes: int = 3, home: Path | None = None, port: int = DEFAULT_PORT,
                 heap: str = DEFAULT_HEAP, version: str = ES_VERSION) -> None:
        if not 2 <= nodes <= MAX_NODES:
            raise ValueError(f"a local cluster has 2 to {MAX_NODES} nodes, not {nodes}")
        self.size = nodes
        self.home = (home or default_cluster_home()).resolve()
        self.port = port
        self.heap = heap
        self.version = version

    @property
    def state_path(self) -> Path:
        return self.home / CLUSTER_FILE

    def _read_state(self) -> dict | None:
        """The cluster's record; a home holding another number of nodes, or a single node, is refused."""
        if (self.home / STATE_FILE).exists():
            raise LocalElasticsearchError(f"{self.home} holds a single node, not a cluster: drop --nodes or "
                                          "choose another --home")
        try:
            state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            raise LocalElasticsearchError(f"{self.state_path} is not valid JSON: delete the cluster's home") from None
        if state.get("nodes") != self.size:
            raise LocalElasticsearchError(f"{self.home} holds a {state.get('nodes')}-node cluster, not "
                                          f"{self.size} nodes: pass --nodes {state.get('nodes')} or another --home")
        return state

    def _write_state(self, state: dict) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_path)

    def members(self, state: dict | None = None) -> list[ClusterNode]:
        """The cluster's nodes as recorded (ports of its last start), or as `port` would place them."""
        state = state or self._read_state() or self._new_state(self.port)
        first = state["port"]
        names = [f"node-{n}" for n in range(1, self.size + 1)]
        transports = [first + TRANSPORT_OFFSET + n for n in range(self.size)]
        return [
            ClusterNode(self.home / name, first + n, self.heap, self.version, name=name,
                        cluster_name=state["name"], transport_port=transports[n], seed_ports=transports,
                        bootstrap_masters=None if state.get("formed") else names)
            for n, name in enumerate(names)
        ]

    def _new_state(self, port: int) -> dict:
        return {"name": f"vt-dagster-{uuid.uuid4().hex[:8]}", "nodes": self.size, "port": port, "formed": False}

    def status(self) -> ClusterStatus:
        state = self._read_state()
        if state is None:
            return ClusterStatus("(never started)", [(f"node-{n}", NodeStatus(False)) for n in range(1, self.size + 1)])
        statuses = [(node.name, node.status()) for node in self.members(state)]
        answering = next((status.url for _, status in statuses if status.running), None)
        return ClusterStatus(state["name"], statuses, health_report(answering) if answering else None)

    @property
    def urls(self) -> list[str]:
        """Every node's HTTP URL, the first node's first."""
        return [f"http://127.0.0.1:{node.port}" for node in self.members()]

    def start(self, timeout: float = 180.0) -> str:
        """Start every node that does not run; the first node's URL once the cluster is green
        with all its nodes. On a first start that fails, the nodes started are stopped again."""
        state = self._read_state()
        nodes = self.members(state) if state else []
        running = [node for node in nodes if node.status().running]
        if running:
            if self.port not in (0, state["port"]):
                raise LocalElasticsearchError(f"the cluster in {self.home} runs with its first node on port "
                                              f"{state['port']}, not {self.port}: stop it first")
        else:
            state = {**(state or self._new_state(0)), "port": self._first_port()}
            self._write_state(state)
            nodes = self.members(state)
        launched: list[Launched] = []
        deadline = time.monotonic() + timeout
        try:
            for node in nodes:
                if node not in running:
                    launched.append(node.launch())
            # The first node, then each node started now, from its own URL: right after a node
            # died the others may still count it, while a new one answers only once it joined.
            for url in dict.fromkeys([nodes[0].url, *(node.url for node in launched)]):
                wait_for_health(url, max(deadline - time.monotonic(), 1), launched, ready=self._ready,
                                wanted=f"green with {self.size} nodes")
        except LocalElasticsearchError:
            if not running:
                self.stop()
            raise
        if not state.get("formed"):
            self._write_state({**state, "formed": True})
        return nodes[0].url

    def _first_port(self) -> int:
        """`port`, or a first port whose whole HTTP and transport ranges are free."""
        if self.port != 0:
            return self.port
        for _ in range(100):
            first = free_port()
            ports = [first + n + offset for offset in (0, TRANSPORT_OFFSET) for n in range(self.size)]
            if ports[-1] <= 65535 and not any(port_in_use(port) for port in ports):
                return first
        raise LocalElasticsearchError(f"found no {self.size} free HTTP and transport ports in a row on 127.0.0.1")

    def _ready(self, report: dict) -> bool:
        return report.get("status") == "green" and report.get("number_of_nodes") == self.size

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop every node at once (SIGTERM, then SIGKILL after `timeout`); False if none ran."""
        if self._read_state() is None:
            return False
        nodes = self.members()
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            stopped = list(pool.map(lambda node: node.stop(timeout), nodes))
        return any(stopped)
