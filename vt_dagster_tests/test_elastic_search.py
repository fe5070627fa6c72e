"""Search: Lucene queries over the summary aliases, newest first, sandbox traces matched in any case."""

from __future__ import annotations

from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from vt_dagster.elastic import InvalidQueryError, index_summary_file, search_summaries, summaries_table, summary_alias
from vt_dagster.emulator import generate_objects
from vt_dagster_tests.elastic_helpers import BATCH, SEED, write_summaries


def test_sandbox_traces_match_any_case_by_prefix_and_wildcard(
    es_client: Elasticsearch, ready: str, tmp_path: Path
) -> None:
    """Sandboxes spell one Run key differently; a hunter's query finds every spelling."""
    sha256 = "ab" * 32
    spellings = {
        "VirusTotal Jujubox": "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\xws",
        "Lastline": "HKU\\S-1-5-21-1003\\SOFTWARE\\MICROSOFT\\WINDOWS\\CURRENTVERSION\\RUN\\XWS",
        "SNDBOX": "\\REGISTRY\\USER\\S-1-5-21-1000\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
    }
    objects = [{"type": "file_behaviour", "id": f"{sha256}_{sandbox}", "attributes": {
        "sandbox_name": sandbox, "registry_keys_set": [{"key": key, "value": "xws.exe"}],
        "files_dropped": [{"path": f"C:\\Users\\{sandbox}\\AppData\\Roaming\\XWS.EXE"}],
        "command_executions": ["C:\\Windows\\System32\\CMD.exe /c whoami"],
    }} for sandbox, key in spellings.items()]
    objects.append({"type": "file_behaviour", "id": f"{sha256}_Zenbox", "attributes": {
        "registry_keys_set": [{"key": "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce"}],
    }})
    alias = summary_alias(ready, "file_behaviours")
    path = write_summaries(tmp_path, "file_behaviours", BATCH, objects)
    assert index_summary_file(es_client, path, alias=alias, refresh=True).failed == 0

    def sandboxes(query: str) -> set[str]:
        hits = search_summaries(es_client, query, feeds=["file_behaviours"], prefix=ready)
        return {hit["vt.id"].partition("_")[2] for hit in hits}

    run_key = r"vt.behaviour.registry_keys_set:*\\currentversion\\run\\*"
    assert sandboxes(run_key) == {"VirusTotal Jujubox", "Lastline"}
    assert sandboxes(run_key.upper().replace("VT.BEHAVIOUR.REGISTRY_KEYS_SET", "vt.behaviour.registry_keys_set")) \
        == {"VirusTotal Jujubox", "Lastline"}
    assert sandboxes(r"vt.behaviour.registry_keys_set:*\\currentversion\\run*") == set(spellings) | {"Zenbox"}
    assert sandboxes(r"vt.behaviour.files_dropped:*\\appdata\\roaming\\*.exe") == set(spellings)
    assert sandboxes(r"vt.behaviour.registry_keys_set:hkcu\\software*") == {"VirusTotal Jujubox", "Zenbox"}
    # the Query DSL prefix query normalizes too; the summary keeps VT's spelling
    answer = es_client.search(index=alias, query={"prefix": {"vt.behaviour.registry_keys_set": "hku\\s-1-5-21"}})
    [hit] = answer["hits"]["hits"]
    assert hit["_source"]["vt.behaviour.registry_keys_set"] == [spellings["Lastline"]]
    # command lines stay exact keywords: their case matters
    assert sandboxes(r"vt.behaviour.command_executions:*CMD.exe*") == set(spellings)
    assert sandboxes(r"vt.behaviour.command_executions:*cmd.exe*") == set()


def test_search_summaries_finds_newest_first(es_client: Elasticsearch, ready: str, tmp_path: Path) -> None:
    for feed in ("files", "urls"):
        path = write_summaries(tmp_path, feed, BATCH, generate_objects(feed, BATCH, SEED, 10))
        index_summary_file(es_client, path, alias=summary_alias(ready, feed), refresh=True)
    hits = search_summaries(es_client, "vt.feed:(files OR urls)", feeds=["files", "urls", "domains"],
                            prefix=ready, size=50)
    assert {hit["vt.feed"] for hit in hits} == {"files", "urls"}
    stamps = [hit["@timestamp"] for hit in hits]
    assert stamps == sorted(stamps, reverse=True)
    one = hits[0]
    assert search_summaries(es_client, f'vt.id:"{one["vt.id"]}"', feeds=["files", "urls"],
                            prefix=ready) == [one]
    assert one["vt.id"] in summaries_table(hits)
    with pytest.raises(InvalidQueryError) as raised:
        search_summaries(es_client, "vt.id:(", feeds=["files"], prefix=ready)
    assert str(raised.value) == 'invalid query: Encountered "<EOF>" at line 1, column 7 (query: vt.id:()'
