"""A local HTTP server that behaves like the VirusTotal feeds API (the project's offline default).

It mirrors what a client must cope with on the real API: the `x-apikey` header, a `302` to a
signed download URL that needs no key, bz2 minute batches and `.tar.bz2` hourly packages, the
60-minute / 2-hour lag (`400 NotAvailableYet`), the 7-day window, `404` gaps, `403` without a
licence and `429` past the quota. Faults (5xx, slow answers, truncated or stalled bodies, reset
sockets) can be injected in-process or over HTTP (`/_emulator/...`) so tests can drive a server running in
another process.
"""

from __future__ import annotations

import argparse
import base64
import bz2
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import os
import random
import re
import secrets
import signal
import socket
import struct
import sys
import tarfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Collection, Mapping
from urllib.parse import urlsplit

from vt_dagster.emulator.generator import generate_batch
from vt_dagster.feeds import (
    FEEDS,
    HOURLY_LAG,
    MINUTE_FORMAT,
    MINUTE_LAG,
    RETENTION,
    Feed,
    UnknownFeedError,
    get_feed,
    parse_hour_key,
    parse_minute_key,
)

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "vt-emulator-key"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
API_PREFIX = "/api/v3"
DOWNLOAD_PREFIX = "/_download/"
ADMIN_PREFIX = "/_emulator/"
# Laptop-friendly volumes: ~150 KB of bz2 a minute for files, the other feeds in proportion.
DEFAULT_OBJECTS_PER_MINUTE: dict[str, int] = {
    "files": 100, "urls": 80, "domains": 30, "ip_addresses": 10, "file_behaviours": 40,
}
# Production volumes: files ~1,500 objects (~2 MB bz2) a minute; the others are estimates.
REAL_SCALE: dict[str, int] = {
    "files": 1500, "urls": 1200, "domains": 450, "ip_addresses": 150, "file_behaviours": 600,
}
FAULT_KINDS = ("500", "503", "429", "slow", "truncate", "stall", "reset")
"""`slow` waits before answering; `truncate` sends half a download's body and closes; `stall`
sends half a download's body, waits, then the rest (a client is caught mid-write)."""
BODY_FAULTS = ("truncate", "stall")
DEFAULT_SLOW_FAULT_SECONDS = 2.0
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
HOUR_WORKERS = min(8, os.cpu_count() or 2)
MAX_BODY_BYTES = 1024 * 1024
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


