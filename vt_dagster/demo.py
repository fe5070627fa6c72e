"""The offline demo: local Elasticsearch + VT emulator + Dagster, no VT key, no network.

It runs through the same definitions, resources and Dagster instance an operator uses, so
the Dagster UI started afterwards shows exactly what the demo did.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from vt_dagster.feeds import minute_key, newest_available_minute

DEMO_FEED = "files"


def _prepare_environment(data_dir: Path, dagster_home: Path, api_url: str, api_key: str, es_url: str) -> None:
    """Point the code location at the local services before it is imported."""
    os.environ["VT_API_URL"] = api_url
    os.environ["VT_API_KEY"] = api_key
    os.environ["ES_URL"] = es_url
    os.environ.setdefault("VT_FEEDS", "files,urls")
    os.environ["VT_DATA_DIR"] = str(data_dir)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    dagster_home.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text("telemetry:\n  enabled: false\n")


def _first_summary_id(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.readline())["vt.id"]
    except (OSError, ValueError, KeyError):
        return None


def run_demo(data_dir: Path, dagster_home: Path, es_port: int = 9200) -> int:
    import dagster as dg

    from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
    from vt_dagster.local_es import LocalElasticsearch

    es_url = os.environ.get("ES_URL") or LocalElasticsearch(port=es_port).start()
    print(f"Elasticsearch:  {es_url}")
    with FeedsEmulator(EmulatorConfig()) as emulator:
        print(f"VT emulator:    {emulator.base_url}")
        _prepare_environment(data_dir, dagster_home, emulator.base_url, emulator.config.api_key, es_url)

        from vt_dagster.definitions import defs
        from vt_dagster.storage import raw_batch_path, summary_path

        instance = dg.DagsterInstance.get()
        print("Setting up Elasticsearch (setup_elasticsearch job) ...")
        setup = defs.resolve_job_def("setup_elasticsearch").execute_in_process(instance=instance, raise_on_error=False)
        if not setup.success:
            print("Elasticsearch setup failed; see the Dagster UI (command below) for the event log.")
            return 1
        batch = minute_key(newest_available_minute(dt.datetime.now(dt.timezone.utc)))
        stages = ("raw_batch", "summaries", "summary_index", "report_cache")
        asset_keys = [dg.AssetKey([DEMO_FEED, stage]) for stage in stages]
        print(f"Materializing {', '.join(k.to_user_string() for k in asset_keys)} partition {batch} ...")
        result = defs.resolve_job_def("vt_live_job").execute_in_process(
            partition_key=batch, instance=instance, asset_selection=asset_keys, raise_on_error=False
        )
    if not result.success:
        print("The run failed; see the Dagster UI (command below) for the event log.")
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        figures = ("status", "objects", "summaries", "rejected", "indexed", "failed", "bytes")
        print(f"  {event.asset_key.to_user_string()} {batch}: "
              + ", ".join(f"{name}={metadata[name].value}" for name in figures if name in metadata))
    print(f"\nRaw batch:   {raw_batch_path(data_dir, DEMO_FEED, batch)}")
    print(f"Summaries:   {summary_path(data_dir, DEMO_FEED, batch)}")
    print(f"Data folder: {data_dir}")
    first_id = _first_summary_id(summary_path(data_dir, DEMO_FEED, batch))
    if first_id:
        print(f"Look a report up (no VT quota):  ES_URL={es_url} vt-dagster lookup {first_id}")
        print(f"Search the summaries:            ES_URL={es_url} vt-dagster search 'vt.feed:{DEMO_FEED}'")
    print("Dagster UI on the same instance (runs, lineage, partitions), with the emulator behind it:")
    print("  vt-dagster emulator --port 8765 &")
    print(f"  DAGSTER_HOME={dagster_home} VT_DATA_DIR={data_dir} VT_API_URL=http://127.0.0.1:8765/api/v3 \\")
    print(f"    VT_API_KEY={emulator.config.api_key} ES_URL={es_url} dagster dev -m vt_dagster.definitions")
    print("Stop the local Elasticsearch with: vt-dagster local-es stop")
    return 0 if result.success else 1
