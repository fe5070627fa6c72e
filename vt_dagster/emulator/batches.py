"""The bytes the emulator serves: its batch cache, a folder of real batches, hourly packages.

Minute batches are generated (`generator`) or read from `--batch-dir`, whose files are found by
the feed and minute their paths name; an hour's minutes are packed into a deterministic
`.tar.bz2`. `BatchCache` keeps recent ones so concurrent clients do not rebuild them.
"""

from __future__ import annotations

import bz2
import io
import logging
import re
import tarfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from vt_dagster.feeds import FEEDS, Feed, parse_minute_key

log = logging.getLogger(__name__)


class BatchCache:
    """Bounded LRU of batch bytes; one thread builds a missing entry while the others wait."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._building: dict[tuple[str, ...], threading.Lock] = {}

    def get_or_build(self, key: tuple[str, ...], build: Callable[[], bytes]) -> bytes:
        with self._lock:
            cached = self._lookup(key)
            if cached is not None:
                return cached
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                cached = self._lookup(key)
            if cached is not None:
                return cached
            try:
                value = build()
                with self._lock:
                    self._store(key, value)
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return value

    def _lookup(self, key: tuple[str, ...]) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def _store(self, key: tuple[str, ...], value: bytes) -> None:
        self._items[key] = value
        self._size += len(value)
        while self._size > self._max_bytes and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self._size -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


_MINUTE_IN_NAME = re.compile(r"(?<!\d)(\d{12})(?!\d)")
# Longest name first, so "file_behaviours" wins over "file" in the same path part.
_FEED_NAMES_IN_PATHS = [
    (re.compile(rf"(?<![a-z]){re.escape(name)}(?![a-z])"), feed)
    for name, feed in sorted(
        {(name, feed) for feed in FEEDS.values() for name in (feed.name, feed.api_path, feed.object_type)},
        key=lambda pair: (-len(pair[0]), pair[0]),
    )
]


def _feed_in_path(path: Path) -> Feed | None:
    """The feed named by the deepest path part that names one (`raw/files/...`, `urls_2024...`)."""
    for part in reversed(path.parts):
        lowered = part.lower()
        for pattern, feed in _FEED_NAMES_IN_PATHS:
            if pattern.search(lowered):
                return feed
    return None


def index_batch_dir(batch_dir: Path) -> dict[tuple[str, str], Path]:
    """(feed, minute key) -> file for every `*.bz2` under `batch_dir` that names both."""
    index: dict[tuple[str, str], Path] = {}
    for path in sorted(batch_dir.resolve().rglob("*.bz2")):
        if path.name.endswith(".tar.bz2") or not path.is_file():
            continue
        match = _MINUTE_IN_NAME.search(path.name)
        feed = _feed_in_path(path)
        if match is None or feed is None:
            log.debug("batch_dir: skipping %s (no feed or minute in its path)", path)
            continue
        try:
            parse_minute_key(match.group(1))
        except ValueError:
            continue
        index.setdefault((feed.name, match.group(1)), path)
    return index


def build_hourly_package(members: list[tuple[str, bytes]]) -> bytes:
    """A `.tar.bz2` of `(minute key, bz2 bytes)` members named `<key>.bz2`; deterministic."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for key, data in members:
            info = tarfile.TarInfo(f"{key}.bz2")
            info.size = len(data)
            info.mtime = int(parse_minute_key(key).timestamp())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return bz2.compress(buffer.getvalue(), 9)
