"""File summaries: hashes, names, signers, verdicts, submitter and URLs of a file; whitelisted hosts dropped."""

from __future__ import annotations

import json

from vt_dagster_tests.summary_checks import BATCH, _load_sample, _summarize
from vt_dagster_tests.vt_objects import _file_object


def test_file_sample_spot_checks() -> None:
    """Values read by hand from msticpy_vt3_file_1.json (the golden file holds them all)."""
    summary, _ = _summarize(_load_sample("msticpy_vt3_file_1"))
    assert summary["hash.md5"] == "b61a4b8883ba9b9d4d85bdaecab71722"
    assert summary["file.name"] == ["itami.exe", "C:\\\\Windows\\\\System32\\\\services64.exe"]
    assert summary["vt.threat_label"] == "trojan.msil/tasker"
    assert summary["vt.threat_names"] == ["msil", "tasker", "agenttesla"]
    # 40 malicious + 28 undetected + 5 type-unsupported + 1 failure
    assert summary["vt.last_analysis_stats.total"] == 74
    assert summary["vt.sandbox_verdicts.malware_names"] == ["NetMiner"]
    assert summary["@timestamp"] == "2021-10-02T12:40:39Z"  # last_submission_date 1633178439
    assert "file.pe.description" not in summary  # " " in the sample: blank is no value
    assert "vt.capabilities_tags" not in summary  # [] in the sample


def test_file_summary() -> None:
    summary, dropped = _summarize(_file_object())
    assert summary["vt.feed"] == "files" and summary["vt.batch"] == BATCH
    assert summary["@timestamp"] == "2024-06-01T11:06:40Z"  # last_submission_date
    assert summary["file.name"] == ["invoice.exe", "invoice.pdf.exe"]
    assert summary["vt.signers"] == [
        "Evil Corp Ltd", "Sectigo Public Code Signing CA R36", "Sectigo",
    ]
    assert summary["vt.last_analysis_stats.total"] == 76  # includes the unknown category
    assert "vt.last_analysis_stats.new-category" not in summary
    assert summary["vt.sandbox_verdicts.malware_classifications"] == ["MALWARE", "TROJAN"]
    assert (summary["geo.city_name"], summary["geo.country_iso_code"]) == ("ashburn", "US")
    assert summary["vt.submitter.interface"] == "api"
    assert summary["vt.androguard.urls"] == [
        "https://c2.badexample.net/api/v1/register", "HTTP://promo.badexample.net/x?id=1",
    ]
    assert summary["vt.contacted_urls"] == ["http://c2.badexample.net/gate.php"]
    assert summary["vt.embedded_urls"] == ["https://paste.example/raw/1"]
    assert summary["vt.itw_urls"] == ["https://drive.google.com/uc?id=1&export=download"]
    assert summary["vt.network_infrastructure"] == [
        "http://c2.badexample.net/gate.php", "http://198.51.100.4:8080/panel",
    ]
    # schemas.android.com, crl.microsoft.com, schemas.microsoft.com, ocsp.digicert.com
    assert dropped == 4
    assert "TOKEN" not in json.dumps(summary)  # the tokenised feed download link stays out
