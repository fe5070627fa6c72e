"""The document under construction and the table-driven copy of plain fields.

`_Builder` holds the summary, the whitelist and the count of URLs it dropped; a field table
(`Field` rows) is compiled once per object type into `_Compiled` and walked by `_copy_fields`
against the attributes an object has. Extractors of every object type build on these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from vt_dagster.summarize.values import MAX_LIST_ITEMS, _ip, _keyword, _unique
from vt_dagster.whitelist import UrlWhitelist

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

