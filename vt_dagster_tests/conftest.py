"""Shared fixtures: one real Elasticsearch per test session, unique index prefixes, samples,
and the Dagster instances the Dagster-level tests run on.

Integration tests talk to a real node: `ES_URL` when given (a full cluster, ILM included),
else the local node from Maven Central started once for the session and stopped after. The
cluster tests get their own 3-node cluster on loopback (`es_cluster`), started once for the
session as a user starts it, with `vt-dagster local-es start --nodes 3`.
Dagster-level tests take `dagster_instance` and run twice: on the in-memory instance and on
deploy/dagster.yaml over the session's private PostgreSQL (`vt-dagster local-postgres`), each
test in a database of its own.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from elasticsearch import Elasticsearch

from vt_dagster.local_cluster import LocalCluster
from vt_dagster.local_es import LocalElasticsearch, cache_root
from vt_dagster.local_postgres import LocalPostgres

if TYPE_CHECKING:
    import dagster as dg

    from vt_dagster.emulator import FeedsEmulator
    from vt_dagster.vt_client import FeedsClient

# Tests never phone home (this machine has no network beyond package registries anyway).
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "vt_samples"
DEPLOY_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
SERVICE_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "vt_dagster" / "data" / "dagster.yaml"
PG_URL_ENV = "DAGSTER_PG_URL"
SERVICE_FIXTURES = {
    "es_url": "es", "es_client": "es", "index_prefix": "es", "emulator": "service", "feeds_client": "service", "secret_emulator": "service",
    "demo": "service", "local_postgres": "service", "dagster_pg_url": "service", "postgres_instance": "service",
    "postgres_demo": "service", "any_demo": "service", "es_cluster": "es",
}
CLUSTER_NODES = 3
CLUSTER_START_TIMEOUT_S = 420
INSTANCE_KINDS = ("ephemeral", "postgres")
"""What `dagster_instance` runs a test on: Dagster's in-memory instance, and the deploy one on PostgreSQL."""
PG_TEMPLATE_DATABASE = "dagster_template"
# The shared demo run: DEMO_HOURS of every enabled feed (files, urls) at DEMO_OBJECTS a minute.
DEMO_HOURS = 0.1
DEMO_PARTITIONS = round(DEMO_HOURS * 60)
DEMO_OBJECTS = 20
# The demo on PostgreSQL backfills fewer minutes: the same path, less of the same work.
POSTGRES_DEMO_HOURS = 0.05
POSTGRES_DEMO_PARTITIONS = round(POSTGRES_DEMO_HOURS * 60)
DEMO_READY_TIMEOUT_S = 480
DEMO_TEST_TIMEOUT_S = 600
DEMO_FIXTURES = {"demo", "postgres_demo", "any_demo"}


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark tests by the services they use, so `-m unit` / `-m es` select honestly.

    Done as each test is collected, before `-m` filtering looks at the markers.
    """
    fixtures = set(getattr(item, "fixturenames", ()))
    for fixture, marker in SERVICE_FIXTURES.items():
        if fixture in fixtures:
            item.add_marker(marker)
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("dagster_instance") == "postgres":
        item.add_marker("service")
    if not any(item.get_closest_marker(name) for name in ("es", "service", "browser")):
        item.add_marker("unit")


def _uses(item: pytest.Item | None, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


def _uses_a_demo(item: pytest.Item) -> bool:
    return bool(DEMO_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that share the running demo go last, together, so its servers do not idle
    through the rest of the suite (they stop at the end of the session). The first of them
    waits for the demo (and maybe the Elasticsearch node) to start: more than the default
    timeout on a busy 2-core machine. The cluster tests run together just before them, and the
    cluster stops after the last of them (`pytest_runtest_teardown`): idle, its three nodes
    still take ~7 % of a core."""
    items.sort(key=lambda item: (_uses_a_demo(item), _uses(item, "es_cluster")))
    for item in items:
        if _uses_a_demo(item):
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
def local_postgres() -> Iterator[LocalPostgres]:
    """The session's private PostgreSQL, started by the project's own `local-postgres` code on a
    free port, stopped and removed at the end. Under the cache root, as the Elasticsearch node:
    as root the server runs as an unprivileged user that cannot enter root's temp folders."""
    _remove_clusters_of_dead_sessions()
    cluster = LocalPostgres(home=cache_root() / "postgres" / f"pytest-{os.getpid()}", port=0)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.home, ignore_errors=True)


