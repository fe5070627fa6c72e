"""`vt-dagster serve`: the live service on one machine, the cheap way Dagster can run it.

Three processes on one Dagster instance, as Dagster's production guide lays them out:
- one long-lived code server (`dagster api grpc`) on a Unix socket in the instance;
- the daemon (schedules, sensors, backfills) and, unless `--no-ui`, the webserver, both
  loading the code location from that server.

A daemon given the module itself (`dagster-daemon run -m ...`) starts a fresh code server
every 60 s to pick up code changes: ~2 CPU-seconds a minute on 2 cores, measured, for code
that does not change on a service. Here the code is loaded once; restart the service to
deploy new code. `dagster api grpc` serves it itself: `dagster code-server start` would add a
proxy process in front of it (to reload code from the UI, which a restart does here) that
measured ~0.6 CPU-seconds a minute on an idle service, half of the idle service's cost. With
`--lazy-load-user-code` a code location that fails to load is shown in the UI with its error,
as the code server would. The daemon and the webserver ask the code server whether it
restarted every 15 s instead of every second: the three start and stop together here. The
instance gets the project's `dagster.yaml` when it has none.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import requests

CODE_LOCATION = "vt_dagster"
DEFINITIONS_MODULE = "vt_dagster.definitions"
INSTANCE_TEMPLATE = "dagster.yaml"
SERVICE_DIR = ".vt_dagster"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0


def default_dagster_home() -> Path:
    """`DAGSTER_HOME` when set, else `./.dagster_home` (where the demo keeps its instance)."""
    return Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").expanduser().resolve()


def ensure_instance(dagster_home: Path) -> Path:
    """The instance folder, with the project's `dagster.yaml` unless the operator has one."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        template = resources.files("vt_dagster") / "data" / INSTANCE_TEMPLATE
        instance_yaml.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    return instance_yaml


def code_server_socket(dagster_home: Path) -> Path:
    return dagster_home / SERVICE_DIR / "code-server.sock"


def service_workspace(dagster_home: Path) -> Path:
    """Where `serve` writes its workspace; a webserver run on its own (a separate systemd unit) reads it."""
    return dagster_home / SERVICE_DIR / "workspace.yaml"


def write_service_workspace(dagster_home: Path) -> Path:
    """A workspace pointing the daemon and the webserver at the code server's socket."""
    workspace = service_workspace(dagster_home)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    workspace.write_text(
        "load_from:\n  - grpc_server:\n"
        f"      socket: {code_server_socket(dagster_home)}\n"
        f"      location_name: {CODE_LOCATION}\n",
        encoding="utf-8",
    )
    return workspace


def _dagster_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dagster", *args]


def _watching_slowly(script: str) -> list[str]:
    """A Dagster console script of this environment whose watch of the code server polls every
    15 s instead of every second (see vt_dagster/code_server_watch.py)."""
    return [sys.executable, "-m", "vt_dagster.code_server_watch", script]


@dataclass
class Service:
    """The code server, the daemon and the webserver of one instance, started and stopped together."""

    dagster_home: Path
    ui_port: int | None = 3000
    host: str = "127.0.0.1"
    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def ui_url(self) -> str | None:
        return None if self.ui_port is None else f"http://{self.host}:{self.ui_port}"

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        ensure_instance(self.dagster_home)
        workspace = write_service_workspace(self.dagster_home)
        socket = code_server_socket(self.dagster_home)
        socket.unlink(missing_ok=True)
        env = {**os.environ, "DAGSTER_HOME": str(self.dagster_home)}
        logs = self.log_dir or self.dagster_home / SERVICE_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        self._spawn("code-server", _dagster_command("api", "grpc", "-m", DEFINITIONS_MODULE, "-s", str(socket),
                                                   "--location-name", CODE_LOCATION, "--lazy-load-user-code",
                                                   "--log-level", "warning"), env, logs)
        self._wait_for(lambda: socket.exists(), "code-server", deadline)
        self._spawn("daemon", [*_watching_slowly("dagster-daemon"), "run", "-w", str(workspace),
                               "--log-level", "warning"], env, logs)
        if self.ui_port is not None:
            self._spawn("webserver", [*_watching_slowly("dagster-webserver"), "-w", str(workspace), "-h", self.host,
                                      "-p", str(self.ui_port), "--dagster-log-level", "warning"], env, logs)
            self._wait_for(self._ui_answers, "webserver", deadline)

    def _spawn(self, name: str, command: Sequence[str], env: dict[str, str], logs: Path) -> None:
        with open(logs / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL)

    def _wait_for(self, ready, name: str, deadline: float) -> None:
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Dagster {name} did not start in time; see {self._log(name)}")
            time.sleep(0.25)

    def _ui_answers(self) -> bool:
        try:
            return requests.get(f"{self.ui_url}/server_info", timeout=2).ok
        except requests.RequestException:
            return False

    def _log(self, name: str) -> Path:
        return (self.log_dir or self.dagster_home / SERVICE_DIR / "logs") / f"{name}.log"

    def check_alive(self) -> None:
        """Raises, naming the process and its log, when one of the service's processes died."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"the Dagster {name} exited with code {process.returncode}; see {self._log(name)}")

    def stop(self) -> None:
        """Webserver and daemon first, the code server last (it runs the runs' launches)."""
        for name in ("webserver", "daemon", "code-server"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def __enter__(self) -> Service:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(dagster_home: Path, ui_port: int | None, host: str = "127.0.0.1") -> int:
    """Run the service in the foreground until SIGINT/SIGTERM (or one of its processes dies)."""
    stop = {"asked": False}

    def ask_to_stop(*_: object) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGTERM, ask_to_stop)
    signal.signal(signal.SIGINT, ask_to_stop)
    with Service(dagster_home, ui_port=ui_port, host=host) as service:
        print(f"Dagster instance: {dagster_home}")
        print(f"Dagster UI: {service.ui_url}" if service.ui_url else "Dagster UI: not started (--no-ui)")
        print("Turn on vt_live_schedule (Automation) to run the live service; Ctrl-C stops everything.", flush=True)
        while not stop["asked"]:
            service.check_alive()
            time.sleep(0.5)
    return 0
