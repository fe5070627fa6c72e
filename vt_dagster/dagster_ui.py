"""`dagster dev` (webserver + daemon) on an instance, and the GraphQL calls the UI makes to it.

The demo serves Dagster the way an operator does, then launches its runs through the
webserver with the very mutations the UI's dialogs send, so the setup run and the backfill
are handled by the daemon and show in the UI as an operator's would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

import requests

CODE_LOCATION_MODULE = "vt_dagster.definitions"
BACKFILL_TAG = "dagster/backfill"
# BulkActionStatus values after which the daemon does nothing more with a backfill.
BACKFILL_DONE = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"})
BACKFILL_SUCCEEDED = frozenset({"COMPLETED", "COMPLETED_SUCCESS"})
RUN_DONE = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


class DagsterUIError(RuntimeError):
    """The webserver is not there, refused a request, or its code location did not load."""


def dagster_dev_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "dagster", "dev", "-m", CODE_LOCATION_MODULE, "-h", host, "-p", str(port)]


class DagsterDev:
    """`dagster dev` on `dagster_home`: webserver, daemon and one code server.

    It runs in its own session, so stopping it reaches every process it started (the daemon,
    the code server, run workers) whatever the terminal does; its output (runs' logs included)
    goes to `log`, not the console.
    """

    def __init__(self, dagster_home: Path, port: int, log: Path, host: str = "127.0.0.1") -> None:
        self.dagster_home = dagster_home
        self.port = port
        self.host = host
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log, "ab")
        with _sigint_not_ignored_by_children():
            self._process = subprocess.Popen(
                dagster_dev_command(self.host, self.port), env={**os.environ, "DAGSTER_HOME": str(self.dagster_home)},
                start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=subprocess.STDOUT,
            )

    def exited(self) -> int | None:
        """The exit code once `dagster dev` has ended, else None."""
        return None if self._process is None else self._process.poll()

    def wait_ready(self, timeout: float = 240.0) -> None:
        """Until the webserver answers and the code location is loaded (or failed to)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.exited()
            if code is not None:
                raise DagsterUIError(f"dagster dev exited with code {code}; its output is in {self.log}")
            try:
                entries = workspace_locations(self.url)
            except (requests.RequestException, DagsterUIError):
                entries = []
            problems = [problem for status, problem in entries if problem]
            if problems:
                raise DagsterUIError(f"the code location {CODE_LOCATION_MODULE} did not load: {problems[0]}")
            if entries and all(status == "LOADED" for status, _ in entries):
                return
            time.sleep(0.5)
        raise DagsterUIError(f"the Dagster webserver did not come up within {timeout:.0f} s; see {self.log}")

    def wait(self) -> int:
        assert self._process is not None
        return self._process.wait()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGINT to the whole session (what Ctrl-C in its terminal would do), SIGKILL if it lingers."""
        process = self._process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        if process is not None:
            # Run workers outlive `dagster dev` if a run was cut short; nothing of the session stays.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> DagsterDev:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextmanager
def _sigint_not_ignored_by_children() -> Iterator[None]:
    """A command started in the background ignores SIGINT, and an ignored signal stays ignored
    across exec: `dagster dev` would then ignore the SIGINT that stops it cleanly. A handled
    signal is reset to its default on exec, so one is installed while the child starts."""
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the command as Ctrl-C does, so the `finally` blocks stop what it started."""
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 120.0) -> dict:
    """The `data` of one GraphQL request to the webserver at `url`."""
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": dict(variables or {})},
                             timeout=timeout)
    try:
        body = response.json()
    except ValueError:
        raise DagsterUIError(f"the webserver answered HTTP {response.status_code} without JSON") from None
    if body.get("errors"):
        raise DagsterUIError(f"GraphQL error: {body['errors'][0].get('message', body['errors'][0])}")
    if not response.ok or "data" not in body:
        raise DagsterUIError(f"the webserver answered HTTP {response.status_code}")
    return body["data"]


WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } }
    }
    ... on PythonError { message }
  }
}
"""


def workspace_locations(url: str) -> list[tuple[str, str | None]]:
    """(load status, load error or None) of every code location the webserver has."""
    workspace = graphql(url, WORKSPACE_QUERY, timeout=10)["workspaceOrError"]
    if workspace["__typename"] != "Workspace":
        raise DagsterUIError(workspace.get("message", workspace["__typename"]))
    entries = []
    for entry in workspace["locationEntries"]:
        loaded = entry["locationOrLoadError"] or {}
        problem = loaded.get("message") if loaded.get("__typename") == "PythonError" else None
        entries.append((entry["loadStatus"], problem.strip().splitlines()[-1] if problem else None))
    return entries


@dataclass(frozen=True)
class RepositoryAddress:
    location: str
    name: str


REPOSITORIES_QUERY = """
query Repositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
    ... on PythonError { message }
  }
}
"""


def repository_with_job(url: str, job_name: str) -> RepositoryAddress:
    """The code location and repository that define `job_name`."""
    found = graphql(url, REPOSITORIES_QUERY)["repositoriesOrError"]
    if found["__typename"] != "RepositoryConnection":
        raise DagsterUIError(found.get("message", found["__typename"]))
    for node in found["nodes"]:
        if any(job["name"] == job_name for job in node["jobs"]):
            return RepositoryAddress(node["location"]["name"], node["name"])
    raise DagsterUIError(f"no code location of the webserver defines the job {job_name!r}")


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in tags.items()]


def _refusal(result: dict) -> str:
    return result.get("message") or result["__typename"]


LAUNCH_RUN_MUTATION = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""


def launch_job_run(url: str, job_name: str, tags: Mapping[str, str]) -> str:
    """Launch `job_name` with its default config, as the launchpad's "Launch run"; the run id."""
    repository = repository_with_job(url, job_name)
    params = {
        "selector": {"repositoryLocationName": repository.location, "repositoryName": repository.name,
                     "jobName": job_name},
        "runConfigData": {},
        "executionMetadata": {"tags": _tag_list(tags)},
    }
    result = graphql(url, LAUNCH_RUN_MUTATION, {"executionParams": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise DagsterUIError(f"the webserver refused to launch {job_name}: {_refusal(result)}")
    return result["run"]["runId"]


RUN_STATUS_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } }
}
"""


def run_status(url: str, run_id: str) -> str:
    """The run's DagsterRunStatus name: QUEUED, STARTING, STARTED, SUCCESS, FAILURE..."""
    result = graphql(url, RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]
    if result["__typename"] != "Run":
        raise DagsterUIError(f"run {run_id}: {_refusal(result)}")
    return result["status"]