def _remove_clusters_of_dead_sessions() -> None:
    """Clusters a killed pytest (`pytest-<pid>...`, its process gone) left running or on disk."""
    for folder in (cache_root() / "postgres").glob("pytest-*"):
        found = re.match(r"pytest-(\d+)", folder.name)
        if found and not Path(f"/proc/{found.group(1)}").exists():
            LocalPostgres(home=folder).stop()
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def instance_from_deploy_yaml(home: Path, pg_url: str) -> Iterator[dg.DagsterInstance]:
    """The instance deploy/dagster.yaml describes, as shipped, with DAGSTER_PG_URL = `pg_url`
    (set in this process's environment while it is open: run workers started from it read it)."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOY_DAGSTER_YAML, home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PG_URL_ENV, pg_url)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance


@contextmanager
def instance_from_service_yaml(home: Path) -> Iterator[dg.DagsterInstance]:
    """The single-machine instance vt_dagster/data/dagster.yaml describes, as shipped, in `home`
    (DAGSTER_HOME set in this process's environment while it is open: its storage is there)."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SERVICE_DAGSTER_YAML, home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance


@pytest.fixture(scope="session")
def dagster_pg_template(local_postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding Dagster's schema, made once: creating the schema takes seconds, a copy
    of this database a tenth of one."""
    url = local_postgres.create_database(PG_TEMPLATE_DATABASE)
    with instance_from_deploy_yaml(tmp_path_factory.mktemp("pg-template"), url):
        pass
    return PG_TEMPLATE_DATABASE


@pytest.fixture
def dagster_pg_url(local_postgres: LocalPostgres, dagster_pg_template: str) -> Iterator[str]:
    """A database of this test's own (Dagster's schema already in it), dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = local_postgres.create_database(name, template=dagster_pg_template)
    yield url
    local_postgres.drop_database(name)


@pytest.fixture
def postgres_instance(dagster_pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """deploy/dagster.yaml on a fresh PostgreSQL database: queue, pools and monitoring as shipped."""
    with instance_from_deploy_yaml(tmp_path_factory.mktemp("pg-home"), dagster_pg_url) as instance:
        yield instance


@pytest.fixture(params=INSTANCE_KINDS)
def dagster_instance(request: pytest.FixtureRequest) -> Iterator[dg.DagsterInstance]:
    """Each Dagster-level test runs on both: the in-memory instance, and `postgres_instance`."""
    if request.param == "postgres":
        yield request.getfixturevalue("postgres_instance")
        return
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


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
def ready(es_client: Elasticsearch, index_prefix: str) -> str:
    """Templates and write aliases for every feed under a fresh prefix."""
    from vt_dagster.elastic import setup_elasticsearch
    from vt_dagster.feeds import FEEDS

    setup_elasticsearch(es_client, FEEDS, prefix=index_prefix)
    return index_prefix


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
    """The demo as a user starts it, up to its "Dagster UI:" line (its UI still serving), or to
    its end with `--no-ui` (no `ui_url`)."""

    output: str
    ui_url: str | None
    dagster_home: Path
    partitions: int = DEMO_PARTITIONS
    pg_url: str | None = None
    """DAGSTER_PG_URL of a demo on deploy/dagster.yaml, None on the demo's own SQLite instance."""

    @property
    def backfill_id(self) -> str:
        found = re.search(r"^Backfill (\w+): ", self.output, re.MULTILINE)
        assert found, self.output[-3000:]
        return found.group(1)


def _wait_for_processes_of(home: Path) -> dict[int, str]:
    """The processes of the instance at `home` still running 10 s after its command ended
    (what a clean stop leaves: none); they are killed, and returned to be reported."""
    from vt_dagster_tests.processes import processes_with_env

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
    return left


def _demo_env(es_url: str, prefix: str) -> dict[str, str]:
    env = {**os.environ, "ES_URL": es_url, "ES_INDEX_PREFIX": prefix, "PYTHONUNBUFFERED": "1"}
    for name in ("VT_API_KEY", "VT_API_URL", "VT_DATA_DIR", "DAGSTER_HOME", "VT_FEEDS", PG_URL_ENV):
        env.pop(name, None)
    return env


@pytest.fixture(scope="session")
def demo(es_url: str, es_client: Elasticsearch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """`vt-dagster demo` run once for the session (small backfill, the session's Elasticsearch).

    At the end it gets Ctrl-C (SIGINT), as a user stops it: it must exit 0 and leave no process
    of its Dagster instance running (webserver, daemon, code server, run workers).
    """
    from vt_dagster.local_es import free_port

    workdir = tmp_path_factory.mktemp("demo")
    prefix = _unique_prefix()
    env = _demo_env(es_url, prefix)
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
        left = _wait_for_processes_of(home)
        _delete_everything_under(es_client, prefix)
    assert code == 0, f"the demo exited with {code} on Ctrl-C: {(workdir / 'demo.stderr').read_text()[-2000:]}"
    assert not left, f"the demo left processes of its instance running: {list(left.values())}"


@pytest.fixture(scope="session")
def postgres_demo(es_url: str, es_client: Elasticsearch, local_postgres: LocalPostgres, dagster_pg_template: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """`vt-dagster demo --no-ui` once, on deploy/dagster.yaml over the session's PostgreSQL: the
    backfill daemon, the run queue, the pools and run monitoring as a service has them. A smaller
    backfill than `demo`'s; the Ctrl-C path is `demo`'s to prove."""
    workdir = tmp_path_factory.mktemp("postgres-demo")
    home = workdir / "home"
    home.mkdir()
    shutil.copyfile(DEPLOY_DAGSTER_YAML, home / "dagster.yaml")
    database = f"demo_{uuid.uuid4().hex[:8]}"
    url = local_postgres.create_database(database, template=dagster_pg_template)
    prefix = _unique_prefix()
    env = {**_demo_env(es_url, prefix), PG_URL_ENV: url}
    process = subprocess.Popen(
        [sys.executable, "-m", "vt_dagster", "demo", "--data-dir", "data", "--dagster-home", "home", "--no-ui",
         "--hours", str(POSTGRES_DEMO_HOURS), "--objects-per-minute", str(DEMO_OBJECTS)],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        try:
            out, err = process.communicate(timeout=DEMO_READY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
        left = _wait_for_processes_of(home)
        assert process.returncode == 0, f"the demo on PostgreSQL failed:\n{out[-3000:]}\n{err[-2000:]}"
        assert not left, f"the demo left processes of its instance running: {list(left.values())}"
        yield DemoRun(out, None, home, partitions=POSTGRES_DEMO_PARTITIONS, pg_url=url)
    finally:
        _delete_everything_under(es_client, prefix)
        local_postgres.drop_database(database)


@pytest.fixture(params=["postgres", "sqlite"])
def any_demo(request: pytest.FixtureRequest) -> DemoRun:
    """Each demo test on both: deploy/dagster.yaml on PostgreSQL, and the demo's own SQLite
    instance (second, so its servers are not up while the other demo runs)."""
    return request.getfixturevalue("demo" if request.param == "sqlite" else "postgres_demo")
