"""The Dagster UI in a real (headless) Chromium: every enabled feed's chain in the lineage,
and the partitions the runs materialized. Screenshots go to test-output/browser/."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import requests

from vt_dagster.assets.raw_batch import build_raw_batch_asset
from vt_dagster.assets.summaries import build_summaries_asset
from vt_dagster.browser import CHROMIUM_ARGS, find_chromium
from vt_dagster.emulator import EmulatorConfig, FeedsEmulator
from vt_dagster.feeds import get_feed, minute_key
from vt_dagster.local_es import free_port
from vt_dagster.resources import VTFeedsResource, VTStorageResource, VTSummarizerResource

pytestmark = pytest.mark.browser

FEEDS = ("files", "urls")
STAGES = ("raw_batch", "summaries", "summary_index", "report_cache")
MATERIALIZED = 3
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "browser"


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Dagster webserver on an instance where each feed has MATERIALIZED partitions."""
    home = tmp_path_factory.mktemp("ui_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    data = tmp_path_factory.mktemp("ui_data")
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=120)
    keys = [minute_key(start + dt.timedelta(minutes=m)) for m in range(MATERIALIZED)]
    env = {**os.environ, "DAGSTER_HOME": str(home), "VT_FEEDS": ",".join(FEEDS), "VT_DATA_DIR": str(data),
           "DAGSTER_DISABLE_TELEMETRY": "1"}
    with FeedsEmulator(EmulatorConfig(objects_per_minute=2, seed=5)) as emulator:
        os.environ["VT_UI_TEST_KEY"] = emulator.config.api_key
        resources = {
            "vt_feeds": VTFeedsResource(api_key=dg.EnvVar("VT_UI_TEST_KEY"), api_url=emulator.base_url),
            "vt_storage": VTStorageResource(root=str(data)),
            "vt_summarizer": VTSummarizerResource(workers=1),
        }
        with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
            for feed in FEEDS:
                assets = [build_raw_batch_asset(get_feed(feed)), build_summaries_asset(get_feed(feed))]
                result = dg.materialize(assets, resources=resources, instance=instance, tags={
                    "dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
                assert result.success
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-m", "vt_dagster.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            pytest.fail("the Dagster webserver did not answer within 120 s")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def page(ui_url: str):
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        pytest.fail("Chromium is not installed: run `python3 -m vt_dagster install-browser`")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def open_page(page, url: str) -> None:
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=4_000)
        skip.click()
    except Exception:  # noqa: BLE001 - the community pop-up shows only on a first visit
        pass


@pytest.mark.parametrize("feed", FEEDS)
def test_lineage_shows_the_whole_chain_of_every_enabled_feed(page, ui_url: str, feed: str) -> None:
    open_page(page, f"{ui_url}/assets/{feed}/raw_batch?view=lineage&lineageScope=downstream&lineageDepth=3")
    for stage in STAGES:
        page.get_by_text(stage, exact=True).first.wait_for(state="visible")
    page.screenshot(path=str(SCREENSHOTS / f"{feed}-lineage.png"))
    assert page.get_by_text("Elasticsearch").count() >= 2, "the kinds of the Elasticsearch stages show"


@pytest.mark.parametrize(("feed", "stage"), [(f, s) for f in FEEDS for s in ("raw_batch", "summaries")])
def test_materialized_partitions_appear(page, ui_url: str, feed: str, stage: str) -> None:
    open_page(page, f"{ui_url}/assets/{feed}/{stage}?view=partitions")
    page.get_by_text(f"Materialized ({MATERIALIZED})").first.wait_for(state="visible")
    page.screenshot(path=str(SCREENSHOTS / f"{feed}-{stage}-partitions.png"))


def test_global_lineage_lists_one_group_per_feed(page, ui_url: str) -> None:
    open_page(page, f"{ui_url}/asset-groups")
    for feed in FEEDS:
        page.get_by_text(feed, exact=True).first.wait_for(state="visible")
    page.screenshot(path=str(SCREENSHOTS / "global-lineage.png"))
