"""File behaviour (sandbox report) objects: the field table and the sandbox's traces.

Network activity, findings, and the registry and file traces capped at MAX_BEHAVIOUR_PATHS
distinct values each with the rest counted: noisy reports list thousands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vt_dagster.summarize.fields import Field, _Builder
from vt_dagster.summarize.values import (
    MAX_STRING_CHARS, _clip, _date, _is_sha256, _keyword, _keywords, _pluck,
)

# Sandbox traces (registry keys set, files dropped...) run to thousands in noisy reports: each
# such list keeps its first distinct values and counts the rest (`vt.behaviour.cut.*`).
MAX_BEHAVIOUR_PATHS = 100

_BEHAVIOUR_FIELDS: tuple[Field, ...] = (
    ("vt.tags", ("tags",), _keywords),
    ("vt.behaviour.sandbox_name", ("sandbox_name",), _keyword),
    ("vt.behaviour.analysis_date", ("analysis_date",), _date),
    ("vt.behaviour.behash", ("behash",), _keyword),
    ("vt.behaviour.verdicts", ("verdicts",), _keywords),
    ("vt.behaviour.verdict_labels", ("verdict_labels",), _keywords),
    ("vt.behaviour.processes_created", ("processes_created",), _keywords),
    ("vt.behaviour.command_executions", ("command_executions",), _keywords),
    ("vt.behaviour.mutexes_created", ("mutexes_created",), _keywords),
)


def _behaviour_identity(
    attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder
) -> None:
    """A behaviour id is "<sha256 of the file>_<sandbox name>"."""
    sha256 = str(obj["id"]).partition("_")[0]
    if _is_sha256(sha256):
        b.out["hash.sha256"] = sha256


def _behaviour_network(
    attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder
) -> None:
    """DNS lookups, IP destinations and HTTP URLs seen in the sandbox, noise filtered."""
    lookups = attributes.get("dns_lookups")
    b.put_filtered("vt.behaviour.dns_lookups", _pluck(lookups, "hostname"))
    destinations = b.put_filtered(
        "vt.behaviour.destination_ips", _pluck(attributes.get("ip_traffic"), "destination_ip")
    )
    b.add_ips(destinations)
    b.add_ips(_pluck(lookups, "resolved_ips"))
    b.put_filtered("vt.behaviour.http_urls", _pluck(attributes.get("http_conversations"), "url"))


def _behaviour_findings(
    attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder
) -> None:
    b.put_list("threat.technique.id", _pluck(attributes.get("mitre_attack_techniques"), "id"))
    b.put_list("vt.behaviour.dropped_sha256", _pluck(attributes.get("files_dropped"), "sha256"))
    b.put_list("vt.behaviour.signature_names", _pluck(attributes.get("signature_matches"), "name"))


# (attribute, key read in an object item or None for a list of strings, field, cut-count field)
_BEHAVIOUR_TRACES = tuple(
    (attribute, key, "vt.behaviour." + attribute, "vt.behaviour.cut." + attribute)
    for attribute, key in (
        ("registry_keys_set", "key"), ("registry_keys_deleted", None),
        ("files_dropped", "path"), ("files_written", None), ("files_deleted", None),
    )
)


def _behaviour_traces(
    attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder
) -> None:
    """Registry keys and file paths a hunter searches for persistence, capped and counted."""
    out = b.out
    for attribute, key, field, cut_field in _BEHAVIOUR_TRACES:
        value = attributes.get(attribute)
        if value is None:
            continue
        kept, cut = _capped_traces(value, key)
        if kept:
            out[field] = kept
        if cut:
            out[cut_field] = cut


def _capped_traces(value: Any, key: str | None) -> tuple[list[str], int]:
    """(the first MAX_BEHAVIOUR_PATHS distinct values, how many more distinct values there were).

    Items are `item[key]` for objects (registry values and dropped-file hashes are not
    kept) or the strings themselves; a bare string where an object is expected is taken as
    the key or path. A lone value counts as a list of one; anything unreadable is dropped.
    """
    if value.__class__ is not list:
        value = [value]
    kept: list[str] = []
    seen: set[str] = set()
    cut = 0
    for item in value:
        if isinstance(item, dict):
            if key is None:
                continue
            item = item.get(key)
        if item.__class__ is str:
            text = item.strip()
            if len(text) > MAX_STRING_CHARS:
                text = _clip(text)
        else:
            text = _keyword(item)
        if not text or text in seen:
            continue
        seen.add(text)
        if len(kept) < MAX_BEHAVIOUR_PATHS:
            kept.append(text)
        else:
            cut += 1
    return kept, cut

