"""How the emulated VT API behaves: `EmulatorConfig`, its defaults and the emulator's clock.

Kept apart from the server so the command line, the routes and the tests read one definition of
the key, seed, volumes, licences, gaps, fault rates and "now" without pulling in HTTP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Mapping

from vt_dagster.feeds import FEEDS, Feed, get_feed, parse_minute_key

DEFAULT_API_KEY = "vt-emulator-key"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# Laptop-friendly volumes: ~150 KB of bz2 a minute for files, the other feeds in proportion.
DEFAULT_OBJECTS_PER_MINUTE: dict[str, int] = {
    "files": 100, "urls": 80, "domains": 30, "ip_addresses": 10, "file_behaviours": 40,
}
# Production volumes: files ~1,500 objects (~2 MB bz2) a minute; the others are estimates.
REAL_SCALE: dict[str, int] = {
    "files": 1500, "urls": 1200, "domains": 450, "ip_addresses": 150, "file_behaviours": 600,
}
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Aware UTC; naive datetimes are taken as UTC (VT's feed times are all UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def floor_minute(moment: dt.datetime) -> dt.datetime:
    return as_utc(moment).replace(second=0, microsecond=0)


def _unit_fraction(text: str) -> float:
    """A stable pseudo-random number in [0, 1) for `text` (unlike `hash()`, not salted)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@dataclass
class EmulatorConfig:
    """How the emulated API behaves. Defaults: every feed licensed, no faults, real time."""

    api_key: str = DEFAULT_API_KEY
    seed: int = 1
    # An int gives every feed that many objects a minute; a dict sets feeds one by one
    # (feeds it leaves out keep DEFAULT_OBJECTS_PER_MINUTE).
    objects_per_minute: int | Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_OBJECTS_PER_MINUTE)
    )
    licensed_feeds: Collection[str] = field(default_factory=lambda: tuple(FEEDS))
    gap_minutes: Collection[str] = frozenset()
    gap_rate: float = 0.0
    rate_limit_per_minute: int = 0
    fail_rate: float = 0.0
    slow_seconds: float = 0.0
    truncate_rate: float = 0.0
    batch_dir: str | Path | None = None
    clock: Callable[[], dt.datetime] | None = None
    now: dt.datetime | None = None
    cache_bytes: int = DEFAULT_CACHE_BYTES

    def __post_init__(self) -> None:
        self.licensed_feeds = {get_feed(name).name for name in self.licensed_feeds}
        for key in self.gap_minutes:
            parse_minute_key(key)
        self.gap_minutes = set(self.gap_minutes)
        self.objects_per_minute = self._objects_by_feed(self.objects_per_minute)
        for name in ("gap_rate", "fail_rate", "truncate_rate"):
            _check_rate(name, getattr(self, name))
        if self.rate_limit_per_minute < 0 or self.slow_seconds < 0:
            raise ValueError("rate_limit_per_minute and slow_seconds cannot be negative")
        if not self.api_key:
            raise ValueError("the emulator needs a non-empty api_key")
        if self.batch_dir is not None:
            self.batch_dir = Path(self.batch_dir)
            if not self.batch_dir.is_dir():
                raise ValueError(f"batch_dir {str(self.batch_dir)!r} is not a folder")
        if self.now is not None:
            self.now = as_utc(self.now)

    @staticmethod
    def _objects_by_feed(value: int | Mapping[str, int]) -> dict[str, int]:
        if isinstance(value, int):
            counts = {name: value for name in FEEDS}
        else:
            counts = dict(DEFAULT_OBJECTS_PER_MINUTE)
            counts.update({get_feed(name).name: int(count) for name, count in value.items()})
        if any(count < 0 for count in counts.values()):
            raise ValueError("objects_per_minute cannot be negative")
        return counts

    def current_time(self) -> dt.datetime:
        """The emulator's "now": the fixed `now`, else the clock, else real UTC time."""
        if self.now is not None:
            return self.now
        return as_utc(self.clock()) if self.clock is not None else _utc_now()

    def objects_for(self, feed: Feed) -> int:
        return self.objects_per_minute[feed.name]  # type: ignore[index]

    def is_gap(self, minute_key: str) -> bool:
        """A minute with no batch, for every feed (listed, or drawn at `gap_rate`)."""
        if minute_key in self.gap_minutes:
            return True
        return self.gap_rate > 0 and _unit_fraction(f"gap/{self.seed}/{minute_key}") < self.gap_rate
