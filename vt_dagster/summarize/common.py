"""What several object types share: the common field rows and the shared extractors.

Analysis stats, submitter, categories, sigma and IDS results appear on more than one VT object
type; each per-type module takes what its type carries from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vt_dagster.summarize.fields import Field, _Builder
from vt_dagster.summarize.values import (
    _INT64, _count, _date, _dig, _integer, _keyword, _keywords, _pluck, _values,
)

_COMMON_FIELDS: tuple[Field, ...] = (
    ("vt.tags", ("tags",), _keywords),
    ("vt.reputation", ("reputation",), _integer),
    ("vt.last_analysis_date", ("last_analysis_date",), _date),
    ("vt.last_modification_date", ("last_modification_date",), _date),
    ("vt.total_votes.harmless", ("total_votes", "harmless"), _count),
    ("vt.total_votes.malicious", ("total_votes", "malicious"), _count),
)

_FAVICON_FIELDS: tuple[Field, ...] = (
    ("vt.favicon.raw_md5", ("favicon", "raw_md5"), _keyword),
    ("vt.favicon.dhash", ("favicon", "dhash"), _keyword),
)


_STATS = {
    key: "vt.last_analysis_stats." + name for key, name in (
        ("malicious", "malicious"), ("suspicious", "suspicious"), ("undetected", "undetected"),
        ("harmless", "harmless"), ("timeout", "timeout"), ("failure", "failure"),
        ("type-unsupported", "type_unsupported"), ("confirmed-timeout", "confirmed_timeout"),
    )
}


def _analysis_stats(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """Engine counts per verdict, and `total`: the number of engines that reported."""
    stats = attributes.get("last_analysis_stats")
    if not isinstance(stats, dict):
        return
    out = b.out
    total: int | None = None
    for key, value in stats.items():
        count = value if value.__class__ is int and 0 <= value <= _INT64 else _count(value)
        if count is None:
            continue
        total = count if total is None else total + count
        field = _STATS.get(key)
        if field is not None:
            out[field] = count
    if total is not None and total <= _INT64:
        b.out["vt.last_analysis_stats.total"] = total


def _submitter(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """Feed lines carry who submitted the object (context_attributes.submitter)."""
    submitter = _dig(obj, ("context_attributes", "submitter"))
    if not isinstance(submitter, dict):
        return
    out = b.out
    for field, key in _SUBMITTER_FIELDS:
        text = _keyword(submitter.get(key))
        if text is not None:
            out[field] = text


_SUBMITTER_FIELDS = (
    ("geo.city_name", "city"), ("geo.country_iso_code", "country"),
    ("geo.region_name", "region"), ("vt.submitter.id", "id"),
    ("vt.submitter.interface", "interface"),
)


def _categories(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """Category verdicts of the URL-classification vendors, values only, deduplicated."""
    b.put_list("vt.categories", _values(attributes.get("categories")))


def _sigma(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    results = attributes.get("sigma_analysis_results")
    if results is not None:
        b.put_list("vt.sigma.rule_titles", _pluck(results, "rule_title"))
        b.put_list("vt.sigma.rule_levels", _pluck(results, "rule_level"))
    _put_counts(b.out, attributes.get("sigma_analysis_stats"), _SIGMA_LEVELS)


_SIGMA_LEVELS = tuple((level, "vt.sigma." + level) for level in ("critical", "high", "medium", "low"))


def _ids(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """IDS rules matched by the traffic (files: crowdsourced; behaviours: ids_alerts)."""
    results = attributes.get("crowdsourced_ids_results") or attributes.get("ids_alerts")
    if results is not None:
        b.put_list("vt.ids.rule_msgs", _pluck(results, "rule_msg"))
    _put_counts(b.out, attributes.get("crowdsourced_ids_stats"), _IDS_LEVELS)


_IDS_LEVELS = tuple((level, "vt.ids." + level) for level in ("high", "medium", "low", "info"))


def _put_counts(out: dict[str, Any], stats: Any, levels: tuple[tuple[str, str], ...]) -> None:
    """Per-level counts of a {level: count} mapping (sigma and IDS stats)."""
    if isinstance(stats, dict):
        for level, field in levels:
            count = _count(stats.get(level))
            if count is not None:
                out[field] = count

