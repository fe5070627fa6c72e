"""Summaries of VT objects: the notable values of one object as one small flat document.

Pure functions, no Dagster and no services, so the assets, the CLI and the tests share them.
The schema (every field, its type and meaning) is documented in `docs/summary-schema.md` and
mapped by `index_templates/vt_summaries.template.json`; tests keep the three in step.

Conventions: flat dotted keys (`hash.md5`), ECS names where ECS has the field, `vt.*` for the
rest; no key without a value (no nulls, no empty lists); `*_date` fields are epoch seconds;
lists are deduplicated in order and capped; related-URL lists go through the URL whitelist.
A summarizer never raises on a valid JSON object: whatever it cannot read, it drops.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from vt_dagster.feeds import get_feed, parse_minute_key
from vt_dagster.whitelist import UrlWhitelist, host_of

# One odd object must not blow up a document: lists and strings are capped.
MAX_LIST_ITEMS = 1000
# Lucene refuses terms over 32,766 bytes; 8,191 characters of UTF-8 always fit.
MAX_STRING_CHARS = 8191
# Sandbox traces (registry keys set, files dropped...) run to thousands in noisy reports: each
# such list keeps its first distinct values and counts the rest (`vt.behaviour.cut.*`).
MAX_BEHAVIOUR_PATHS = 100
# Dates outside (1970-01-01, 9999-12-31] are not sane VT timestamps.
_MAX_EPOCH = 253_402_300_799
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_HEX = frozenset("0123456789abcdefABCDEF")
_JSON_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number",
                    float: "a number", bool: "a boolean", type(None): "null"}


class NotAVTObjectError(ValueError):
    """JSON that is not a VT object (not an object, or without an `id` and a `type`)."""


# --- readers: JSON value -> summary value or None -------------------------------------------

def _keyword(value: Any) -> str | None:
    """A stripped, capped string; numbers become strings; anything else is dropped."""
    if value.__class__ is str:
        text = value.strip()
        if len(text) <= MAX_STRING_CHARS:
            return text or None
    elif isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float) and math.isfinite(value):
        text = str(int(value)) if value.is_integer() else str(value)
    else:
        return None
    if len(text) > MAX_STRING_CHARS:
        text = _clip(text)
    return text or None


def _clip(text: str) -> str:
    """Cut an over-long string (and any blank the cut leaves at its end)."""
    return text[:MAX_STRING_CHARS].rstrip()


def _number(value: Any, limit: int) -> int | None:
    """An integer within +-limit; integral floats are accepted, bools and strings are not."""
    if value.__class__ is int or (isinstance(value, int) and not isinstance(value, bool)):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        return None
    return number if -limit <= number <= limit else None


def _integer(value: Any) -> int | None:
    return _number(value, _INT32)


def _count(value: Any) -> int | None:
    """A non-negative count."""
    if value.__class__ is int:
        return value if 0 <= value <= _INT64 else None
    number = _number(value, _INT64)
    return number if number is not None and number >= 0 else None


def _date(value: Any) -> int | None:
    """VT epoch seconds; 0, negatives and absurd values are not dates."""
    if value.__class__ is int:
        return value if 0 < value <= _MAX_EPOCH else None
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_EPOCH:
        return value
    return None


def _boolean(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _unique(values: Iterable[Any]) -> list[str]:
    """Readable strings of `values`, deduplicated in order, at most MAX_LIST_ITEMS.

    One level of nested lists is opened (a list of name lists); deeper nesting is dropped.
    Hot path: plain strings skip the generic reader.
    """
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        if value.__class__ is list:
            for item in value:
                text = _keyword(item)
                if text is not None and text not in seen:
                    seen.add(text)
                    out.append(text)
                    if len(out) >= MAX_LIST_ITEMS:
                        return out
            continue
        if value.__class__ is str:
            text = value.strip()
            if len(text) > MAX_STRING_CHARS:
                text = _clip(text)
        else:
            text = _keyword(value)
        if text and text not in seen:
            seen.add(text)
            out.append(text)
            if len(out) >= MAX_LIST_ITEMS:
                break
    return out


def _as_list(value: Any) -> list[Any]:
    """A list field that may come as a single value."""
    if isinstance(value, list):
        return value
    return [] if value is None or isinstance(value, dict) else [value]


def _keywords(value: Any) -> list[str] | None:
    return _unique(value if value.__class__ is list else _as_list(value)) or None


def _mapping_values(value: Any) -> list[str] | None:
    """The values of a {source: verdict} mapping such as `packers`."""
    return _unique(_values(value)) or None


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    """The objects of a list-of-objects field (a lone object counts as a list of one)."""
    if isinstance(value, dict):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item


def _values(value: Any) -> Iterable[Any]:
    """The values of a mapping field such as `categories` (or the items of a list)."""
    if isinstance(value, dict):
        return value.values()
    return _as_list(value)


def _pluck(value: Any, key: str) -> list[Any]:
    """`item[key]` for every object of a list-of-objects field (a lone object counts)."""
    if isinstance(value, list):
        return [item.get(key) for item in value if isinstance(item, dict)]
    if isinstance(value, dict):
        return [value.get(key)]
    return []


def _dig(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _ip(value: Any) -> str | None:
    """A textual IP address ES will accept, else None (VT data holds invalid ones)."""
    text = _keyword(value)
    return text if text is not None and len(text) <= 45 and _is_ip(text) else None


@lru_cache(maxsize=65_536)
def _is_ip(text: str) -> bool:
    """Cached: the same addresses recur across a batch, and parsing one costs microseconds."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


