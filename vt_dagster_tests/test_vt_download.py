"""`vt-download`: the original vt-download.py command lines, flag by flag, through Dagster.

Argument parsing runs in-process; every command that does work runs as a real process
against the VT emulator, the session's Elasticsearch and a Dagster instance in tmp.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import dagster as dg
import pytest

from vt_dagster import vt_download
from vt_dagster.emulator import generate_batch
from vt_dagster.feeds import minute_key, newest_available_minute
from vt_dagster.partitions import MINUTES_PER_RUN
from vt_dagster.storage import raw_batch_path, summary_path, verify_batch_file

UTC = dt.timezone.utc
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
CLEARED_ENV = ("VT_API_KEY", "VT_API_URL", "VT_DATA_DIR", "VT_FEEDS", "VT_URL_WHITELIST", "DAGSTER_HOME",
               "ES_URL", "ES_INDEX_PREFIX")


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of a refused command line (exit code 2)."""
    with pytest.raises(SystemExit) as exited:
        vt_download.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("vt-download: error: ")
    return err.strip()


def command_env(**values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in CLEARED_ENV}
    return {**env, **values}


def vt_download_cmd(args: list[str], env: dict[str, str], cwd: Path | None = None,
                    timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vt_dagster.vt_download", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def vt_dagster_cmd(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vt_dagster", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def runs_of(home: Path, job_name: str, monkeypatch: pytest.MonkeyPatch) -> list[dg.DagsterRun]:
    """The runs the command left in its Dagster instance, oldest first."""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        return list(reversed(instance.get_runs(filters=dg.RunsFilter(job_name=job_name))))


def newest_batch() -> str:
    return minute_key(newest_available_minute(dt.datetime.now(UTC)))


def downloaded_range(runs: list[dg.DagsterRun]) -> list[str]:
    """Every minute from the first run's range start to the last run's range end."""
    return vt_download.minutes_between(runs[0].tags[RANGE_START], runs[-1].tags[RANGE_END])


@pytest.fixture
def one_object_emulator() -> Iterator:
    from vt_dagster.emulator import EmulatorConfig, FeedsEmulator

    with FeedsEmulator(EmulatorConfig(objects_per_minute=1, seed=23)) as running:
        yield running


def emulator_env(emulator, tmp_path: Path, key: str | None = None) -> dict[str, str]:
    return command_env(VT_API_URL=emulator.base_url, VT_API_KEY=key or emulator.config.api_key,
                       VT_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "home"))


# --- the console script and --help ---------------------------------------------------------


def test_console_script_points_at_main() -> None:
    [script] = entry_points(group="console_scripts", name="vt-download")
    assert script.value == "vt_dagster.vt_download:main"


def test_help_documents_flags_mapping_environment_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        vt_download.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--download-feed", "--num-days-ago", "--create-summaries", "--back-populate-summaries",
                 "--create-single-summary", "--setup-elasticsearch"):
        assert flag in text
    for fact in ("vt_live_job", "setup_elasticsearch", "DAGSTER_HOME", "VT_API_KEY", "VT_DATA_DIR",
                 "no secret is ever a flag", "exit codes", "file_behaviours"):
        assert fact in text
    assert "--max-minutes" not in text, "a test knob, not for users"


# --- argument forms, flag by flag ------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    (["True"], True), (["true"], True), (["YES"], True), (["1"], True), ([], True),
    (["False"], False), (["false"], False), (["No"], False), (["0"], False),
])
def test_create_summaries_takes_the_original_boolean_forms(given: list[str], expected: bool) -> None:
    args = vt_download.parse_arguments(["--download-feed", "files", "--num-days-ago", "1",
                                        "--create-summaries", *given])
    assert args.create_summaries is expected


def test_create_summaries_defaults_to_false() -> None:
    args = vt_download.parse_arguments(["--download-feed", "files", "--num-days-ago", "1"])
    assert args.create_summaries is False


