"""A client for the VT feeds API: minute batches and hourly packages, streamed safely to disk.

Free of Dagster so the CLI, the assets and the tests share it. What it promises:
- the API key goes in the `x-apikey` header of API requests only: never to the download host
  the API redirects to, never into a message, log line or exception;
- nothing half-written ever sits at a batch's final path (temp file, fsync, verify, rename);
- 404 is a normal "no batch this minute"; 401/403 stop at once; 429, 5xx and network faults
  are retried with bounded exponential backoff and jitter; 400 NotAvailableYet waits a while.

Every API request and download is an APM span (`external`/`http`) when a transaction is active
(see `vt_dagster.apm`; a no-op otherwise). Span names are path templates such as
`GET /feeds/files/{minute}`; a download span names its host only, never the download URL,
whose path or query carries the token.
"""

from __future__ import annotations

import bz2
import contextlib
import itertools
import random
import re
import socket
import tarfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable
from urllib.parse import urlsplit, urlunsplit

import elasticapm
import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from vt_dagster.decoded_batches import DecodedBatches
from vt_dagster.feeds import Feed, get_feed, parse_hour_key, parse_minute_key
from vt_dagster.interrupts import StopRequested
from vt_dagster.storage import BatchCheck, BatchVerifier, atomic_writer

DEFAULT_API_URL = "https://www.virustotal.com/api/v3"
DOWNLOAD_CHUNK = 1 << 20
USER_AGENT = "vt_dagster/0.1 (+feeds)"
_MINUTE_IN_NAME = re.compile(r"(?<!\d)(\d{12})(?!\d)")


class FeedError(RuntimeError):
    """A VT feeds failure described in one line (never containing the API key)."""


class FeedAuthError(FeedError):
    """401/403: retrying cannot help; the operator must fix the key or the licence."""


class NotAvailableYetError(FeedError):
    """400 NotAvailableYet: the batch exists later; ask again in a while."""


class TransientFeedError(FeedError):
    """429/5xx/network faults that outlasted the retry budget."""


@dataclass
class DownloadResult:
    """What happened to one minute batch: status is `downloaded` or `missing`."""

    batch: str
    status: str
    http_status: int
    attempts: int = 1
    bytes: int = 0
    objects: int = 0
    sha256: str = ""
    duration_s: float = 0.0
    source: str = "minute"


@dataclass
class RetryPolicy:
    """Bounded retries: `max_attempts` per request, backoff `base * 2**n` capped, full jitter."""

    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    not_available_wait_s: float = 20.0
    not_available_attempts: int = 3

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))


@dataclass
class _Attempts:
    count: int = 0


@dataclass(frozen=True)
class _SpanName:
    """The span of one API path: `GET /feeds/files/{minute}` labelled with the batch it asked for."""

    template: str
    labels: dict[str, str]

    @property
    def download(self) -> str:
        return f"{self.template} (download)"


