"""The Elasticsearch commands of `vt-dagster`: setup, look-ups and summary search."""

from __future__ import annotations

import argparse
import json
import os
import sys

from vt_dagster.elastic import (
    SUMMARIES,
    TEMPLATES_DIR,
    load_json_file,
    lookup,
    make_client,
    search_summaries,
    settings_from_env,
    setup_elasticsearch,
)
from vt_dagster.feeds import FEEDS, enabled_feeds, parse_feed_list
from vt_dagster.search_output import (
    COLUMNS_BY_PRIORITY,
    COMPUTED_COLUMNS,
    json_lines,
    parse_columns,
    summaries_table,
    summary_fields,
    terminal_width,
)


def _feeds(value: str | None, default: list[str]) -> list[str]:
    """`--feeds`, else `default`; a broken VT_FEEDS is refused even by the commands whose default is every feed."""
    enabled_feeds()
    return [feed.name for feed in parse_feed_list(value, "--feeds")] if value else default


def run_setup(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    client = make_client(settings)
    try:
        actions = setup_elasticsearch(
            client, _feeds(args.feeds, [f.name for f in enabled_feeds()]), prefix=settings.index_prefix,
            update=args.update, report_aliases=settings.report_aliases, replicas=settings.index_replicas,
        )
    finally:
        client.close()
    for action in actions:
        print(action)
    return 0


def run_lookup(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    client = make_client(settings)
    try:
        found = lookup(client, args.values, feeds=_feeds(args.feeds, list(FEEDS)),
                       prefix=settings.index_prefix, report_aliases=settings.report_aliases)
    finally:
        client.close()
    for value, report in found.items():
        if args.json and report is not None:
            print(json.dumps({"value": value, "report": report}))
        else:
            print(report_line(value, report))
    return 0 if all(found.values()) else 1


def report_line(value: str, report: dict | None) -> str:
    """One line per looked-up value: what the cache holds and its detection stats."""
    if report is None:
        return f"{value}: not in the report cache"
    stats = (report.get("attributes") or {}).get("last_analysis_stats") or {}
    return (f"{value}: {report.get('type')} {report.get('id')} batch {report.get('vt.batch')} "
            f"malicious={stats.get('malicious', '?')} suspicious={stats.get('suspicious', '?')}")


MAX_SEARCH_SIZE = 10_000  # Elasticsearch's default index.max_result_window


def run_search(args: argparse.Namespace) -> int:
    if args.json and args.columns:
        raise ValueError("--json prints whole summaries: pick their fields with jq, not --columns")
    if not 1 <= args.size <= MAX_SEARCH_SIZE:
        raise ValueError(f"--size must be between 1 and {MAX_SEARCH_SIZE:,}, not {args.size}")
    columns = None
    if args.columns is not None:
        template = load_json_file(TEMPLATES_DIR / SUMMARIES.template_file)
        columns = parse_columns(args.columns, summary_fields(template))
    settings = settings_from_env()
    client = make_client(settings)
    try:
        hits = search_summaries(client, args.query, feeds=_feeds(args.feeds, list(FEEDS)),
                                prefix=settings.index_prefix, size=args.size)
    finally:
        client.close()
    if args.json:
        output = "".join(line + "\n" for line in json_lines(hits))
    else:
        output = summaries_table(hits, columns, width=None if args.wide else terminal_width()) + "\n"
    return _write_stdout(output)


def _write_stdout(text: str) -> int:
    """Print `text`; a reader that stops early (`| head`) is no error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def add_elastic_commands(subparsers: argparse._SubParsersAction) -> None:
    setup = subparsers.add_parser(
        "setup-elasticsearch", help="create ILM policies, index templates and write aliases (idempotent)",
        description="Reads index_templates/*.json and creates what is missing in the cluster at ES_URL; "
        "prints one line per item: created / present / updated / skipped.",
    )
    setup.add_argument("--update", action="store_true", help="rewrite policies/templates that differ from the files "
                       "and put the templates' mappings onto each alias's current write index")
    setup.add_argument("--feeds", help="comma-separated feeds (default: VT_FEEDS)")
    setup.set_defaults(handler=run_setup)

    find = subparsers.add_parser(
        "lookup", help="newest full VT report per hash/URL/domain/IP from the report cache",
        description="One search per feed, whatever the number of values; no VT quota is spent.",
    )
    find.add_argument("values", nargs="+", help="sha256/sha1/md5, URL, domain or IP")
    find.add_argument("--feeds", help="comma-separated feeds to search (default: all)")
    find.add_argument("--json", action="store_true", help="print each report as one JSON line")
    find.set_defaults(handler=run_lookup)

    search = subparsers.add_parser(
        "search", help="query the summaries (Lucene syntax) and print a table that fits the terminal",
        description="e.g. vt-dagster search 'vt.yara.rule_names:*Emotet* AND geo.country_iso_code:DE'. "
        "The table fits the terminal (COLUMNS, else its width; not cut when output is piped): "
        f"the most useful columns first ({', '.join(COLUMNS_BY_PRIORITY[:4])}...), long cells cut "
        "with an ellipsis. Columns: " + "; ".join(f"{name}: {meaning}" for name, meaning in COMPUTED_COLUMNS.items())
        + "; or any summary field of docs/summary-schema.md.",
    )
    search.add_argument("query", help="Lucene query_string, e.g. vt.feed:files AND vt.last_analysis_stats.malicious:>10")
    search.add_argument("--feeds", help="comma-separated feeds to search (default: all)")
    search.add_argument("--size", type=int, default=20, help="how many summaries, newest first (default: 20)")
    search.add_argument("--columns", metavar="A,B,...",
                        help="these columns in this order, e.g. value,detections,vt.threat_label,file.name")
    output = search.add_mutually_exclusive_group()
    output.add_argument("--wide", action="store_true", help="every column whole, whatever the terminal's width")
    output.add_argument("--json", action="store_true",
                        help="one summary per line as JSON (as indexed), nothing else: for jq and scripts")
    search.set_defaults(handler=run_search)
