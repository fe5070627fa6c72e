"""The offline demo: local Elasticsearch + VT emulator + Dagster, no VT key, no network.

It runs what an operator runs: `dagster dev` (webserver and daemon) on the demo's instance,
the setup job launched through the webserver, then a real backfill of the last hours of every
enabled feed, submitted with the mutation the UI's Materialize dialog sends and planned by the
backfill daemon with the assets' backfill policy. It prints the backfill's progress, what it
did per feed, a look-up and a search, then leaves the UI up (emulator still serving) until
Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from vt_dagster.dagster_ui import (
    BACKFILL_TAG,
    CODE_LOCATION_MODULE,
    RUN_DONE,
    BackfillState,
    DagsterDev,
    DagsterUIError,
    backfill_state,
    cancel_backfill,
    launch_asset_backfill,
    launch_job_run,
    run_status,
    sigterm_as_interrupt,
)
from vt_dagster.feeds import Feed, enabled_feeds, minute_key, newest_available_minute

if TYPE_CHECKING:
    # Imported where used: `vt-dagster --help` should not pay for importing Dagster.
    import dagster as dg

DEFAULT_HOURS = 3.0
STAGES = ("raw_batch", "summaries", "summary_index", "report_cache")
SETUP_JOB = "setup_elasticsearch"
LAUNCHED_BY = {"vt_dagster/launched_by": "vt-dagster demo"}
POLL_SECONDS = 2.0
# How long the webserver may not answer a progress poll before the demo gives up on it.
UNANSWERED_LIMIT_S = 120.0
# (stage, metadata figure, label) summed over a feed's partitions to say what the backfill did.
FIGURES = (
    ("raw_batch", "objects", "objects"),
    ("summaries", "summaries", "summaries"),
    ("summaries", "rejected", "rejected"),
    ("summary_index", "indexed", "summaries_indexed"),
    ("report_cache", "indexed", "reports_indexed"),
    # Reports of an object a newer batch of the range had already written (batches are
    # indexed two at a time; the newest analysis wins whatever the order).
    ("report_cache", "skipped_older", "reports_older_skipped"),
)


def elapsed(seconds: float) -> str:
    """`1m05s`, or `42s` under a minute."""
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def demo_partitions(hours: float, now: dt.datetime) -> list[str]:
    """The partition keys of the last `hours` hours the feeds serve, oldest first."""
    from vt_dagster.partitions import partition_window_start

    if not hours > 0:
        raise ValueError(f"--hours must be more than 0, not {hours:g}")
    last = newest_available_minute(now)
    minutes = max(round(hours * 60), 1)
    first = last - dt.timedelta(minutes=minutes - 1)
    oldest = partition_window_start(now)
    if first < oldest:
        most = math.floor(((last - oldest).total_seconds() / 60 + 1) / 6) / 10
        raise ValueError(f"--hours {hours:g} reaches back past the oldest partition ({minute_key(oldest)}; "
                         f"VT keeps 7 days): at most {most:g} hours now")
    return [minute_key(first + dt.timedelta(minutes=m)) for m in range(minutes)]


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise ValueError(f"--ui-port {port} is in use on 127.0.0.1: pick another one") from None


def _prepare_environment(data_dir: Path, dagster_home: Path, api_url: str, api_key: str, es_url: str) -> None:
    """Point the code location (in `dagster dev` and its runs) at the local services."""
    from vt_dagster.vt_download import prepare_dagster_home

    os.environ["VT_API_URL"] = api_url
    os.environ["VT_API_KEY"] = api_key
    os.environ["ES_URL"] = es_url
    os.environ["VT_DATA_DIR"] = str(data_dir)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    data_dir.mkdir(parents=True, exist_ok=True)
    prepare_dagster_home()


def feed_totals(instance: dg.DagsterInstance, run_ids: Sequence[str],
                feeds: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per feed, the per-partition figures of FIGURES summed over the runs' materializations."""
    import dagster as dg

    totals = {feed: {label: 0 for _, _, label in FIGURES} for feed in feeds}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.asset_materialization
            feed, stage = materialization.asset_key.path[0], materialization.asset_key.path[-1]
            if feed not in totals:
                continue
            for figure_stage, name, label in FIGURES:
                value = materialization.metadata.get(name)
                if stage == figure_stage and value is not None and isinstance(value.value, int):
                    totals[feed][label] += value.value
    return totals