@dataclass
class FeedsClient:
    """One pooled `requests` session per client; safe to share between download threads."""

    api_key: str
    api_url: str = DEFAULT_API_URL
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pool_size: int = 8
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_key.strip():
            raise FeedAuthError("VT_API_KEY is empty: set it to a VT API key with a feeds licence")
        self.api_url = self.api_url.rstrip("/")
        self._session = requests.Session()
        self._adapter = _AbortableAdapter(pool_connections=self.pool_size, pool_maxsize=self.pool_size, max_retries=0)
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)
        self._aborted = threading.Event()
        self._session.headers["User-Agent"] = USER_AGENT
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeedsClient(api_url={self.api_url!r}, api_key=<redacted>)"

    def close(self) -> None:
        self._session.close()

    def abort(self) -> None:
        """Stop every request of this client now, from any thread: open connections are shut (a
        read waiting on a slow server returns at once), back-off waits end, and each request in
        flight or asked for later raises StopRequested; a download's temp file is removed."""
        self._aborted.set()
        self._adapter.shut_connections()

    def __enter__(self) -> FeedsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public -------------------------------------------------------------------------

    def download_minute(
        self, feed: Feed | str, batch: str, dest: Path, keep: DecodedBatches | None = None
    ) -> DownloadResult:
        """Fetch one minute batch to `dest` (atomically, verified); a 404 is `missing`. With
        `keep`, the batch the check decoded goes there for the stages after this one."""
        feed = get_feed(feed) if isinstance(feed, str) else feed
        parse_minute_key(batch)
        started = time.monotonic()
        attempts = _Attempts()
        url = f"{self.api_url}/feeds/{feed.api_path}/{batch}"
        span = _SpanName(f"GET /feeds/{feed.api_path}/{{minute}}", {"feed": feed.name, "batch": batch})
        location = self._resolve_download(url, f"{feed.name} batch {batch}", attempts, span)
        if location is None:
            return DownloadResult(batch, "missing", 404, attempts.count, duration_s=time.monotonic() - started)
        check = self._stream_to(location, dest, f"{feed.name} batch {batch}", attempts, span, verify=True, keep=keep)
        return DownloadResult(
            batch, "downloaded", 200, attempts.count, check.bytes, check.objects, check.sha256,
            time.monotonic() - started,
        )

    def download_hour(self, feed: Feed | str, hour: str, dest: Path) -> tuple[bool, int]:
        """Fetch the hourly `.tar.bz2` to `dest`; (False, attempts) when VT has no package (404)."""
        feed = get_feed(feed) if isinstance(feed, str) else feed
        parse_hour_key(hour)
        attempts = _Attempts()
        url = f"{self.api_url}/feeds/{feed.api_path}/hourly/{hour}"
        span = _SpanName(f"GET /feeds/{feed.api_path}/hourly/{{hour}}", {"feed": feed.name, "hour": hour})
        what = f"{feed.name} hourly package {hour}"
        location = self._resolve_download(url, what, attempts, span, patient=False)
        if location is None:
            return False, attempts.count
        self._stream_to(location, dest, what, attempts, span, verify=False)
        return True, attempts.count

    # -- requests -----------------------------------------------------------------------

    def _resolve_download(
        self, url: str, what: str, attempts: _Attempts, span: _SpanName, patient: bool = True
    ) -> str | None:
        """Ask the API for the batch; returns the download URL from its 302, or None on 404.

        `patient`: wait and ask again on 400 NotAvailableYet (a minute batch due any moment);
        hourly packages are not waited for, their minutes are fetched one by one instead.
        """
        not_available = 0
        while True:
            response = self._request(url, what, attempts, with_key=True, span=span)
            status = response.status_code
            if status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                response.close()
                if not location:
                    raise FeedError(f"{what}: VT answered {status} without a download location")
                return requests.compat.urljoin(url, location)
            if status == 200:
                # Some proxies follow the redirect for us: the API URL then serves the body.
                response.close()
                return url
            code, message = _error_of(response)
            if status == 404:
                return None
            if status == 400 and code == "NotAvailableYet":
                not_available += 1
                if not patient or not_available >= self.retry.not_available_attempts:
                    raise NotAvailableYetError(f"{what} is not available yet (400 NotAvailableYet): try later")
                self._wait(self.retry.not_available_wait_s)
                continue
            raise _error_for(status, code, message, what)

    def _request(
        self, url: str, what: str, attempts: _Attempts, *, with_key: bool, stream: bool = False,
        span: _SpanName | None = None,
    ) -> requests.Response:
        """One GET with retries for 429, 5xx and network faults; other answers are returned.

        With `span`, each attempt is an APM span (the API URL is safe to show: the key
        travels in a header).
        """
        headers = {"x-apikey": self.api_key} if with_key else {}
        while True:
            self._stop_if_aborted()
            attempts.count += 1
            try:
                with _http_span(span, url, attempts.count) as apm_span:
                    response = self._session.get(
                        url, headers=headers, allow_redirects=False, stream=stream,
                        timeout=(self.connect_timeout_s, self.read_timeout_s),
                    )
                    _record_http_status(apm_span, response.status_code)
            except requests.RequestException as exc:
                self._retry_or_raise(attempts, what, f"network error: {type(exc).__name__}")
                continue
            if response.status_code == 429 or response.status_code >= 500:
                code, _ = _error_of(response)
                response.close()
                self._retry_or_raise(attempts, what, f"{response.status_code} {code}".strip())
                continue
            return response

    def _retry_or_raise(self, attempts: _Attempts, what: str, reason: str) -> None:
        self._stop_if_aborted()  # an aborted request fails with a network error: not one to retry
        if attempts.count >= self.retry.max_attempts:
            raise TransientFeedError(f"{what}: gave up after {attempts.count} attempts (last: {reason})")
        with self._rng_lock:
            delay = self.retry.backoff(attempts.count, self._rng)
        self._wait(delay)

    def _wait(self, seconds: float) -> None:
        """`sleep` when one was given (tests), else a wait `abort` ends at once."""
        if self.sleep is time.sleep:
            self._aborted.wait(seconds)
        else:
            self.sleep(seconds)
        self._stop_if_aborted()

    def _stop_if_aborted(self) -> None:
        if self._aborted.is_set():
            raise StopRequested()

    def _stream_to(
        self, location: str, dest: Path, what: str, attempts: _Attempts, span: _SpanName, *, verify: bool,
        keep: DecodedBatches | None = None,
    ) -> BatchCheck:
        """Stream the download (no API key: it is another host) into `dest`, atomically.

        A connection cut mid-body, or a body that is not a whole bz2 stream, is retried like
        a 5xx; on every failure the temp file goes and `dest` is untouched. Each attempt is
        one span (request and body), holding the span of the bz2 verification done on the way.
        """
        while True:
            with _http_span(span, location, attempts.count + 1, download=True) as apm_span:
                try:
                    return self._stream_once(location, dest, what, attempts, apm_span, verify=verify, keep=keep)
                except (requests.RequestException, _IncompleteBody) as exc:
                    _mark_failed(apm_span)
                    reason = (exc.reason if isinstance(exc, _IncompleteBody)
                              else f"connection lost: {type(exc).__name__}")
            self._retry_or_raise(attempts, what, reason)

    def _stream_once(
        self, location: str, dest: Path, what: str, attempts: _Attempts, apm_span: Any, *, verify: bool,
        keep: DecodedBatches | None = None,
    ) -> BatchCheck:
        response = self._request(location, what, attempts, with_key=False, stream=True)
        try:
            _record_http_status(apm_span, response.status_code)
            if response.status_code != 200:
                code, message = _error_of(response)
                raise _error_for(response.status_code, code, message, f"{what} download")
            verifier = BatchVerifier(keep) if verify else None
            written = 0
            streaming_since = time.time()
            with atomic_writer(dest) as handle:
                for chunk in response.iter_content(DOWNLOAD_CHUNK):
                    self._stop_if_aborted()
                    handle.write(chunk)
                    written += len(chunk)
                    if verifier:
                        verifier.update(chunk)
                check = verifier.result() if verifier else BatchCheck(True, written)
                if verifier:
                    _record_streamed_verify(verifier, check, streaming_since)
                if not check.ok:
                    raise _IncompleteBody(check.error)
            if verifier:
                verifier.keep_decoded(dest)
            return check
        finally:
            response.close()


