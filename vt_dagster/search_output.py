"""Summaries on a terminal: a table of the most useful columns fitted to its width, or JSON lines.

Pure formatting (no Elasticsearch, no Dagster): `vt-dagster search` and the demo print search
hits with it. Widths are counted in terminal cells (East Asian wide characters take two), and
what VT data may hide from a terminal (escape sequences, bidi overrides) is shown escaped.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal, TextIO

VALUE = "value"
DETECTIONS = "detections"
COMPUTED_COLUMNS = {
    VALUE: "the object's identifying value: sha256 (files), URL, domain, IP, <sha256>_<sandbox> (behaviours)",
    DETECTIONS: "malicious/total engines of the last analysis",
}

# The field whose value names the object, per feed (vt.id when a summary lacks it).
IDENTIFYING_FIELD = {
    "files": "hash.sha256",
    "urls": "url.full",
    "domains": "url.domain",
    "ip_addresses": "vt.id",
    "file_behaviours": "vt.id",
}

# The default columns, most useful first: on a narrow terminal the last ones are left out.
COLUMNS_BY_PRIORITY = (
    VALUE, DETECTIONS, "@timestamp", "vt.threat_label", "vt.behaviour.verdict_labels",
    "vt.meaningful_name", "vt.title", "vt.type", "vt.categories", "as.organization.name",
    "vt.behaviour.sandbox_name", "geo.country_iso_code", "vt.tags",
)
# ... and the order they are printed in.
DEFAULT_COLUMNS = (
    "@timestamp", "vt.type", VALUE, DETECTIONS, "vt.threat_label", "vt.meaningful_name",
    "vt.behaviour.verdict_labels", "vt.behaviour.sandbox_name", "vt.title", "vt.categories",
    "as.organization.name", "geo.country_iso_code", "vt.tags",
)

SEPARATOR = "  "
ELLIPSIS = "…"
NO_HITS = "(no summaries)"
LIST_SEPARATOR = ", "
# The narrowest a cut column is shown at: a URL or a domain needs more to be recognised.
VALUE_MIN_WIDTH = 40
TEXT_MIN_WIDTH = 16

Cut = Literal["end", "middle", "never"]

# Identifiers are cut in the middle: a hash is recognised by its ends, a URL by its host and
# the end of its path.
_CUT_IN_THE_MIDDLE = re.compile(r"value|vt\.id|(.*\.)?hash\..*|.*sha256|.*\.raw_md5|url\.full|vt\.last_final_url")
# A cut date or count would be a wrong one: these are shown whole or not at all.
_NEVER_CUT = re.compile(r"detections|@timestamp|vt\.batch|vt\.type|vt\.feed|.*_date")
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_HEX = frozenset("0123456789abcdefABCDEF")


def cut_rule(name: str) -> tuple[Cut, int]:
    """Where a column's cells are cut (the ellipsis goes) and the narrowest it is shown at."""
    if _NEVER_CUT.fullmatch(name):
        return "never", 0
    if _CUT_IN_THE_MIDDLE.fullmatch(name):
        return "middle", VALUE_MIN_WIDTH if name == VALUE else TEXT_MIN_WIDTH
    return "end", TEXT_MIN_WIDTH


# --- cells ------------------------------------------------------------------------------------

def cell_text(hit: Mapping[str, Any], name: str) -> str:
    """What a summary shows in a column, on one line: lists comma-separated, dates in ISO UTC."""
    if name == VALUE:
        value = hit.get(IDENTIFYING_FIELD.get(str(hit.get("vt.feed")), "vt.id"), hit.get("vt.id"))
    elif name == DETECTIONS:
        malicious = hit.get("vt.last_analysis_stats.malicious")
        total = hit.get("vt.last_analysis_stats.total")
        value = malicious if malicious is None or total is None else f"{malicious}/{total}"
    else:
        value = hit.get(name)
    return printable(_plain(value, name))


