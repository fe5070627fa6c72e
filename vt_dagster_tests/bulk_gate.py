"""A loopback HTTP hop in front of one Elasticsearch node that holds `_bulk` requests at a chosen
point: the node-kill test kills a node exactly when some, not all, batches are indexed.

Everything else passes through untouched; the answers are the node's own.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

# Headers about one connection, not the message: each hop sets its own.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te",
               "trailer", "upgrade"}


class BulkGate:
    """Forwards every request to `upstream`; the `hold_at`-th `_bulk` request (counted from 1)
    first runs `at_gate` with its body, and every `_bulk` request after it waits until
    `at_gate` returned."""

    def __init__(self, upstream: str, hold_at: int, at_gate: Callable[[bytes], None]) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.hold_at = hold_at
        self.at_gate = at_gate
        self.bulk_requests = 0
        self.passed = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="bulk-gate", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> BulkGate:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.passed.set()  # nothing stays held if the test failed before the gate
        self._server.shutdown()
        self._server.server_close()

    def before_bulk(self, body: bytes) -> None:
        with self._lock:
            self.bulk_requests += 1
            number = self.bulk_requests
        if number == self.hold_at:
            try:
                self.at_gate(body)
            finally:
                self.passed.set()
        elif number > self.hold_at:
            self.passed.wait()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if urlsplit(self.path).path.endswith("/_bulk"):
                    gate.before_bulk(body or b"")
                upstream = http.client.HTTPConnection(*gate.upstream, timeout=300)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
                pass

        return Forward
