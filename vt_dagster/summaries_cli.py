"""The summary commands of `vt-dagster`: one batch, or every raw batch still unsummarized."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vt_dagster.batch_lines import DEFAULT_MAX_LINE_BYTES, max_line_bytes_from_env
from vt_dagster.feeds import FEEDS, enabled_feeds, get_feed, named_feed, parse_minute_key
from vt_dagster.interrupts import Interrupted
from vt_dagster.storage import (
    record_summary_count, remove_debris, remove_stale_parts, summary_folder, summary_path, verify_batch_file,
)
from vt_dagster.summaries import BatchSummaryResult, SummaryJob, summarize_batch_file, summarize_many
from vt_dagster.whitelist import UrlWhitelist, load_url_whitelist, url_whitelist_path_from_env


def infer_batch(raw: Path) -> tuple[Path, str, str]:
    """(data root, feed, batch) of a raw batch laid out as `<root>/raw/<feed>/<day>/<batch>.bz2`."""
    batch = raw.name.removesuffix(".bz2")
    parse_minute_key(batch)
    feed = get_feed(raw.parent.parent.name).name
    if raw.parent.parent.parent.name != "raw":
        raise ValueError(f"{raw} is not under <VT_DATA_DIR>/raw/<feed>/<day>/: pass --feed and --batch")
    return raw.parent.parent.parent.parent, feed, batch


def whitelist_in_force(flag: Path | None) -> tuple[Path | None, UrlWhitelist]:
    """`--url-whitelist`, else `VT_URL_WHITELIST`, else the shipped list (path None), as the
    summaries asset chooses: read now, so a bad file is refused in one line naming the flag or
    the variable before any work."""
    if flag is not None:
        return flag, load_url_whitelist(flag, "--url-whitelist")
    path = url_whitelist_path_from_env()
    return path, load_url_whitelist(path)


def create_single_summary(args: argparse.Namespace) -> int:
    enabled_feeds()  # a broken VT_FEEDS is refused by every command, not only by those it scopes
    _, whitelist = whitelist_in_force(args.url_whitelist)
    line_limit = max_line_bytes_from_env()
    raw: Path = args.path
    if not raw.is_file():
        raise ValueError(f"{raw}: no such file")
    check = verify_batch_file(raw)
    if not check.ok:
        raise ValueError(f"{raw}: not a readable bz2 batch ({check.error})")
    if args.feed and args.batch:
        feed, batch = named_feed(args.feed, "--feed").name, args.batch
        parse_minute_key(batch)
        root = Path(os.environ.get("VT_DATA_DIR", "vt_data"))
    else:
        root, feed, batch = infer_batch(raw.resolve())
    dest = args.output or summary_path(root, feed, batch)
    # What killed runs left: in the data layout every stale temp file, elsewhere only this file's.
    remove_stale_parts(dest.parent, of=None if args.output is None else dest.name)
    try:
        result = summarize_batch_file(raw, dest, feed=feed, batch=batch, whitelist=whitelist,
                                      max_line_bytes=line_limit)
    except KeyboardInterrupt:
        raise Interrupted(f"no summary written ({dest} is as it was)") from None
    if dest == summary_path(root, feed, batch):
        record_summary_count(root, feed, batch, result.documents)
    _report_rejects(result)
    print(dest)
    return 0


def _report_rejects(result: BatchSummaryResult) -> None:
    if result.rejected:
        print(f"{result.feed} {result.batch}: {result.rejected} rejected line(s):", file=sys.stderr)
        for line in result.rejected_lines:
            print(f"  {line}", file=sys.stderr)


def pending_jobs(root: Path, feeds: list[str], whitelist_path: Path | None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> list[SummaryJob]:
    """Every raw batch on disk whose summary file does not exist yet."""
    jobs = []
    for feed in feeds:
        for raw in sorted((root / "raw" / feed).glob("*/*.bz2")):
            batch = raw.name.removesuffix(".bz2")
            dest = summary_path(root, feed, batch)
            if not dest.exists():
                jobs.append(SummaryJob(raw, dest, feed, batch, whitelist_path, counts_root=root,
                                       max_line_bytes=max_line_bytes))
    return jobs


def back_populate_summaries(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    enabled_feeds()  # checked though the default is every feed on disk: VT_FEEDS may not name them all
    whitelist_path, _ = whitelist_in_force(args.url_whitelist)
    line_limit = max_line_bytes_from_env()
    root = (args.data_dir or Path(os.environ.get("VT_DATA_DIR", "vt_data"))).resolve()
    feeds = [get_feed(args.feed).name] if args.feed else list(FEEDS)
    remove_debris(summary_folder(root, feed) for feed in feeds)
    jobs = pending_jobs(root, feeds, whitelist_path, line_limit)
    if not jobs:
        print(f"every raw batch under {root / 'raw'} already has its summary")
        return 0
    failures = 0
    with tqdm(total=len(jobs), unit="batch", desc="summarizing", file=sys.stderr) as progress:
        try:
            for outcome in summarize_many(jobs, workers=args.workers or None, whitelist_path=whitelist_path):
                if isinstance(outcome, str):
                    failures += 1
                    tqdm.write(f"failed: {outcome}", file=sys.stderr)
                else:
                    _report_rejects(outcome)
                progress.update(1)
        except KeyboardInterrupt:
            progress.close()
            # Results come in job order: a later batch may be done while an earlier one was not.
            written = sum(job.dest.exists() for job in jobs)
            raise Interrupted(f"{written} of {len(jobs)} summaries written under {root / 'summary'}, "
                              "every one whole; run it again for the rest") from None
    print(f"{len(jobs) - failures} summaries written under {root / 'summary'}, {failures} failed")
    return 1 if failures else 0


def add_summary_commands(subparsers: argparse._SubParsersAction) -> None:
    single = subparsers.add_parser(
        "create-single-summary", help="summarize one raw batch file, print the summary's path",
        description="Summarize one raw bz2 batch. Feed and batch are read from its place under "
        "<VT_DATA_DIR>/raw/<feed>/<day>/<YYYYMMDDhhmm>.bz2 unless --feed and --batch are given.",
    )
    single.add_argument("path", type=Path, help="a raw batch (.bz2 of VT JSON lines)")
    single.add_argument("--feed", help="feed of a batch outside the data layout")
    single.add_argument("--batch", help="batch key (YYYYMMDDhhmm) of a batch outside the data layout")
    single.add_argument("--output", type=Path, help="where to write the summary (default: the data layout)")
    single.add_argument("--url-whitelist", type=Path,
                        help="hosts file replacing the shipped URL whitelist (default: $VT_URL_WHITELIST)")
    single.set_defaults(handler=create_single_summary)

    many = subparsers.add_parser(
        "back-populate-summaries", help="summarize every raw batch on disk that has no summary yet",
        description="Find every raw batch under <VT_DATA_DIR>/raw without a summary and summarize "
        "them in parallel (one process per core), with a progress bar.",
    )
    many.add_argument("feed", nargs="?", help="only this feed (default: all)")
    many.add_argument("--data-dir", type=Path, help="VT_DATA_DIR (default: $VT_DATA_DIR or ./vt_data)")
    many.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    many.add_argument("--url-whitelist", type=Path,
                      help="hosts file replacing the shipped URL whitelist (default: $VT_URL_WHITELIST)")
    many.set_defaults(handler=back_populate_summaries)
