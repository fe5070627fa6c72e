"""Sandbox report summaries: network and techniques, and trace lists kept distinct to a cap, the rest counted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vt_dagster.summarize import MAX_BEHAVIOUR_PATHS, MAX_STRING_CHARS, summarize_file_behaviour_object
from vt_dagster_tests.summary_checks import WHITELIST, _load_sample, _summarize, assert_valid_summary
from vt_dagster_tests.vt_objects import RUN_KEY, SHA256, _behaviour_object, overfull_behaviour_object


def test_behaviour_sample_spot_checks() -> None:
    """Values read by hand from msticpy_vt3_behavior_ms_sysinternals.json (a coin miner that
    installs a driver service and a scheduled task)."""
    summary, _ = _summarize(_load_sample("msticpy_vt3_behavior_ms_sysinternals"))
    assert summary["hash.sha256"] == (
        "03bd9a94482f180bb047626cb2f27ccf8daa0e201345480b43585580e09c311b"
    )
    # three items, the `Start` key twice with two values: two keys
    assert summary["vt.behaviour.registry_keys_set"] == [
        "HKLM\\System\\CurrentControlSet\\Services\\WinRing0_1_2_0\\Start",
        "HKLM\\System\\CurrentControlSet\\Services\\WinRing0_1_2_0\\ImagePath",
    ]
    # 27 dropped files, paths only (the sample gives no hashes)
    assert len(summary["vt.behaviour.files_dropped"]) == 27
    assert "C:\\Windows\\System32\\Tasks\\services64" in summary["vt.behaviour.files_dropped"]
    assert "vt.behaviour.dropped_sha256" not in summary
    assert len(summary["vt.behaviour.files_deleted"]) == 18
    assert "vt.behaviour.files_written" not in summary  # not in the sample
    assert "vt.behaviour.registry_keys_deleted" not in summary
    assert not any(key.startswith("vt.behaviour.cut.") for key in summary)
    assert summary["@timestamp"] == "2021-10-05T00:19:21Z"  # analysis_date 1633393161


def test_file_behaviour_summary() -> None:
    summary, dropped = _summarize(_behaviour_object())
    assert summary["vt.type"] == "file_behaviour" and summary["vt.feed"] == "file_behaviours"
    assert summary["hash.sha256"] == SHA256
    assert summary["vt.behaviour.sandbox_name"] == "VirusTotal Jujubox"
    assert summary["@timestamp"] == "2024-06-01T11:23:20Z"  # analysis_date
    assert summary["threat.technique.id"] == ["T1053.005", "T1055"]
    assert summary["vt.behaviour.dns_lookups"] == ["c2.badexample.net", "nx.badexample.org"]
    assert summary["vt.behaviour.destination_ips"] == ["203.0.113.7", "198.51.100.53"]
    assert summary["related.ip"] == ["203.0.113.7", "198.51.100.53", "192.0.2.80"]
    assert summary["vt.behaviour.http_urls"] == ["http://c2.badexample.net/gate.php"]
    assert summary["vt.behaviour.dropped_sha256"] == ["5" * 64]
    assert summary["vt.behaviour.signature_names"] == ["Creates a scheduled task"]
    assert summary["vt.sigma.rule_titles"] == ["Scheduled Task Creation"]
    assert summary["vt.ids.rule_msgs"] == ["ET MALWARE AgentTesla CnC Checkin"]
    assert dropped == 2  # ocsp.digicert.com lookup, crl.microsoft.com conversation
    assert summary["vt.behaviour.registry_keys_set"] == [
        f"{RUN_KEY}\\Updates", "HKLM\\SYSTEM\\ControlSet001\\Services\\Updates\\ImagePath",
    ]
    assert summary["vt.behaviour.registry_keys_deleted"] == [
        "HKCU\\Software\\Classes\\mscfile\\shell\\open\\command",
    ]
    assert summary["vt.behaviour.files_dropped"] == [
        "C:\\Users\\user\\AppData\\Roaming\\svchost.exe", "C:\\Users\\user\\tmp1.xml",
    ]
    assert summary["vt.behaviour.files_written"] == [
        "C:\\Users\\user\\AppData\\Roaming\\svchost.exe", "C:\\Windows\\System32\\Tasks\\Updates",
    ]
    assert summary["vt.behaviour.files_deleted"] == ["C:\\Users\\user\\tmp1.xml"]
    assert not any(key.startswith("vt.behaviour.cut.") for key in summary)  # nothing over the cap
    text = json.dumps(summary)
    assert "registry_keys_opened" not in text and "Cryptography" not in text
    assert "Win32 EXE" not in text  # a dropped file's type is not kept


# --- sandbox traces: registry keys and file paths for persistence hunting ------------------

TRACE_LISTS = {
    "registry_keys_set": "key", "registry_keys_deleted": None, "files_dropped": "path",
    "files_written": None, "files_deleted": None,
}


def _traces(attributes: dict[str, Any]) -> dict[str, Any]:
    """The sandbox-trace fields (lists and cut counts) of a behaviour with `attributes`."""
    summary = summarize_file_behaviour_object(
        {"id": f"{SHA256}_Zenbox", "type": "file_behaviour", "attributes": attributes},
        whitelist=WHITELIST,
    )
    assert_valid_summary(summary, "file_behaviours")
    return {key.removeprefix("vt.behaviour."): value for key, value in summary.items()
            if key.startswith(("vt.behaviour.registry_keys", "vt.behaviour.files_",
                               "vt.behaviour.cut."))}


def _items(attribute: str, values: list[Any]) -> list[Any]:
    """`values` as VT lists them in `attribute`: objects for key/path lists, else as they are."""
    key = TRACE_LISTS[attribute]
    return [{key: value} for value in values] if key else values


@pytest.mark.parametrize("attribute", sorted(TRACE_LISTS))
def test_each_trace_list_keeps_the_first_distinct_values_and_counts_the_rest(attribute: str) -> None:
    values = [f"C:\\Temp\\f{n}" for n in range(MAX_BEHAVIOUR_PATHS + 30)]
    # duplicates before and after the cap count neither as kept nor as cut
    listed = values[:10] + values + values[-5:] + values[:3]
    traces = _traces({attribute: _items(attribute, listed)})
    assert traces == {attribute: values[:MAX_BEHAVIOUR_PATHS], f"cut.{attribute}": 30}


@pytest.mark.parametrize("attribute", sorted(TRACE_LISTS))
def test_a_list_at_the_cap_is_whole_and_has_no_cut_count(attribute: str) -> None:
    values = [f"/tmp/f{n}" for n in range(MAX_BEHAVIOUR_PATHS)]
    assert _traces({attribute: _items(attribute, values)}) == {attribute: values}


def test_unreadable_items_are_neither_kept_nor_counted_as_cut() -> None:
    junk = [None, "", "   ", True, [], [["nested"]], {}, {"value": "x"}, {"key": None},
            {"path": {"deep": 1}}, 1.5e300 * 1e300]
    valid = [f"HKLM\\k{n}" for n in range(MAX_BEHAVIOUR_PATHS + 1)]
    traces = _traces({"registry_keys_set": junk + [{"key": v} for v in valid] + junk})
    assert traces == {"registry_keys_set": valid[:-1], "cut.registry_keys_set": 1}


def test_odd_trace_shapes_are_read_where_they_can_be() -> None:
    long_path = "C:\\" + "a" * (MAX_STRING_CHARS + 50)
    traces = _traces({
        # a bare string where VT gives an object is the key or path itself
        "registry_keys_set": [f"{RUN_KEY}\\x", {"key": f"  {RUN_KEY}\\y  ", "value": "v" * 100_000},
                              {"key": 7, "value": "DWORD"}, {"value": "no key"}],
        # a lone object or string counts as a list of one
        "files_dropped": {"path": "C:\\dropped.exe", "sha256": "5" * 64},
        "files_written": "C:\\written.txt",
        # objects in a list of strings have no known key: dropped
        "files_deleted": [{"path": "C:\\not-read"}, long_path, long_path + "b"],
        "registry_keys_deleted": {"key": "not read either"},
    })
    assert traces == {
        "registry_keys_set": [f"{RUN_KEY}\\x", f"{RUN_KEY}\\y", "7"],
        "files_dropped": ["C:\\dropped.exe"],
        "files_written": ["C:\\written.txt"],
        "files_deleted": [long_path[:MAX_STRING_CHARS]],  # both clip to the same value
    }


@pytest.mark.parametrize("value", [None, [], {}, "", "  ", False, float("nan"), [None, {}, [], ""]])
def test_missing_or_empty_trace_lists_leave_no_field(value: Any) -> None:
    assert _traces({attribute: value for attribute in TRACE_LISTS}) == {}


def test_case_variants_are_distinct_values_as_vt_gave_them() -> None:
    """Kept as spelled (the index matches them case-insensitively, see the schema)."""
    keys = [f"{RUN_KEY}\\x", f"{RUN_KEY.upper()}\\X"]
    assert _traces({"registry_keys_set": _items("registry_keys_set", keys)}) == {
        "registry_keys_set": keys,
    }


def test_overfull_report_counts_every_cut_list() -> None:
    summary, _ = _summarize(overfull_behaviour_object())
    for attribute in TRACE_LISTS:
        assert len(summary[f"vt.behaviour.{attribute}"]) == MAX_BEHAVIOUR_PATHS
        assert summary[f"vt.behaviour.cut.{attribute}"] == 7
    # the dropped files' hashes keep the general list cap: every one is there
    assert len(summary["vt.behaviour.dropped_sha256"]) == MAX_BEHAVIOUR_PATHS + 7
