"""`vt-dagster serve`: one code server shared by the daemon and the webserver, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from vt_dagster.local_es import free_port
from vt_dagster.service import code_server_socket, ensure_instance, write_service_workspace

pytestmark = pytest.mark.service


def test_a_new_instance_gets_the_projects_dagster_yaml_and_an_existing_one_is_kept(tmp_path: Path) -> None:
    fresh = ensure_instance(tmp_path / "fresh")
    assert "auto_materialize:\n  enabled: false" in fresh.read_text()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    assert ensure_instance(mine).read_text() == "telemetry:\n  enabled: true\n"


def test_the_service_runs_only_the_daemons_the_project_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No asset daemon: nothing uses automation conditions, and its loop would cost CPU all day."""
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    ensure_instance(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert set(instance.get_required_daemon_types()) == {
            "SENSOR", "BACKFILL", "SCHEDULER", "QUEUED_RUN_COORDINATOR", "MONITORING", "FRESHNESS_DAEMON"}


def test_the_workspace_points_at_the_code_servers_socket(tmp_path: Path) -> None:
    text = write_service_workspace(tmp_path).read_text()
    assert f"socket: {code_server_socket(tmp_path)}" in text and "location_name: vt_dagster" in text


def _session_processes(session: int) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] != b"Z":
                found.append(entry)
    return found


@pytest.mark.timeout(240)
def test_serve_runs_ui_and_daemon_on_one_code_server_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VT_API_KEY": "unused", "DAGSTER_DISABLE_TELEMETRY": "1"}
    env.pop("DAGSTER_HOME", None)
    service = subprocess.Popen(
        [sys.executable, "-m", "vt_dagster", "serve", "--ui-port", str(port)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = [service.stdout.readline() for _ in range(3)]
        assert lines[0].strip() == f"Dagster instance: {tmp_path / '.dagster_home'}", lines
        assert lines[1].strip() == f"Dagster UI: http://127.0.0.1:{port}", lines
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        query += "locationOrLoadError { __typename } } } } }"
        answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30).json()
        [entry] = answer["data"]["workspaceOrError"]["locationEntries"]
        assert entry["name"] == "vt_dagster" and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                    for pid in _session_processes(service.pid)]
        servers = [c for c in commands if " api grpc " in c or "code-server" in c]
        assert len(servers) == 1, f"one code server, the daemon and the UI start none of their own: {commands}"
        assert " api grpc -m vt_dagster.definitions " in servers[0], "serving the code itself, no proxy process"
        watching = [c for c in commands if " -m vt_dagster.code_server_watch " in c]
        assert sorted(c.split(" -m vt_dagster.code_server_watch ")[1].split()[0] for c in watching) == [
            "dagster-daemon", "dagster-webserver"], commands
    finally:
        started = time.monotonic()
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=90)
    assert code == 0 and time.monotonic() - started < 60
    time.sleep(1)
    assert _session_processes(service.pid) == [], "every process of the service stopped"


WATCH_COUNT = """
import sys, threading, time
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.server_watcher import create_grpc_watch_thread
from vt_dagster.code_server_watch import slow_down_code_server_watch

class Server(DagsterGrpcClient):
    calls = 0
    def get_server_id(self, timeout=None):
        Server.calls += 1
        return "same-server"

if sys.argv[1] == "slow":
    slow_down_code_server_watch()
noop = lambda *args: None
shutdown, thread = create_grpc_watch_thread("vt_dagster", Server(socket="/nonexistent"), get_location_entry=noop,
    refresh_code_location=noop, on_disconnect=noop, on_reconnected=noop, on_updated=noop, on_error=noop)
thread.start()
time.sleep(3.5)
shutdown.set()
print(Server.calls)
"""


@pytest.mark.parametrize(("mode", "calls"), [("dagster", range(3, 6)), ("slow", range(1, 2))])
def test_the_code_server_watch_polls_every_15_s_instead_of_every_second(mode: str, calls: range) -> None:
    """Dagster's own interval first, so that a Dagster whose watch changed fails here too."""
    done = subprocess.run([sys.executable, "-c", WATCH_COUNT, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) in calls


def test_the_watch_wrapper_runs_the_named_dagster_script_and_refuses_others() -> None:
    helped = subprocess.run([sys.executable, "-m", "vt_dagster.code_server_watch", "dagster-daemon", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "dagster daemon" in helped.stdout, helped.stderr[-2000:]
    refused = subprocess.run([sys.executable, "-m", "vt_dagster.code_server_watch", "pip", "list"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and not refused.stdout
    assert refused.stderr.strip().splitlines() == [
        "usage: python -m vt_dagster.code_server_watch dagster-daemon|dagster-webserver ARGS..."]

