"""The README's first command: the offline demo end to end (emulator, Elasticsearch, Dagster)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from vt_dagster.storage import verify_batch_file


def test_demo_materializes_the_newest_files_batch_and_says_where_to_look(
    es_url: str, index_prefix: str, tmp_path: Path
) -> None:
    env = {**os.environ, "ES_URL": es_url, "ES_INDEX_PREFIX": index_prefix}
    for name in ("VT_API_KEY", "VT_API_URL", "VT_DATA_DIR", "DAGSTER_HOME", "VT_FEEDS"):
        env.pop(name, None)
    demo = subprocess.run(
        [sys.executable, "-m", "vt_dagster", "demo", "--data-dir", "data", "--dagster-home", "home"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert re.search(r"files/raw_batch \d{12}: status=downloaded, objects=\d+", demo.stdout)
    assert re.search(r"files/summaries \d{12}: status=summarized, objects=(\d+), summaries=\1, rejected=0", demo.stdout)
    raw = Path(re.search(r"Raw batch:\s+(\S+)", demo.stdout).group(1))
    assert raw.is_relative_to(tmp_path / "data") and verify_batch_file(raw).ok
    summaries = Path(re.search(r"Summaries:\s+(\S+)", demo.stdout).group(1))
    assert len(summaries.read_text().splitlines()) == verify_batch_file(raw).objects
    assert "dagster dev -m vt_dagster.definitions" in demo.stdout
    indexed = re.search(r"files/summary_index \d{12}: status=indexed, indexed=(\d+), failed=0", demo.stdout)
    assert indexed and int(indexed.group(1)) > 0
    assert re.search(r"vt-dagster lookup [0-9a-f]{64}", demo.stdout)
    assert any((tmp_path / "home").rglob("*.db")), "the run is recorded in the demo's Dagster instance"