class _AbortableAdapter(HTTPAdapter):
    """An HTTPAdapter that remembers the connections it opens, so another thread can shut their
    sockets: a read blocked on a slow server (up to the read timeout) then returns at once."""

    def __init__(self, **kwargs: Any) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self._track(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        self._track(manager)
        return manager

    def _track(self, manager: Any) -> None:
        remember = self._remember
        manager.pool_classes_by_scheme = {
            scheme: type(f"Tracked{pool.__name__}", (pool,), {"_new_conn": _tracked_new_conn(pool, remember)})
            for scheme, pool in (("http", HTTPConnectionPool), ("https", HTTPSConnectionPool))
        }

    def _remember(self, connection: Any) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def shut_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _tracked_new_conn(pool: type, remember: Callable[[Any], None]) -> Callable[[Any], Any]:
    def new_conn(self: Any) -> Any:
        connection = pool._new_conn(self)
        remember(connection)
        return connection

    return new_conn


def _http_span(span: _SpanName | None, url: str, attempt: int, download: bool = False) -> Any:
    """An `external`/`http` span of one request; nothing without `span` or a transaction.

    An API request shows its URL (no key in it); a download shows only its host: the
    download URL carries its token. Not leaf (exit) spans: the agent would compress fast
    consecutive ones into one, losing each request's batch label.
    """
    if span is None or elasticapm.get_transaction_id() is None:
        return contextlib.nullcontext()
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.netloc.rsplit("@", 1)[-1]
    shown_url = urlunsplit((parts.scheme, host, "" if download else parts.path, "", ""))
    context = {
        "http": {"method": "GET", "url": shown_url},
        "destination": {"address": parts.hostname, "port": port},
    }
    return elasticapm.capture_span(
        span.download if download else span.template, span_type="external", span_subtype="http",
        extra=context, labels={**span.labels, "attempt": attempt},
    )


def _record_http_status(apm_span: Any, status: int) -> None:
    """Failure for 4xx/5xx except 404, which is VT's normal "no batch this minute"."""
    if apm_span is not None:
        apm_span.update_context("http", {"status_code": status})
        apm_span.outcome = "failure" if status >= 400 and status != 404 else "success"


def _mark_failed(apm_span: Any) -> None:
    if apm_span is not None:
        apm_span.outcome = "failure"


def _record_streamed_verify(verifier: BatchVerifier, check: BatchCheck, streaming_since: float) -> None:
    """The bz2 decoding done while the body streamed, as one span of its summed decode time.

    Decoding is interleaved with network reads, so the span starts with the stream and lasts
    as long as the decoding took in total.
    """
    with elasticapm.capture_span(
        "bz2 verify (streamed)", span_type="app", span_subtype="bz2", span_action="verify",
        labels={"bytes": check.bytes, "objects": check.objects, "ok": check.ok},
        start=streaming_since, duration=max(verifier.decode_seconds, 1e-6),
    ) as apm_span:
        if apm_span is not None and not check.ok:
            apm_span.outcome = "failure"


class _IncompleteBody(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _error_of(response: requests.Response) -> tuple[str, str]:
    """VT's `{"error": {"code", "message"}}`, tolerant of anything else."""
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), str(error.get("message", ""))[:200]
    except (ValueError, AttributeError):
        return "", ""


def _error_for(status: int, code: str, message: str, what: str) -> FeedError:
    if status == 401:
        return FeedAuthError(f"{what}: VT rejected the API key (401 {code or 'Unauthorized'}): check VT_API_KEY")
    if status == 403:
        return FeedAuthError(f"{what}: no licence for this feed (403 {code or 'Forbidden'}): {message}".rstrip(": "))
    return FeedError(f"{what}: unexpected answer {status} {code} {message}".strip())


def split_hourly_package(
    package: Path,
    hour: str,
    wanted: set[str],
    dest_for: Callable[[str], Path],
) -> dict[str, BatchCheck]:
    """Write the wanted minute files of an hourly `.tar.bz2` to their places, atomically.

    Members are matched by the 12-digit minute key in their name; a member that is plain
    JSON lines (not bz2) is compressed so every raw batch on disk has the same form. Minutes
    of `wanted` absent from the package are simply not in the result (VT made no batch).
    """
    start = parse_hour_key(hour)
    results: dict[str, BatchCheck] = {}
    try:
        with elasticapm.capture_span(
            "split hourly package", span_type="app", span_subtype="bz2", span_action="split",
            labels={"hour": hour, "minutes_wanted": len(wanted)},
        ), tarfile.open(package, mode="r:*") as tar:
            for member in tar:
                match = _MINUTE_IN_NAME.search(Path(member.name).name)
                if not member.isfile() or not match or match.group(1) not in wanted:
                    continue
                batch = match.group(1)
                if parse_minute_key(batch).replace(minute=0) != start:
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                results[batch] = _write_member(source, dest_for(batch))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TransientFeedError(f"hourly package {hour} is not a readable tar.bz2 ({exc})") from None
    return results


def _write_member(source: IO[bytes], dest: Path) -> BatchCheck:
    head = source.read(3)
    compressor = None if head == b"BZh" else bz2.BZ2Compressor(9)
    verifier = BatchVerifier()
    with atomic_writer(dest) as handle:
        for chunk in itertools.chain([head], iter(lambda: source.read(DOWNLOAD_CHUNK), b"")):
            data = compressor.compress(chunk) if compressor else chunk
            handle.write(data)
            verifier.update(data)
        if compressor:
            tail = compressor.flush()
            handle.write(tail)
            verifier.update(tail)
        check = verifier.result()
        if not check.ok:
            raise TransientFeedError(f"{dest.name} in the hourly package: {check.error}")
    return check
