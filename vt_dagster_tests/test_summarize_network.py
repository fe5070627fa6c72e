"""Domain and IP address summaries: DNS records, valid IPs only in IP fields, ranks, certificate, AS, geo."""

from __future__ import annotations

from vt_dagster_tests.summary_checks import _load_sample, _summarize
from vt_dagster_tests.vt_objects import _domain_object, _ip_object


def test_domain_sample_keeps_invalid_addresses_out_of_ip_fields() -> None:
    """The sample's A records (66.0.543.66...) are not IPs: keyword fields only."""
    summary, _ = _summarize(_load_sample("opencti_vt_test_domain"))
    assert "related.ip" not in summary
    assert "A 66.0.543.66" in summary["vt.dns.records"]
    assert summary["vt.dns.values"].count("ns-1780.awsdns-30.co.uk") == 1
    assert summary["vt.popularity.best_rank"] == 506742


def test_domain_summary() -> None:
    summary, dropped = _summarize(_domain_object())
    assert summary["url.domain"] == "badexample.net"
    assert summary["vt.dns.records"] == [
        "A 203.0.113.7", "AAAA 2001:db8::7", "MX mx.badexample.net", "NS ns1.dns.example",
    ]
    assert summary["related.ip"] == ["203.0.113.7", "2001:db8::7"]
    assert summary["vt.popularity.ranks"] == ["Cisco Umbrella:950000", "Tranco:120000"]
    assert summary["vt.popularity.best_rank"] == 120_000
    assert summary["tls.server.x509.issuer.organization"] == "Let's Encrypt"
    assert summary["@timestamp"] == "2024-05-30T20:13:20Z"  # last_analysis_date
    assert dropped == 0


def test_ip_address_summary() -> None:
    summary, _ = _summarize(_ip_object())
    assert summary["related.ip"] == ["203.0.113.7"]
    assert (summary["as.number"], summary["as.organization.name"]) == (64_500, "EXAMPLE-AS")
    assert (summary["geo.country_iso_code"], summary["geo.continent_code"]) == ("NL", "EU")
    assert "vt.tags" not in summary