def _plain(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return LIST_SEPARATOR.join(_plain(item, name) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and name.endswith("_date"):
        try:
            return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return str(value)
    if isinstance(value, (dict, float)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def printable(text: str) -> str:
    """`text` on one line with every control, format or unassigned character escaped (`\\x1b`,
    `\\u202e`): a file name from VT must not drive the terminal or reorder what it shows."""
    text = " ".join(text.split())
    if text.isprintable():
        return text
    return "".join(_escaped(char) if unicodedata.category(char) in _HIDDEN_CATEGORIES else char
                   for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def char_width(char: str) -> int:
    """Terminal cells a character takes: 0 for combining marks, 2 for East Asian wide ones."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(char_width(char) for char in text)


def shown_whole(text: str) -> bool:
    """A hash (md5, sha1, sha256 in hex) or an integer: useless cut, so only cut when a single
    column is wider than the terminal."""
    if len(text) in (32, 40, 64) and all(char in _HEX for char in text):
        return True
    return text.removeprefix("-").isdigit()


def cut(text: str, width: int, where: Cut = "end") -> str:
    """`text` in at most `width` cells, an ellipsis standing for what was left out."""
    if display_width(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    if where == "middle":
        tail = _tail(text, (width - 1) // 2)
        return _head(text, width - 1 - display_width(tail)) + ELLIPSIS + tail
    return _head(text, width - 1) + ELLIPSIS


def _head(text: str, width: int) -> str:
    used = 0
    for end, char in enumerate(text):
        used += char_width(char)
        if used > width:
            return text[:end]
    return text


def _tail(text: str, width: int) -> str:
    return _head(text[::-1], width)[::-1]


def pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


# --- layout -----------------------------------------------------------------------------------

def short_headers(names: Sequence[str]) -> dict[str, str]:
    """Headers of a fitted table: the field names without `vt.` (`threat_label`), unless that is
    another shown column's name. `--columns` takes them as they are."""
    return {name: name[3:] if name.startswith("vt.") and name[3:] not in names else name for name in names}


def fit_widths(naturals: Sequence[int], minimums: Sequence[int], room: int) -> list[int]:
    """Widths for columns whose whole contents take `naturals` cells, in `room` cells.

    Every column starts at its minimum (or its whole width when smaller); the space left goes
    to the columns in the order given, each up to its whole width, so the first (the most
    useful) is cut last. The sum exceeds `room` only when the minimums alone do.
    """
    widths = [min(natural, minimum) for natural, minimum in zip(naturals, minimums)]
    spare = room - sum(widths)
    for index, natural in enumerate(naturals):
        grow = max(0, min(spare, natural - widths[index]))
        widths[index] += grow
        spare -= grow
    return widths


def _room(width: int, columns: int) -> int:
    return width - len(SEPARATOR) * (columns - 1)


def _columns_that_fit(names: Sequence[str], minimums: Mapping[str, int], width: int) -> list[str]:
    """`names` (most useful first), each kept if it fits at its minimum width next to the ones
    kept before it; the first is always kept."""
    kept: list[str] = []
    for name in names:
        if not kept or sum(minimums[n] for n in [*kept, name]) <= _room(width, len(kept) + 1):
            kept.append(name)
    return kept


def _minimum(name: str, cells: Sequence[str], natural: int, width: int) -> int:
    where, least = cut_rule(name)
    if where == "never":
        least = natural
    least = max([least, *(display_width(text) for text in cells if shown_whole(text))])
    return min(natural, least, width)


def summaries_table(
    hits: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    width: int | None = None,
) -> str:
    """A plain-text table of summaries, every line at most `width` cells; with `width` None
    every value whole, headed by its full field name.

    Without `columns`: the default columns that any hit fills; when they do not fit, the least
    useful are left out (COLUMNS_BY_PRIORITY), headers lose their `vt.` and long cells are cut
    with an ellipsis (hashes, numbers and dates never are). Given `columns` are all shown, in
    their order, even empty ones, cut down to their minimum widths; only past that are lines
    longer than `width`.
    """
    if not hits:
        return NO_HITS
    names = list(dict.fromkeys(columns)) if columns is not None else list(DEFAULT_COLUMNS)
    cells = {name: [cell_text(hit, name) for hit in hits] for name in names}
    if columns is None:
        names = [name for name in names if any(cells[name])]
    if width is None:
        whole = [max(display_width(name), *map(display_width, cells[name])) for name in names]
        return _render(names, names, whole, cells, len(hits))
    headers = short_headers(names)
    naturals = {name: max(display_width(headers[name]), *map(display_width, cells[name])) for name in names}
    minimums = {name: _minimum(name, cells[name], naturals[name], width) for name in names}
    by_priority = names
    if columns is None:
        by_priority = _columns_that_fit([n for n in COLUMNS_BY_PRIORITY if n in naturals], minimums, width)
        names = [name for name in names if name in by_priority]
    fitted = dict(zip(by_priority, fit_widths([naturals[n] for n in by_priority],
                                              [minimums[n] for n in by_priority], _room(width, len(names)))))
    return _render(names, [headers[name] for name in names], [fitted[name] for name in names], cells, len(hits))


def _render(names: Sequence[str], headers: Sequence[str], widths: Sequence[int],
            cells: Mapping[str, list[str]], rows: int) -> str:
    rules = [cut_rule(name)[0] for name in names]

    def line(texts: Iterable[str]) -> str:
        return SEPARATOR.join(pad(cut(text, width, where), width)
                              for text, width, where in zip(texts, widths, rules)).rstrip()

    lines = [line(headers), line("-" * width for width in widths)]
    lines += [line(cells[name][row] for name in names) for row in range(rows)]
    return "\n".join(lines)


# --- columns the user names -------------------------------------------------------------------

def summary_fields(template: Mapping[str, Any]) -> list[str]:
    """The dotted field names the summaries index template maps (docs/summary-schema.md)."""
    properties = template.get("template", {}).get("mappings", {}).get("properties", {})
    return sorted(_field_names(properties))


def _field_names(properties: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for name, spec in properties.items():
        if isinstance(spec, Mapping) and "properties" in spec:
            yield from _field_names(spec["properties"], f"{prefix}{name}.")
        else:
            yield prefix + name


def parse_columns(text: str, known_fields: Iterable[str]) -> list[str]:
    """The columns of `--columns a,b,c`, in order: computed columns, summary fields, or the
    fitted table's headers (`threat_label` for `vt.threat_label`); ValueError on an unknown one."""
    known = [*COMPUTED_COLUMNS, *known_fields]
    names: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        if name not in known and f"vt.{name}" in known:
            name = f"vt.{name}"
        if name not in known:
            raise ValueError(_unknown_column(name, known))
        names.append(name)
    if not names:
        raise ValueError("--columns needs at least one column name (e.g. --columns value,vt.threat_label)")
    return list(dict.fromkeys(names))


def _unknown_column(name: str, known: Sequence[str]) -> str:
    near = near_matches(name, known)
    hint = f"did you mean {', '.join(near)}? " if near else ""
    return (f"unknown column {name!r}: {hint}columns are {', '.join(COMPUTED_COLUMNS)} or a summary "
            "field of docs/summary-schema.md")


def near_matches(name: str, known: Sequence[str], limit: int = 4) -> list[str]:
    """Known names like `name`: close spellings, close last parts, names containing it."""
    lowered = name.lower()
    close = difflib.get_close_matches(lowered, known, n=limit, cutoff=0.7)
    by_last_part = [field for field in known
                    if difflib.get_close_matches(lowered, [field.rsplit(".", 1)[-1]], cutoff=0.8)]
    containing = [field for field in known if lowered in field.lower()] if len(lowered) >= 3 else []
    return list(dict.fromkeys([*close, *by_last_part, *containing]))[:limit]


# --- JSON and the terminal --------------------------------------------------------------------

def json_lines(hits: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Each summary as one line of JSON, as indexed: what `jq` reads (non-ASCII escaped, so no
    byte of it can drive a terminal)."""
    for hit in hits:
        yield json.dumps(hit)


def terminal_width(environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> int | None:
    """The width tables are fitted to: COLUMNS when set, else the terminal's when `stream` (stdout)
    is one; None (no limit) when output goes to a pipe or a file, where cutting would lose what
    a pager or an editor can show."""
    environ = os.environ if environ is None else environ
    stream = sys.stdout if stream is None else stream
    given = environ.get("COLUMNS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return None
