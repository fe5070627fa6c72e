"""File objects: the file field table and the extractors only files have.

Identity from the id, threat classification, YARA, sandbox verdicts, signers, and the URLs a
file points at (APK strings, relationships, network infrastructure), the latter filtered
through the whitelist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from vt_dagster.summarize.common import _COMMON_FIELDS
from vt_dagster.summarize.fields import Field, _Builder
from vt_dagster.summarize.values import (
    MAX_STRING_CHARS, _as_list, _boolean, _count, _date, _dig, _is_sha256, _keyword, _keywords,
    _mapping_values, _pluck, _values,
)

_FILE_FIELDS: tuple[Field, ...] = _COMMON_FIELDS + (
    ("hash.md5", ("md5",), _keyword),
    ("hash.sha1", ("sha1",), _keyword),
    ("hash.sha256", ("sha256",), _keyword),
    ("hash.ssdeep", ("ssdeep",), _keyword),
    ("hash.tlsh", ("tlsh",), _keyword),
    ("vt.vhash", ("vhash",), _keyword),
    ("vt.authentihash", ("authentihash",), _keyword),
    ("file.pe.imphash", ("pe_info", "imphash"), _keyword),
    ("file.size", ("size",), _count),
    ("file.name", ("names",), _keywords),
    ("file.extension", ("type_extension",), _keyword),
    ("file.mime_type", ("exiftool", "MIMEType"), _keyword),
    ("file.pe.original_file_name", ("signature_info", "original name"), _keyword),
    ("file.pe.product", ("signature_info", "product"), _keyword),
    ("file.pe.description", ("signature_info", "description"), _keyword),
    ("file.pe.file_version", ("signature_info", "file version"), _keyword),
    ("vt.signature.verified", ("signature_info", "verified"), _keyword),
    ("vt.meaningful_name", ("meaningful_name",), _keyword),
    ("vt.type_tag", ("type_tag",), _keyword),
    ("vt.type_description", ("type_description",), _keyword),
    ("vt.magic", ("magic",), _keyword),
    ("vt.capabilities_tags", ("capabilities_tags",), _keywords),
    ("vt.packers", ("packers",), _mapping_values),
    ("vt.first_submission_date", ("first_submission_date",), _date),
    ("vt.last_submission_date", ("last_submission_date",), _date),
    ("vt.first_seen_itw_date", ("first_seen_itw_date",), _date),
    ("vt.last_seen_itw_date", ("last_seen_itw_date",), _date),
    ("vt.creation_date", ("creation_date",), _date),
    ("vt.times_submitted", ("times_submitted",), _count),
    ("vt.unique_sources", ("unique_sources",), _count),
    ("vt.downloadable", ("downloadable",), _boolean),
    ("vt.main_icon.raw_md5", ("main_icon", "raw_md5"), _keyword),
    ("vt.main_icon.dhash", ("main_icon", "dhash"), _keyword),
    ("vt.androguard.package", ("androguard", "Package"), _keyword),
)


def _file_identity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """A file's id is its SHA-256: use it when the attribute is missing."""
    if "hash.sha256" not in b.out and _is_sha256(obj.get("id")):
        b.out["hash.sha256"] = obj["id"]


def _threat_classification(
    attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder
) -> None:
    ptc = attributes.get("popular_threat_classification")
    if not isinstance(ptc, dict):
        return
    b.put("vt.threat_label", _keyword(ptc.get("suggested_threat_label")))
    b.put_list("vt.threat_names", _pluck(ptc.get("popular_threat_name"), "value"))
    b.put_list("vt.threat_categories", _pluck(ptc.get("popular_threat_category"), "value"))


def _yara(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    results = attributes.get("crowdsourced_yara_results")
    if results is not None:
        b.put_list("vt.yara.rule_names", _pluck(results, "rule_name"))
        b.put_list("vt.yara.rulesets", _pluck(results, "ruleset_name"))


def _sandbox_verdicts(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    verdicts = attributes.get("sandbox_verdicts")
    if verdicts is None:
        return
    verdicts = list(_values(verdicts))
    b.put_list("vt.sandbox_verdicts.categories", _pluck(verdicts, "category"))
    b.put_list("vt.sandbox_verdicts.sandboxes", _pluck(verdicts, "sandbox_name"))
    b.put_list("vt.sandbox_verdicts.malware_names", _pluck(verdicts, "malware_names"))
    b.put_list(
        "vt.sandbox_verdicts.malware_classifications",
        _pluck(verdicts, "malware_classification"),
    )


def _signers(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """Signer names from the `;`-separated string and from the per-certificate details."""
    info = attributes.get("signature_info")
    if not isinstance(info, dict):
        return
    signers = info.get("signers")
    names = signers.split(";") if isinstance(signers, str) else _as_list(signers)
    details = info.get("signers details", info.get("signers_details"))
    b.put_list("vt.signers", [*names, *_pluck(details, "name")])


# A URL starts at the first of these schemes (searched in lower case) and ends at a blank,
# a quote or an angle bracket.
_URL_START = re.compile("https?://|ftps?://|wss?://")
_URL_END = re.compile("[ \t\r\n\"'<>`]")


def _urls_in_strings(strings: Any) -> Iterator[str]:
    """The first URL inside each string (APK string tables mix URLs with prose)."""
    for text in _as_list(strings):
        if not isinstance(text, str) or "://" not in text:
            continue
        found = _URL_START.search(text.lower())
        if found is None:
            continue
        start = found.start()
        limit = min(len(text), start + MAX_STRING_CHARS)
        stop = _URL_END.search(text, start, limit)
        yield text[start : stop.start() if stop else limit]


def _androguard_urls(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    strings = _dig(attributes, ("androguard", "StringsInformation"))
    if strings is not None:
        b.put_filtered("vt.androguard.urls", _urls_in_strings(strings))


def _descriptor_url(item: Any) -> Any:
    """The URL of a relationship item: a string, or {context_attributes|attributes: {url}}."""
    if not isinstance(item, dict):
        return item
    for holder in _URL_HOLDERS:
        inner = item.get(holder)
        if isinstance(inner, dict):
            url = inner.get("url")
            if url is not None:
                return url
    return item.get("url")


_URL_HOLDERS = ("context_attributes", "attributes")


_RELATED_URLS = (
    ("contacted_urls", "vt.contacted_urls"),
    ("embedded_urls", "vt.embedded_urls"),
    ("itw_urls", "vt.itw_urls"),
)


def _relationship_urls(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """URLs of the contacted/embedded/in-the-wild relationships when the object carries them."""
    relationships = obj.get("relationships")
    if not isinstance(relationships, dict):
        return
    for name, field in _RELATED_URLS:
        relation = relationships.get(name)
        items = relation.get("data") if isinstance(relation, dict) else relation
        if items is not None:
            b.put_filtered(field, map(_descriptor_url, _as_list(items)))


def _network_infrastructure(
    attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder
) -> None:
    """URLs, domains and IPs VT extracted as the file's network infrastructure."""
    items = attributes.get("network_infrastructure")
    if items is not None:
        b.put_filtered("vt.network_infrastructure", map(_infrastructure_value, _as_list(items)))


def _infrastructure_value(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("url", item.get("value"))
    return item

