"""The offline demo: local Elasticsearch + VT emulator + Dagster, no VT key, no network.

It runs through the same definitions, resources and Dagster instance an operator uses:
the setup job, then a range backfill of the last hours of `files` and `urls` (one range run
per feed, as the backfill policy plans them), then a look-up and a search, then the Dagster
UI on that instance with the emulator still serving, until Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from vt_dagster.feeds import minute_key, newest_available_minute

DEMO_FEEDS = ("files", "urls")
DEFAULT_HOURS = 3.0
# The console shows the demo's own summary lines; Dagster's event log (every step, every
# partition) stays complete in the instance, where the UI shows it.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
STAGES = ("raw_batch", "summaries", "summary_index", "report_cache")
# (stage, metadata figure, label) summed over a feed's partitions to say what a run did.
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


def _prepare_environment(data_dir: Path, dagster_home: Path, api_url: str, api_key: str, es_url: str) -> None:
    """Point the code location at the local services before it is imported."""
    os.environ["VT_API_URL"] = api_url
    os.environ["VT_API_KEY"] = api_key
    os.environ["ES_URL"] = es_url
    os.environ["VT_FEEDS"] = ",".join(DEMO_FEEDS)
    os.environ["VT_DATA_DIR"] = str(data_dir)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    dagster_home.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text("telemetry:\n  enabled: false\n")


def demo_range(hours: float, now: dt.datetime) -> tuple[str, str]:
    """First and last partition of the last `hours` hours the feed serves."""
    last = newest_available_minute(now)
    first = last - dt.timedelta(minutes=max(int(hours * 60), 1) - 1)
    return minute_key(first), minute_key(last)


def _totals(result, feed: str) -> dict[str, int]:
    """Sums of the per-partition figures of one feed's run."""
    totals = {label: 0 for _, _, label in FIGURES}
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[0] != feed:
            continue
        for stage, name, label in FIGURES:
            value = event.materialization.metadata.get(name)
            if event.asset_key.path[-1] == stage and value is not None and isinstance(value.value, int):
                totals[label] += value.value
    return totals


def _first_summary_id(data_dir: Path, feed: str) -> str | None:
    for path in sorted((data_dir / "summary" / feed).glob("*.summary"), reverse=True):
        with open(path, "rb") as handle:
            line = handle.readline()
        if line:
            return json.loads(line)["vt.id"]
    return None


def _show_lookup_and_search(data_dir: Path, es_url: str) -> None:
    from vt_dagster.elastic import lookup, make_client, search_summaries, settings_from_env, summaries_table
    from vt_dagster.elastic_cli import report_line

    sha256 = _first_summary_id(data_dir, "files")
    if sha256 is None:
        return
    settings = settings_from_env()
    client = make_client(settings)
    try:
        found = lookup(client, [sha256], feeds=DEMO_FEEDS, prefix=settings.index_prefix)
        print(f"\n$ vt-dagster lookup {sha256}")
        print(report_line(sha256, found[sha256]))
        query = "vt.last_analysis_stats.malicious:>5"
        print(f"\n$ vt-dagster search '{query}' --size 5")
        print(summaries_table(search_summaries(client, query, feeds=DEMO_FEEDS, prefix=settings.index_prefix, size=5)))
    finally:
        client.close()
    print(f"(with ES_URL={es_url})")


def _run_backfill(hours: float) -> bool:
    import dagster as dg

    from vt_dagster.definitions import defs

    instance = dg.DagsterInstance.get()
    print("Setting up Elasticsearch (setup_elasticsearch job) ...")
    setup = defs.resolve_job_def("setup_elasticsearch").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE)
    if not setup.success:
        print("Elasticsearch setup failed; see the Dagster UI for the event log.")
        return False
    first, last = demo_range(hours, dt.datetime.now(dt.timezone.utc))
    ok = True
    for feed in DEMO_FEEDS:
        print(f"Backfilling {feed} {first}..{last} (one range run: {', '.join(STAGES)}) ...")
        result = defs.resolve_job_def("vt_live_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE,
            asset_selection=[dg.AssetKey([feed, stage]) for stage in STAGES],
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        )
        totals = _totals(result, feed)
        state = "ok" if result.success else "FAILED (see the run in the UI)"
        print(f"  {feed}: {state}; " + ", ".join(f"{label}={n}" for label, n in totals.items()))
        ok = ok and result.success
    return ok


def _serve_ui(port: int, dagster_home: Path) -> int:
    """`dagster dev` (webserver + daemon) on the demo's instance until Ctrl-C."""
    command = [sys.executable, "-m", "dagster", "dev", "-m", "vt_dagster.definitions", "-h", "127.0.0.1", "-p", str(port)]
    ui = subprocess.Popen(command, cwd=dagster_home.parent, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and ui.poll() is None:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        if ui.poll() is not None:
            print(f"the Dagster UI exited with code {ui.returncode}")
            return 1
        print(f"\nDagster UI: {url}  (lineage: {url}/asset-groups, runs: {url}/runs) - Ctrl-C to stop")
        ui.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGINT)
            try:
                ui.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(ui.pid, signal.SIGKILL)


def run_demo(data_dir: Path, dagster_home: Path, es_port: int = 9200, hours: float = DEFAULT_HOURS,
             ui: bool = True, ui_port: int = 3000) -> int:
    from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
    from vt_dagster.local_es import LocalElasticsearch

    es_url = os.environ.get("ES_URL") or LocalElasticsearch(port=es_port).start()
    print(f"Elasticsearch:  {es_url}   (stop it with: vt-dagster local-es stop)")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with FeedsEmulator(EmulatorConfig()) as emulator:
        print(f"VT emulator:    {emulator.base_url}  (key {emulator.config.api_key})")
        _prepare_environment(data_dir, dagster_home, emulator.base_url, emulator.config.api_key, es_url)
        ok = _run_backfill(hours)
        print(f"\nRaw batches:  {data_dir / 'raw'}\nSummaries:    {data_dir / 'summary'}")
        _show_lookup_and_search(data_dir, es_url)
        if not ui:
            return 0 if ok else 1
        served = _serve_ui(ui_port, dagster_home)
    return served if ok else 1
