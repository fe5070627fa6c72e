"""A real single-node Elasticsearch on loopback, built only from Maven Central artifacts.

No registry reachable from these machines ships an Elasticsearch server except Maven Central,
which carries Elastic's own `integ-test-zip` distribution (server, transport, x-pack core and
security; no ILM, no `GET /`). This module fetches it with the machine's Maven, caches it
outside the work tree and runs it single-node, security off, with a small heap. A node's
discovery settings are one method (`node_settings`), so `local_cluster` runs several of these
nodes as one cluster.

Elasticsearch refuses to run as root, so when we are root the node runs as an unprivileged
system user (`vt-es`, created on first use) through `setpriv`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from vt_dagster.storage import remove_stale_parts

ES_VERSION = os.environ.get("VT_LOCAL_ES_VERSION", "8.19.21")
ES_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
DEFAULT_PORT = 9200
DEFAULT_HEAP = "512m"
SERVICE_USER = "vt-es"
STATE_FILE = "node.json"
FETCH_PREFIX = ".fetch-"
"""The temp folder a distribution is fetched and unpacked in, inside the cache root."""


class LocalElasticsearchError(RuntimeError):
    """The local node could not be fetched, started or stopped; the message says why."""


def cache_root() -> Path:
    """Where distributions and node homes live: outside git, readable by the service user."""
    configured = os.environ.get("VT_DAGSTER_CACHE")
    if configured:
        return Path(configured).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/cache/vt_dagster")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vt_dagster"


def ensure_distribution(version: str = ES_VERSION, root: Path | None = None) -> Path:
    """The unpacked distribution for `version`, fetched from Maven Central on first use."""
    root = root or cache_root()
    home = root / f"elasticsearch-{version}"
    remove_stale_parts(root, spool_prefix=FETCH_PREFIX)  # what a fetch killed midway left
    if (home / "bin" / "elasticsearch").is_file():
        return home
    if shutil.which("mvn") is None:
        raise LocalElasticsearchError("Maven (`mvn`) is not installed: it fetches Elasticsearch")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=FETCH_PREFIX) as tmp:
        artifact = ES_ARTIFACT.format(version=version)
        result = subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={tmp}"],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        archive = Path(tmp) / f"elasticsearch-{version}.zip"
        if result.returncode != 0 or not archive.is_file():
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise LocalElasticsearchError(f"mvn could not fetch {artifact}: {' | '.join(tail)}")
        unpacked = Path(tmp) / "unpacked"
        _unzip_keeping_modes(archive, unpacked)
        try:
            (unpacked / f"elasticsearch-{version}").rename(home)
        except OSError:
            if not (home / "bin" / "elasticsearch").is_file():
                raise
            # Another process unpacked the same version first: theirs is as good as ours.
    _make_world_readable(root)
    return home


def _unzip_keeping_modes(archive: Path, target: Path) -> None:
    """zipfile drops Unix permissions; the start scripts need their executable bits back."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, target))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)


def _make_world_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))


def _java_home() -> str:
    for candidate in (os.environ.get("ES_JAVA_HOME"), os.environ.get("JAVA_HOME")):
        if candidate and (Path(candidate) / "bin" / "java").exists():
            return candidate
    java = shutil.which("java")
    if java is None:
        raise LocalElasticsearchError("no Java found (set JAVA_HOME): Elasticsearch 8 needs JDK 17+")
    return str(Path(java).resolve().parent.parent)


def _ensure_service_user() -> None:
    if subprocess.run(["id", "-u", SERVICE_USER], capture_output=True).returncode == 0:
        return
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LocalElasticsearchError(f"could not create user {SERVICE_USER}: {result.stderr.strip()}")


def free_port() -> int:
    """A port the kernel just handed out on loopback (tests use it to avoid clashes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    """Whether `pid` runs; a dead process not yet collected by its parent (a zombie) does not."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True  # no /proc: trust kill(0)
    return _threads_alive(Path(f"/proc/{pid}"))


