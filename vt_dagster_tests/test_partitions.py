"""Minute partitions: bounded to the feed's retention, ending at the newest batch VT serves."""

from __future__ import annotations

import datetime as dt

from vt_dagster.partitions import build_minute_partitions, partition_window_start

UTC = dt.timezone.utc


def test_last_partition_is_the_minute_sixty_minutes_ago() -> None:
    now = dt.datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
    keys = build_minute_partitions(now).get_partition_keys(current_time=now)
    assert keys[-1] == "202611230900"


def test_partition_set_stays_inside_seven_days_and_is_bounded() -> None:
    for hour in (0, 7, 23):
        now = dt.datetime(2026, 11, 23, hour, 30, tzinfo=UTC)
        keys = build_minute_partitions(now).get_partition_keys(current_time=now)
        oldest = dt.datetime.strptime(keys[0], "%Y%m%d%H%M").replace(tzinfo=UTC)
        assert now - oldest <= dt.timedelta(days=7)
        assert 8_500 <= len(keys) <= 10_080


def test_window_starts_on_a_utc_midnight() -> None:
    start = partition_window_start(dt.datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    assert start == dt.datetime(2026, 11, 17, tzinfo=UTC)
    assert partition_window_start(dt.datetime(2026, 11, 23, 0, 0, tzinfo=UTC)) == dt.datetime(2026, 11, 16, tzinfo=UTC)
