"""Dispatch: an object goes to its type's summarizer whatever the feed; what is not a VT object is refused."""

from __future__ import annotations

from typing import Any

import pytest

from vt_dagster.summarize import (
    NotAVTObjectError,
    summarize_domain_object,
    summarize_file_behaviour_object,
    summarize_file_object,
    summarize_ip_address_object,
    summarize_object,
    summarize_url_object,
)
from vt_dagster_tests.summary_checks import BATCH, WHITELIST, _summarize
from vt_dagster_tests.vt_objects import _behaviour_object, _domain_object, _file_object, _ip_object, _url_object


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