@pytest.mark.parametrize("value", ["maybe", "2", "", "Truee"])
def test_create_summaries_refuses_anything_else_naming_flag_and_value(value: str, capsys) -> None:
    line = refusal(["--download-feed", "files", "--num-days-ago", "1", "--create-summaries", value], capsys)
    assert "argument --create-summaries" in line and repr(value) in line


@pytest.mark.parametrize(("given", "feed"), [
    ("files", "files"), ("URLS", "urls"), ("domains", "domains"), ("ip_addresses", "ip_addresses"),
    ("file-behaviours", "file_behaviours"), ("file_behaviours", "file_behaviours"),
])
def test_download_feed_takes_every_feed_by_name_or_api_path(given: str, feed: str) -> None:
    assert vt_download.parse_arguments(["--download-feed", given, "--num-days-ago", "3"]).download_feed == feed


def test_download_feed_refuses_an_unknown_feed(capsys) -> None:
    line = refusal(["--download-feed", "malware", "--num-days-ago", "1"], capsys)
    assert "argument --download-feed" in line and "'malware'" in line and "file_behaviours" in line


@pytest.mark.parametrize("days", range(1, 8))
def test_num_days_ago_takes_1_to_7(days: int) -> None:
    assert vt_download.parse_arguments(["--download-feed", "urls", "--num-days-ago", str(days)]).num_days_ago == days


@pytest.mark.parametrize("value", ["0", "9", "-1", "x", "1.5"])
def test_num_days_ago_refuses_values_outside_1_to_7(value: str, capsys) -> None:
    line = refusal(["--download-feed", "files", "--num-days-ago", value], capsys)
    assert "argument --num-days-ago" in line and value in line


@pytest.mark.parametrize(("given", "expected"), [
    ([], vt_download.ALL_FEEDS), (["urls"], "urls"), (["file-behaviours"], "file_behaviours"),
])
def test_back_populate_summaries_takes_an_optional_feed(given: list[str], expected: str) -> None:
    assert vt_download.parse_arguments(["--back-populate-summaries", *given]).back_populate_summaries == expected


def test_back_populate_summaries_refuses_an_unknown_feed(capsys) -> None:
    line = refusal(["--back-populate-summaries", "emails"], capsys)
    assert "argument --back-populate-summaries" in line and "'emails'" in line


def test_create_single_summary_takes_a_path() -> None:
    args = vt_download.parse_arguments(["--create-single-summary", "raw/files/2026-11-23/202611230700.bz2"])
    assert args.create_single_summary == Path("raw/files/2026-11-23/202611230700.bz2")


@pytest.mark.parametrize(("value", "expected"), [("True", True), ("yes", True), ("False", False), ("0", False)])
def test_setup_elasticsearch_takes_the_original_boolean_forms(value: str, expected: bool) -> None:
    args = vt_download.parse_arguments(["--setup-elasticsearch", value, "--back-populate-summaries"])
    assert args.setup_elasticsearch is expected


def test_setup_elasticsearch_refuses_a_non_boolean(capsys) -> None:
    line = refusal(["--setup-elasticsearch", "please"], capsys)
    assert "argument --setup-elasticsearch" in line and "'please'" in line


@pytest.mark.parametrize(("argv", "words"), [
    (["--num-days-ago", "1"], "--num-days-ago: only with --download-feed"),
    (["--create-summaries", "True", "--back-populate-summaries"], "--create-summaries: only with --download-feed"),
    (["--download-feed", "files"], "needs --num-days-ago"),
    (["--download-feed", "files", "--num-days-ago", "1", "--back-populate-summaries"], "not with"),
    (["--download-feed", "files", "--num-days-ago", "1", "--create-single-summary", "x.bz2"], "not with"),
    ([], "nothing to do"),
    (["--setup-elasticsearch", "False"], "nothing to do"),
    (["--download-feed", "files", "--num-days-ago", "1", "--max-minutes", "0"], "--max-minutes"),
])
def test_bad_combinations_are_one_line_errors(argv: list[str], words: str, capsys) -> None:
    assert words in refusal(argv, capsys)