def _first_summary_id(data_dir: Path, feed: str) -> str | None:
    for path in sorted((data_dir / "summary" / feed).glob("*.summary"), reverse=True):
        with open(path, "rb") as handle:
            line = handle.readline()
        if line:
            return json.loads(line)["vt.id"]
    return None


def _show_lookup_and_search(data_dir: Path, es_url: str, feeds: Sequence[str]) -> None:
    from vt_dagster.elastic import lookup, make_client, search_summaries, settings_from_env, summaries_table
    from vt_dagster.elastic_cli import report_line

    found_id = next((found for found in (_first_summary_id(data_dir, feed) for feed in feeds) if found), None)
    if found_id is None:
        return
    settings = settings_from_env()
    client = make_client(settings)
    try:
        found = lookup(client, [found_id], feeds=feeds, prefix=settings.index_prefix)
        print(f"\n$ vt-dagster lookup {found_id}")
        print(report_line(found_id, found[found_id]))
        query = "vt.last_analysis_stats.malicious:>5"
        print(f"\n$ vt-dagster search '{query}' --size 5")
        print(summaries_table(search_summaries(client, query, feeds=feeds, prefix=settings.index_prefix, size=5)))
    finally:
        client.close()
    print(f"(with ES_URL={es_url})")


def _setup_elasticsearch(dagster: DagsterDev) -> bool:
    """The setup job, launched through the webserver as the launchpad does."""
    started = time.monotonic()
    run_id = launch_job_run(dagster.url, SETUP_JOB, LAUNCHED_BY)
    print(f"Setting up Elasticsearch: run {run_id[:8]} of {SETUP_JOB} ...", end="", flush=True)
    status = run_status(dagster.url, run_id)
    while status not in RUN_DONE:
        _check_alive(dagster)
        time.sleep(POLL_SECONDS / 2)
        status = run_status(dagster.url, run_id)
    print(f" {status.lower()} ({elapsed(time.monotonic() - started)})")
    if status != "SUCCESS":
        print(f"Elasticsearch setup failed: see its event log at {dagster.url}/runs/{run_id}")
    return status == "SUCCESS"


def _check_alive(dagster: DagsterDev) -> None:
    code = dagster.exited()
    if code is not None:
        raise DagsterUIError(f"dagster dev exited with code {code}; its output is in {dagster.log}")


def _follow_backfill(dagster: DagsterDev, backfill_id: str) -> BackfillState:
    """Poll the backfill until the daemon is done with it; a line each time its progress changes."""
    started = last_answer = time.monotonic()
    shown = None
    while True:
        _check_alive(dagster)
        try:
            state = backfill_state(dagster.url, backfill_id)
        except requests.RequestException:
            if time.monotonic() - last_answer > UNANSWERED_LIMIT_S:
                raise DagsterUIError(f"the Dagster webserver stopped answering; its output is in {dagster.log}")
            time.sleep(POLL_SECONDS)
            continue
        last_answer = time.monotonic()
        line = state.describe()
        if line != shown:
            print(f"{line} ({elapsed(last_answer - started)})", flush=True)
            shown = line
        if state.done:
            return state
        time.sleep(POLL_SECONDS)


def _backfill(dagster: DagsterDev, instance: dg.DagsterInstance, feeds: Sequence[Feed],
              partitions: list[str]) -> tuple[str, bool]:
    """Submit the backfill of every stage of every feed over `partitions`, follow it, print totals."""
    import dagster as dg

    names = [feed.name for feed in feeds]
    assets = [[feed, stage] for feed in names for stage in STAGES]
    backfill_id = launch_asset_backfill(dagster.url, assets, partitions, LAUNCHED_BY)
    print(f"Backfill {backfill_id}: {', '.join(names)} {partitions[0]}..{partitions[-1]} ({len(partitions)} "
          f"partitions x {len(assets)} assets), submitted as the UI's Materialize dialog does; the backfill "
          f"daemon plans its runs (it looks every 30 s)")
    try:
        state = _follow_backfill(dagster, backfill_id)
    except KeyboardInterrupt:
        print(f"\nCancelling backfill {backfill_id} ...")
        try:
            cancel_backfill(dagster.url, backfill_id)
        except (requests.RequestException, DagsterUIError) as exc:
            print(f"backfill {backfill_id} could not be cancelled ({exc}): cancel it in the UI")
        raise
    runs = [run.run_id for run in instance.get_runs(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))]
    totals = feed_totals(instance, runs, names)
    for name in names:
        progress = state.feed_progress(name)
        verdict = ("ok" if progress.failed == 0 and progress.materialized == progress.targeted
                   else f"FAILED ({progress.failed} asset partitions failed, "
                        f"{progress.materialized}/{progress.targeted} materialized)")
        print(f"  {name}: {verdict}; " + ", ".join(f"{label}={n}" for label, n in totals[name].items()))
    if not state.succeeded:
        why = f": {state.error}" if state.error else ""
        print(f"Backfill {backfill_id} ended {state.status.lower()}{why}. Its runs and their event logs: "
              f"{dagster.url}/runs/b/{backfill_id}?tab=runs; dagster dev's output: {dagster.log}")
    return backfill_id, state.succeeded


