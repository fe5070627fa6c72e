"""URL summaries: the URL, its redirection chain, outgoing links past the caller's whitelist, categories."""

from __future__ import annotations

from vt_dagster.summarize import summarize_object
from vt_dagster.whitelist import UrlWhitelist
from vt_dagster_tests.summary_checks import BATCH, _summarize
from vt_dagster_tests.vt_objects import _url_object


def test_url_summary() -> None:
    summary, dropped = _summarize(_url_object())
    assert summary["url.full"] == "http://login.badexample.net/owa/?user=a@b.example"
    assert summary["url.domain"] == "login.badexample.net"
    assert summary["vt.title"] == "Outlook Web App"
    # the chain is the URL's own path: whitelisted hops stay
    assert len(summary["vt.redirection_chain"]) == 3
    assert summary["vt.outgoing_links"] == ["https://exfil.badexample.org/collect"]
    assert dropped == 2
    assert summary["vt.categories"] == ["phishing", "phishing and fraud"]
    assert summary["vt.targeted_brands"] == ["Microsoft"]
    assert summary["geo.country_iso_code"] == "FR"


def test_whitelist_is_the_callers() -> None:
    summary, dropped = summarize_object(
        _url_object(), feed="urls", batch=BATCH, whitelist=UrlWhitelist([])
    )
    assert dropped == 0 and len(summary["vt.outgoing_links"]) == 3
