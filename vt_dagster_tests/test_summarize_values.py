"""Odd input: missing, odd, oversized or deeply nested values anywhere still give a valid summary."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from vt_dagster.summarize import (
    MAX_LIST_ITEMS,
    MAX_STRING_CHARS,
    summarize_file_object,
    summarize_object,
    summarize_url_object,
)
from vt_dagster_tests.summary_checks import (
    BATCH,
    BATCH_TIMESTAMP,
    FEED_OF_TYPE,
    WHITELIST,
    _summarize,
    assert_valid_summary,
)
from vt_dagster_tests.vt_objects import MAXIMAL_OBJECTS, _file_object


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