def _iso(epoch: int) -> str:
    """ISO UTC time of a sane epoch (see `_date`); objects of a batch share a few minutes."""
    minute, second = divmod(epoch, 60)
    return f"{_iso_minute(minute)}{second:02d}Z"


@lru_cache(maxsize=4096)
def _iso_minute(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))


# --- the document under construction -------------------------------------------------------

# What `put` leaves out ("no key without a value"); a constant, not a fresh [] per call.
_NO_VALUE = (None, "", [])


class _Builder:
    """The summary being built, with the whitelist and the count of URLs it dropped."""

    __slots__ = ("out", "whitelist", "dropped")

    def __init__(self, whitelist: UrlWhitelist, out: dict[str, Any]) -> None:
        self.out = out
        self.whitelist = whitelist
        self.dropped = 0

    def put(self, field: str, value: Any) -> None:
        if value not in _NO_VALUE:
            self.out[field] = value

    def put_list(self, field: str, values: Iterable[Any]) -> None:
        unique = _unique(values)
        if unique:
            self.out[field] = unique

    def put_filtered(self, field: str, values: Iterable[Any]) -> list[str]:
        """Deduplicate, drop whitelisted URLs/hosts (counted), cap; returns what was kept."""
        is_whitelisted = self.whitelist.is_whitelisted
        kept: list[str] = []
        seen: set[str] = set()
        for value in values:
            text = _keyword(value)
            if text is None or text in seen:
                continue
            seen.add(text)
            if is_whitelisted(text):
                self.dropped += 1
                continue
            kept.append(text)
            if len(kept) >= MAX_LIST_ITEMS:
                break
        if kept:
            self.out[field] = kept
        return kept

    def add_ips(self, values: Iterable[Any]) -> None:
        """Merge valid IP addresses into `related.ip` (ECS: every IP the document mentions)."""
        current: list[str] = self.out.get("related.ip", [])
        seen = set(current)
        for value in _unique(values):
            address = _ip(value)
            if address is not None and address not in seen and len(current) < MAX_LIST_ITEMS:
                seen.add(address)
                current.append(address)
        self.put("related.ip", current)


Reader = Callable[[Any], Any]
Extractor = Callable[[Mapping[str, Any], Mapping[str, Any], _Builder], None]
# (summary field, path inside `attributes`, reader)
Field = tuple[str, tuple[str, ...], Reader]


