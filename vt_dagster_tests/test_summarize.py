"""Summarizers: golden summaries of real VT objects, odd input, every feed, schema agreement.

Golden files (`golden/<sample>.summary.json`) were generated once and then checked value by
value against the samples. After a deliberate change, regenerate them with
`VT_DAGSTER_WRITE_GOLDEN=1 python -m pytest vt_dagster_tests/test_summarize.py` and review
the diff: a golden file is a claim about the sample, not a snapshot to wave through.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vt_dagster.summarize import (
    MAX_BEHAVIOUR_PATHS,
    MAX_LIST_ITEMS,
    MAX_STRING_CHARS,
    NotAVTObjectError,
    summarize_domain_object,
    summarize_file_behaviour_object,
    summarize_file_object,
    summarize_ip_address_object,
    summarize_object,
    summarize_url_object,
)
from vt_dagster.whitelist import UrlWhitelist
from vt_dagster_tests.summary_checks import (
    BATCH,
    BATCH_TIMESTAMP,
    FEED_OF_TYPE,
    GOLDEN_DIR,
    REPO,
    SAMPLES_DIR,
    SCHEMA,
    WHITELIST,
    _bare,
    _golden_names,
    _load_sample,
    _summarize,
    assert_valid_summary,
)
from vt_dagster_tests.vt_objects import (
    MAXIMAL_OBJECTS,
    RUN_KEY,
    SHA256,
    _behaviour_object,
    _domain_object,
    _file_object,
    _ip_object,
    _url_object,
    overfull_behaviour_object,
)

TEMPLATE = REPO / "index_templates" / "vt_summaries.template.json"


def _mapping_kind(spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "keyword":
        assert spec.get("ignore_above") == MAX_STRING_CHARS, spec
        assert set(spec) <= {"type", "ignore_above", "fields", "normalizer"}, spec
        if "fields" in spec:
            assert spec["fields"] == {"text": {"type": "text"}}, spec
            assert "normalizer" not in spec, spec
            return "keyword_url"
        if "normalizer" in spec:
            assert spec["normalizer"] == "lowercase", spec
            return "keyword_lower"
        return "keyword"
    if kind == "date":
        return "date" if spec.get("format") == "epoch_second" else "date_iso"
    return str(kind)


def _flatten(properties: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for name, spec in properties.items():
        if "properties" in spec:
            assert set(spec) == {"properties"}, f"object {prefix}{name} has other settings"
            yield from _flatten(spec["properties"], f"{prefix}{name}.")
        else:
            yield prefix + name, _mapping_kind(spec)


def _samples() -> list[Path]:
    assert SAMPLES_DIR.is_dir(), (
        f"VT samples folder missing from the repository: {SAMPLES_DIR}"
    )
    return sorted(SAMPLES_DIR.glob("*.json"))


# --- golden summaries of the real samples --------------------------------------------------

def test_every_sample_has_a_golden_summary() -> None:
    samples = _samples()
    assert samples, f"no *.json in {SAMPLES_DIR}"
    goldens = sorted(
        path.name.removesuffix(".summary.json") for path in GOLDEN_DIR.glob("*.summary.json")
    )
    assert [path.stem for path in samples] == goldens


@pytest.mark.parametrize("stem", _golden_names())
@pytest.mark.parametrize("shape", ["bare", "data"])
def test_golden_summary(stem: str, shape: str) -> None:
    sample = _bare(_load_sample(stem))
    obj = sample if shape == "bare" else {"data": sample}
    summary, dropped = _summarize(obj)
    golden_path = GOLDEN_DIR / f"{stem}.summary.json"
    if os.environ.get("VT_DAGSTER_WRITE_GOLDEN") == "1" and shape == "bare":
        golden_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    assert golden_path.is_file(), f"no golden summary {golden_path}: see this module's docstring"
    assert summary == json.loads(golden_path.read_text(encoding="utf-8"))
    assert dropped == 0
    assert_valid_summary(summary, FEED_OF_TYPE[sample["type"]])


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


def test_domain_sample_keeps_invalid_addresses_out_of_ip_fields() -> None:
    """The sample's A records (66.0.543.66...) are not IPs: keyword fields only."""
    summary, _ = _summarize(_load_sample("opencti_vt_test_domain"))
    assert "related.ip" not in summary
    assert "A 66.0.543.66" in summary["vt.dns.records"]
    assert summary["vt.dns.values"].count("ns-1780.awsdns-30.co.uk") == 1
    assert summary["vt.popularity.best_rank"] == 506742


# --- every feed ----------------------------------------------------------------------------

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


