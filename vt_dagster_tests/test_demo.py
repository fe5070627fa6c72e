"""The README's first command: the offline demo end to end (emulator, Elasticsearch, Dagster, UI)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from vt_dagster.local_es import free_port


def test_demo_backfills_both_feeds_shows_a_lookup_and_serves_the_ui(
    es_url: str, index_prefix: str, tmp_path: Path
) -> None:
    env = {**os.environ, "ES_URL": es_url, "ES_INDEX_PREFIX": index_prefix, "PYTHONUNBUFFERED": "1"}
    for name in ("VT_API_KEY", "VT_API_URL", "VT_DATA_DIR", "DAGSTER_HOME", "VT_FEEDS"):
        env.pop(name, None)
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "vt_dagster", "demo", "--data-dir", "data", "--dagster-home", "home",
         "--hours", "0.2", "--ui-port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 400
        for line in demo.stdout:
            output.append(line)
            if line.startswith("Dagster UI:") or time.monotonic() > deadline:
                break
        text = "".join(output)
        assert f"Dagster UI: http://127.0.0.1:{port}" in text, text[-3000:]
        assert requests.get(f"http://127.0.0.1:{port}/server_info", timeout=10).ok
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=60)
    for feed in ("files", "urls"):
        match = re.search(rf"  {feed}: ok; objects=(\d+), summaries=(\d+), rejected=0, "
                          rf"summaries_indexed=(\d+), reports_indexed=(\d+), reports_older_skipped=(\d+)", text)
        assert match, text[-3000:]
        objects, summaries, indexed, reports, older = map(int, match.groups())
        assert objects == summaries == indexed == reports + older > 0 and reports > 0
    assert re.search(r"\$ vt-dagster lookup ([0-9a-f]{64})\n\1: file \1 batch \d{12} malicious=", text)
    assert "$ vt-dagster search" in text and "detections" in text
    assert any((tmp_path / "home").rglob("*.db")), "the runs are in the demo's Dagster instance"
    assert demo.returncode == 0
