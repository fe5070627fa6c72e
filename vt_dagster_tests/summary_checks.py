"""What summaries are checked against: the schema table, the shipped samples, one summarize call per feed."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path
from typing import Any

from vt_dagster.summarize import MAX_LIST_ITEMS, MAX_STRING_CHARS, summarize_object
from vt_dagster.whitelist import UrlWhitelist

REPO = Path(__file__).resolve().parents[1]
SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "vt_samples"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
SCHEMA_DOC = REPO / "docs" / "summary-schema.md"
BATCH = "202406011200"
BATCH_TIMESTAMP = "2024-06-01T12:00:00Z"
FEED_OF_TYPE = {
    "file": "files", "url": "urls", "domain": "domains", "ip_address": "ip_addresses",
    "file_behaviour": "file_behaviours",
}
WHITELIST = UrlWhitelist.default()


def _schema_rows() -> dict[str, tuple[str, set[str]]]:
    """field -> (type, feeds) from the Markdown table."""
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in SCHEMA_DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"schema row does not have 4 cells: {line}"
        field, kind, feeds = cells[0].strip("`"), cells[1], cells[2]
        assert field not in rows, f"field listed twice in the schema: {field}"
        feed_set = set(FEED_OF_TYPE.values()) if feeds == "all" else {
            f.strip() for f in feeds.split(",")
        }
        assert feed_set <= set(FEED_OF_TYPE.values()), f"unknown feed in row {field}: {feeds}"
        rows[field] = (kind, feed_set)
    return rows


SCHEMA = _schema_rows()


def _check_value(kind: str, value: Any) -> bool:
    """Whether one value fits the schema type (and so cannot make ES reject the document)."""
    if kind in ("keyword", "keyword_url", "keyword_lower", "text"):
        return (
            isinstance(value, str) and value == value.strip()
            and 0 < len(value) <= MAX_STRING_CHARS
        )
    if kind in ("long", "integer"):
        limit = 2**31 - 1 if kind == "integer" else 2**63 - 1
        return type(value) is int and -limit <= value <= limit
    if kind == "date":
        return type(value) is int and 0 < value <= 253_402_300_799
    if kind == "date_iso":
        return isinstance(value, str) and dt.datetime.fromisoformat(value).tzinfo is not None
    if kind == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
    if kind == "boolean":
        return type(value) is bool
    raise AssertionError(f"unknown schema type {kind}")


def assert_valid_summary(summary: dict[str, Any], feed: str | None = None) -> None:
    """Every key documented (for this feed), every value of its type, nothing empty."""
    json.dumps(summary, allow_nan=False)  # one NDJSON line, no NaN/Infinity
    for key, value in summary.items():
        assert key in SCHEMA, f"{key} is not in docs/summary-schema.md"
        kind, feeds = SCHEMA[key]
        if feed is not None:
            assert feed in feeds, f"{key} emitted for feed {feed}, schema says {sorted(feeds)}"
        values = value if isinstance(value, list) else [value]
        assert values, f"{key} is an empty list"
        assert len(values) <= MAX_LIST_ITEMS, f"{key} has {len(values)} items"
        assert len(set(map(repr, values))) == len(values), f"{key} has duplicates: {values}"
        for item in values:
            assert _check_value(kind, item), f"{key}={item!r} is not a valid {kind}"


def _golden_names() -> list[str]:
    """Samples to check: every golden file and every sample (a new sample needs a golden)."""
    names = {path.name.removesuffix(".summary.json") for path in GOLDEN_DIR.glob("*.summary.json")}
    if SAMPLES_DIR.is_dir():
        names |= {path.stem for path in SAMPLES_DIR.glob("*.json")}
    return sorted(names)


def _load_sample(stem: str) -> dict[str, Any]:
    path = SAMPLES_DIR / f"{stem}.json"
    assert path.is_file(), f"VT sample missing from the repository: {path}"
    return json.loads(path.read_text(encoding="utf-8"))


def _bare(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["data"] if set(obj) == {"data"} else obj


def _summarize(obj: dict[str, Any], feed: str | None = None) -> tuple[dict[str, Any], int]:
    feed = feed or FEED_OF_TYPE[_bare(obj)["type"]]
    return summarize_object(obj, feed=feed, batch=BATCH, whitelist=WHITELIST)
