"""The `vt-download` command: the original `vt-download.py` command lines, run through Dagster.

A cron'd `vt-download.py` keeps working when `vt-download` replaces it: same flags, same value
forms (booleans as `True`/`False`), same meanings. What the command does lands in the Dagster
instance an operator's UI reads, so the UI shows it.

How each command line maps onto the pipeline:

- `--download-feed F --num-days-ago N [--create-summaries True]`: as the original script,
  every minute batch from N days ago until now: the minute partitions from `now - N days`
  (rounded up to the next whole minute) to the newest batch VT serves
  (`feeds.newest_available_minute(now)`, 60 minutes ago: the last key of `minute_partitions`).
  Both ends included, that is the original's N*1440+1 minutes "until now" (10,081 for N=7) less
  the 60 VT has not published yet: N=1 is 1,381 minutes run on a whole minute, 1,380 otherwise.
  The range is clipped to the partition window of `minute_partitions`, which starts at the
  first UTC midnight inside VT's 7-day retention: N=7 always starts before it (except exactly
  at midnight), so its oldest hours are left out with a one-line note saying how many, and the
  rest is downloaded. The minutes go through `vt_live_job` with the asset selection
  `F/raw_batch` (+ `F/summaries`), one in-process run per range of at most `MINUTES_PER_RUN`
  partitions, cut on the UTC clock's `MINUTES_PER_RUN`-minute boundaries so that every hour
  lies whole in one run and comes from VT's hourly package (tags
  `dagster/asset_partition_range_start`/`_end`, and `vt_dagster/launched_by=vt-download`),
  oldest range first, on `DagsterInstance.get()`. The first failed run stops the command;
  batches already on disk are not fetched again, so running the same line again resumes (a
  cron'd line fetches only the minutes not on disk yet). A feed missing from
  `VT_FEEDS` is added for this command (with a note: the UI lists its assets only once
  `VT_FEEDS` names it).
- `--back-populate-summaries [F]` and `--create-single-summary PATH`: the functions behind
  `vt-dagster back-populate-summaries [F]` and `vt-dagster create-single-summary PATH`. Like
  those commands they write files only and start no Dagster run.
- `--setup-elasticsearch True`: one in-process run of the `setup_elasticsearch` job; prints
  each action it logged (created / present / updated / skipped).

`DAGSTER_HOME` names the instance; when unset, `./.dagster_home` is created (telemetry off),
as the demo does. The VT key comes from `VT_API_KEY` only, never from a flag (command lines
end up in `ps`, shell history and cron mail). Exit codes: 0 done (a range clipped to the window
included), 1 a run or a batch failed, 2 bad arguments or environment, 130/143 stopped by
SIGINT/SIGTERM (see `command_runs.execute_stoppably`). Every error is one line on stderr.

`--max-minutes M` (left out of `--help`) keeps only the NEWEST M minutes of the range, the
batches a cron user wants first: a knob for tests and trials, since a day costs Dagster's
bookkeeping of ~1,400 partitions per asset (minutes of SQLite writes), whatever the batch size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Sequence

from vt_dagster.batch_lines import max_line_bytes_from_env
from vt_dagster.command_runs import (
    ProgressListener, RunStopped, describe_counts, execute_stoppably, first_failure_line, status_counts,
)
from vt_dagster.interrupts import Interrupted, StopSignals
from vt_dagster.feeds import FEEDS, enabled_feeds, get_feed, minute_key, newest_available_minute, parse_minute_key
from vt_dagster.partitions import MINUTES_PER_RUN
from vt_dagster.whitelist import load_url_whitelist, url_whitelist_path_from_env

if TYPE_CHECKING:
    import dagster as dg
    from tqdm import tqdm

PROG = "vt-download"
MINUTE = dt.timedelta(minutes=1)
MAX_DAYS_AGO = 7
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})
ALL_FEEDS = tuple(FEEDS)
"""`--back-populate-summaries` given without a feed (not a str: argparse would pass a str const
through the feed check)."""

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
LAUNCHED_BY_TAG = "vt_dagster/launched_by"
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Dagster's console log would bury the progress bar; the event log keeps everything."""

FEED_METAVAR = "{" + ",".join(FEEDS) + "}"


class EnvironmentProblem(Exception):
    """A setting the user must fix before anything runs; one line, exit code 2."""


