"""Schema agreement: the schema doc, the index template and every summary made name the same fields and types."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from vt_dagster.summarize import MAX_STRING_CHARS, summarize_object
from vt_dagster_tests.summary_checks import (
    BATCH,
    FEED_OF_TYPE,
    REPO,
    SCHEMA,
    WHITELIST,
    _bare,
    _golden_names,
    _load_sample,
    _summarize,
    assert_valid_summary,
)
from vt_dagster_tests.vt_objects import MAXIMAL_OBJECTS, overfull_behaviour_object

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
