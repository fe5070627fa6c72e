"""Look-ups: the newest full report of a hash, URL, domain or IP, across every index of an alias."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch

from vt_dagster.elastic.errors import talking_to
from vt_dagster.elastic.names import DEFAULT_PREFIX, feed_names, is_hex, report_alias, report_doc_id, url_id

# Lookup keys per search: one request per feed up to this many values.
LOOKUP_CHUNK = 1000


@dataclass(frozen=True)
class LookupKey:
    """Where to find a value: `feed`, and `field` (`_id` or an indexed attribute) = `key`."""

    feed: str
    field: str
    key: str


def lookup_keys(value: str) -> list[LookupKey]:
    """The places a hash, URL, domain, IP or VT id may be found, most likely first.

    md5/sha1: file attributes. 64 hex: a file's sha256 or a URL's VT id. URL: the sha256 of
    the URL as given, and `attributes.url` (VT may canonicalise before hashing). Domains are
    lower-cased; IPv6 addresses are tried compressed and exploded.
    """
    text = value.strip()
    if not text:
        return []
    if is_hex(text) and len(text) in (32, 40, 64):
        lower = text.lower()
        if len(text) == 32:
            return [LookupKey("files", "attributes.md5", lower)]
        if len(text) == 40:
            return [LookupKey("files", "attributes.sha1", lower)]
        return [LookupKey("files", "_id", lower), LookupKey("urls", "_id", lower)]
    address = _ip_address(text)
    if address is not None:
        forms = dict.fromkeys([text, address.compressed, address.exploded])
        return [LookupKey("ip_addresses", "_id", report_doc_id(form)) for form in forms]
    if "/" in text:
        return [LookupKey("urls", "_id", url_id(text)), LookupKey("urls", "attributes.url", text)]
    if "." in text:
        return [LookupKey("domains", "_id", report_doc_id(text.lower().rstrip(".")))]
    return []


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def lookup(
    client: Elasticsearch,
    values: Iterable[str],
    *,
    feeds: Iterable[str],
    prefix: str = DEFAULT_PREFIX,
    report_aliases: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any] | None]:
    """The newest full report for each value (None when the cache does not hold it).

    One search per feed holds all of that feed's keys: `ids` for sha256/URL/domain/IP ids and
    `terms` on md5/sha1/url attributes. It runs over every index behind the alias, collapses
    on the VT `id` and sorts by `vt.batch_time` descending, so each object comes back once,
    as its newest copy (the one with the highest external version).
    """
    searched = set(feed_names(feeds))
    wanted = {value: [key for key in lookup_keys(value) if key.feed in searched]
              for value in dict.fromkeys(values)}
    by_feed: dict[str, set[LookupKey]] = {}
    for keys in wanted.values():
        for key in keys:
            by_feed.setdefault(key.feed, set()).add(key)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for feed, keys in by_feed.items():
        alias = report_alias(prefix, feed, report_aliases)
        ordered = sorted(keys, key=lambda k: (k.field, k.key))
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            for hit in _newest_reports(client, alias, ordered[start:start + LOOKUP_CHUNK]):
                for where in _hit_keys(hit):
                    found.setdefault((feed, *where), hit["_source"])
    return {value: next((found[(k.feed, k.field, k.key)] for k in keys
                         if (k.feed, k.field, k.key) in found), None)
            for value, keys in wanted.items()}


def _newest_reports(client: Elasticsearch, alias: str, keys: list[LookupKey]) -> list[dict[str, Any]]:
    fields: dict[str, list[str]] = {}
    for key in keys:
        fields.setdefault(key.field, []).append(key.key)
    should: list[dict[str, Any]] = [
        {"ids": {"values": terms}} if name == "_id" else {"terms": {name: terms}}
        for name, terms in fields.items()
    ]
    with talking_to(client, f"look up reports in {alias}"):
        answer = client.search(
            index=alias, query={"bool": {"should": should, "minimum_should_match": 1}},
            collapse={"field": "id"}, sort=[{"vt.batch_time": {"order": "desc", "unmapped_type": "date"}}],
            size=min(10_000, len(keys) + 10), version=True, ignore_unavailable=True,
            allow_no_indices=True,
        )
    return answer["hits"]["hits"]


def _hit_keys(hit: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    yield "_id", hit["_id"]
    attributes = hit.get("_source", {}).get("attributes")
    if not isinstance(attributes, dict):
        return
    for name in ("md5", "sha1"):
        if isinstance(attributes.get(name), str):
            yield f"attributes.{name}", attributes[name].lower()
    if isinstance(attributes.get("url"), str):
        yield "attributes.url", attributes["url"]
