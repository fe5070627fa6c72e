"""Stopping when told: SIGTERM and SIGINT end every command within seconds, nothing half-written.

One process-wide "stop" flag, with the callbacks that make blocked work return at once: a
download waiting on a slow server has its socket shut (`FeedsClient.abort`), summarizing
worker processes are told to stop (they remove their temp files on the way out). Work checks
the flag where it loops (per line, per chunk, between requests) and raises `StopRequested`;
everything that writes cleans its temp file on any exception, this one included.

Free of Dagster. The CLIs install `StopSignals` (SIGTERM then behaves as SIGINT); the assets
turn an interrupt into a failure that is not retried, keeping the batches already done.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stop = threading.Event()
_callbacks: list[Callable[[], None]] = []
_callbacks_lock = threading.Lock()


class StopRequested(KeyboardInterrupt):
    """Raised by work that saw the stop flag: a KeyboardInterrupt, so broad `except Exception`
    handlers let it through and every temp file is cleaned as for Ctrl-C."""


class Interrupted(KeyboardInterrupt):
    """A command was interrupted; `finished` says what it had done, for its last line.
    `exit_now`: a thread of its work did not stop in time, so the process must not wait for it."""

    def __init__(self, finished: str, *, exit_now: bool = False) -> None:
        super().__init__(finished)
        self.finished = finished
        self.exit_now = exit_now


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, SIGTERM, a stop request, or Dagster's own interrupt (a BaseException that is not an
    Exception, a generator closing, or an exit)."""
    return not isinstance(exc, (Exception, GeneratorExit, SystemExit))


def stop_requested() -> bool:
    return _stop.is_set()


def raise_if_stopped() -> None:
    if _stop.is_set():
        raise StopRequested()


def request_stop() -> None:
    """Set the stop flag and run every registered callback (each at most once per stop)."""
    if _stop.is_set():
        return
    _stop.set()
    with _callbacks_lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        try:
            callback()
        except Exception:  # noqa: BLE001 - one failing callback must not keep the others from running
            pass


def clear_stop() -> None:
    """Forget a stop (a command that handled it is done; the next starts afresh)."""
    _stop.clear()


@contextmanager
def on_stop(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` when a stop is requested while inside the block (at once if one already was)."""
    with _callbacks_lock:
        _callbacks.append(callback)
    try:
        if _stop.is_set():
            callback()
        yield
    finally:
        with _callbacks_lock:
            _callbacks.remove(callback)


@contextmanager
def stop_on_interrupt() -> Iterator[None]:
    """An interrupt raised inside the block (in the thread that waits on others) requests the stop,
    so the threads and processes working for it stop too, before the block's cleanup waits for them."""
    try:
        yield
    except BaseException as exc:
        if is_interrupt(exc):
            request_stop()
        raise


class StopSignals:
    """For a command's `main`: SIGINT and SIGTERM request the stop and raise KeyboardInterrupt in
    the main thread; a second one ends the process at once. Records which signal came, for the
    exit code (128 + its number: 130, 143)."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        clear_stop()
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        clear_stop()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            print(f"{self.program}: {signal.Signals(signum).name} again: stopping now", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signum = signum
        request_stop()
        raise KeyboardInterrupt

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "SIGINT"

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def report(self, exc: KeyboardInterrupt) -> int:
        """Print `<program>: interrupted (<signal>): <what was finished>`; the exit code. When a
        thread of the work could not be stopped in time, the process ends here, not waiting for it."""
        finished = exc.finished if isinstance(exc, Interrupted) else "stopped"
        print(f"{self.program}: interrupted ({self.name}): {finished}", file=sys.stderr, flush=True)
        if isinstance(exc, Interrupted) and exc.exit_now:
            sys.stdout.flush()
            os._exit(self.exit_code)
        return self.exit_code
