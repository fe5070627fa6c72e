"""The VirusTotal feeds: their names, API paths and the feed-level timing facts.

Everything that varies per feed lives here so the asset factories, the client and the
emulator agree on one list.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from vt_dagster.config_errors import ConfigurationError

MINUTE_FORMAT = "%Y%m%d%H%M"
HOUR_FORMAT = "%Y%m%d%H"

# The newest minute batch is this old; hourly packages lag a further hour.
MINUTE_LAG = dt.timedelta(minutes=60)
HOURLY_LAG = dt.timedelta(hours=2)
# The feed API keeps this much history.
RETENTION = dt.timedelta(days=7)


@dataclass(frozen=True)
class Feed:
    """One VT feed: `name` is used in asset keys, paths and indices; `api_path` in URLs."""

    name: str
    api_path: str
    object_type: str


FEEDS: dict[str, Feed] = {
    feed.name: feed
    for feed in (
        Feed("files", "files", "file"),
        Feed("urls", "urls", "url"),
        Feed("domains", "domains", "domain"),
        Feed("ip_addresses", "ip_addresses", "ip_address"),
        Feed("file_behaviours", "file-behaviours", "file_behaviour"),
    )
}
DEFAULT_FEEDS = ("files", "urls")


class UnknownFeedError(ValueError):
    """A feed name that VT does not publish."""


def get_feed(name: str) -> Feed:
    """Look a feed up by its name or its API path (`file-behaviours` == `file_behaviours`)."""
    key = name.strip().lower().replace("-", "_")
    try:
        return FEEDS[key]
    except KeyError:
        raise UnknownFeedError(f"unknown feed {name.strip()!r} (known: {', '.join(FEEDS)})") from None


def named_feed(name: str, setting: str) -> Feed:
    """The feed `name` given as `setting` (a flag such as `--feed`); unknown: a `ConfigurationError`."""
    try:
        return get_feed(name)
    except UnknownFeedError as exc:
        raise ConfigurationError(setting, str(exc)) from None


def parse_feed_list(value: str, setting: str) -> list[Feed]:
    """The feeds a comma-separated `value` names, in order, each once.

    Blank entries (`files,,urls`, a trailing comma) are ignored; an unknown name, or a value
    that names no feed at all, is a `ConfigurationError` naming `setting` (`VT_FEEDS`, `--feeds`).
    """
    feeds: list[Feed] = []
    for name in (part.strip() for part in value.split(",")):
        if not name:
            continue
        feed = named_feed(name, setting)
        if feed not in feeds:
            feeds.append(feed)
    if not feeds:
        raise ConfigurationError(setting, f"names no feed (known: {', '.join(FEEDS)})")
    return feeds


def enabled_feeds(value: str | None = None) -> list[Feed]:
    """The feeds named in `VT_FEEDS` (or `value`); unset or empty: `files,urls`.

    Every entry point calls this, so a `VT_FEEDS` with an unknown feed is refused everywhere
    with the same line (see `ConfigurationError`).
    """
    raw = os.environ.get("VT_FEEDS", "") if value is None else value
    if not raw.strip():
        return [FEEDS[name] for name in DEFAULT_FEEDS]
    return parse_feed_list(raw, "VT_FEEDS")


def minute_key(moment: dt.datetime) -> str:
    """The batch key (`YYYYMMDDhhmm`, UTC) of the minute holding `moment`."""
    return moment.astimezone(dt.timezone.utc).strftime(MINUTE_FORMAT)


def parse_minute_key(key: str) -> dt.datetime:
    """The UTC start of batch `key`; a clear error for anything but 12 digits of a real minute."""
    if len(key) != 12 or not key.isdigit():
        raise ValueError(f"batch key {key!r} is not a UTC minute in the form YYYYMMDDhhmm")
    try:
        return dt.datetime.strptime(key, MINUTE_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError(f"batch key {key!r} is not a real UTC minute") from None


def parse_hour_key(key: str) -> dt.datetime:
    """The UTC start of hourly package `key` (`YYYYMMDDhh`)."""
    if len(key) != 10 or not key.isdigit():
        raise ValueError(f"hour key {key!r} is not a UTC hour in the form YYYYMMDDhh")
    try:
        return dt.datetime.strptime(key, HOUR_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError(f"hour key {key!r} is not a real UTC hour") from None


def newest_available_minute(now: dt.datetime) -> dt.datetime:
    """Start of the newest minute batch the feed API serves at `now`."""
    now = now.astimezone(dt.timezone.utc).replace(second=0, microsecond=0)
    return now - MINUTE_LAG
