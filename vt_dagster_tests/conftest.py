"""Shared fixtures: one real Elasticsearch per test session, unique index prefixes, samples.

Integration tests talk to a real node: `ES_URL` when given (a full cluster, ILM included),
else the local node from Maven Central started once for the session and stopped after. The
cluster tests get their own 3-node cluster on loopback (`es_cluster`), started once for the
session as a user starts it, with `vt-dagster local-es start --nodes 3`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from elasticsearch import Elasticsearch

from vt_dagster.local_cluster import LocalCluster
from vt_dagster.local_es import LocalElasticsearch, cache_root

if TYPE_CHECKING:
    from vt_dagster.emulator import FeedsEmulator
    from vt_dagster.vt_client import FeedsClient

# Tests never phone home (this machine has no network beyond package registries anyway).
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "vt_samples"
SERVICE_FIXTURES = {
    "es_url": "es", "es_client": "es", "index_prefix": "es", "emulator": "service", "feeds_client": "service", "secret_emulator": "service",
    "demo": "service", "es_cluster": "es",
}
CLUSTER_NODES = 3
CLUSTER_START_TIMEOUT_S = 420
# The shared demo run: DEMO_HOURS of every enabled feed (files, urls) at DEMO_OBJECTS a minute.
DEMO_HOURS = 0.1
DEMO_PARTITIONS = round(DEMO_HOURS * 60)
DEMO_OBJECTS = 20
DEMO_READY_TIMEOUT_S = 480
DEMO_TEST_TIMEOUT_S = 600


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark tests by the services they use, so `-m unit` / `-m es` select honestly.

    Done as each test is collected, before `-m` filtering looks at the markers.
    """
    fixtures = set(getattr(item, "fixturenames", ()))
    for fixture, marker in SERVICE_FIXTURES.items():
        if fixture in fixtures:
            item.add_marker(marker)
    if not any(item.get_closest_marker(name) for name in ("es", "service", "browser")):
        item.add_marker("unit")


