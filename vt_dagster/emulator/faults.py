"""Fault injection and the quota: what makes the emulator misbehave on purpose.

Injected faults (5xx, 429, slow answers, truncated or stalled downloads, reset sockets) wait in a
`FaultQueue` for the requests they match; `RateLimiter` is VT's per-minute quota. Gaps and the
random fail/truncate rates are settings of `EmulatorConfig`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from vt_dagster.emulator.replies import EmulatorError

FAULT_KINDS = ("500", "503", "429", "slow", "truncate", "stall", "reset")
"""`slow` waits before answering; `truncate` sends half a download's body and closes; `stall`
sends half a download's body, waits, then the rest (a client is caught mid-write)."""
BODY_FAULTS = ("truncate", "stall")
DEFAULT_SLOW_FAULT_SECONDS = 2.0


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


def fault_name(slow: Fault | None, fault: Fault | None, truncated: bool) -> str | None:
    """What was done to a request, for its RequestRecord ("slow+503", "truncate", ...)."""
    names = ["slow"] if slow is not None else []
    if truncated:
        names.append("truncate")
    elif fault is not None and fault.kind != "truncate":
        names.append(fault.kind)
    return "+".join(names) or None


def injected_error(kind: str) -> EmulatorError:
    if kind == "429":
        return EmulatorError(429, "TooManyRequestsError", "injected fault: too many requests")
    return EmulatorError(int(kind), "TransientError", f"injected fault: HTTP {kind}")