@pytest.mark.parametrize(
    ("function", "make"),
    [
        (summarize_file_object, _file_object),
        (summarize_url_object, _url_object),
        (summarize_domain_object, _domain_object),
        (summarize_ip_address_object, _ip_object),
        (summarize_file_behaviour_object, _behaviour_object),
    ],
)
def test_per_type_functions_match_summarize_object(function: Any, make: Any) -> None:
    obj = make()
    full, _ = _summarize(obj)
    part = function(obj, whitelist=WHITELIST)
    assert {k: v for k, v in full.items() if k not in ("vt.feed", "vt.batch")} == part


def test_whitelist_is_the_callers() -> None:
    summary, dropped = summarize_object(
        _url_object(), feed="urls", batch=BATCH, whitelist=UrlWhitelist([])
    )
    assert dropped == 0 and len(summary["vt.outgoing_links"]) == 3


# --- dispatch and errors -------------------------------------------------------------------

def test_dispatch_on_object_type_not_feed() -> None:
    summary, _ = summarize_object(_url_object(), feed="files", batch=BATCH, whitelist=WHITELIST)
    assert summary["vt.feed"] == "files" and summary["url.full"].startswith("http://login")


def test_unknown_type_falls_back_to_the_feed() -> None:
    obj = _url_object()
    obj["type"] = "url_v2"
    summary, _ = summarize_object(obj, feed="urls", batch=BATCH, whitelist=WHITELIST)
    assert summary["vt.type"] == "url_v2" and "url.full" in summary


def test_feed_api_path_is_accepted() -> None:
    summary, _ = summarize_object(
        _behaviour_object(), feed="file-behaviours", batch=BATCH, whitelist=WHITELIST
    )
    assert summary["vt.feed"] == "file_behaviours"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "got an array"),
        ("text", "got a string"),
        (None, "got null"),
        (3, "got a number"),
        ({}, "no 'id'"),
        ({"data": []}, "'data' holds an array"),
        ({"data": None}, "'data' holds null"),
        ({"error": {"code": "NotFoundError", "message": "x"}}, "API error (NotFoundError"),
        ({"type": "file", "attributes": {}}, "no 'id'"),
        ({"id": "x", "attributes": {}}, "no 'type'"),
        ({"id": "  ", "type": "file"}, "no 'id'"),
        ({"id": 5, "type": "file"}, "no 'id'"),
        ({"data": {"attributes": {}}}, "no 'id'"),
    ],
)
def test_not_a_vt_object(value: Any, message: str) -> None:
    with pytest.raises(NotAVTObjectError, match="not a VT object") as raised:
        summarize_object(value, feed="files", batch=BATCH, whitelist=WHITELIST)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert isinstance(raised.value, ValueError)
    with pytest.raises(NotAVTObjectError):
        summarize_file_object(value, whitelist=WHITELIST)


@pytest.mark.parametrize(
    ("feed", "batch"), [("nope", BATCH), ("files", "2024060112"), ("files", "202413011200")]
)
def test_bad_feed_or_batch(feed: str, batch: str) -> None:
    with pytest.raises(ValueError):
        summarize_object(_file_object(), feed=feed, batch=batch, whitelist=WHITELIST)


# --- missing and odd fields ----------------------------------------------------------------

@pytest.mark.parametrize("object_type", sorted(FEED_OF_TYPE))
@pytest.mark.parametrize("attributes", ["missing", None, [], "x", {}, {"tags": None}])
def test_only_id_and_type(object_type: str, attributes: Any) -> None:
    obj: dict[str, Any] = {"id": "some-id", "type": object_type}
    if attributes != "missing":
        obj["attributes"] = attributes
    summary, dropped = _summarize(obj)
    expected = {
        "@timestamp": BATCH_TIMESTAMP, "vt.feed": FEED_OF_TYPE[object_type], "vt.batch": BATCH,
        "vt.id": "some-id", "vt.type": object_type,
    }
    if object_type == "domain":
        expected["url.domain"] = "some-id"  # a domain's id is the domain
    assert summary == expected
    assert dropped == 0


