"""Nothing about Dagster's API maturity reaches the console: loading the code location and the
project's commands print no Beta/Preview/Supersession/Deprecation warning, even with every
warning turned on (`-W default`), where Python would show each of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vt_dagster.emulator import EmulatorConfig, FeedsEmulator, generate_batch
from vt_dagster.feeds import FEEDS
from vt_dagster.storage import raw_batch_path

MATURITY_WARNING = re.compile(r"\b(Beta|Preview|Supersession|Deprecation)Warning\b")


def run_python(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -W default ARGS`, with every warning category shown once per place it comes from."""
    cleared = {name: value for name, value in os.environ.items()
               if name not in ("VT_FEEDS", "VT_URL_WHITELIST", "VT_DATA_DIR", "DAGSTER_HOME", "PYTHONWARNINGS")}
    return subprocess.run([sys.executable, "-W", "default", *args], cwd=cwd, env={**cleared, **env},
                          capture_output=True, text=True, timeout=240)


def test_loading_the_code_location_with_every_feed_warns_about_nothing(tmp_path: Path) -> None:
    done = run_python(["-c", "import vt_dagster.definitions"], tmp_path, VT_FEEDS=",".join(FEEDS))
    assert done.returncode == 0, done.stderr
    assert not MATURITY_WARNING.search(done.stderr), done.stderr


def test_the_summary_commands_warn_about_nothing(tmp_path: Path) -> None:
    raw = raw_batch_path(tmp_path, "files", "202611230700")
    raw.parent.mkdir(parents=True)
    raw.write_bytes(generate_batch("files", "202611230700", 1, 2))
    single = run_python(["-m", "vt_dagster", "create-single-summary", str(raw)], tmp_path)
    assert single.returncode == 0 and single.stderr == "", single.stderr
    raw.with_name("202611230701.bz2").write_bytes(generate_batch("files", "202611230701", 1, 2))
    many = run_python(["-m", "vt_dagster.vt_download", "--back-populate-summaries"], tmp_path,
                      VT_DATA_DIR=str(tmp_path))
    assert many.returncode == 0, many.stderr
    assert not MATURITY_WARNING.search(many.stderr), many.stderr


@pytest.mark.service
def test_a_vt_download_run_through_dagster_warns_about_nothing(tmp_path: Path) -> None:
    """Loads the code location and runs both stages of a range in-process on a real instance."""
    with FeedsEmulator(EmulatorConfig(objects_per_minute=1, seed=29)) as emulator:
        done = run_python(
            ["-m", "vt_dagster.vt_download", "--download-feed", "files", "--num-days-ago", "1",
             "--create-summaries", "True", "--max-minutes", "2"], tmp_path,
            VT_API_URL=emulator.base_url, VT_API_KEY=emulator.config.api_key, VT_DATA_DIR=str(tmp_path / "data"),
            DAGSTER_HOME=str(tmp_path / "home"),
        )
    assert done.returncode == 0, done.stderr
    assert "summaries 2 (2 summarized)" in done.stdout
    assert not MATURITY_WARNING.search(done.stderr), done.stderr
