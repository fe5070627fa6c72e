"""Readers: one JSON value in, one summary value (or None) out, and the caps they apply.

The leaves of the package: every field table and extractor reads through these, and they import
nothing of it. They are the innermost loop of summarizing, kept together so each stays a plain
module-level function (one global lookup per call, no indirection).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

# One odd object must not blow up a document: lists and strings are capped.
MAX_LIST_ITEMS = 1000
# Lucene refuses terms over 32,766 bytes; 8,191 characters of UTF-8 always fit.
MAX_STRING_CHARS = 8191
# Dates outside (1970-01-01, 9999-12-31] are not sane VT timestamps.
_MAX_EPOCH = 253_402_300_799
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_HEX = frozenset("0123456789abcdefABCDEF")


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