def run_demo(data_dir: Path, dagster_home: Path, es_port: int = 9200, hours: float = DEFAULT_HOURS,
             ui: bool = True, ui_port: int = 3000, objects_per_minute: int | None = None) -> int:
    import dagster as dg

    from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
    from vt_dagster.local_es import LocalElasticsearch

    started = time.monotonic()
    # Everything the user can get wrong is refused in one line before any service starts.
    feeds = enabled_feeds()
    partitions = demo_partitions(hours, dt.datetime.now(dt.timezone.utc))
    _check_port_free(ui_port)
    config = EmulatorConfig() if objects_per_minute is None else EmulatorConfig(objects_per_minute=objects_per_minute)

    es_url = os.environ.get("ES_URL") or LocalElasticsearch(port=es_port).start()
    print(f"Elasticsearch:  {es_url}   (stop it with: vt-dagster local-es stop)")
    with sigterm_as_interrupt(), FeedsEmulator(config) as emulator:
        print(f"VT emulator:    {emulator.base_url}  (key {emulator.config.api_key})")
        _prepare_environment(data_dir, dagster_home, emulator.base_url, emulator.config.api_key, es_url)
        # Creating the instance's storage here, before two processes would race to migrate it.
        with dg.DagsterInstance.get() as instance, DagsterDev(
                dagster_home, ui_port, log=dagster_home / "dagster-dev.log") as dagster:
            print(f"Dagster:        dagster dev (webserver + daemon) on DAGSTER_HOME={dagster_home}, "
                  f"output in {dagster.log} ...", flush=True)
            dagster.wait_ready()
            print(f"Dagster:        {dagster.url} is up ({elapsed(time.monotonic() - started)} in)")
            _note_automation_left_on(instance)
            ok = _setup_elasticsearch(dagster)
            backfill_id = None
            if ok:
                backfill_id, ok = _backfill(dagster, instance, feeds, partitions)
            print(f"\nRaw batches:  {data_dir / 'raw'}\nSummaries:    {data_dir / 'summary'}")
            if ok:
                _show_lookup_and_search(data_dir, es_url, [feed.name for feed in feeds])
            if not ui:
                if not ok:
                    print(f"To look at the runs: DAGSTER_HOME={dagster_home} dagster dev -m {CODE_LOCATION_MODULE}")
                return 0 if ok else 1
            _print_ui_guide(dagster.url, backfill_id, feeds)
            print(f"Dagster UI: {dagster.url}  (up {elapsed(time.monotonic() - started)} after the start) "
                  "- Ctrl-C stops it, the daemon and the emulator", flush=True)
            try:
                code = dagster.wait()
            except KeyboardInterrupt:
                return 0 if ok else 1
            print(f"dagster dev exited with code {code}; its output is in {dagster.log}")
            return 1


ON_BY_DEFAULT = ("vt_retention_schedule",)
"""Automation the code location turns on itself: no surprise worth a note."""


def _note_automation_left_on(instance: dg.DagsterInstance) -> None:
    """The demo turns no schedule or sensor on, but an instance used before may have some on."""
    running = sorted(state.name for state in instance.all_instigator_state()
                     if state.status.value == "RUNNING" and state.name not in ON_BY_DEFAULT)
    if running:
        print(f"note: turned on in this instance earlier, so the daemon runs them too: {', '.join(running)} "
              "(the UI's Automation page turns them off)")


def _print_ui_guide(url: str, backfill_id: str | None, feeds: Sequence[Feed]) -> None:
    feed = feeds[0].name
    print()
    if backfill_id:
        print(f"The backfill:    {url}/runs/b/{backfill_id}  (all of them: Runs > Backfills)")
    print(f"Lineage:         {url}/asset-groups")
    print(f"Metadata plots:  an asset's Overview > Metadata > Plots, e.g. {url}/assets/{feed}/summaries")