def str2bool(value: str) -> bool:
    """The original script's booleans: true/false, yes/no, 1/0, any case."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean: use True or False (or yes/no, 1/0)")


def days_ago(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days (1-{MAX_DAYS_AGO})") from None
    if not 1 <= days <= MAX_DAYS_AGO:
        raise argparse.ArgumentTypeError(f"{days} is not in 1-{MAX_DAYS_AGO}: VT keeps {MAX_DAYS_AGO} days")
    return days


def feed_name(value: str) -> str:
    """A feed by name or API path (`file-behaviours` == `file_behaviours`), as its name."""
    try:
        return get_feed(value).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return int(value)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block): cron mail stays readable."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


DESCRIPTION = """\
Download VT feed batches, summarize them and set up Elasticsearch, through the same Dagster
assets and instance as the pipeline: the Dagster UI shows what this command did.
A drop-in for the original vt-download.py command lines."""

EPILOG = f"""\
examples:
  {PROG} --setup-elasticsearch True
  {PROG} --download-feed files --num-days-ago 1 --create-summaries True
  {PROG} --back-populate-summaries urls
  {PROG} --create-single-summary $VT_DATA_DIR/raw/urls/2026-11-22/202611220908.bz2

how it maps onto Dagster (instance: DAGSTER_HOME, else ./.dagster_home, created):
  --download-feed F --num-days-ago N   vt_live_job on F/raw_batch (+ F/summaries with
      --create-summaries True) for every minute from N days ago until the newest batch
      VT serves (60 minutes ago), within the partition window (it starts at the first UTC
      midnight VT still keeps: the oldest hours of N=7 are left out, with a note); one run
      per {MINUTES_PER_RUN}-minute slot of the UTC day, oldest first, tagged with its
      partition range and {LAUNCHED_BY_TAG}={PROG}. Batches on disk are kept: run again
      to resume.
  --back-populate-summaries, --create-single-summary   what vt-dagster
      back-populate-summaries / create-single-summary do (files only, no Dagster run).
  --setup-elasticsearch True   one run of the setup_elasticsearch job; prints its actions.

