"""Dispatch and entry points: one spec per VT object type, the public summarizers, and
what the summarizers read (ATTRIBUTES_READ and friends) for the batch reader's narrow parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from vt_dagster.feeds import get_feed, parse_minute_key
from vt_dagster.summarize.behaviours import (
    _BEHAVIOUR_FIELDS, _BEHAVIOUR_TRACES, _behaviour_findings, _behaviour_identity,
    _behaviour_network, _behaviour_traces,
)
from vt_dagster.summarize.common import _analysis_stats, _categories, _ids, _sigma, _submitter
from vt_dagster.summarize.fields import Extractor, Field, _Builder, _compile, _copy_fields
from vt_dagster.summarize.files import (
    _FILE_FIELDS, _RELATED_URLS, _androguard_urls, _file_identity, _network_infrastructure,
    _relationship_urls, _sandbox_verdicts, _signers, _threat_classification, _yara,
)
from vt_dagster.summarize.network import (
    _CERTIFICATE_FIELDS, _DOMAIN_FIELDS, _IP_FIELDS, _certificate, _dns_records,
    _domain_identity, _ip_identity, _popularity,
)
from vt_dagster.summarize.urls import _URL_FIELDS, _url_identity, _url_lists
from vt_dagster.summarize.values import MAX_STRING_CHARS, _iso
from vt_dagster.whitelist import UrlWhitelist

_JSON_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number",
                    float: "a number", bool: "a boolean", type(None): "null"}


class NotAVTObjectError(ValueError):
    """JSON that is not a VT object (not an object, or without an `id` and a `type`)."""


class _Spec:
    """How to summarize one object type: plain copies, extractors, @timestamp candidates."""

    __slots__ = ("fields", "extractors", "timestamp_fields")

    def __init__(
        self,
        fields: tuple[Field, ...],
        extractors: tuple[Extractor, ...],
        timestamp_fields: tuple[str, ...],
    ) -> None:
        self.fields = _compile(fields)
        self.extractors = extractors
        self.timestamp_fields = timestamp_fields


_SUBMISSION_TIMESTAMPS = (
    "vt.last_submission_date", "vt.first_submission_date",
    "vt.last_analysis_date", "vt.last_modification_date",
)
_ANALYSIS_TIMESTAMPS = ("vt.last_analysis_date", "vt.last_modification_date")

_SPECS: dict[str, _Spec] = {
    "file": _Spec(
        _FILE_FIELDS,
        (_file_identity, _analysis_stats, _submitter, _threat_classification, _yara, _sigma,
         _ids, _sandbox_verdicts, _signers, _androguard_urls, _relationship_urls,
         _network_infrastructure),
        _SUBMISSION_TIMESTAMPS,
    ),
    "url": _Spec(
        _URL_FIELDS,
        (_url_identity, _analysis_stats, _submitter, _categories, _url_lists),
        _SUBMISSION_TIMESTAMPS,
    ),
    "domain": _Spec(
        _DOMAIN_FIELDS,
        (_domain_identity, _analysis_stats, _categories, _dns_records, _popularity,
         _certificate),
        _ANALYSIS_TIMESTAMPS,
    ),
    "ip_address": _Spec(
        _IP_FIELDS,
        (_ip_identity, _analysis_stats, _certificate),
        _ANALYSIS_TIMESTAMPS,
    ),
    "file_behaviour": _Spec(
        _BEHAVIOUR_FIELDS,
        (_behaviour_identity, _behaviour_network, _behaviour_findings, _behaviour_traces,
         _sigma, _ids),
        ("vt.behaviour.analysis_date",),
    ),
}


# --- entry points --------------------------------------------------------------------------

def _unwrap(obj: Any) -> dict[str, Any]:
    """The VT object of a feed line (bare) or of an API response ({"data": object})."""
    if not isinstance(obj, dict):
        got = _JSON_TYPE_NAMES.get(type(obj), "a value")
        raise NotAVTObjectError(f"not a VT object: expected a JSON object, got {got}")
    if "id" not in obj and "type" not in obj:
        if "data" in obj:
            data = obj["data"]
            if not isinstance(data, dict):
                raise NotAVTObjectError(
                    "not a VT object: 'data' holds "
                    f"{_JSON_TYPE_NAMES.get(type(data), 'a value')}, not one object"
                )
            obj = data
        elif isinstance(obj.get("error"), dict):
            error = obj["error"]
            raise NotAVTObjectError(
                "not a VT object: an API error "
                f"({_one_line(error.get('code'))}: {_one_line(error.get('message'))})"
            )
    for key in ("id", "type"):
        value = obj.get(key)
        if not isinstance(value, str) or not value.strip():
            raise NotAVTObjectError(f"not a VT object: no {key!r} string (keys: {_keys(obj)})")
    return obj


def _keys(obj: Mapping[str, Any]) -> str:
    names = list(obj)
    shown = ", ".join(_one_line(name, 40) for name in names[:8])
    return shown + (", ..." if len(names) > 8 else "") if names else "none"


def _one_line(value: Any, limit: int = 200) -> str:
    """Input quoted in an error message stays short and on one line."""
    return " ".join(str(value).split())[:limit]


def _summarize(
    obj: Mapping[str, Any], spec: _Spec, whitelist: UrlWhitelist, head: dict[str, Any]
) -> tuple[dict, int]:
    """The summary, built on `head` (whose keys stay first; its @timestamp may be replaced)."""
    attributes = obj.get("attributes")
    if not isinstance(attributes, dict):
        attributes = {}
    b = _Builder(whitelist, head)
    out = b.out
    out["vt.id"] = obj["id"].strip()[:MAX_STRING_CHARS]
    out["vt.type"] = obj["type"].strip()[:MAX_STRING_CHARS]
    _copy_fields(attributes, spec.fields, out)
    for extract in spec.extractors:
        extract(attributes, obj, b)
    for field in spec.timestamp_fields:
        epoch = out.get(field)
        if epoch is not None:
            out["@timestamp"] = _iso(epoch)
            break
    return out, b.dropped


def _summarize_as(obj: Any, object_type: str, whitelist: UrlWhitelist) -> dict[str, Any]:
    return _summarize(_unwrap(obj), _SPECS[object_type], whitelist, {})[0]


def summarize_file_object(obj: Mapping[str, Any], *, whitelist: UrlWhitelist) -> dict[str, Any]:
    """Summary of a file object (feed line or {"data": ...})."""
    return _summarize_as(obj, "file", whitelist)


def summarize_url_object(obj: Mapping[str, Any], *, whitelist: UrlWhitelist) -> dict[str, Any]:
    """Summary of a URL object."""
    return _summarize_as(obj, "url", whitelist)


def summarize_domain_object(obj: Mapping[str, Any], *, whitelist: UrlWhitelist) -> dict[str, Any]:
    """Summary of a domain object."""
    return _summarize_as(obj, "domain", whitelist)


def summarize_ip_address_object(
    obj: Mapping[str, Any], *, whitelist: UrlWhitelist
) -> dict[str, Any]:
    """Summary of an IP address object."""
    return _summarize_as(obj, "ip_address", whitelist)


def summarize_file_behaviour_object(
    obj: Mapping[str, Any], *, whitelist: UrlWhitelist
) -> dict[str, Any]:
    """Summary of a file behaviour (sandbox report) object."""
    return _summarize_as(obj, "file_behaviour", whitelist)


@lru_cache(maxsize=4096)
def _batch_timestamp(batch: str) -> str:
    """ISO start of the batch minute; also validates the partition key once per batch."""
    return parse_minute_key(batch).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=64)
def _feed_name_and_type(feed: str) -> tuple[str, str]:
    found = get_feed(feed)
    return found.name, found.object_type


def summarize_object(
    obj: Any, *, feed: str, batch: str, whitelist: UrlWhitelist
) -> tuple[dict[str, Any], int]:
    """(summary, URLs and hosts dropped by the whitelist) for one object of `feed`'s batch.

    Accepts a bare object (a feed line) or {"data": object}; dispatches on the object's
    `type`, falling back to the feed's type for types it does not know. Adds `vt.feed`,
    `vt.batch`, and `@timestamp` from the batch minute when the object has no usable date.
    Raises NotAVTObjectError for JSON that is not a VT object, ValueError for a bad
    feed name or batch key.
    """
    feed_name, feed_type = _feed_name_and_type(feed)
    batch_timestamp = _batch_timestamp(batch)
    vt_object = _unwrap(obj)
    spec = _SPECS.get(vt_object["type"]) or _SPECS[feed_type]
    head = {"@timestamp": batch_timestamp, "vt.feed": feed_name, "vt.batch": batch}
    return _summarize(vt_object, spec, whitelist, head)


# Attributes the extractors read by name (the field tables list their own). The batch
# reader decodes only attributes in ATTRIBUTES_READ: the 70 engine results, half of a file
# object, are never parsed. A test records every attribute the summarizers touch and fails
# if one is missing here.
_EXTRACTOR_ATTRIBUTES = frozenset({
    "categories", "crowdsourced_ids_results", "crowdsourced_ids_stats", "crowdsourced_yara_results",
    "dns_lookups", "files_dropped", "http_conversations", "ids_alerts", "ip_traffic",
    "last_analysis_stats", "last_dns_records", "mitre_attack_techniques", "network_infrastructure",
    "outgoing_links", "popular_threat_classification", "popularity_ranks", "redirection_chain",
    "sandbox_verdicts", "sigma_analysis_results", "sigma_analysis_stats", "signature_matches",
    "targeted_brand", "url", "androguard", "signature_info",
    *(attribute for attribute, *_ in _BEHAVIOUR_TRACES),
})
ATTRIBUTES_READ: frozenset[str] = _EXTRACTOR_ATTRIBUTES.union(
    *(spec.fields.attributes() for spec in _SPECS.values()), _CERTIFICATE_FIELDS.attributes()
)

# Inside these attributes the summarizers read only these keys (of the object itself, of
# each item of a list, or of each value of a mapping such as `sandbox_verdicts`). The batch
# reader parses nothing else of them; the same test that guards ATTRIBUTES_READ compares
# summaries made from fully and from narrowly parsed objects.
NESTED_KEYS_READ: dict[str, tuple[str, ...]] = {
    "pe_info": ("imphash",),
    "exiftool": ("MIMEType",),
    "androguard": ("Package", "StringsInformation"),
    "signature_info": ("signers", "signers details", "signers_details", "original name", "product",
                       "description", "file version", "verified"),
    "sigma_analysis_results": ("rule_title", "rule_level"),
    "crowdsourced_yara_results": ("rule_name", "ruleset_name"),
    "crowdsourced_ids_results": ("rule_msg",),
    "sandbox_verdicts": ("category", "sandbox_name", "malware_names", "malware_classification"),
    "registry_keys_set": ("key",),
    "files_dropped": ("path", "sha256"),
}

# Outside `attributes`, the members of a feed line summaries read, and the keys read inside
# them (`links`, the download URL and every other relationship are never parsed).
TOP_LEVEL_KEYS_READ: dict[str, tuple[str, ...]] = {
    "context_attributes": ("submitter", "url"),
    "relationships": tuple(name for name, _ in _RELATED_URLS),
}
