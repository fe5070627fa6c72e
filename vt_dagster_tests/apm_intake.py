"""A tiny local APM Server intake, for tests only.

It records what the real `elastic-apm` agent sends to `/intake/v2/events` (gzip NDJSON), and
answers the agent's server-info and central-config requests the way APM Server 8 does, so the
agent behaves as it would in production.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVER_INFO = {"build_date": "2025-01-01T00:00:00Z", "build_sha": "local", "publish_ready": True, "version": "8.15.0"}


class ApmIntake:
    """Start with `with ApmIntake() as intake:`; `intake.url` is the agent's `SERVER_URL`."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ApmIntake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Every event of one kind (`metadata`, `transaction`, `span`, `error`, `metricset`)."""
        with self._lock:
            return [event[kind] for event in self.events if kind in event]

    def wait_for(self, predicate: Callable[[ApmIntake], bool], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def _record(self, method: str, path: str, body: bytes, encoding: str | None) -> None:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        events = [json.loads(line) for line in body.splitlines() if line.strip()]
        with self._lock:
            self.requests.append((method, path))
            self.events.extend(events)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        intake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, payload: dict | None = None) -> None:
                body = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                with intake._lock:
                    intake.requests.append(("GET", self.path))
                if self.path.startswith("/config/v1/agents"):
                    self._reply(200, {})
                else:
                    self._reply(200, SERVER_INFO)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                else:
                    body = self.rfile.read(length)
                intake._record("POST", self.path, body, self.headers.get("Content-Encoding"))
                self._reply(202)

            def _read_chunked(self) -> bytes:
                parts = []
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()

        return Handler