ODD_VALUES: list[Any] = [
    None, "", "   ", [], {}, 0, -1, 2**70, -(2**70), 1.5, float("inf"), float("nan"), True,
    "text", [None, "", 3, {"a": 1}, ["nested", ["deeper"]], "ok"], {"k": None}, [[[]]],
    [{}], {"value": [1, 2]},
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside a JSON document (dict keys and list indices)."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


def _replaced(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize("feed", sorted(MAXIMAL_OBJECTS))
def test_any_value_anywhere_may_be_odd(feed: str) -> None:
    """Replace every value at every depth by every odd value: never an error or empty value."""
    obj = MAXIMAL_OBJECTS[feed]()
    checked = 0
    for path in _paths(obj):
        if path in (("id",), ("type",), ("data",), ("data", "id"), ("data", "type")):
            continue
        for odd in ODD_VALUES:
            summary, dropped = summarize_object(
                _replaced(obj, path, odd), feed=feed, batch=BATCH, whitelist=WHITELIST
            )
            assert_valid_summary(summary)
            assert dropped >= 0
            checked += 1
    assert checked > 100


def test_dates_must_be_sane_integers() -> None:
    values = {"first_submission_date": "1717000000", "last_submission_date": 0,
              "last_analysis_date": -5, "last_modification_date": 10**20,
              "first_seen_itw_date": True, "last_seen_itw_date": 1_717_000_000.0,
              "creation_date": float("nan")}
    summary = summarize_file_object({"id": "x", "type": "file", "attributes": values},
                                    whitelist=WHITELIST)
    assert summary == {"vt.id": "x", "vt.type": "file", "vt.last_seen_itw_date": 1_717_000_000}


def test_counts_that_do_not_fit_a_long_are_dropped() -> None:
    stats = {"malicious": 2**62, "undetected": 2**62, "harmless": 2**62, "timeout": 2**64}
    summary = summarize_file_object(
        {"id": "x", "type": "file", "attributes": {"last_analysis_stats": stats, "size": 2**63}},
        whitelist=WHITELIST,
    )
    assert "vt.last_analysis_stats.total" not in summary
    assert "vt.last_analysis_stats.timeout" not in summary and "file.size" not in summary
    assert summary["vt.last_analysis_stats.malicious"] == 2**62


def test_lists_and_strings_are_capped() -> None:
    attributes = {
        "names": [f"name-{n}.exe" for n in range(5000)],
        "meaningful_name": "x" * 20_000,
        "tags": "single-tag",
        "outgoing_links": [f"http://host{n}.example/" for n in range(3000)],
    }
    summary = summarize_file_object({"id": "x", "type": "file", "attributes": attributes},
                                    whitelist=WHITELIST)
    assert len(summary["file.name"]) == MAX_LIST_ITEMS
    assert summary["file.name"][-1] == f"name-{MAX_LIST_ITEMS - 1}.exe"
    assert len(summary["vt.meaningful_name"]) == MAX_STRING_CHARS
    assert summary["vt.tags"] == ["single-tag"]
    url = summarize_url_object({"id": "u", "type": "url", "attributes": attributes},
                               whitelist=WHITELIST)
    assert len(url["vt.outgoing_links"]) == MAX_LIST_ITEMS


def test_deeply_nested_values_do_not_recurse() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    attributes = {"names": deep, "tags": [deep], "sandbox_verdicts": {"x": {"malware_names": deep}}}
    summary = summarize_file_object({"id": "x", "type": "file", "attributes": attributes},
                                    whitelist=WHITELIST)
    assert summary == {"vt.id": "x", "vt.type": "file"}


def test_input_is_not_modified() -> None:
    obj = _file_object()
    before = copy.deepcopy(obj)
    _summarize(obj)
    assert obj == before


# --- schema agreement ----------------------------------------------------------------------

def test_template_mapping_matches_schema_doc() -> None:
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    assert template["index_patterns"] == ["vt-summaries-*"]
    mappings = template["template"]["mappings"]
    assert mappings["dynamic"] == "strict"
    mapped = dict(_flatten(mappings["properties"]))
    documented = {field: kind for field, (kind, _) in SCHEMA.items()}
    missing_in_template = sorted(set(documented) - set(mapped))
    missing_in_doc = sorted(set(mapped) - set(documented))
    assert not missing_in_template, f"documented but not mapped: {missing_in_template}"
    assert not missing_in_doc, f"mapped but not documented: {missing_in_doc}"
    differing = {f: (documented[f], mapped[f]) for f in mapped if documented[f] != mapped[f]}
    assert not differing, f"type differs (doc, template): {differing}"


def test_dates_are_named_date() -> None:
    for field, (kind, _) in SCHEMA.items():
        assert (kind == "date") == field.endswith("_date"), field


def test_maximal_objects_cover_the_whole_schema() -> None:
    """Each documented field is produced by some object: no dead rows, no unmapped output."""
    produced: set[str] = set()
    for feed, make in [*MAXIMAL_OBJECTS.items(), ("file_behaviours", overfull_behaviour_object)]:
        summary, _ = summarize_object(make(), feed=feed, batch=BATCH, whitelist=WHITELIST)
        assert_valid_summary(summary, feed)
        produced |= set(summary)
    assert sorted(set(SCHEMA) - produced) == []


@pytest.mark.parametrize("stem", _golden_names())
def test_samples_fit_the_schema(stem: str) -> None:
    sample = _load_sample(stem)
    for obj in (sample, _bare(sample)):
        summary, _ = _summarize(obj)
        assert_valid_summary(summary, FEED_OF_TYPE[_bare(sample)["type"]])