class EmulatorError(Exception):
    """An answer in VT's error format: `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _as_utc(moment: dt.datetime) -> dt.datetime:
    """Aware UTC; naive datetimes are taken as UTC (VT's feed times are all UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _floor_minute(moment: dt.datetime) -> dt.datetime:
    return _as_utc(moment).replace(second=0, microsecond=0)


def _unit_fraction(text: str) -> float:
    """A stable pseudo-random number in [0, 1) for `text` (unlike `hash()`, not salted)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


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
            self.now = _as_utc(self.now)

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
        return _as_utc(self.clock()) if self.clock is not None else _utc_now()

    def objects_for(self, feed: Feed) -> int:
        return self.objects_per_minute[feed.name]  # type: ignore[index]

    def is_gap(self, minute_key: str) -> bool:
        """A minute with no batch, for every feed (listed, or drawn at `gap_rate`)."""
        if minute_key in self.gap_minutes:
            return True
        return self.gap_rate > 0 and _unit_fraction(f"gap/{self.seed}/{minute_key}") < self.gap_rate


# --------------------------------------------------------------------------------------------
# state shared by request threads
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator answered: whether it carried a key, never the key itself."""

    method: str
    path: str
    status: int
    fault: str | None = None
    had_api_key: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fault:
    kind: str
    remaining: int
    path_contains: str | None = None
    seconds: float | None = None

    def delay(self) -> float:
        return DEFAULT_SLOW_FAULT_SECONDS if self.seconds is None else self.seconds

    def matches(self, path: str, is_download: bool) -> bool:
        if self.kind in BODY_FAULTS and not is_download:
            return False
        return self.path_contains is None or self.path_contains in path


class FaultQueue:
    """Faults waiting for the next matching requests; at most one slow and one other per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, count: int = 1, path_contains: str | None = None,
            seconds: float | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: expected one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("a fault needs count >= 1")
        if seconds is not None and float(seconds) < 0:
            raise ValueError("a slow fault needs seconds >= 0")
        fault = Fault(kind, count, path_contains or None, None if seconds is None else float(seconds))
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str, is_download: bool) -> tuple[Fault | None, Fault | None]:
        """(slow fault, other fault) for this request, each used up by one."""
        with self._lock:
            slow = self._take_first(path, is_download, slow=True)
            other = self._take_first(path, is_download, slow=False)
        return slow, other

    def _take_first(self, path: str, is_download: bool, slow: bool) -> Fault | None:
        for fault in self._faults:
            if (fault.kind == "slow") == slow and fault.matches(path, is_download):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


class RateLimiter:
    """VT-style per-minute quota on API requests (downloads are free, like VT's storage URLs)."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._used = 0

    def allow(self) -> bool:
        if self._per_minute <= 0:
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= 60:
                self._window_start, self._used = now, 0
            if self._used >= self._per_minute:
                return False
            self._used += 1
            return True


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


# --------------------------------------------------------------------------------------------
# batches: generated, or read from a folder of real batch files
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# the emulator
# --------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    is_download: bool = False


def _error_reply(error: EmulatorError) -> Reply:
    body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
    return Reply(error.status, body)


def _json_reply(payload: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload, default=str).encode())


class FeedsEmulator:
    """The VT feeds API on loopback: `with FeedsEmulator(config) as vt: requests.get(vt.base_url...)`."""

    def __init__(self, config: EmulatorConfig | None = None, host: str = DEFAULT_HOST,
                 port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self._requested_port = port
        self._httpd: _EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        self._faults = FaultQueue()
        self._rate = RateLimiter(self.config.rate_limit_per_minute)
        self._cache = BatchCache(self.config.cache_bytes)
        self._random = random.Random(f"vt-emulator-faults/{self.config.seed}")
        self._random_lock = threading.Lock()
        self._token_key = secrets.token_bytes(16)
        self._batch_files: dict[tuple[str, str], Path] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FeedsEmulator:
        """Bind and serve in a background thread (idempotent)."""
        if self._httpd is not None:
            return self
        if self.config.batch_dir is not None:
            self._batch_files = index_batch_dir(Path(self.config.batch_dir))
        self._stopping.clear()
        self._httpd = _EmulatorHTTPServer((self.host, self._requested_port), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"vt-feeds-emulator:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open keep-alive connections and wait for request threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_open_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FeedsEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not running: call start() first")
        return self._httpd.server_address[1]

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What clients use as VT_API_URL."""
        return f"{self.origin}{API_PREFIX}"

    # -- observation and fault injection -----------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._records_lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._records_lock:
            self._records.clear()

    def inject_fault(self, kind: str, count: int = 1, path_contains: str | None = None,
                     seconds: float | None = None) -> None:
        """Make the next `count` matching requests fail with `kind` (see FAULT_KINDS)."""
        self._faults.add(str(kind), int(count), path_contains, seconds)

    def clear_faults(self) -> None:
        self._faults.clear()

    def _record(self, method: str, path: str, status: int, fault: str | None, had_api_key: bool) -> None:
        with self._records_lock:
            self._records.append(RequestRecord(method, path, status, fault, had_api_key))

    def _roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._random_lock:
            return self._random.random() < probability

    def _sleep(self, seconds: float) -> None:
        """Delay an answer, but let stop() cut it short."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # -- batches -----------------------------------------------------------------------------

    def minute_exists(self, feed: Feed, minute_key: str) -> bool:
        if self.config.is_gap(minute_key):
            return False
        if self.config.batch_dir is not None:
            return (feed.name, minute_key) in self._batch_files
        return True

    def minute_batch(self, feed: Feed, minute_key: str) -> bytes:
        """The bz2 bytes served for one minute (cached)."""
        return self._cache.get_or_build(("minute", feed.name, minute_key),
                                        lambda: self._build_minute(feed, minute_key))

    def _build_minute(self, feed: Feed, minute_key: str) -> bytes:
        if self.config.batch_dir is not None:
            return self._batch_files[(feed.name, minute_key)].read_bytes()
        return generate_batch(feed.name, minute_key, self.config.seed, self.config.objects_for(feed))

    def hour_minutes(self, feed: Feed, hour: dt.datetime) -> list[str]:
        """The minute keys an hourly package holds: present, inside the 7-day window."""
        oldest = _floor_minute(self.config.current_time()) - RETENTION
        keys = [(hour + offset * MINUTE).strftime(MINUTE_FORMAT) for offset in range(60)]
        return [key for key in keys
                if parse_minute_key(key) >= oldest and self.minute_exists(feed, key)]

    def hourly_package(self, feed: Feed, hour_key: str) -> bytes:
        """The `.tar.bz2` of an hour, cached under its members so a new gap makes a new package."""
        keys = self.hour_minutes(feed, parse_hour_key(hour_key))
        return self._cache.get_or_build(("hour", feed.name, hour_key, *keys),
                                        lambda: self._build_hour(feed, keys))

    def _build_hour(self, feed: Feed, keys: list[str]) -> bytes:
        # bz2 releases the GIL, so threads compress the hour's minutes on every core.
        with ThreadPoolExecutor(max_workers=HOUR_WORKERS, thread_name_prefix="vt-emulator-hour") as pool:
            batches = list(pool.map(lambda key: self.minute_batch(feed, key), keys))
        return build_hourly_package(list(zip(keys, batches)))

    # -- download tokens ---------------------------------------------------------------------

    def _sign(self, payload: str) -> str:
        return hmac.new(self._token_key, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def download_token(self, kind: str, feed: Feed, key: str) -> str:
        payload = f"{kind}:{feed.name}:{key}"
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{encoded}.{self._sign(payload)}"

    def read_token(self, token: str) -> tuple[str, Feed, str]:
        encoded, _, signature = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            kind, feed_name, key = payload.split(":")
        except ValueError:
            raise EmulatorError(404, "NotFoundError", "unknown download") from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise EmulatorError(404, "NotFoundError", "unknown download")
        return kind, get_feed(feed_name), key


class _EmulatorHTTPServer(ThreadingHTTPServer):
    """Tracks open connections so stop() can end idle keep-alive threads at once."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 emulator: FeedsEmulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up are routine here; anything else is a bug worth a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("client %s: %s", client_address, error)
            return
        log.exception("VT feeds emulator: error while answering %s", client_address)

    def close_open_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    """Parses one request, asks the router for a Reply, applies faults and writes it."""

    protocol_version = "HTTP/1.1"
    server_version = "vt-feeds-emulator"
    timeout = 120
    server: _EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    @property
    def emulator(self) -> FeedsEmulator:
        return self.server.emulator

    def _handle(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if path.startswith(ADMIN_PREFIX):
            self._send(_admin(self.emulator, method, path, body))
            return
        is_download = path.startswith(DOWNLOAD_PREFIX)
        had_api_key = "x-apikey" in self.headers
        slow, fault = self.emulator._faults.take(path, is_download)
        self.emulator._sleep(self.emulator.config.slow_seconds + (slow.delay() if slow else 0.0))
        if fault is not None and fault.kind == "reset":
            self.emulator._record(method, path, 0, "reset", had_api_key)
            self._reset()
            return
        reply = self._reply(method, path, is_download, fault)
        truncate = reply.is_download and reply.status == 200 and (
            (fault is not None and fault.kind == "truncate")
            or self.emulator._roll(self.emulator.config.truncate_rate)
        )
        stall = (fault.delay() if fault is not None and fault.kind == "stall" and reply.is_download
                 and reply.status == 200 and not truncate else None)
        # Recorded before answering, so a client that checks `requests` after its call sees it.
        self.emulator._record(method, path, reply.status, _fault_name(slow, fault, truncate), had_api_key)
        self._send(reply, truncate=truncate, stall=stall)

    def _reply(self, method: str, path: str, is_download: bool, fault: Fault | None) -> Reply:
        try:
            if fault is not None and fault.kind in ("500", "503", "429"):
                raise _injected_error(fault.kind)
            if is_download:
                return _download(self.emulator, method, path[len(DOWNLOAD_PREFIX):])
            return _api(self.emulator, method, path, self.headers.get("x-apikey"), self._origin())
        except EmulatorError as error:
            return _error_reply(error)

    def _origin(self) -> str:
        """Where the 302 points: the host the client used, so redirects stay on its route."""
        host = self.headers.get("Host", "")
        if re.fullmatch(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?", host):
            return f"http://{host}"
        return self.emulator.origin

    def _read_body(self) -> bytes:
        """Read a request body so the keep-alive stream stays in step (only admin calls use it)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(min(length, MAX_BODY_BYTES)) if length > 0 else b""

    def _send(self, reply: Reply, truncate: bool = False, stall: float | None = None) -> None:
        """Write the reply; with `truncate`, only half the body, then close the connection; with
        `stall`, half the body, then after `stall` seconds the rest."""
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        body = reply.body[: len(reply.body) // 2] if truncate else reply.body
        try:
            self.end_headers()
            if stall is not None:
                half = len(body) // 2
                self.wfile.write(body[:half])
                self.wfile.flush()
                self.emulator._sleep(stall)
                body = body[half:]
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            # The client went away (or stop() closed the socket): nothing left to tell it.
            self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with a TCP RST, answering nothing."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The read file holds a reference to the socket: close it too, or close() waits for it.
        self.rfile.close()
        self.connection.close()


def _fault_name(slow: Fault | None, fault: Fault | None, truncated: bool) -> str | None:
    """What was done to a request, for its RequestRecord ("slow+503", "truncate", ...)."""
    names = ["slow"] if slow is not None else []
    if truncated:
        names.append("truncate")
    elif fault is not None and fault.kind != "truncate":
        names.append(fault.kind)
    return "+".join(names) or None


def _injected_error(kind: str) -> EmulatorError:
    if kind == "429":
        return EmulatorError(429, "TooManyRequestsError", "injected fault: too many requests")
    return EmulatorError(int(kind), "TransientError", f"injected fault: HTTP {kind}")


# --------------------------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------------------------

_MINUTE_ROUTE = re.compile(rf"{API_PREFIX}/feeds/([^/]+)/([^/]+)/?")
_HOURLY_ROUTE = re.compile(rf"{API_PREFIX}/feeds/([^/]+)/hourly/([^/]+)/?")


def _api(emulator: FeedsEmulator, method: str, path: str, api_key: str | None, origin: str) -> Reply:
    """Everything under /api/v3: key, quota, then the feed endpoints."""
    _authenticate(emulator.config, api_key)
    if emulator._roll(emulator.config.fail_rate):
        raise EmulatorError(503, "TransientError", "the service is temporarily unavailable, retry later")
    if not emulator._rate.allow():
        raise EmulatorError(429, "QuotaExceededError",
                            f"quota of {emulator.config.rate_limit_per_minute} requests per minute exceeded")
    hourly = _HOURLY_ROUTE.fullmatch(path)
    minute = None if hourly else _MINUTE_ROUTE.fullmatch(path)
    if method != "GET" or (hourly is None and minute is None):
        raise EmulatorError(404, "NotFoundError", f"{method} {path} is not an endpoint")
    if hourly is not None:
        feed = _licensed_feed(emulator.config, hourly.group(1))
        return _redirect(origin, emulator.download_token("h", feed, _check_hour(emulator, feed, hourly.group(2))))
    assert minute is not None
    feed = _licensed_feed(emulator.config, minute.group(1))
    return _redirect(origin, emulator.download_token("m", feed, _check_minute(emulator, feed, minute.group(2))))


def _authenticate(config: EmulatorConfig, api_key: str | None) -> None:
    if not api_key:
        raise EmulatorError(401, "AuthenticationRequiredError",
                            "an API key is required: send it in the x-apikey header")
    if not hmac.compare_digest(api_key.encode(), config.api_key.encode()):
        raise EmulatorError(401, "WrongCredentialsError", "wrong API key")


def _licensed_feed(config: EmulatorConfig, name: str) -> Feed:
    try:
        feed = get_feed(name)
    except UnknownFeedError:
        raise EmulatorError(404, "NotFoundError", f"feed {name!r} not found") from None
    if feed.name not in config.licensed_feeds and feed.api_path not in config.licensed_feeds:
        raise EmulatorError(403, "ForbiddenError", f"no licence for the {feed.api_path} feed: "
                            "you are not allowed to perform the requested operation")
    return feed


def _check_minute(emulator: FeedsEmulator, feed: Feed, key: str) -> str:
    try:
        minute = parse_minute_key(key)
    except ValueError as error:
        raise EmulatorError(400, "BadRequestError", str(error)) from None
    now = _floor_minute(emulator.config.current_time())
    if minute > now - MINUTE_LAG:
        newest = (now - MINUTE_LAG).strftime(MINUTE_FORMAT)
        raise EmulatorError(400, "NotAvailableYet", f"batch {key} is not available yet: the newest is {newest}")
    if minute < now - RETENTION:
        raise EmulatorError(404, "NotFoundError", f"batch {key} is older than 7 days")
    if not emulator.minute_exists(feed, key):
        raise EmulatorError(404, "NotFoundError", f"no {feed.api_path} batch for {key}")
    return key


def _check_hour(emulator: FeedsEmulator, feed: Feed, key: str) -> str:
    try:
        hour = parse_hour_key(key)
    except ValueError as error:
        raise EmulatorError(400, "BadRequestError", str(error)) from None
    now = _floor_minute(emulator.config.current_time())
    if hour > now - HOURLY_LAG:
        raise EmulatorError(400, "NotAvailableYet", f"hourly package {key} is not available yet (2 hours lag)")
    if hour + HOUR <= now - RETENTION:
        raise EmulatorError(404, "NotFoundError", f"hourly package {key} is older than 7 days")
    if not emulator.hour_minutes(feed, hour):
        raise EmulatorError(404, "NotFoundError", f"no {feed.api_path} batches in hour {key}")
    return key


def _redirect(origin: str, token: str) -> Reply:
    return Reply(302, headers={"Location": f"{origin}{DOWNLOAD_PREFIX}{token}"})


def _download(emulator: FeedsEmulator, method: str, token: str) -> Reply:
    """The signed download URL: no API key needed, like VT's storage links."""
    if method != "GET":
        raise EmulatorError(404, "NotFoundError", "downloads are GET only")
    kind, feed, key = emulator.read_token(token)
    try:
        if kind == "h":
            body, filename = emulator.hourly_package(feed, key), f"{key}.tar.bz2"
        else:
            body, filename = emulator.minute_batch(feed, key), f"{key}.bz2"
    except OSError as error:  # a batch file removed from batch_dir since the index was built
        raise EmulatorError(404, "NotFoundError", f"batch {key} is gone: {error.strerror}") from None
    return Reply(200, body, {"Content-Disposition": f'attachment; filename="{filename}"'},
                 content_type="application/octet-stream", is_download=True)


def _admin(emulator: FeedsEmulator, method: str, path: str, body: bytes) -> Reply:
    """/_emulator/{faults,requests,status}: drive and observe the emulator from another process."""
    route = (method, path.rstrip("/"))
    try:
        if route == ("POST", "/_emulator/faults"):
            return _add_fault(emulator, body)
        if route == ("GET", "/_emulator/faults"):
            return _json_reply({"faults": emulator._faults.pending()})
        if route == ("DELETE", "/_emulator/faults"):
            emulator.clear_faults()
            return _json_reply({"faults": []})
        if route == ("GET", "/_emulator/requests"):
            return _json_reply({"requests": [record.as_dict() for record in emulator.requests]})
        if route == ("DELETE", "/_emulator/requests"):
            emulator.clear_requests()
            return _json_reply({"requests": []})
        if route == ("GET", "/_emulator/status"):
            return _json_reply(_status(emulator))
        raise EmulatorError(404, "NotFoundError", f"{method} {path} is not an emulator endpoint")
    except EmulatorError as error:
        return _error_reply(error)


def _add_fault(emulator: FeedsEmulator, body: bytes) -> Reply:
    try:
        request = json.loads(body or b"{}")
        emulator.inject_fault(request["kind"], int(request.get("count", 1)),
                              request.get("path_contains"), request.get("seconds"))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise EmulatorError(400, "BadRequestError", f"bad fault {body[:200]!r}: {error}") from None
    return _json_reply({"faults": emulator._faults.pending()}, status=201)


def _status(emulator: FeedsEmulator) -> dict[str, Any]:
    config = emulator.config
    return {"base_url": emulator.base_url, "now": config.current_time().isoformat(),
            "seed": config.seed, "licensed_feeds": sorted(config.licensed_feeds),
            "objects_per_minute": config.objects_per_minute,
            "batch_dir": str(config.batch_dir) if config.batch_dir else None,
            "batch_files": len(emulator._batch_files)}


# --------------------------------------------------------------------------------------------
# command line: `vt-dagster emulator ...`
# --------------------------------------------------------------------------------------------


def _comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _objects_argument(value: str) -> int | dict[str, int]:
    """`100` (every feed) or `files=100,urls=50`."""
    if value.strip().isdigit():
        return int(value)
    counts: dict[str, int] = {}
    for part in _comma_list(value):
        name, _, count = part.partition("=")
        if not count.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected N or feed=N,... but got {value!r}")
        counts[name.strip()] = int(count)
    return counts


def _minute_argument(value: str) -> dt.datetime:
    try:
        return parse_minute_key(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `vt-dagster emulator`."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key clients must send in x-apikey")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated batches")
    parser.add_argument("--objects-per-minute", type=_objects_argument, default=None,
                        help="objects per minute batch: N for every feed, or files=N,urls=M,...")
    parser.add_argument("--real-scale", action="store_true",
                        help="production volumes (files: 1,500 objects, ~2 MB a minute)")
    parser.add_argument("--batch-dir", default=None,
                        help="serve the *.bz2 batches found under this folder instead of generating")
    parser.add_argument("--gap-minutes", type=_comma_list, default=[], help="YYYYMMDDhhmm,... that answer 404")
    parser.add_argument("--gap-rate", type=float, default=0.0, help="fraction of minutes that answer 404")
    parser.add_argument("--rate-limit", type=int, default=0,
                        help="API requests per minute before 429 (0 = no limit)")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="probability of a 503 per API request")
    parser.add_argument("--slow-seconds", type=float, default=0.0, help="delay before every answer")
    parser.add_argument("--truncate-rate", type=float, default=0.0, help="probability a download is cut short")
    parser.add_argument("--licensed-feeds", type=_comma_list, default=None,
                        help=f"feeds the key may read (default all: {','.join(FEEDS)})")
    parser.add_argument("--now", type=_minute_argument, default=None,
                        help="freeze the emulator's clock at this UTC minute (YYYYMMDDhhmm)")


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    objects: int | dict[str, int] = dict(REAL_SCALE if args.real_scale else DEFAULT_OBJECTS_PER_MINUTE)
    if isinstance(args.objects_per_minute, int):
        objects = args.objects_per_minute
    elif args.objects_per_minute:
        objects.update(args.objects_per_minute)
    return EmulatorConfig(
        api_key=args.api_key, seed=args.seed, objects_per_minute=objects,
        licensed_feeds=args.licensed_feeds if args.licensed_feeds is not None else tuple(FEEDS),
        gap_minutes=args.gap_minutes, gap_rate=args.gap_rate, rate_limit_per_minute=args.rate_limit,
        fail_rate=args.fail_rate, slow_seconds=args.slow_seconds, truncate_rate=args.truncate_rate,
        batch_dir=args.batch_dir, now=args.now,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print one line saying where and with which key."""
    try:
        config = config_from_args(args)
        emulator = FeedsEmulator(config, host=args.host, port=args.port).start()
    except (ValueError, OSError) as error:
        print(f"vt-dagster emulator: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        print(f"VT feeds emulator serving VT_API_URL={emulator.base_url} VT_API_KEY={config.api_key}"
              + (f" (batches from {config.batch_dir})" if config.batch_dir else "")
              + " - Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        _restore_handlers(previous)
    return 0


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
