"""What the emulator answers: a `Reply`, and `EmulatorError` for VT's error format.

Shared by the routes, the fault injection and the HTTP handler, which each build or send replies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class EmulatorError(Exception):
    """An answer in VT's error format: `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    is_download: bool = False


def error_reply(error: EmulatorError) -> Reply:
    body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
    return Reply(error.status, body)


def json_reply(payload: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload, default=str).encode())