class _Compiled(NamedTuple):
    """A field table compiled for the hot loop, keyed by attribute.

    `plain`: attribute -> (summary field, reader), the attribute itself read (most fields);
    `nested`: attribute -> ((summary field, rest of path, reader), ...).
    """

    plain: dict[str, tuple[str, Reader]]
    nested: dict[str, tuple[tuple[str, tuple[str, ...], Reader], ...]]

    def attributes(self) -> frozenset[str]:
        return frozenset(self.plain) | frozenset(self.nested)


def _compile(fields: tuple[Field, ...]) -> _Compiled:
    table: dict[str, list[tuple[str, tuple[str, ...], Reader]]] = {}
    for field, path, read in fields:
        table.setdefault(path[0], []).append((field, path[1:], read))
    plain: dict[str, tuple[str, Reader]] = {}
    nested: dict[str, tuple[tuple[str, tuple[str, ...], Reader], ...]] = {}
    for key, entries in table.items():
        [(field, rest, read), *others] = entries
        if rest or others:
            nested[key] = tuple(entries)
        else:
            plain[key] = (field, read)
    return _Compiled(plain, nested)


def _copy_fields(attributes: Mapping[str, Any], fields: _Compiled, out: dict) -> None:
    """The table-driven part: plain copies of one attribute each.

    Walks the attributes the object has (about half of those a table names), not the table.
    """
    plain, nested = fields
    for key, value in attributes.items():
        if value is None:
            continue
        entry = plain.get(key)
        if entry is not None:
            found = entry[1](value)
            if found is not None:
                out[entry[0]] = found
        elif key in nested:
            for field, rest, read in nested[key]:
                found = value
                for step in rest:
                    found = found.get(step) if isinstance(found, dict) else None
                if found is not None:
                    found = read(found)
                    if found is not None:
                        out[field] = found


# --- extractors shared by several object types ---------------------------------------------

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