def _threads_alive(proc: Path) -> bool:
    """Whether a thread of the process at `/proc/<pid>` still runs. The main thread of a
    killed JVM can be a zombie while its other threads still exit, holding the node's ports."""
    for stat in proc.glob("task/*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
                return True
        except (OSError, IndexError):
            continue
    return False


def _group_alive(pgid: int) -> bool:
    """Whether a live process is left in process group `pgid` (the node's launcher and its JVM):
    the launcher may be gone a moment before the JVM that still holds the node's ports."""
    if not Path("/proc").is_dir():
        return _pid_alive(pgid)
    _reap(pgid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            group = stat.read_text().rsplit(")", 1)[-1].split()[2]
        except (OSError, IndexError):
            continue
        if group == str(pgid) and _threads_alive(stat.parent):
            return True
    return False


@dataclass
class NodeStatus:
    running: bool
    url: str | None = None
    pid: int | None = None
    health: str | None = None

    def describe(self) -> str:
        if not self.running:
            return "local Elasticsearch: not running"
        return f"local Elasticsearch: running at {self.url} (pid {self.pid}, health {self.health})"


class LocalElasticsearch:
    """One node home (data, logs, config, state file) and the process serving it."""

    def __init__(
        self,
        home: Path | None = None,
        port: int = DEFAULT_PORT,
        heap: str = DEFAULT_HEAP,
        version: str = ES_VERSION,
    ) -> None:
        self.home = (home or cache_root() / "nodes" / "default").resolve()
        self.port = port
        self.heap = heap
        self.version = version

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @property
    def url(self) -> str:
        state = self._read_state()
        port = state["port"] if state else self.port
        return f"http://127.0.0.1:{port}"

    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def status(self) -> NodeStatus:
        state = self._read_state()
        if not state or not _pid_alive(state["pid"]):
            return NodeStatus(running=False)
        url = f"http://127.0.0.1:{state['port']}"
        return NodeStatus(True, url, state["pid"], cluster_health(url))

    def start(self, timeout: float = 180.0) -> str:
        """Start the node (or reuse the running one) and return its URL once it is healthy."""
        current = self.status()
        if current.running:
            wait_for_health(current.url, timeout)
            return current.url
        launched = self.launch()
        try:
            wait_for_health(launched.url, timeout, [launched])
        except LocalElasticsearchError:
            self.stop()
            raise
        return launched.url

    def node_settings(self, port: int) -> dict[str, str]:
        """The settings that place this node: a lone node, any transport port."""
        return {
            "discovery.type": "single-node",
            "http.port": str(port),
            "transport.port": "0",
            "cluster.name": "vt-dagster-local",
        }

    def launch(self) -> Launched:
        """Start the node's process and record it, without waiting for it to answer."""
        distribution = ensure_distribution(self.version)
        port = free_port() if self.port == 0 else self.port
        settings = self.node_settings(port)
        for key in ("http.port", "transport.port"):
            taken = int(settings[key])
            if taken and port_in_use(taken):
                raise LocalElasticsearchError(
                    f"port {taken} on 127.0.0.1 is already taken by another process: choose --port"
                )
        command, env = self._command(distribution, settings)
        log_path = self.home / "logs" / "console.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.home,
            )
        self._write_state({"pid": process.pid, "port": port, "version": self.version})
        return Launched(process, f"http://127.0.0.1:{port}", log_path)

    def _command(self, distribution: Path, node_settings: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        for sub in ("data", "logs", "tmp"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        config = self.home / "config"
        if not config.exists():
            shutil.copytree(distribution / "config", config)
        env = {
            **os.environ,
            "ES_JAVA_HOME": _java_home(),
            "ES_PATH_CONF": str(config),
            "ES_TMPDIR": str(self.home / "tmp"),
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
        }
        settings = {
            "network.host": "127.0.0.1",
            "xpack.security.enabled": "false",
            "path.data": str(self.home / "data"),
            "path.logs": str(self.home / "logs"),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            **node_settings,
        }
        command = [str(distribution / "bin" / "elasticsearch")]
        command += [arg for key, value in settings.items() for arg in ("-E", f"{key}={value}")]
        if os.geteuid() == 0:
            _ensure_service_user()
            subprocess.run(["chown", "-R", f"{SERVICE_USER}:", str(self.home)], check=True)
            command = ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}",
                       "--clear-groups", "--", *command]
        return command, env

    def _write_state(self, state: dict) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_path)

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the node cleanly (SIGTERM, then SIGKILL after `timeout`); False if none ran."""
        state = self._read_state()
        if not state:
            return False
        pid = state["pid"]
        was_running = _pid_alive(pid)
        if was_running:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _group_alive(pid):
                self.kill()
        self.state_path.unlink(missing_ok=True)
        return was_running

    def kill(self) -> None:
        """SIGKILL the node's whole process group, as a crash would; its state file stays, so
        `start` sees a node that is not running and starts it again on the same home."""
        state = self._read_state()
        if state:
            _signal_group(state["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _group_alive(state["pid"]) and time.monotonic() < deadline:
                time.sleep(0.05)


@dataclass(frozen=True)
class Launched:
    """A node process just started: what to watch while waiting for it to answer."""

    process: subprocess.Popen
    url: str
    log_path: Path


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int, block: bool = False) -> None:
    """Collect our own child so it does not linger as a zombie that looks alive."""
    try:
        os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        pass


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def health_report(url: str) -> dict | None:
    """`GET _cluster/health` of the node at `url`, or None when nothing answers."""
    try:
        response = requests.get(f"{url}/_cluster/health", timeout=2)
        report = response.json() if response.ok else None
    except (requests.RequestException, ValueError):
        return None
    return report if isinstance(report, dict) else None


def cluster_health(url: str) -> str | None:
    """The cluster's health colour, or None when nothing answers (this distribution has no `GET /`)."""
    report = health_report(url)
    return report.get("status") if report else None


def _answers_green_or_yellow(report: dict) -> bool:
    """A lone node is ready when it answers green or yellow: a replica has nowhere to go."""
    return report.get("status") in ("green", "yellow")


def wait_for_health(
    url: str,
    timeout: float,
    launched: Sequence[Launched] = (),
    ready: Callable[[dict], bool] = _answers_green_or_yellow,
    wanted: str = "healthy",
) -> None:
    """Poll `_cluster/health` at `url` until `ready` says so; a process of `launched` that exits
    meanwhile fails at once with the first error line of its log."""
    deadline = time.monotonic() + timeout
    report: dict | None = None
    while time.monotonic() < deadline:
        report = health_report(url)
        if report is not None and ready(report):
            return
        for node in launched:
            if node.process.poll() is not None:
                raise LocalElasticsearchError(
                    f"Elasticsearch exited with code {node.process.returncode} while starting: "
                    f"{_last_error_line(node.log_path)}"
                )
        time.sleep(0.5)
    last = "nothing answered" if report is None else (
        f"last: {report.get('status')}, {report.get('number_of_nodes')} node(s), "
        f"{report.get('unassigned_shards')} unassigned shard(s)")
    raise LocalElasticsearchError(f"Elasticsearch at {url} was not {wanted} after {timeout:.0f} s ({last})")


def _last_error_line(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return "no log"
    lines = log_path.read_text(errors="replace").splitlines()
    errors = [line for line in lines if "ERROR" in line or "Exception" in line]
    return (errors or lines or ["empty log"])[0][:300] + f" (see {log_path})"
