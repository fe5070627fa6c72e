"""Downloading raw batches from the (real HTTP) VT emulator: every status and fault."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vt_dagster.feeds import get_feed, minute_key, newest_available_minute
from vt_dagster.raw_batches import RawBatchError, fetch_batches
from vt_dagster.storage import incident_note_path, missing_marker_path, raw_batch_path, verify_batch_file
from vt_dagster.vt_client import FeedAuthError, FeedsClient, NotAvailableYetError, TransientFeedError

FILES = get_feed("files")
UTC = dt.timezone.utc


def minutes_ago(minutes: int) -> str:
    return minute_key(dt.datetime.now(UTC) - dt.timedelta(minutes=minutes))


def hour_keys(hours_ago: int) -> list[str]:
    """The 60 minute keys of the UTC hour `hours_ago` whole hours before the current one."""
    start = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=hours_ago)
    return [minute_key(start + dt.timedelta(minutes=m)) for m in range(60)]


def api_requests(emulator, fragment: str) -> list:
    return [r for r in emulator.requests if fragment in r.path and "/_download" not in r.path]


def only_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


def test_minute_batch_is_downloaded_verified_and_counted(feeds_client: FeedsClient, tmp_path: Path) -> None:
    batch = minutes_ago(90)
    dest = raw_batch_path(tmp_path, "files", batch)
    result = feeds_client.download_minute(FILES, batch, dest)
    check = verify_batch_file(dest)
    assert result.status == "downloaded" and result.http_status == 200 and result.attempts == 2
    assert check.ok and result.objects == check.objects > 0 and result.sha256 == check.sha256
    assert result.bytes == dest.stat().st_size


def test_download_host_never_receives_the_api_key(emulator, feeds_client: FeedsClient, tmp_path: Path) -> None:
    feeds_client.download_minute(FILES, minutes_ago(90), tmp_path / "b.bz2")
    downloads = [r for r in emulator.requests if "/_download" in r.path]
    assert downloads and all(not r.had_api_key for r in downloads)


def test_present_batch_is_verified_and_skipped_without_a_request(emulator, feeds_client, tmp_path) -> None:
    batch = minutes_ago(95)
    first = fetch_batches(feeds_client, tmp_path, FILES, [batch])
    emulator.clear_requests()
    second = fetch_batches(feeds_client, tmp_path, FILES, [batch])
    assert first[0].status == "downloaded" and second[0].status == "present"
    assert second[0].sha256 == first[0].sha256 and second[0].objects == first[0].objects
    assert emulator.requests == []


def test_damaged_batch_on_disk_is_fetched_again(emulator, feeds_client, tmp_path) -> None:
    batch = minutes_ago(96)
    path = raw_batch_path(tmp_path, "files", batch)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"BZh9 half a file")
    outcome = fetch_batches(feeds_client, tmp_path, FILES, [batch])[0]
    assert outcome.status == "downloaded" and verify_batch_file(path).ok


def test_missing_minute_is_recorded_and_not_asked_again_unless_forced(emulator, feeds_client, tmp_path) -> None:
    batch = minutes_ago(100)
    emulator.config.gap_minutes.add(batch)
    first = fetch_batches(feeds_client, tmp_path, FILES, [batch])[0]
    assert first.status == "missing" and first.http_status == 404
    assert missing_marker_path(tmp_path, "files", batch).exists()
    assert not raw_batch_path(tmp_path, "files", batch).exists()

    emulator.clear_requests()
    again = fetch_batches(feeds_client, tmp_path, FILES, [batch])[0]
    assert again.status == "missing" and again.source == "marker" and emulator.requests == []

    emulator.config.gap_minutes.discard(batch)
    forced = fetch_batches(feeds_client, tmp_path, FILES, [batch], refetch_missing=True)[0]
    assert forced.status == "downloaded"


def test_more_than_three_consecutive_404s_fail_loudly_and_are_not_remembered(emulator, feeds_client, tmp_path) -> None:
    batches = [minutes_ago(m) for m in range(130, 120, -1)]
    for batch in batches[2:6]:
        emulator.config.gap_minutes.add(batch)
    with pytest.raises(RawBatchError, match="4 consecutive minutes without a batch"):
        fetch_batches(feeds_client, tmp_path, FILES, batches, max_consecutive_missing=3)
    assert not any(missing_marker_path(tmp_path, "files", b).exists() for b in batches[2:6])
    assert all(raw_batch_path(tmp_path, "files", b).exists() for b in batches[:2] + batches[6:]), \
        "the batches that did exist are kept"


def test_three_consecutive_404s_are_normal(emulator, feeds_client, tmp_path) -> None:
    batches = [minutes_ago(m) for m in range(140, 134, -1)]
    for batch in batches[1:4]:
        emulator.config.gap_minutes.add(batch)
    outcomes = fetch_batches(feeds_client, tmp_path, FILES, batches, max_consecutive_missing=3)
    assert [o.status for o in outcomes] == ["downloaded", "missing", "missing", "missing", "downloaded", "downloaded"]


def streak_of(minutes: list[str]) -> str:
    """The pattern of the error naming a streak of these minutes."""
    return rf"{len(minutes)} consecutive minutes without a batch \({minutes[0]}\.\.{minutes[-1]}\)"


def remembered_missing(root: Path, batches: list[str]) -> list[str]:
    return [batch for batch in batches if missing_marker_path(root, "files", batch).exists()]


def fetch_one_by_one(client, root: Path, batches: list[str]) -> list[str]:
    """Fetch each minute in its own run, as the live schedule does; the statuses."""
    return [fetch_batches(client, root, FILES, [batch], max_consecutive_missing=3)[0].status for batch in batches]


def test_404_streak_across_single_minute_runs_fails_on_the_first_minute_past_the_limit(
    emulator, feeds_client, tmp_path
) -> None:
    streak = [minutes_ago(m) for m in range(150, 146, -1)]
    emulator.config.gap_minutes.update(streak)
    assert fetch_one_by_one(feeds_client, tmp_path, streak[:3]) == ["missing"] * 3
    assert remembered_missing(tmp_path, streak) == streak[:3]

    with pytest.raises(RawBatchError, match=streak_of(streak[:4])) as raised:
        fetch_batches(feeds_client, tmp_path, FILES, [streak[3]], max_consecutive_missing=3)
    assert "\n" not in str(raised.value) and not raised.value.retryable
    assert remembered_missing(tmp_path, streak) == [], "no minute of an incident stays remembered as missing"


def test_an_incident_stays_loud_until_vt_serves_its_minutes_again(emulator, feeds_client, tmp_path) -> None:
    streak = [minutes_ago(m) for m in range(160, 155, -1)]
    emulator.config.gap_minutes.update(streak)
    fetch_one_by_one(feeds_client, tmp_path, streak[:3])
    with pytest.raises(RawBatchError):
        fetch_one_by_one(feeds_client, tmp_path, streak[3:4])
    with pytest.raises(RawBatchError, match=streak_of(streak[:4])):
        fetch_one_by_one(feeds_client, tmp_path, streak[3:4])  # the retry of the failed minute
    with pytest.raises(RawBatchError, match=streak_of(streak)):
        fetch_one_by_one(feeds_client, tmp_path, streak[4:])  # the next live minute
    emulator.clear_requests()
    with pytest.raises(RawBatchError, match=streak_of(streak)):
        fetch_batches(feeds_client, tmp_path, FILES, streak, max_consecutive_missing=3)
    assert len(api_requests(emulator, "/feeds/")) == 5, "every minute of the incident is asked for again"

    emulator.config.gap_minutes.clear()
    outcomes = fetch_batches(feeds_client, tmp_path, FILES, streak, max_consecutive_missing=3)
    assert [o.status for o in outcomes] == ["downloaded"] * 5
    assert only_files(tmp_path / "raw") == [f"{batch}.bz2" for batch in streak], "no note is left"


def test_a_streak_straddling_the_range_start_counts_the_404s_of_earlier_runs(emulator, feeds_client, tmp_path) -> None:
    minutes = [minutes_ago(m) for m in range(170, 164, -1)]
    emulator.config.gap_minutes.update(minutes[:4])
    fetch_one_by_one(feeds_client, tmp_path, minutes[:2])
    with pytest.raises(RawBatchError, match=streak_of(minutes[:4])):
        fetch_batches(feeds_client, tmp_path, FILES, minutes[2:], max_consecutive_missing=3)
    assert remembered_missing(tmp_path, minutes) == []
    assert all(incident_note_path(tmp_path, "files", batch).exists() for batch in minutes[:4])
    assert all(verify_batch_file(raw_batch_path(tmp_path, "files", b)).ok for b in minutes[4:]), \
        "the minutes VT served are kept"


def test_a_range_older_than_remembered_404s_counts_them_too(emulator, feeds_client, tmp_path) -> None:
    minutes = [minutes_ago(m) for m in range(180, 176, -1)]
    emulator.config.gap_minutes.update(minutes)
    fetch_batches(feeds_client, tmp_path, FILES, minutes[2:], max_consecutive_missing=3)
    with pytest.raises(RawBatchError, match=streak_of(minutes[:4])):
        fetch_batches(feeds_client, tmp_path, FILES, minutes[:2], max_consecutive_missing=3)


def test_a_served_minute_ends_a_streak_of_earlier_404s(emulator, feeds_client, tmp_path) -> None:
    minutes = [minutes_ago(m) for m in range(190, 183, -1)]
    emulator.config.gap_minutes.update(minutes[:3] + minutes[4:])
    statuses = fetch_one_by_one(feeds_client, tmp_path, minutes)
    assert statuses == ["missing"] * 3 + ["downloaded"] + ["missing"] * 3
    assert remembered_missing(tmp_path, minutes) == minutes[:3] + minutes[4:]


def test_wrong_key_fails_at_once_with_one_line_and_no_retry(emulator, tmp_path) -> None:
    secret = "not-the-emulator-key-8f3e1c"
    with FeedsClient(api_key=secret, api_url=emulator.base_url) as client:
        with pytest.raises(FeedAuthError) as raised:
            fetch_batches(client, tmp_path, FILES, [minutes_ago(90)])
    message = str(raised.value)
    assert "401" in message and "VT_API_KEY" in message and "\n" not in message
    assert secret not in message and secret not in repr(client)
    assert len(api_requests(emulator, "/feeds/")) == 1
    assert only_files(tmp_path) == []


def test_feed_without_licence_fails_naming_the_licence(emulator, feeds_client, tmp_path) -> None:
    emulator.config.licensed_feeds = {"urls"}
    with pytest.raises(FeedAuthError, match="no licence") as raised:
        feeds_client.download_minute(FILES, minutes_ago(90), tmp_path / "x.bz2")
    assert "403" in str(raised.value)
    assert len(api_requests(emulator, "/feeds/")) == 1


def test_empty_api_key_is_refused_before_any_request() -> None:
    with pytest.raises(FeedAuthError, match="VT_API_KEY is empty"):
        FeedsClient(api_key=" ", api_url="http://127.0.0.1:9")


@pytest.mark.parametrize("fault", ["429", "500", "503", "reset"])
def test_transient_faults_are_retried_then_succeed(emulator, feeds_client, tmp_path, fault: str) -> None:
    emulator.inject_fault(fault, count=2)
    result = feeds_client.download_minute(FILES, minutes_ago(91), tmp_path / "b.bz2")
    assert result.status == "downloaded" and result.attempts == 4
    assert verify_batch_file(tmp_path / "b.bz2").ok


def test_persistent_5xx_gives_up_after_the_budget_leaving_no_file(emulator, feeds_client, tmp_path) -> None:
    emulator.inject_fault("503", count=50)
    with pytest.raises(TransientFeedError, match="gave up after 4 attempts"):
        feeds_client.download_minute(FILES, minutes_ago(92), tmp_path / "b.bz2")
    assert only_files(tmp_path) == []


def test_not_available_yet_is_waited_for_then_reported(emulator, feeds_client, tmp_path) -> None:
    too_new = minutes_ago(10)
    with pytest.raises(NotAvailableYetError, match="not available yet"):
        feeds_client.download_minute(FILES, too_new, tmp_path / "b.bz2")
    assert len(api_requests(emulator, too_new)) == 2
    assert only_files(tmp_path) == []


def test_disconnect_mid_download_leaves_no_partial_file_and_a_rerun_completes(emulator, tmp_path) -> None:
    from vt_dagster.vt_client import RetryPolicy

    batch = minutes_ago(93)
    dest = raw_batch_path(tmp_path, "files", batch)
    emulator.inject_fault("truncate", count=5, path_contains="/_download")
    impatient = RetryPolicy(max_attempts=2, backoff_base_s=0.01)
    with FeedsClient(api_key=emulator.config.api_key, api_url=emulator.base_url, retry=impatient) as client:
        with pytest.raises(TransientFeedError):
            client.download_minute(FILES, batch, dest)
        assert only_files(tmp_path) == []
        emulator.clear_faults()
        assert client.download_minute(FILES, batch, dest).status == "downloaded"
    assert verify_batch_file(dest).ok


def test_crash_between_download_and_rename_leaves_nothing_that_looks_complete(emulator, tmp_path) -> None:
    batch = minutes_ago(94)
    script = textwrap.dedent(f"""
        import os
        import vt_dagster.storage as storage
        from vt_dagster.vt_client import FeedsClient
        storage.os.replace = lambda *a: os._exit(9)
        client = FeedsClient(api_key={emulator.config.api_key!r}, api_url={emulator.base_url!r})
        client.download_minute("files", {batch!r}, storage.raw_batch_path({str(tmp_path)!r}, "files", {batch!r}))
    """)
    crashed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert crashed.returncode == 9
    leftovers = only_files(tmp_path)
    assert leftovers and all(name.startswith(".") and name.endswith(".part") for name in leftovers)
    assert not raw_batch_path(tmp_path, "files", batch).exists()

    with FeedsClient(api_key=emulator.config.api_key, api_url=emulator.base_url) as client:
        outcome = fetch_batches(client, tmp_path, FILES, [batch])[0]
    assert outcome.status == "downloaded" and verify_batch_file(raw_batch_path(tmp_path, "files", batch)).ok


def test_hourly_split_is_byte_identical_to_the_minute_endpoint(emulator, feeds_client, tmp_path) -> None:
    hour = hour_keys(4)
    fetch_batches(feeds_client, tmp_path / "hourly", FILES, hour)
    assert len(api_requests(emulator, "/hourly/")) == 1
    for batch in hour[::7]:
        direct = tmp_path / "direct" / f"{batch}.bz2"
        feeds_client.download_minute(FILES, batch, direct)
        assert raw_batch_path(tmp_path / "hourly", "files", batch).read_bytes() == direct.read_bytes()


def test_range_of_three_hours_makes_three_hourly_requests_not_180(emulator, feeds_client, tmp_path) -> None:
    batches = hour_keys(5) + hour_keys(4) + hour_keys(3)
    outcomes = fetch_batches(feeds_client, tmp_path, FILES, batches)
    assert len(api_requests(emulator, "/hourly/")) == 3
    assert len(api_requests(emulator, "/feeds/")) == 3
    assert [o.source for o in outcomes] == ["hourly"] * 180
    assert all(o.status == "downloaded" for o in outcomes)


def test_partial_hours_and_hours_too_recent_for_a_package_use_minute_requests(emulator, feeds_client, tmp_path) -> None:
    partial = hour_keys(5)[30:]
    recent = [minutes_ago(m) for m in range(75, 61, -1)]
    fetch_batches(feeds_client, tmp_path, FILES, partial + recent)
    assert api_requests(emulator, "/hourly/") == []
    assert len(api_requests(emulator, "/feeds/")) == len(set(partial + recent))


def test_gap_minutes_inside_an_hourly_package_are_recorded_missing(emulator, feeds_client, tmp_path) -> None:
    hour = hour_keys(6)
    emulator.config.gap_minutes.update({hour[10], hour[40]})
    outcomes = {o.batch: o for o in fetch_batches(feeds_client, tmp_path, FILES, hour)}
    assert outcomes[hour[10]].status == outcomes[hour[40]].status == "missing"
    assert missing_marker_path(tmp_path, "files", hour[40]).exists()
    assert sum(o.status == "downloaded" for o in outcomes.values()) == 58


def test_downloaded_and_unpacked_batches_follow_the_umask(emulator, feeds_client, tmp_path, process_umask) -> None:
    process_umask(0o027)
    hour = hour_keys(8)
    single = minutes_ago(90)
    emulator.config.gap_minutes.add(hour[5])
    fetch_batches(feeds_client, tmp_path, FILES, hour + [single])
    written = [raw_batch_path(tmp_path, "files", batch) for batch in (hour[0], hour[59], single)]
    written.append(missing_marker_path(tmp_path, "files", hour[5]))
    assert [oct(stat.S_IMODE(path.stat().st_mode)) for path in written] == ["0o640"] * 4


def test_hourly_package_failure_falls_back_to_minutes(emulator, feeds_client, tmp_path) -> None:
    hour = hour_keys(7)
    emulator.inject_fault("503", count=10, path_contains="/hourly/")
    outcomes = fetch_batches(feeds_client, tmp_path, FILES, hour)
    assert all(o.status == "downloaded" and o.source == "minute" for o in outcomes)


def test_newest_available_minute_is_served(emulator, feeds_client, tmp_path) -> None:
    newest = minute_key(newest_available_minute(dt.datetime.now(UTC)))
    assert feeds_client.download_minute(FILES, newest, tmp_path / "n.bz2").status == "downloaded"