def _certificate(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    _copy_fields(attributes, _CERTIFICATE_FIELDS, b.out)


def _cert(field: str, *path: str, read: Reader | None = None) -> Field:
    return field, ("last_https_certificate", *path), read or _keyword


_CERTIFICATE_FIELDS: _Compiled = _compile((
    _cert("tls.server.hash.sha1", "thumbprint"),
    _cert("tls.server.hash.sha256", "thumbprint_sha256"),
    _cert("tls.server.x509.serial_number", "serial_number"),
    _cert("tls.server.x509.issuer.common_name", "issuer", "CN"),
    _cert("tls.server.x509.issuer.organization", "issuer", "O"),
    _cert("tls.server.x509.subject.common_name", "subject", "CN"),
    _cert("tls.server.x509.alternative_names", "extensions", "subject_alternative_name",
          read=_keywords),
))


# --- files ---------------------------------------------------------------------------------

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


# --- urls ----------------------------------------------------------------------------------

def _url_identity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """The URL itself (feed lines also carry it in context_attributes) and its host."""
    url = _keyword(attributes.get("url")) or _keyword(_dig(obj, ("context_attributes", "url")))
    if url is None:
        return
    b.out["url.full"] = url
    b.put("url.domain", host_of(url))


def _url_lists(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """The redirection chain is the URL's own path: kept whole. Outgoing links are filtered."""
    b.put_list("vt.redirection_chain", _as_list(attributes.get("redirection_chain")))
    b.put_filtered("vt.outgoing_links", _as_list(attributes.get("outgoing_links")))
    b.put_list("vt.targeted_brands", _values(attributes.get("targeted_brand")))


# --- domains and IP addresses --------------------------------------------------------------

def _domain_identity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    b.put("url.domain", _keyword(obj.get("id")))


def _dns_records(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """Records as "TYPE value" (exact lookups) and bare values (pivot on a host or IP)."""
    records: list[str] = []
    values: list[str] = []
    addresses: list[str] = []
    for record in _dicts(attributes.get("last_dns_records")):
        kind, value = _keyword(record.get("type")), _keyword(record.get("value"))
        if value is None:
            continue
        values.append(value)
        records.append(f"{kind} {value}" if kind else value)
        if kind in ("A", "AAAA"):
            addresses.append(value)
    b.put_list("vt.dns.records", records)
    b.put_list("vt.dns.values", values)
    b.add_ips(addresses)


def _popularity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    """Ranks as "list:rank" strings plus the best (lowest) rank for range queries."""
    ranks = attributes.get("popularity_ranks")
    if not isinstance(ranks, dict):
        return
    labels: list[str] = []
    best: int | None = None
    for source, entry in ranks.items():
        rank = _count(entry.get("rank")) if isinstance(entry, dict) else None
        if rank is None:
            continue
        labels.append(f"{source}:{rank}")
        best = rank if best is None else min(best, rank)
    b.put_list("vt.popularity.ranks", labels)
    b.put("vt.popularity.best_rank", best)


def _ip_identity(attributes: Mapping[str, Any], obj: Mapping[str, Any], b: _Builder) -> None:
    b.add_ips((obj.get("id"),))


# --- file behaviours -----------------------------------------------------------------------

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


# --- per-type tables -----------------------------------------------------------------------

_COMMON_FIELDS: tuple[Field, ...] = (
    ("vt.tags", ("tags",), _keywords),
    ("vt.reputation", ("reputation",), _integer),
    ("vt.last_analysis_date", ("last_analysis_date",), _date),
    ("vt.last_modification_date", ("last_modification_date",), _date),
    ("vt.total_votes.harmless", ("total_votes", "harmless"), _count),
    ("vt.total_votes.malicious", ("total_votes", "malicious"), _count),
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

_FAVICON_FIELDS: tuple[Field, ...] = (
    ("vt.favicon.raw_md5", ("favicon", "raw_md5"), _keyword),
    ("vt.favicon.dhash", ("favicon", "dhash"), _keyword),
)

_URL_FIELDS: tuple[Field, ...] = _COMMON_FIELDS + _FAVICON_FIELDS + (
    ("url.top_level_domain", ("tld",), _keyword),
    ("vt.last_final_url", ("last_final_url",), _keyword),
    ("vt.title", ("title",), _keyword),
    ("vt.last_http_response_code", ("last_http_response_code",), _integer),
    ("vt.last_http_response_content_length", ("last_http_response_content_length",), _count),
    ("vt.last_http_response_content_sha256", ("last_http_response_content_sha256",), _keyword),
    ("vt.threat_names", ("threat_names",), _keywords),
    ("vt.first_submission_date", ("first_submission_date",), _date),
    ("vt.last_submission_date", ("last_submission_date",), _date),
    ("vt.times_submitted", ("times_submitted",), _count),
)

_DOMAIN_FIELDS: tuple[Field, ...] = _COMMON_FIELDS + _FAVICON_FIELDS + (
    ("url.top_level_domain", ("tld",), _keyword),
    ("vt.registrar", ("registrar",), _keyword),
    ("vt.creation_date", ("creation_date",), _date),
    ("vt.last_update_date", ("last_update_date",), _date),
    ("vt.last_dns_records_date", ("last_dns_records_date",), _date),
    ("vt.last_https_certificate_date", ("last_https_certificate_date",), _date),
    ("vt.jarm", ("jarm",), _keyword),
)

_IP_FIELDS: tuple[Field, ...] = _COMMON_FIELDS + (
    ("as.number", ("asn",), _count),
    ("as.organization.name", ("as_owner",), _keyword),
    ("geo.country_iso_code", ("country",), _keyword),
    ("geo.continent_code", ("continent",), _keyword),
    ("vt.network", ("network",), _keyword),
    ("vt.regional_internet_registry", ("regional_internet_registry",), _keyword),
    ("vt.last_https_certificate_date", ("last_https_certificate_date",), _date),
    ("vt.jarm", ("jarm",), _keyword),
)

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
