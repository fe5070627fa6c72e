"""The Dagster UI in a real (headless) Chromium, as the demo leaves it: every enabled feed's
chain in the lineage, the partitions the demo's backfill materialized, the backfill itself in
Runs > Backfills, and the metadata plots. Screenshots go to test-output/browser/."""

from __future__ import annotations

from pathlib import Path

import pytest

from vt_dagster.browser import CHROMIUM_ARGS, find_chromium
from vt_dagster_tests.conftest import DEMO_PARTITIONS, DemoRun

pytestmark = pytest.mark.browser

FEEDS = ("files", "urls")
STAGES = ("raw_batch", "summaries", "summary_index", "report_cache")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "browser"


@pytest.fixture(scope="module")
def ui_url(demo: DemoRun) -> str:
    return demo.ui_url


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


@pytest.mark.parametrize(("feed", "stage"), [(f, s) for f in FEEDS for s in STAGES])
def test_materialized_partitions_appear(page, ui_url: str, feed: str, stage: str) -> None:
    open_page(page, f"{ui_url}/assets/{feed}/{stage}?view=partitions")
    page.get_by_text(f"Materialized ({DEMO_PARTITIONS})").first.wait_for(state="visible")
    page.screenshot(path=str(SCREENSHOTS / f"{feed}-{stage}-partitions.png"))


def test_backfills_page_lists_the_demo_backfill_as_completed(page, demo: DemoRun) -> None:
    open_page(page, f"{demo.ui_url}/runs")
    page.get_by_text("Backfills", exact=True).first.click()
    page.wait_for_url("**view=backfills**")
    # The innermost block holding both the backfill's id and a "Success" status is its row.
    row = (page.locator("div").filter(has=page.get_by_text(demo.backfill_id, exact=True))
           .filter(has=page.get_by_text("Success", exact=True)).last)
    row.wait_for(state="visible")
    assert row.get_by_text("Backfill", exact=True).count() == 1
    assert row.get_by_text("vt_dagster/launched_by: vt-dagster demo").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "backfills.png"))


def test_metadata_plots_are_under_the_asset_overview(page, ui_url: str) -> None:
    open_page(page, f"{ui_url}/assets/files/summaries")
    page.get_by_role("button", name="Plots").click()
    for figure in ("summaries", "rejected", "bytes_out"):
        page.get_by_text(figure, exact=True).first.wait_for(state="visible")
    assert page.locator("canvas").count() >= 3, "one chart per numeric metadata entry"
    page.screenshot(path=str(SCREENSHOTS / "files-summaries-plots.png"), full_page=True)


def test_global_lineage_lists_one_group_per_feed(page, ui_url: str) -> None:
    open_page(page, f"{ui_url}/asset-groups")
    for feed in FEEDS:
        page.get_by_text(feed, exact=True).first.wait_for(state="visible")
    page.screenshot(path=str(SCREENSHOTS / "global-lineage.png"))