def _uses(item: pytest.Item | None, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that share the running demo go last, together, so its servers do not idle
    through the rest of the suite (they stop at the end of the session). The first of them
    waits for the demo (and maybe the Elasticsearch node) to start: more than the default
    timeout on a busy 2-core machine. The cluster tests run together just before them, and the
    cluster stops after the last of them (`pytest_runtest_teardown`): idle, its three nodes
    still take ~7 % of a core."""
    items.sort(key=lambda item: (_uses(item, "demo"), _uses(item, "es_cluster")))
    for item in items:
        if _uses(item, "demo"):
            item.add_marker(pytest.mark.timeout(DEMO_TEST_TIMEOUT_S))


_cluster_stoppers: list[Callable[[], None]] = []


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the session's cluster once the (contiguous) tests that use it are done."""
    if _uses(item, "es_cluster") and not _uses(nextitem, "es_cluster"):
        for stop in list(_cluster_stoppers):
            stop()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real VT objects shipped in vt_dagster_tests/data/vt_samples (see its SOURCES.md)."""
    if not SAMPLES_DIR.is_dir():
        pytest.fail(f"VT samples folder {SAMPLES_DIR} is missing from the repository")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    given = os.environ.get("ES_URL")
    if given:
        yield given.rstrip("/")
        return
    # Under the cache root, not pytest's tmp dir: the node may run as an unprivileged user
    # that cannot enter root's private temp folders.
    home = cache_root() / "nodes" / f"pytest-{os.getpid()}"
    node = LocalElasticsearch(home=home, port=0)
    try:
        yield node.start()
    finally:
        node.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def es_client(es_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(es_url, request_timeout=60)
    yield client
    client.close()


def local_es_cli(*args: str, timeout: float = CLUSTER_START_TIMEOUT_S + 60) -> subprocess.CompletedProcess[str]:
    """`vt-dagster local-es ARGS` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "vt_dagster", "local-es", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def es_cluster() -> Iterator[LocalCluster]:
    """A 3-node cluster on free loopback ports, started once by `local-es start --nodes 3` and
    stopped by `local-es stop` with the same flags after the last test using it (or at the end
    of the session); its home is removed after."""
    home = cache_root() / "clusters" / f"pytest-{os.getpid()}"
    flags = ["--nodes", str(CLUSTER_NODES), "--port", "0", "--home", str(home)]
    stopped: list[subprocess.CompletedProcess[str]] = []

    def stop() -> None:
        if not stopped:
            stopped.append(local_es_cli("stop", *flags))
            shutil.rmtree(home, ignore_errors=True)

    _cluster_stoppers.append(stop)
    try:
        started = local_es_cli("start", *flags, "--timeout", str(CLUSTER_START_TIMEOUT_S))
        if started.returncode != 0:
            pytest.fail(f"local-es start --nodes {CLUSTER_NODES} failed: {started.stderr.strip()[-2000:]}")
        cluster = LocalCluster(CLUSTER_NODES, home=home, port=0)
        assert started.stdout.strip().splitlines()[-1] == cluster.urls[0]
        yield cluster
    finally:
        stop()
        _cluster_stoppers.remove(stop)
    assert stopped[0].returncode == 0 and "stopped" in stopped[0].stdout, stopped[0].stdout + stopped[0].stderr


@pytest.fixture(scope="session")
def cluster_client(es_cluster: LocalCluster) -> Iterator[Elasticsearch]:
    """A client of the cluster's first node."""
    client = Elasticsearch(es_cluster.urls[0], request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def cluster_prefix(cluster_client: Elasticsearch) -> Iterator[str]:
    """A prefix no other test uses on the cluster; everything under it is deleted afterwards."""
    prefix = _unique_prefix()
    yield prefix
    _delete_everything_under(cluster_client, prefix)


def _unique_prefix() -> str:
    return f"vt-test-{uuid.uuid4().hex[:10]}"


def _delete_everything_under(es_client: Elasticsearch, prefix: str) -> None:
    indices = es_client.indices.get(index=f"{prefix}*", expand_wildcards="all", allow_no_indices=True)
    if indices:
        es_client.indices.delete(index=",".join(indices))
    found = es_client.options(ignore_status=404).indices.get_index_template(name=f"{prefix}*")
    templates = found.get("index_templates", [])
    for template in templates:
        es_client.indices.delete_index_template(name=template["name"])


@pytest.fixture
def index_prefix(es_client: Elasticsearch) -> Iterator[str]:
    """A prefix no other test uses; everything created under it is deleted afterwards."""
    prefix = _unique_prefix()
    yield prefix
    _delete_everything_under(es_client, prefix)


@pytest.fixture
def emulator() -> Iterator[FeedsEmulator]:
    """A real VT feeds emulator on loopback, small batches, real clock."""
    from vt_dagster.emulator import EmulatorConfig, FeedsEmulator

    with FeedsEmulator(EmulatorConfig(objects_per_minute=3, seed=7)) as running:
        yield running


@pytest.fixture
def feeds_client(emulator: FeedsEmulator) -> Iterator[FeedsClient]:
    """A client of the emulator whose retries back off in milliseconds, not seconds."""
    from vt_dagster.vt_client import FeedsClient, RetryPolicy

    retry = RetryPolicy(max_attempts=4, backoff_base_s=0.01, backoff_cap_s=0.05,
                        not_available_wait_s=0.01, not_available_attempts=2)
    with FeedsClient(api_key=emulator.config.api_key, api_url=emulator.base_url, retry=retry,
                     read_timeout_s=10) as client:
        yield client


@pytest.fixture
def process_umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask inside a test; the one before is restored afterwards."""
    before = os.umask(0o022)
    os.umask(before)
    yield os.umask
    os.umask(before)


@pytest.fixture
def unanswering_es_url() -> Iterator[str]:
    """A loopback URL where connecting hangs, as with a host that drops packets: the port
    listens but its accept queue is full and nothing ever accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    waiting = [socket.socket() for _ in range(4)]
    try:
        for client in waiting:
            client.setblocking(False)
            client.connect_ex(address)
        try:
            socket.create_connection(address, timeout=0.5).close()
            pytest.skip("this kernel accepts connections beyond a full listen backlog")
        except TimeoutError:
            pass
        yield f"http://{address[0]}:{address[1]}"
    finally:
        for client in waiting:
            client.close()
        server.close()


@dataclass(frozen=True)
class DemoRun:
    """The demo as a user starts it, up to its "Dagster UI:" line; its UI still serving."""

    output: str
    ui_url: str
    dagster_home: Path

    @property
    def backfill_id(self) -> str:
        found = re.search(r"^Backfill (\w+): ", self.output, re.MULTILINE)
        assert found, self.output[-3000:]
        return found.group(1)


@pytest.fixture(scope="session")
def demo(es_url: str, es_client: Elasticsearch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """`vt-dagster demo` run once for the session (small backfill, the session's Elasticsearch).

    At the end it gets Ctrl-C (SIGINT), as a user stops it: it must exit 0 and leave no process
    of its Dagster instance running (webserver, daemon, code server, run workers).
    """
    from vt_dagster.local_es import free_port
    from vt_dagster_tests.processes import processes_with_env

    workdir = tmp_path_factory.mktemp("demo")
    prefix = _unique_prefix()
    env = {**os.environ, "ES_URL": es_url, "ES_INDEX_PREFIX": prefix, "PYTHONUNBUFFERED": "1"}
    for name in ("VT_API_KEY", "VT_API_URL", "VT_DATA_DIR", "DAGSTER_HOME", "VT_FEEDS"):
        env.pop(name, None)
    port = free_port()
    stderr = open(workdir / "demo.stderr", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "vt_dagster", "demo", "--data-dir", "data", "--dagster-home", "home",
         "--hours", str(DEMO_HOURS), "--objects-per-minute", str(DEMO_OBJECTS), "--ui-port", str(port)],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
    )
    home = workdir / "home"
    try:
        output: list[str] = []
        deadline = time.monotonic() + DEMO_READY_TIMEOUT_S
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if line.startswith("Dagster UI:") or time.monotonic() > deadline:
                break
        text = "".join(output)
        url = f"http://127.0.0.1:{port}"
        if f"Dagster UI: {url}" not in text:
            stderr_tail = (workdir / "demo.stderr").read_text()[-2000:]
            pytest.fail(f"the demo did not reach its UI line:\n{text[-3000:]}\n{stderr_tail}")
        yield DemoRun(text, url, home)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = None
        stderr.close()
        left = processes_with_env("DAGSTER_HOME", str(home))
        for _ in range(20):
            if not left:
                break
            time.sleep(0.5)
            left = processes_with_env("DAGSTER_HOME", str(home))
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _delete_everything_under(es_client, prefix)
    assert code == 0, f"the demo exited with {code} on Ctrl-C: {(workdir / 'demo.stderr').read_text()[-2000:]}"
    assert not left, f"the demo left processes of its instance running: {list(left.values())}"