LAUNCH_BACKFILL_MUTATION = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""


def launch_asset_backfill(url: str, asset_keys: Sequence[Sequence[str]], partition_keys: Sequence[str],
                          tags: Mapping[str, str]) -> str:
    """Submit a backfill of `partition_keys` of the assets; its id.

    The parameters are those the UI's "Materialize" > partitions dialog sends for assets
    (LaunchAssetChoosePartitionsDialog: assetSelection, partitionNames, fromFailure false,
    tags), except the tag `dagster/from_ui`: `tags` say who launched it instead. The backfill
    daemon then plans the runs with the assets' backfill policy.
    """
    params = {
        "assetSelection": [{"path": list(key)} for key in asset_keys],
        "partitionNames": list(partition_keys),
        "fromFailure": False,
        "tags": _tag_list(tags),
    }
    result = graphql(url, LAUNCH_BACKFILL_MUTATION, {"backfillParams": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise DagsterUIError(f"the webserver refused the backfill: {_refusal(result)}")
    return result["backfillId"]


CANCEL_BACKFILL_MUTATION = """
mutation CancelBackfill($backfillId: String!) {
  cancelPartitionBackfill(backfillId: $backfillId) { __typename ... on Error { message } }
}
"""


def cancel_backfill(url: str, backfill_id: str) -> None:
    """Cancel the backfill, as its "Cancel backfill" button: the daemon stops planning runs."""
    result = graphql(url, CANCEL_BACKFILL_MUTATION, {"backfillId": backfill_id}, timeout=10)
    outcome = result["cancelPartitionBackfill"]
    if outcome["__typename"] != "CancelBackfillSuccess":
        raise DagsterUIError(f"backfill {backfill_id} was not cancelled: {_refusal(outcome)}")


@dataclass(frozen=True)
class AssetProgress:
    targeted: int
    in_progress: int
    materialized: int
    failed: int


@dataclass(frozen=True)
class BackfillState:
    """What the Backfills page shows of one asset backfill."""

    backfill_id: str
    status: str
    run_statuses: tuple[str, ...] = ()
    assets: Mapping[tuple[str, ...], AssetProgress] = field(default_factory=dict)
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status in BACKFILL_DONE

    @property
    def succeeded(self) -> bool:
        return self.status in BACKFILL_SUCCEEDED and self.failed == 0 and self.materialized == self.targeted

    @property
    def targeted(self) -> int:
        return sum(asset.targeted for asset in self.assets.values())

    @property
    def materialized(self) -> int:
        return sum(asset.materialized for asset in self.assets.values())

    @property
    def failed(self) -> int:
        return sum(asset.failed for asset in self.assets.values())

    def feed_progress(self, feed: str) -> AssetProgress:
        """The counts of every asset of `feed` (keys `<feed>/<stage>`) added up."""
        of_feed = [progress for key, progress in self.assets.items() if key[0] == feed]
        return AssetProgress(*(sum(getattr(p, name) for p in of_feed)
                               for name in ("targeted", "in_progress", "materialized", "failed")))

    def describe(self) -> str:
        """One progress line: status, runs by status, asset partitions done of all targeted."""
        by_status = Counter(status.lower() for status in self.run_statuses)
        runs = f"{len(self.run_statuses)} run{'' if len(self.run_statuses) == 1 else 's'}"
        if by_status:
            runs += " (" + ", ".join(f"{n} {status}" for status, n in sorted(by_status.items())) + ")"
        return (f"backfill {self.backfill_id}: {self.status.lower()}, {runs}, {self.materialized}/{self.targeted} "
                f"asset partitions materialized, {self.failed} failed")


BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      error { message }
      runs { runId status }
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed
          }
        }
      }
    }
    ... on Error { message }
  }
}
"""


def backfill_state(url: str, backfill_id: str) -> BackfillState:
    result = graphql(url, BACKFILL_QUERY, {"backfillId": backfill_id})["partitionBackfillOrError"]
    if result["__typename"] != "PartitionBackfill":
        raise DagsterUIError(f"backfill {backfill_id}: {_refusal(result)}")
    statuses = (result.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []
    assets = {
        tuple(entry["assetKey"]["path"]): AssetProgress(
            entry["numPartitionsTargeted"], entry["numPartitionsInProgress"],
            entry["numPartitionsMaterialized"], entry["numPartitionsFailed"])
        for entry in statuses if "assetKey" in entry
    }
    error = (result.get("error") or {}).get("message")
    return BackfillState(backfill_id, result["status"], tuple(run["status"] for run in result["runs"]),
                         assets, error.strip().splitlines()[-1] if error else None)
