"""Dagster runs inside a command (`vt-download`): what they did, their progress, and stopping them.

A command runs the pipeline's jobs in-process, on the instance the UI reads. Two things need
care: the progress bar follows what Dagster stores, and SIGTERM/SIGINT must stop a run within
seconds (`execute_stoppably`), which Dagster does not do for a step with a retry policy when
the run is on the main thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vt_dagster.interrupts import stop_requested

if TYPE_CHECKING:
    import dagster as dg
    from tqdm import tqdm


def first_failure_line(result: dg.ExecuteInProcessResult) -> str:
    """What went wrong, in the asset's own words: a `Failure`'s description, else the user error
    under Dagster's wrapper."""
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data and (data.user_failure_data.description or "").strip():
            return data.user_failure_data.description.strip().splitlines()[0]
        error = data.error
        while error and error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
            error = error.cause
        if error and error.message.strip():
            return error.message.strip().splitlines()[0]
    return "the run failed without a step error: see the run in the Dagster UI"


def status_counts(result: dg.ExecuteInProcessResult) -> dict[str, Counter[str]]:
    """Per stage, how many partitions ended in each `status` (downloaded, missing, summarized...)."""
    counts: dict[str, Counter[str]] = {}
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        status = metadata["status"].value if "status" in metadata else "materialized"
        counts.setdefault(event.asset_key.path[-1], Counter())[str(status)] += 1
    return counts


def describe_counts(counts: dict[str, Counter[str]]) -> str:
    return "; ".join(
        f"{stage} {sum(by_status.values())} (" + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) + ")"
        for stage, by_status in counts.items()
    )


class ProgressListener:
    """Advances the bar on every partition materialized, as Dagster stores it, and counts them
    per stage (what a run stopped midway kept)."""

    def __init__(self, progress: tqdm) -> None:
        self.progress = progress
        self.kept: Counter[str] = Counter()

    def __call__(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        if event is not None and event.event_type_value == "ASSET_MATERIALIZATION":
            self.kept[event.asset_key.path[-1]] += 1
            self.progress.update(1)


class RunStopped(KeyboardInterrupt):
    """A stop signal came while a Dagster run was going; `kept` counts what it materialized per
    stage, `finished` whether it ended (recording its failure) within STOP_BUDGET_S."""

    def __init__(self, run_id: str, kept: Counter[str], finished: bool) -> None:
        super().__init__(run_id)
        self.run_id, self.kept, self.finished = run_id, kept, finished


STOP_BUDGET_S = 3.0
"""How long a run told to stop may take to end and record what it kept, before the command
marks it canceled and exits anyway (Dagster may be writing hundreds of materializations)."""


def execute_stoppably(execute: Callable[[], dg.ExecuteInProcessResult], instance: dg.DagsterInstance,
                      run_id: str, kept: Counter[str]) -> dg.ExecuteInProcessResult:
    """`execute` (an in-process run) in a thread, so that this, the main thread, gets the signals.

    On the main thread Dagster installs its own SIGINT/SIGTERM handlers, and a step with a
    retry policy turns an interrupt into a retry 30 s later: `vt-download` went on after
    SIGTERM. Here the signal requests the stop (`interrupts`): the step's downloads and
    summarizing stop and remove their temp files, the step records the batches it finished
    and fails; if the run has not ended after STOP_BUDGET_S it is marked canceled.
    """
    outcome: dict[str, Any] = {}
    # Waited for through an Event, not Thread.join: a join cut short by KeyboardInterrupt can
    # leave the thread marked stopped while it still runs (CPython before 3.13).
    ended = threading.Event()

    def run() -> None:
        try:
            outcome["result"] = execute()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc
        finally:
            ended.set()

    threading.Thread(target=run, name="dagster-run", daemon=True).start()
    try:
        while not ended.wait(0.2):
            pass
    except KeyboardInterrupt:
        if not ended.wait(STOP_BUDGET_S):
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                instance.report_run_canceled(run, message="the command running it was told to stop")
        raise RunStopped(run_id, kept, finished=ended.is_set()) from None
    if "error" in outcome:
        raise outcome["error"]
    if stop_requested():  # the signal came just as the run ended
        raise RunStopped(run_id, kept, finished=True)
    return outcome["result"]
