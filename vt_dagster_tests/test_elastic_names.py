"""Names and ids (pure): summary and report document ids, aliases and bootstrap indices from the prefix."""

from __future__ import annotations

import hashlib

from vt_dagster import elastic
from vt_dagster.elastic import bootstrap_index, report_alias, report_doc_id, summary_alias, summary_doc_id


def test_summary_doc_id_is_sha256_of_batch_colon_id() -> None:
    expected = hashlib.sha256(b"202401151200:abc").hexdigest()
    assert summary_doc_id("202401151200", "abc") == expected
    assert summary_doc_id("202401151201", "abc") != expected


def test_report_doc_id_follows_assemblyline_convention() -> None:
    sha256 = "03BD9A94482F180BB047626CB2F27CCF8DAA0E201345480B43585580E09C311B"
    assert report_doc_id(sha256) == sha256.lower()
    assert report_doc_id("tawuhoju.com") == hashlib.sha256(b"tawuhoju.com").hexdigest()
    behaviour = sha256.lower() + "_VirusTotal Jujubox"
    assert report_doc_id(behaviour) == hashlib.sha256(behaviour.encode()).hexdigest()
    assert report_doc_id("g" * 64) == hashlib.sha256(b"g" * 64).hexdigest()


def test_names_follow_the_prefix_and_overrides() -> None:
    assert summary_alias("vt", "file-behaviours") == "vt-summaries-file_behaviours"
    assert report_alias("vt", "files") == "vt-reports-files"
    assert report_alias("vt", "files", {"files": "al-vt-files"}) == "al-vt-files"
    assert report_alias("vt", "urls", {"files": "al-vt-files"}) == "vt-reports-urls"
    assert bootstrap_index("vt-reports-files") == "vt-reports-files-000001"
    assert elastic.batch_version("197001010001") == 1
