"""vt_dagster.search_output: the search table fitted to a terminal, JSON lines, column names.

Pure functions on real summaries (the summarizers' output of emulator objects and of the real
VT samples); only the terminal-width test opens a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import termios
from pathlib import Path
from typing import Any

import pytest

from vt_dagster import elastic
from vt_dagster.emulator import generate_objects
from vt_dagster.feeds import FEEDS
from vt_dagster.search_output import (
    COLUMNS_BY_PRIORITY,
    DEFAULT_COLUMNS,
    ELLIPSIS,
    NO_HITS,
    cell_text,
    cut,
    display_width,
    fit_widths,
    json_lines,
    parse_columns,
    summaries_table,
    summary_fields,
    terminal_width,
)
from vt_dagster.summarize import summarize_object
from vt_dagster.whitelist import UrlWhitelist

BATCH = "202401151200"
SHA256 = "179082972ca18165c4fda3be3e10db7fa664db7bfd6d75975f56a7ee9e4769a0"


def summaries(feed: str, count: int = 5) -> list[dict[str, Any]]:
    whitelist = UrlWhitelist.default()
    return [summarize_object(obj, feed=feed, batch=BATCH, whitelist=whitelist)[0]
            for obj in generate_objects(feed, BATCH, 7, count)[:count]]


def every_feed() -> list[dict[str, Any]]:
    return [hit for feed in FEEDS for hit in summaries(feed, 3)]


def header(table: str) -> list[str]:
    return table.splitlines()[0].split()


@pytest.fixture(scope="module")
def fields() -> list[str]:
    return summary_fields(elastic.load_json_file(elastic.TEMPLATES_DIR / elastic.SUMMARIES.template_file))


# --- fitting ----------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [1, 12, 30, 50, 80, 100, 120, 160, 200, 300])
def test_every_line_fits_the_width(width: int) -> None:
    table = summaries_table(every_feed(), width=width)
    assert all(display_width(line) <= width for line in table.splitlines()), table


def test_cut_cells_end_in_an_ellipsis_and_identifiers_keep_both_ends() -> None:
    hits = summaries("urls", 3)
    long_url = "https://example.test/" + "a" * 100 + "/last-part"
    hits[0]["url.full"] = long_url
    table = summaries_table(hits, width=80)
    row = table.splitlines()[2]
    assert long_url not in table and ELLIPSIS in row
    assert "https://example.test" in row and "aaa/last-part" in row
    assert cut("threat.label/family", 10) == "threat.la…"
    assert cut("0123456789", 5, "middle") == "01…89"
    assert cut("abc", 1) == ELLIPSIS and cut("abc", 0) == ""


def test_the_most_useful_columns_stay_when_the_terminal_is_narrow() -> None:
    hits = summaries("files")
    assert header(summaries_table(hits, width=80)) == ["value", "detections"]
    assert header(summaries_table(hits, width=100)) == ["@timestamp", "value", "detections"]
    at_130 = header(summaries_table(hits, width=130))
    assert at_130 == ["@timestamp", "type", "value", "detections", "threat_label"]
    assert len(header(summaries_table(hits))) > len(at_130)


def test_a_sha256_is_shown_whole_when_the_terminal_can_hold_one() -> None:
    hits = summaries("files")
    for width in (70, 80, 120):
        assert all(hit["hash.sha256"] in summaries_table(hits, width=width) for hit in hits)
    narrow = summaries_table(hits, width=40).splitlines()[2]
    sha256 = hits[0]["hash.sha256"]
    assert narrow.startswith(sha256[:19]) and narrow.rstrip().endswith(sha256[-19:]) and ELLIPSIS in narrow


def test_columns_no_hit_fills_are_left_out() -> None:
    hits = summaries("ip_addresses")
    for table in (summaries_table(hits), summaries_table(hits, width=200)):
        names = header(table)
        assert not {"vt.threat_label", "threat_label", "vt.title", "title", "vt.meaningful_name"} & set(names)
        assert "value" in names


def test_given_columns_keep_their_order_and_stay_when_empty() -> None:
    hits = summaries("files")
    columns = ["vt.threat_label", "hash.md5", "vt.title", "value"]
    assert header(summaries_table(hits, columns)) == columns
    assert header(summaries_table(hits, columns, width=120)) == ["threat_label", "hash.md5", "title", "value"]
    too_narrow = summaries_table(hits, columns, width=30).splitlines()
    assert len(too_narrow[0].split()) == 4, "a named column is never left out"


def test_without_a_width_every_value_is_whole_under_its_full_name() -> None:
    hits = summaries("files")
    hits[0]["vt.tags"] = [f"tag-{n}" for n in range(60)]
    table = summaries_table(hits)
    assert header(table)[:4] == ["@timestamp", "vt.type", "value", "detections"]
    assert ", ".join(hits[0]["vt.tags"]) in table and ELLIPSIS not in table
    assert max(map(len, table.splitlines())) > 300


def test_fit_widths_grows_the_first_columns_first() -> None:
    assert fit_widths([64, 10, 30], [40, 10, 16], 100) == [64, 10, 26]
    assert fit_widths([64, 10, 30], [40, 10, 16], 70) == [44, 10, 16]
    assert fit_widths([5, 3], [16, 16], 100) == [5, 3]
    assert sum(fit_widths([64, 10, 30], [40, 10, 16], 50)) == 66, "minimums are kept even past room"


# --- cells ------------------------------------------------------------------------------------

def test_each_feed_shows_its_identifying_value(samples_dir: Path) -> None:
    whitelist = UrlWhitelist.default()
    expected = {
        "msticpy_vt3_file_1.json": ("files", "hash.sha256"),
        "msticpy_vt3_url_0.json": ("urls", "url.full"),
        "opencti_vt_test_domain.json": ("domains", "url.domain"),
        "opencti_vt_test_ipv4.json": ("ip_addresses", "vt.id"),
    }
    for name, (feed, field) in expected.items():
        obj = json.loads((samples_dir / name).read_text(encoding="utf-8"))
        summary = summarize_object(obj, feed=feed, batch=BATCH, whitelist=whitelist)[0]
        assert cell_text(summary, "value") == summary[field], name
    behaviour = summaries("file_behaviours", 1)[0]
    assert cell_text(behaviour, "value") == behaviour["vt.id"]
    assert cell_text(behaviour, "detections") == ""


def test_lists_dates_and_detections_read_plainly() -> None:
    hit = {"vt.feed": "files", "vt.tags": ["peexe", "64bits"], "vt.first_submission_date": 1705320000,
           "vt.last_analysis_stats.malicious": 12, "vt.last_analysis_stats.total": 70, "vt.downloadable": True}
    assert cell_text(hit, "vt.tags") == "peexe, 64bits"
    assert cell_text(hit, "vt.first_submission_date") == "2024-01-15T12:00:00Z"
    assert cell_text(hit, "detections") == "12/70"
    assert cell_text(hit, "vt.downloadable") == "true"
    assert cell_text(hit, "file.name") == ""


def test_terminal_control_characters_are_shown_escaped() -> None:
    hit = {"vt.feed": "files", "vt.id": SHA256, "hash.sha256": SHA256,
           "vt.meaningful_name": "invoice\u202efdp.exe", "vt.threat_label": "trojan\x1b[2J\x07\nx"}
    table = summaries_table([hit], width=120) + summaries_table([hit])
    assert "\x1b" not in table and "\u202e" not in table and "\x07" not in table
    assert "invoice\\u202efdp.exe" in table and "trojan\\x1b[2J\\x07 x" in table


def test_wide_characters_take_two_cells() -> None:
    name = "報告書_最終版_2024年度_極秘資料.exe"
    assert display_width(name) == len(name) + 12
    assert display_width("e\u0301te\u0301") == 3
    hits = [{"vt.feed": "files", "vt.id": SHA256, "hash.sha256": SHA256, "vt.meaningful_name": name,
             "vt.threat_label": "😀" * 40, "vt.tags": ["ét́é", "x" * 50]},
            {"vt.feed": "urls", "vt.id": "b" * 64, "url.full": "http://例え.jp/" + "パス" * 40}]
    for width in range(20, 181, 7):
        lines = summaries_table(hits, width=width).splitlines()
        assert all(display_width(line) <= width for line in lines), (width, lines)
        cells = [display_width(line) for line in lines[:2]]
        assert cells[0] <= cells[1], "the header is not wider than the rule under it"
    assert display_width(cut("パス" * 10, 7)) <= 7 and cut("パス" * 10, 7).endswith(ELLIPSIS)
    assert display_width(cut("パス" * 10, 8, "middle")) <= 8


def test_no_hits_say_so() -> None:
    assert summaries_table([]) == NO_HITS
    assert list(json_lines([])) == []


# --- columns, JSON, terminal ------------------------------------------------------------------

def test_summary_fields_are_the_schema_fields(fields: list[str]) -> None:
    assert {"hash.sha256", "vt.last_analysis_stats.malicious", "@timestamp", "url.full"} <= set(fields)
    assert "hash" not in fields and "vt" not in fields
    assert set(COLUMNS_BY_PRIORITY) - {"value", "detections"} <= set(fields)
    assert set(COLUMNS_BY_PRIORITY) == set(DEFAULT_COLUMNS)


def test_columns_are_parsed_in_order_and_headers_are_accepted(fields: list[str]) -> None:
    assert parse_columns("value, hash.md5,threat_label,value", fields) == ["value", "hash.md5", "vt.threat_label"]


def test_an_unknown_column_is_refused_with_near_matches(fields: list[str]) -> None:
    with pytest.raises(ValueError) as raised:
        parse_columns("value,malicious", fields)
    message = str(raised.value)
    assert "unknown column 'malicious'" in message and "vt.last_analysis_stats.malicious" in message
    assert "docs/summary-schema.md" in message and "\n" not in message
    with pytest.raises(ValueError, match="did you mean hash.sha256"):
        parse_columns("hash.sha265", fields)
    with pytest.raises(ValueError, match="unknown column 'zzz': columns are value, detections or"):
        parse_columns("zzz", fields)
    with pytest.raises(ValueError, match="at least one column"):
        parse_columns(" , ", fields)


def test_json_lines_are_the_summaries_themselves() -> None:
    hits = every_feed()
    hits[0]["vt.meaningful_name"] = "ü\u202e\x1b"
    lines = list(json_lines(hits))
    assert [json.loads(line) for line in lines] == hits
    assert all(line.isascii() and "\n" not in line for line in lines)


def test_terminal_width_comes_from_columns_then_the_terminal() -> None:
    leader, follower = pty.openpty()
    try:
        termios.tcsetwinsize(follower, (40, 132))
        with open(follower, "w", closefd=False) as tty, open(os.devnull, "w") as pipe:
            assert terminal_width({"COLUMNS": "90"}, tty) == 90
            assert terminal_width({}, tty) == 132
            assert terminal_width({"COLUMNS": "wide"}, tty) == 132
            assert terminal_width({}, pipe) is None, "piped output is not cut"
            assert terminal_width({"COLUMNS": "100"}, pipe) == 100
    finally:
        os.close(leader)
        os.close(follower)
