"""Index, alias and document names: pure functions, the contract Logstash and look-ups share."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

from vt_dagster.feeds import get_feed, parse_minute_key

DEFAULT_PREFIX = "vt"
_HEX = frozenset("0123456789abcdefABCDEF")
# Characters Elasticsearch refuses in index and alias names.
_BAD_NAME_CHARS = re.compile(r'[\\/*?"<>|,# :A-Z]')


def check_name(name: str, what: str = "index name") -> str:
    """`name` if Elasticsearch accepts it as an index/alias name (part), else ValueError."""
    if not name or name.startswith(("-", "_", "+")) or _BAD_NAME_CHARS.search(name):
        raise ValueError(
            f"{what} {name!r} is not a valid Elasticsearch name: lower case, no spaces or "
            "any of \\ / * ? \" < > | , # :, not starting with - _ +"
        )
    return name


def family_name(prefix: str, family: str) -> str:
    """Name of a family's index template and ILM policy: `<prefix>-summaries`, `<prefix>-reports`."""
    return f"{prefix}-{family}"


def summary_alias(prefix: str, feed: str) -> str:
    """`<prefix>-summaries-<feed>`: the write alias of a feed's summaries."""
    return f"{prefix}-summaries-{get_feed(feed).name}"


def report_alias(prefix: str, feed: str, overrides: Mapping[str, str] | None = None) -> str:
    """`<prefix>-reports-<feed>`, or the configured override (an Assemblyline alias)."""
    name = get_feed(feed).name
    return (overrides or {}).get(name) or f"{prefix}-reports-{name}"


def bootstrap_index(alias: str) -> str:
    """First index behind a write alias; rollover names the next ones `-000002`, ..."""
    return f"{alias}-000001"


def summary_doc_id(batch: str, vt_id: str) -> str:
    """`_id` of a summary: sha256 hex of the UTF-8 text `f"{batch}:{vt_id}"`.

    Example: batch `202401011200`, id `abc` -> sha256(b"202401011200:abc"). Logstash computes
    the same with its fingerprint filter (SHA256, no key) over "%{[vt.batch]}:%{[vt.id]}".
    """
    return hashlib.sha256(f"{batch}:{vt_id}".encode("utf-8")).hexdigest()


def report_doc_id(vt_id: str) -> str:
    """`_id` of a report: the id lowercased when it is 64 hex characters, else sha256(id) hex.

    Files and URLs (whose VT ids are sha256 values) keep their id; domains, IPs and file
    behaviours are hashed. This is the convention Assemblyline's VirusTotal service uses.
    """
    if len(vt_id) == 64 and is_hex(vt_id):
        return vt_id.lower()
    return hashlib.sha256(vt_id.encode("utf-8")).hexdigest()


def url_id(url: str) -> str:
    """VT's id of a URL: the sha256 hex of the URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def batch_version(batch: str) -> int:
    """External version of the reports of `batch`: minutes since the epoch of its start."""
    return int(parse_minute_key(batch).timestamp()) // 60


def batch_time(batch: str) -> str:
    """ISO 8601 start of a batch minute (`vt.batch_time` of reports)."""
    return parse_minute_key(batch).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_hex(text: str) -> bool:
    return all(char in _HEX for char in text)


def feed_names(feeds: Iterable[str] | str) -> list[str]:
    """Canonical names of `feeds` (one name or several), each once, in order."""
    names: list[str] = []
    for feed in [feeds] if isinstance(feeds, str) else feeds:
        name = get_feed(feed).name
        if name not in names:
            names.append(name)
    return names