environment (no secret is ever a flag):
  VT_API_KEY    VT API key with a feeds licence (required to download)
  VT_API_URL    VT API base URL (default https://www.virustotal.com/api/v3)
  VT_DATA_DIR   root of raw batches and summaries (default ./vt_data)
  VT_FEEDS, VT_URL_WHITELIST, ES_URL, ES_INDEX_PREFIX, ES_API_KEY...: as for vt-dagster

exit codes: 0 done, 1 a run or batch failed, 2 bad arguments or environment,
  130/143 stopped by SIGINT/SIGTERM (what was done is kept; run the same line to resume)."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    download = parser.add_argument_group("VirusTotal feed download and processing")
    download.add_argument(
        "--download-feed", type=feed_name, metavar=FEED_METAVAR,
        help="feed to download (file-behaviours is accepted for file_behaviours); needs --num-days-ago",
    )
    download.add_argument(
        "--num-days-ago", type=days_ago, metavar="<1-7>",
        help="download from N days ago until the newest batch VT serves (60 minutes ago): every "
        "minute batch of that range, as the original script; the range is clipped to the partition "
        "window, which starts at the first UTC midnight VT still keeps, so N=7 leaves out its oldest "
        "hours (with a note)",
    )
    download.add_argument(
        "--create-summaries", type=str2bool, nargs="?", const=True, metavar="True|False",
        help="also summarize the downloaded minutes (F/summaries); False, the default, does not",
    )
    # Hidden test/trial knob: keep only the NEWEST M minutes of the range (see the module docstring).
    download.add_argument("--max-minutes", type=positive_int, help=argparse.SUPPRESS)
    other = parser.add_argument_group("additional capabilities")
    other.add_argument(
        "--back-populate-summaries", type=feed_name, nargs="?", const=ALL_FEEDS, metavar="FEED",
        help="summarize every raw batch on disk that has no summary yet (one feed, default all)",
    )
    other.add_argument(
        "--create-single-summary", type=Path, metavar="PATH",
        help="summarize one raw batch, <VT_DATA_DIR>/raw/<feed>/<day>/<YYYYMMDDhhmm>.bz2",
    )
    other.add_argument(
        "--setup-elasticsearch", type=str2bool, default=False, metavar="True|False",
        help="create ILM policies, index templates and write aliases (idempotent; never overwrites)",
    )
    return parser


def check_combination(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The original script's rules: a download is a command of its own, and needs its days."""
    downloading = args.download_feed is not None
    summarizing = args.back_populate_summaries is not None or args.create_single_summary is not None
    if not downloading:
        for flag, value in (("--num-days-ago", args.num_days_ago), ("--create-summaries", args.create_summaries),
                            ("--max-minutes", args.max_minutes)):
            if value is not None:
                parser.error(f"argument {flag}: only with --download-feed")
    elif args.num_days_ago is None:
        parser.error("argument --download-feed: needs --num-days-ago <1-7>")
    if downloading and summarizing:
        parser.error("argument --download-feed: not with --back-populate-summaries or --create-single-summary")
    if not (downloading or summarizing or args.setup_elasticsearch):
        parser.error("nothing to do: give --download-feed, --back-populate-summaries, "
                     "--create-single-summary or --setup-elasticsearch True")


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_combination(parser, args)
    args.create_summaries = bool(args.create_summaries)
    return args


def ceil_minute(moment: dt.datetime) -> dt.datetime:
    """`moment` (as UTC) rounded up to the next whole minute; a whole minute stays as it is."""
    moment = moment.astimezone(dt.timezone.utc)
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + MINUTE


def minutes_between(first: str, last: str) -> list[str]:
    """The minute keys first..last, both included (none when last < first)."""
    start, stop = parse_minute_key(first), parse_minute_key(last)
    return [minute_key(start + n * MINUTE) for n in range(int((stop - start) / MINUTE) + 1)]


def count_minutes(first: str, last: str) -> int:
    """How many minutes first..last holds, both included (0 when last < first)."""
    return max(0, int((parse_minute_key(last) - parse_minute_key(first)) / MINUTE) + 1)


def describe_minute(key: str) -> str:
    return parse_minute_key(key).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class DownloadPlan:
    """The minutes `--num-days-ago N` downloads: from N days ago until the newest batch, in the window."""

    num_days_ago: int
    requested_first: str
    """`now - N days`, rounded up to the next whole minute."""
    requested_last: str
    """The newest batch VT serves at `now`."""
    window_first: str
    window_last: str
    in_window: int
    """Minutes of the request inside the window (before `max_minutes`)."""
    keys: list[str]
    """What is downloaded, oldest first: the request inside the window, its newest `max_minutes`."""

    @property
    def requested(self) -> int:
        return count_minutes(self.requested_first, self.requested_last)

    @property
    def left_out_before(self) -> int:
        """Minutes of the request older than the window's first key."""
        return min(self.requested, count_minutes(self.requested_first, minute_key(
            parse_minute_key(self.window_first) - MINUTE)))

    @property
    def left_out_after(self) -> int:
        """Minutes of the request newer than the window's last key (a clock tick between reads)."""
        return min(self.requested, count_minutes(minute_key(parse_minute_key(self.window_last) + MINUTE),
                                                 self.requested_last))

    def clipping_note(self, feed: str) -> str | None:
        """One line when the window left minutes of the request out (how many, and why), else None."""
        parts = []
        if self.left_out_before:
            parts.append(
                f"the {self.num_days_ago}-day request starts at {describe_minute(self.requested_first)} "
                f"but VT's window kept here starts at {describe_minute(self.window_first)}: downloading "
                f"from there ({self.in_window:,} minutes; {self.left_out_before:,} older minutes left out: "
                "the partition window starts at the first whole UTC day inside VT's 7-day retention)")
        if self.left_out_after:
            parts.append(
                f"the newest batch VT serves is {describe_minute(self.requested_last)} but the window ends "
                f"at {describe_minute(self.window_last)}: {self.left_out_after:,} newest minute(s) left out "
                "(the clock ticked; run again for them)")
        return f"{PROG}: {feed}: " + "; ".join(parts) if parts else None


def plan_range(num_days_ago: int, now: dt.datetime, window_first: str, window_last: str,
               max_minutes: int | None = None) -> DownloadPlan:
    """Every minute from `now - num_days_ago days` (rounded up to a whole minute) to the newest batch VT
    serves at `now`, clipped to the window window_first..window_last; `max_minutes` keeps the newest.

    Pure: `now` and the window are given, so it is testable without the clock.
    """
    requested_first = minute_key(ceil_minute(now - dt.timedelta(days=num_days_ago)))
    requested_last = minute_key(newest_available_minute(now))
    # Keys are fixed-width digits, so they compare (max/min) as strings.
    keys = minutes_between(max(requested_first, window_first), min(requested_last, window_last))
    in_window = len(keys)
    if max_minutes:
        keys = keys[-max_minutes:]  # the newest batches: what a cron user wants first
    return DownloadPlan(num_days_ago, requested_first, requested_last, window_first, window_last, in_window, keys)


def split_ranges(keys: list[str], size: int = MINUTES_PER_RUN) -> list[list[str]]:
    """Consecutive ranges of at most `size` minutes, cut where the UTC clock crosses a multiple of
    `size` minutes (00:00, 06:00, 12:00, 18:00 for 360): every hour lies whole in one run, so its
    minutes come from one hourly package, wherever the range starts."""
    ranges: list[list[str]] = []
    current_slot = None
    for key in keys:
        slot = int(parse_minute_key(key).timestamp()) // 60 // size
        if slot != current_slot or len(ranges[-1]) >= size:
            ranges.append([])
            current_slot = slot
        ranges[-1].append(key)
    return ranges


def plan_download(num_days_ago: int, max_minutes: int | None = None) -> DownloadPlan:
    """`plan_range` at the current time against `minute_partitions`' window."""
    from vt_dagster.partitions import minute_partitions

    # The clock first: the window's last key is computed from a clock read at least as late.
    now = dt.datetime.now(dt.timezone.utc)
    first, last = minute_partitions.get_first_partition_key(), minute_partitions.get_last_partition_key()
    if first is None or last is None:
        raise EnvironmentProblem("the partition window is empty")
    return plan_range(num_days_ago, now, first, last, max_minutes)


# The instance a command creates: Dagster's SQLite files in DAGSTER_HOME on the storage that
# keeps them open (as the service's instance, vt_dagster/data/dagster.yaml), telemetry off.
COMMAND_INSTANCE_YAML = """telemetry:
  enabled: false
storage:
  custom:
    module: vt_dagster.instance_storage
    class: PooledSqliteStorage
    config:
      base_dir:
        env: DAGSTER_HOME
"""


def prepare_dagster_home() -> Path:
    """DAGSTER_HOME, or ./.dagster_home; a folder this creates gets telemetry off (as the demo
    does) and the pooled SQLite storage.

    An existing instance's dagster.yaml is its operator's: never touched.
    """
    given = os.environ.get("DAGSTER_HOME", "").strip()
    home = Path(given or ".dagster_home").expanduser().resolve()
    instance_yaml = home / "dagster.yaml"
    if not home.exists() or (not given and not instance_yaml.exists()):
        home.mkdir(parents=True, exist_ok=True)
        instance_yaml.write_text(COMMAND_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def enable_feed(feed: str) -> None:
    """Make sure the code location builds `feed`'s assets (it builds those of VT_FEEDS)."""
    enabled = [f.name for f in enabled_feeds()]
    if feed not in enabled:
        os.environ["VT_FEEDS"] = ",".join([*enabled, feed])
        print(f"note: {feed} is not in VT_FEEDS ({','.join(enabled)}): added for this command; "
              "the Dagster UI lists its assets once VT_FEEDS names it", file=sys.stderr)


def load_definitions(feed: str | None = None) -> dg.Definitions:
    """The code location's `defs`, built for `feed` too."""
    import importlib

    if feed:
        enable_feed(feed)
    import vt_dagster.definitions as definitions

    if feed and feed not in [f.name for f in definitions.FEEDS]:
        definitions = importlib.reload(definitions)
    return definitions.defs


def run_range(job: dg.JobDefinition, instance: dg.DagsterInstance, stages: list[dg.AssetKey],
              keys: list[str], progress: tqdm) -> dg.ExecuteInProcessResult:
    """One in-process run of `job` over the partition range keys[0]..keys[-1]."""
    run_id = str(uuid.uuid4())
    listener = ProgressListener(progress)
    instance.add_event_listener(run_id, listener)
    return execute_stoppably(lambda: job.execute_in_process(
        instance=instance, asset_selection=stages, run_id=run_id, raise_on_error=False,
        run_config=QUIET_CONSOLE,
        tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1], LAUNCHED_BY_TAG: PROG},
    ), instance, run_id, listener.kept)


def require_api_key() -> None:
    if not os.environ.get("VT_API_KEY", "").strip():
        raise EnvironmentProblem("VT_API_KEY is not set: export the VT API key "
                                 "(it is read from the environment only, never from a flag)")


def download(feed: str, num_days_ago: int, create_summaries: bool, max_minutes: int | None) -> int:
    """Every range from N days ago until the newest batch through `vt_live_job`, oldest first,
    stopping at a failed run. `max_minutes` keeps the newest minutes of the range only."""
    require_api_key()
    if create_summaries:  # the summaries asset would fail every run on them: refuse them first, in their one line
        load_url_whitelist(url_whitelist_path_from_env())
        max_line_bytes_from_env()
    home = prepare_dagster_home()
    defs = load_definitions(feed)
    plan = plan_download(num_days_ago, max_minutes)
    if not plan.keys:  # cannot happen for 1-7 days with a sane clock: the window always overlaps
        raise EnvironmentProblem(
            f"{feed}: no minute of {describe_minute(plan.requested_first)}..{describe_minute(plan.requested_last)} "
            f"is in the partition window {plan.window_first}..{plan.window_last}: check the clock")
    if note := plan.clipping_note(feed):
        print(note, file=sys.stderr)
    keys = plan.keys
    stage_names = ["raw_batch", "summaries"] if create_summaries else ["raw_batch"]
    label = f"{feed} {num_days_ago}d {'+'.join(stage_names)}"
    totals = run_ranges(defs, feed, label, stage_names, keys)
    if totals is None:
        return 1
    print_download_report(feed, keys, len(split_ranges(keys)), totals, home)
    return 0


def run_ranges(defs: dg.Definitions, feed: str, label: str, stage_names: list[str],
               keys: list[str]) -> dict[str, Counter[str]] | None:
    """One run per range, in order, under one progress bar; None once a run failed (said why)."""
    import dagster as dg
    from tqdm import tqdm

    stages = [dg.AssetKey([feed, name]) for name in stage_names]
    job = defs.resolve_job_def("vt_live_job")
    ranges = split_ranges(keys)
    totals: dict[str, Counter[str]] = {}
    with dg.DagsterInstance.get() as instance, tqdm(
        total=len(keys) * len(stages), unit="partition", desc=label, file=sys.stderr
    ) as progress:
        for number, run_keys in enumerate(ranges, start=1):
            progress.set_postfix_str(f"run {number}/{len(ranges)} {run_keys[0]}..{run_keys[-1]}")
            try:
                result = run_range(job, instance, stages, run_keys, progress)
            except KeyboardInterrupt as stop:
                progress.close()
                unfinished = isinstance(stop, RunStopped) and not stop.finished  # Dagster is still writing
                raise Interrupted(describe_stop(feed, ranges, number, stop), exit_now=unfinished) from None
            if not result.success:
                progress.close()
                print(f"{PROG}: {feed} {run_keys[0]}..{run_keys[-1]}: run {result.run_id} failed: "
                      f"{first_failure_line(result)}", file=sys.stderr)
                return None
            counts = status_counts(result)
            for stage, by_status in counts.items():
                totals.setdefault(stage, Counter()).update(by_status)
            tqdm.write(f"run {result.run_id} {run_keys[0]}..{run_keys[-1]}: {describe_counts(counts)}",
                       file=sys.stdout)
    return totals


def describe_stop(feed: str, ranges: list[list[str]], number: int, stop: KeyboardInterrupt) -> str:
    """What a download stopped during run `number` had done, and how to go on."""
    done = sum(len(keys) for keys in ranges[: number - 1])
    text = f"{feed}: {number - 1} of {len(ranges)} run(s) done ({done} minutes)"
    keys = ranges[number - 1]
    if isinstance(stop, RunStopped):
        kept = ", ".join(f"{stage} {n}" for stage, n in sorted(stop.kept.items())) or "nothing"
        ending = "it recorded that and failed" if stop.finished else "it was marked canceled"
        text += (f"; run {stop.run_id} ({keys[0]}..{keys[-1]}, {len(keys)} minutes) was stopped "
                 f"with {kept} materialized ({ending})")
    return text + "; files on disk are whole; run the same command again to resume"


def print_download_report(feed: str, keys: list[str], runs: int,
                          totals: dict[str, Counter[str]], home: Path) -> None:
    from vt_dagster.resources import DEFAULT_DATA_DIR
    from vt_dagster.storage import raw_batch_path, summary_path

    root = Path(os.environ.get("VT_DATA_DIR", DEFAULT_DATA_DIR)).expanduser().resolve()
    print(f"{feed} {keys[0]}..{keys[-1]}: {len(keys)} minutes in {runs} run(s): {describe_counts(totals)}")
    first_day, last_day = raw_batch_path(root, feed, keys[0]).parent, raw_batch_path(root, feed, keys[-1]).parent
    print(f"raw batches: {first_day}" + ("" if first_day == last_day else f" .. {last_day.name}"))
    if "summaries" in totals:
        print(f"summaries:   {summary_path(root, feed, keys[0]).parent}")
    print(f"Dagster UI on the same instance: DAGSTER_HOME={home} dagster dev -m vt_dagster.definitions")


def setup_elasticsearch() -> int:
    """The `setup_elasticsearch` job, one recorded run; its logged actions are the report."""
    import dagster as dg

    prepare_dagster_home()
    defs = load_definitions()
    run_id = str(uuid.uuid4())
    with dg.DagsterInstance.get() as instance:
        try:
            result = execute_stoppably(lambda: defs.resolve_job_def("setup_elasticsearch").execute_in_process(
                instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE, run_id=run_id,
                tags={LAUNCHED_BY_TAG: PROG},
            ), instance, run_id, Counter())
        except KeyboardInterrupt as stop:
            raise Interrupted(f"setup_elasticsearch run {run_id} was stopped; it is safe to run again",
                              exit_now=isinstance(stop, RunStopped) and not stop.finished) from None
        for entry in instance.all_logs(result.run_id):
            if entry.dagster_event is None and entry.step_key and entry.user_message:
                print(entry.user_message)
    if not result.success:
        print(f"{PROG}: setup_elasticsearch run {result.run_id} failed: {first_failure_line(result)}",
              file=sys.stderr)
        return 1
    print(f"setup_elasticsearch: run {result.run_id} succeeded")
    return 0


def create_single_summary(path: Path) -> int:
    from vt_dagster import summaries_cli

    if not path.is_file():
        raise EnvironmentProblem(f"argument --create-single-summary: {path}: no such file")
    try:
        summaries_cli.infer_batch(path.resolve())
    except ValueError as exc:
        raise EnvironmentProblem(
            f"argument --create-single-summary: {path}: not laid out as "
            f"<VT_DATA_DIR>/raw/<feed>/<YYYY-MM-DD>/<YYYYMMDDhhmm>.bz2 ({exc}); for a file elsewhere use "
            "vt-dagster create-single-summary PATH --feed F --batch B"
        ) from None
    return summaries_cli.create_single_summary(argparse.Namespace(
        path=path, feed=None, batch=None, output=None, url_whitelist=None,  # None: VT_URL_WHITELIST
    ))


def back_populate_summaries(feed: str | tuple[str, ...]) -> int:
    from vt_dagster import summaries_cli

    return summaries_cli.back_populate_summaries(argparse.Namespace(
        feed=feed if isinstance(feed, str) else None, data_dir=None, workers=0,
        url_whitelist=None,  # None: VT_URL_WHITELIST, as the summaries asset reads it
    ))


def run(args: argparse.Namespace) -> int:
    """The original script's order: set up, one summary, download, back-populate."""
    enabled_feeds()  # a broken VT_FEEDS is refused before anything, whatever the command
    if args.setup_elasticsearch and (code := setup_elasticsearch()):
        return code
    if args.create_single_summary is not None and (code := create_single_summary(args.create_single_summary)):
        return code
    if args.download_feed is not None:
        return download(args.download_feed, args.num_days_ago, args.create_summaries, args.max_minutes)
    if args.back_populate_summaries is not None:
        return back_populate_summaries(args.back_populate_summaries)
    return 0


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    with StopSignals(PROG) as signals:
        try:
            return run(args)
        except KeyboardInterrupt as exc:
            return signals.report(exc)
        except (EnvironmentProblem, ValueError) as exc:
            print(f"{PROG}: error: {first_line(exc)}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - cron mail gets one line, not a traceback
            print(f"{PROG}: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