def test_missing_api_key_is_an_environment_error_naming_the_variable(monkeypatch, capsys) -> None:
    monkeypatch.delenv("VT_API_KEY", raising=False)
    assert vt_download.main(["--download-feed", "files", "--num-days-ago", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "VT_API_KEY is not set" in err and "never from a flag" in err


# --- which minutes --num-days-ago N is: from N days ago until the newest batch ----------------

NOW = dt.datetime(2026, 11, 23, 8, 9, tzinfo=UTC)
"""On a whole minute: the newest batch VT serves is 07:09 (60 minutes' lag)."""
WINDOW = ("202611170000", "202611230709")
"""`minute_partitions` at NOW: from the first UTC midnight inside VT's 7 days to the newest batch."""


def test_one_day_ago_is_every_minute_until_the_newest_batch() -> None:
    plan = vt_download.plan_range(1, NOW, *WINDOW)
    # 24 hours ago to now, both ends included (the original's 1440+1), less the 60 minutes VT
    # has not published yet.
    assert (plan.keys[0], plan.keys[-1], len(plan.keys)) == ("202611220809", "202611230709", 1381)
    assert plan.keys == vt_download.minutes_between("202611220809", "202611230709")
    assert (plan.requested, plan.in_window, plan.left_out_before, plan.left_out_after) == (1381, 1381, 0, 0)
    assert plan.clipping_note("files") is None


def test_the_start_is_rounded_up_to_the_next_whole_minute() -> None:
    plan = vt_download.plan_range(1, NOW + dt.timedelta(seconds=30), *WINDOW)
    assert (plan.keys[0], plan.keys[-1], len(plan.keys)) == ("202611220810", "202611230709", 1380)
    same_moment_in_berlin = (NOW + dt.timedelta(seconds=30)).astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert vt_download.plan_range(1, same_moment_in_berlin, *WINDOW) == plan
    assert vt_download.ceil_minute(NOW + dt.timedelta(microseconds=1)) == NOW + dt.timedelta(minutes=1)
    assert vt_download.ceil_minute(NOW) == NOW


@pytest.mark.parametrize("days", range(1, 7))
def test_one_to_six_days_ago_lie_wholly_inside_the_window(days: int) -> None:
    plan = vt_download.plan_range(days, NOW, *WINDOW)
    assert len(plan.keys) == days * 1440 + 1 - 60 and plan.keys[-1] == "202611230709"
    assert plan.clipping_note("files") is None


def test_seven_days_ago_is_clipped_to_the_window_start_with_a_note() -> None:
    plan = vt_download.plan_range(7, NOW, *WINDOW)
    assert (plan.requested_first, plan.requested, plan.left_out_before) == ("202611160809", 10021, 951)
    assert (plan.keys[0], plan.keys[-1], len(plan.keys)) == ("202611170000", "202611230709", 9070)
    assert plan.in_window == 9070 == 6 * 1440 + 7 * 60 + 10
    assert plan.clipping_note("files") == (
        "vt-download: files: the 7-day request starts at 2026-11-16 08:09 UTC but VT's window kept here "
        "starts at 2026-11-17 00:00 UTC: downloading from there (9,070 minutes; 951 older minutes left out: "
        "the partition window starts at the first whole UTC day inside VT's 7-day retention)")


def test_seven_days_ago_at_exactly_midnight_is_not_clipped() -> None:
    midnight = dt.datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    plan = vt_download.plan_range(7, midnight, "202611170000", "202611232300")
    assert plan.keys[0] == "202611170000" and plan.clipping_note("files") is None


def test_a_window_ending_before_the_newest_batch_leaves_those_minutes_out_saying_so() -> None:
    plan = vt_download.plan_range(1, NOW, "202611170000", "202611230708")
    assert plan.keys[-1] == "202611230708" and plan.left_out_after == 1 and len(plan.keys) == 1380
    note = plan.clipping_note("urls")
    assert note is not None and note.startswith("vt-download: urls: ") and "1 newest minute(s) left out" in note


def test_max_minutes_keeps_the_newest_minutes() -> None:
    whole = vt_download.plan_range(1, NOW, *WINDOW)
    newest = vt_download.plan_range(1, NOW, *WINDOW, max_minutes=370)
    assert newest.keys == whole.keys[-370:] and newest.keys[-1] == "202611230709"
    assert (newest.keys[0], newest.in_window) == ("202611230100", 1381)
    assert vt_download.plan_range(1, NOW, *WINDOW, max_minutes=5000).keys == whole.keys
    clipped = vt_download.plan_range(7, NOW, *WINDOW, max_minutes=5)
    assert clipped.keys == vt_download.minutes_between("202611230705", "202611230709")


def test_ranges_are_cut_on_the_utc_clock_so_every_hour_stays_in_one_run() -> None:
    keys = vt_download.plan_range(1, NOW, *WINDOW).keys
    ranges = vt_download.split_ranges(keys)
    assert [(r[0], r[-1]) for r in ranges] == [
        ("202611220809", "202611221159"), ("202611221200", "202611221759"), ("202611221800", "202611222359"),
        ("202611230000", "202611230559"), ("202611230600", "202611230709"),
    ]
    assert [key for r in ranges for key in r] == keys, "oldest first, every minute once"
    assert max(len(r) for r in ranges) == MINUTES_PER_RUN == 360
    hours_per_run = [{key[:10] for key in r} for r in ranges]
    assert sum(len(hours) for hours in hours_per_run) == len({key[:10] for key in keys})


def test_a_whole_day_from_midnight_is_four_runs_of_six_hours() -> None:
    keys = vt_download.minutes_between("202611220000", "202611222359")
    assert [(r[0], r[-1], len(r)) for r in vt_download.split_ranges(keys)] == [
        ("202611220000", "202611220559", 360), ("202611220600", "202611221159", 360),
        ("202611221200", "202611221759", 360), ("202611221800", "202611222359", 360),
    ]


def test_against_the_real_partition_window() -> None:
    six = vt_download.plan_download(6)
    assert six.clipping_note("files") is None and six.keys[-1] == six.requested_last
    assert len(six.keys) in (6 * 1440 + 1 - 60, 6 * 1440 - 60)
    seven = vt_download.plan_download(7)
    assert seven.window_first.endswith("0000"), "the window starts at a UTC midnight"
    assert seven.keys[0] == max(seven.requested_first, seven.window_first)
    assert seven.keys[-1] == seven.requested_last
    if seven.requested_first < seven.window_first:  # always, except right at midnight
        assert "older minutes left out" in (seven.clipping_note("files") or "")
    newest_ten = vt_download.plan_download(7, max_minutes=10)
    assert len(newest_ten.keys) == 10 and newest_ten.keys[-1] == newest_ten.requested_last


# --- --download-feed through Dagster ----------------------------------------------------------


@pytest.mark.service
def test_download_without_summaries_runs_raw_batch_ranges_on_the_instance(
    one_object_emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    minutes = MINUTES_PER_RUN + 10
    newest_before = newest_batch()
    done = vt_download_cmd(["--download-feed", "files", "--num-days-ago", "1", "--create-summaries", "False",
                            "--max-minutes", str(minutes)], emulator_env(one_object_emulator, tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    runs = runs_of(tmp_path / "home", "vt_live_job", monkeypatch)
    keys = downloaded_range(runs)
    assert len(keys) == minutes and newest_before <= keys[-1] <= newest_batch(), "--max-minutes keeps the newest"
    for key in keys:
        assert verify_batch_file(raw_batch_path(tmp_path / "data", "files", key)).ok, key
    assert not (tmp_path / "data" / "summary").exists(), "--create-summaries False means no summaries"
    ranges = vt_download.split_ranges(keys)
    assert len(ranges) >= 2, "more than one run's worth of minutes"
    assert f"files {keys[0]}..{keys[-1]}: {minutes} minutes in {len(ranges)} run(s): raw_batch {minutes} " \
           f"({minutes} downloaded)" in done.stdout
    assert "older minutes left out" not in done.stderr, "1 day ago lies inside the window"

    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in runs] == [(r[0], r[-1]) for r in ranges]
    assert all(r.is_success and r.tags["vt_dagster/launched_by"] == "vt-download" for r in runs)
    assert {k.to_user_string() for r in runs for k in r.asset_selection} == {"files/raw_batch"}
    with dg.DagsterInstance.get() as instance:
        materialized = instance.get_materialized_partitions(dg.AssetKey(["files", "raw_batch"]))
    assert materialized == set(keys)


@pytest.mark.service
def test_download_with_summaries_of_a_feed_missing_from_vt_feeds(
    one_object_emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = vt_download_cmd(["--download-feed", "file-behaviours", "--num-days-ago", "2", "--create-summaries",
                            "True", "--max-minutes", "60"], emulator_env(one_object_emulator, tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "file_behaviours is not in VT_FEEDS (files,urls): added for this command" in done.stderr
    runs = runs_of(tmp_path / "home", "vt_live_job", monkeypatch)
    keys = downloaded_range(runs)
    assert len(keys) == 60 and len(runs) <= 2, "one run, two when the hour straddles a 6-hour boundary"
    for key in keys:
        raw = raw_batch_path(tmp_path / "data", "file_behaviours", key)
        summary = summary_path(tmp_path / "data", "file_behaviours", key)
        assert len(summary.read_text().splitlines()) == verify_batch_file(raw).objects == 1, key
    for run in runs:
        assert run.is_success
        assert {k.to_user_string() for k in run.asset_selection} == {"file_behaviours/raw_batch",
                                                                     "file_behaviours/summaries"}
    assert "summaries 60 (60 summarized)" in done.stdout


@pytest.mark.service
def test_a_failed_run_exits_1_with_its_one_line_message(one_object_emulator, tmp_path: Path, monkeypatch) -> None:
    failed = vt_download_cmd(["--download-feed", "urls", "--num-days-ago", "1", "--max-minutes", "5"],
                             emulator_env(one_object_emulator, tmp_path, key="not-the-key"))
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("vt-download: urls ") and "failed: " in last and "401" in last
    assert "Traceback" not in failed.stderr
    [run] = runs_of(tmp_path / "home", "vt_live_job", monkeypatch)
    assert run.is_failure


@pytest.mark.service
def test_seven_days_ago_notes_the_clipped_start_and_downloads_the_rest(
    one_object_emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if vt_download.plan_download(7).clipping_note("urls") is None:
        pytest.skip("right at midnight UTC 7 days ago is still inside the window")
    done = vt_download_cmd(["--download-feed", "urls", "--num-days-ago", "7", "--max-minutes", "5"],
                           emulator_env(one_object_emulator, tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    [note] = [line for line in done.stderr.splitlines() if "older minutes left out" in line]
    assert note.startswith("vt-download: urls: the 7-day request starts at ")
    assert "but VT's window kept here starts at " in note and " 00:00 UTC: downloading from there (" in note
    runs = runs_of(tmp_path / "home", "vt_live_job", monkeypatch)
    keys = downloaded_range(runs)
    assert len(keys) == 5 and all(r.is_success for r in runs)
    for key in keys:
        assert verify_batch_file(raw_batch_path(tmp_path / "data", "urls", key)).ok, key


# --- --back-populate-summaries and --create-single-summary: the vt-dagster functions ------------


BATCHES = {"files": ["202611230700", "202611230701", "202611230702"], "domains": ["202611230700"]}


def lay_out_raw_batches(root: Path) -> None:
    for feed, batches in BATCHES.items():
        for number, batch in enumerate(batches):
            raw = raw_batch_path(root, feed, batch)
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.write_bytes(generate_batch(feed, batch, 5, 4 + number))


def summary_tree(root: Path) -> dict[str, list[str]]:
    """Every file under summary/, as sorted lines (counts files are appended in any order)."""
    return {str(p.relative_to(root)): sorted(p.read_text().splitlines())
            for p in sorted((root / "summary").rglob("*")) if p.is_file()}


def test_back_populate_summaries_writes_what_vt_dagster_writes(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for root in (ours, theirs):
        lay_out_raw_batches(root)
    home = tmp_path / "home"
    env = command_env(VT_DATA_DIR=str(ours), DAGSTER_HOME=str(home))
    one_feed = vt_download_cmd(["--back-populate-summaries", "files", "--setup-elasticsearch", "False"], env)
    assert one_feed.returncode == 0, one_feed.stderr
    assert vt_dagster_cmd(["back-populate-summaries", "files", "--data-dir", str(theirs)], env).returncode == 0
    assert summary_tree(ours) == summary_tree(theirs)
    assert len([name for name in summary_tree(ours) if name.endswith(".summary")]) == 3

    every_feed = vt_download_cmd(["--back-populate-summaries"], env)
    assert every_feed.returncode == 0, every_feed.stderr
    assert vt_dagster_cmd(["back-populate-summaries", "--data-dir", str(theirs)], env).returncode == 0
    assert summary_tree(ours) == summary_tree(theirs)
    assert summary_path(ours, "domains", "202611230700").exists()
    assert not home.exists(), "summaries start no Dagster run, and --setup-elasticsearch False sets nothing up"


def test_create_single_summary_writes_what_vt_dagster_writes(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for root in (ours, theirs):
        lay_out_raw_batches(root)
    env = command_env(DAGSTER_HOME=str(tmp_path / "home"))
    raw = raw_batch_path(ours, "files", "202611230701")
    done = vt_download_cmd(["--create-single-summary", str(raw)], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(summary_path(ours, "files", "202611230701"))
    reference = vt_dagster_cmd(["create-single-summary", str(raw_batch_path(theirs, "files", "202611230701"))], env)
    assert reference.returncode == 0, reference.stderr
    assert summary_tree(ours) == summary_tree(theirs) and len(summary_tree(ours)) == 2


def test_create_single_summary_refuses_missing_or_misplaced_files_in_one_line(tmp_path: Path) -> None:
    env = command_env(DAGSTER_HOME=str(tmp_path / "home"))
    missing = vt_download_cmd(["--create-single-summary", str(tmp_path / "nope.bz2")], env, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    misplaced = tmp_path / "202611230700.bz2"
    misplaced.write_bytes(generate_batch("files", "202611230700", 1, 1))
    elsewhere = vt_download_cmd(["--create-single-summary", str(misplaced)], env, timeout=60)
    assert elsewhere.returncode == 2 and "vt-dagster create-single-summary PATH --feed F --batch B" in elsewhere.stderr
    for refused in (missing, elsewhere):
        assert len(refused.stderr.strip().splitlines()) == 1 and refused.stdout == ""


# --- --setup-elasticsearch through the setup_elasticsearch job --------------------------------


def test_setup_elasticsearch_runs_the_job_on_the_instance_and_prints_its_actions(
    es_url: str, index_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = command_env(ES_URL=es_url, ES_INDEX_PREFIX=index_prefix, VT_FEEDS="files")
    first = vt_download_cmd(["--setup-elasticsearch", "True"], env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    created = [line for line in first.stdout.splitlines() if line.startswith("created")]
    assert any(f"{index_prefix}-summaries-files" in line for line in created)
    home = tmp_path / ".dagster_home"
    assert "enabled: false" in (home / "dagster.yaml").read_text(), "DAGSTER_HOME unset: ./.dagster_home"

    again = vt_download_cmd(["--setup-elasticsearch", "yes"], {**env, "DAGSTER_HOME": str(home)})
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout and any(line.startswith("present") for line in again.stdout.splitlines())

    runs = runs_of(home, "setup_elasticsearch", monkeypatch)
    assert len(runs) == 2 and all(r.is_success and r.tags["vt_dagster/launched_by"] == "vt-download" for r in runs)
    assert f"run {runs[0].run_id} succeeded" in first.stdout
