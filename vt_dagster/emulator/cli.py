"""The command line `vt-dagster emulator ...`: its options, the config they make, serving until a signal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
from typing import Any

from vt_dagster.emulator.config import (
    DEFAULT_API_KEY,
    DEFAULT_HOST,
    DEFAULT_OBJECTS_PER_MINUTE,
    DEFAULT_PORT,
    REAL_SCALE,
    EmulatorConfig,
)
from vt_dagster.emulator.server import FeedsEmulator
from vt_dagster.feeds import FEEDS, parse_minute_key


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
