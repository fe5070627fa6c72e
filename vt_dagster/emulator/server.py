"""A local HTTP server that behaves like the VirusTotal feeds API (the project's offline default).

It mirrors what a client must cope with on the real API: the `x-apikey` header, a `302` to a
signed download URL that needs no key, bz2 minute batches and `.tar.bz2` hourly packages, the
60-minute / 2-hour lag (`400 NotAvailableYet`), the 7-day window, `404` gaps, `403` without a
licence and `429` past the quota. Faults (5xx, slow answers, truncated or stalled bodies, reset
sockets) can be injected in-process or over HTTP (`/_emulator/...`) so tests can drive a server running in
another process.

This module holds `FeedsEmulator` (lifecycle, recorded requests, batches, download tokens) and the
threaded HTTP server and handler that apply the faults; the endpoints are in `routes`, the
settings in `config`, the faults in `faults`, the batch cache and packages in `batches`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import os
import random
import re
import secrets
import socket
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vt_dagster.emulator.batches import BatchCache, build_hourly_package, index_batch_dir
from vt_dagster.emulator.config import DEFAULT_HOST, EmulatorConfig, floor_minute
from vt_dagster.emulator.faults import Fault, FaultQueue, RateLimiter, fault_name, injected_error
from vt_dagster.emulator.generator import generate_batch
from vt_dagster.emulator.replies import EmulatorError, Reply, error_reply
from vt_dagster.emulator.routes import (
    ADMIN_PREFIX,
    API_PREFIX,
    DOWNLOAD_PREFIX,
    admin_reply,
    api_reply,
    download_reply,
)
from vt_dagster.feeds import MINUTE_FORMAT, RETENTION, Feed, get_feed, parse_hour_key, parse_minute_key

log = logging.getLogger(__name__)

HOUR_WORKERS = min(8, os.cpu_count() or 2)
MAX_BODY_BYTES = 1024 * 1024
MINUTE = dt.timedelta(minutes=1)


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
        oldest = floor_minute(self.config.current_time()) - RETENTION
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
            self._send(admin_reply(self.emulator, method, path, body))
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
        self.emulator._record(method, path, reply.status, fault_name(slow, fault, truncate), had_api_key)
        self._send(reply, truncate=truncate, stall=stall)

    def _reply(self, method: str, path: str, is_download: bool, fault: Fault | None) -> Reply:
        try:
            if fault is not None and fault.kind in ("500", "503", "429"):
                raise injected_error(fault.kind)
            if is_download:
                return download_reply(self.emulator, method, path[len(DOWNLOAD_PREFIX):])
            return api_reply(self.emulator, method, path, self.headers.get("x-apikey"), self._origin())
        except EmulatorError as error:
            return error_reply(error)

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
