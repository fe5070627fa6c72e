"""Run Dagster's daemon or webserver with its watch of the code server polling every 15 s.

Each of them asks a `grpc_server` code location for its server id every second, to notice a
restarted code server and reload it (`WATCH_INTERVAL` in `dagster._grpc.server_watcher`, a
module constant with no setting). `vt-dagster serve` starts the code server, the daemon and
the webserver together and stops all three when one of them dies, so that poll finds the
same id all day long; it was about half of the idle service's CPU (measured on 2 cores:
the idle daemon and code server 1.00-1.23 CPU-s a minute polling every second, 0.58 every
15 s). A code server that does restart is still noticed, up to `WATCH_INTERVAL_S` later.

    python -m vt_dagster.code_server_watch dagster-daemon run -w workspace.yaml
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

WATCH_INTERVAL_S = 15.0
WATCHING_SCRIPTS = ("dagster-daemon", "dagster-webserver")


def slow_down_code_server_watch(interval_s: float = WATCH_INTERVAL_S) -> None:
    """Sets the interval the watch threads created from now on poll at; raises if this
    Dagster has no such constant any more (the pin is dagster 1.13.*)."""
    from dagster._grpc import server_watcher

    if not isinstance(getattr(server_watcher, "WATCH_INTERVAL", None), (int, float)):
        raise RuntimeError("dagster._grpc.server_watcher.WATCH_INTERVAL is gone: this Dagster is not the one "
                           "vt_dagster.code_server_watch was written for")
    server_watcher.WATCH_INTERVAL = interval_s


def main(argv: list[str]) -> int:
    """Runs the console script `argv[0]` of this environment with the rest of `argv`."""
    if not argv or argv[0] not in WATCHING_SCRIPTS:
        print(f"usage: python -m vt_dagster.code_server_watch {'|'.join(WATCHING_SCRIPTS)} ARGS...", file=sys.stderr)
        return 2
    found = list(entry_points(group="console_scripts", name=argv[0]))
    if not found:
        print(f"error: {argv[0]} is not a console script of this Python environment ({sys.executable})",
              file=sys.stderr)
        return 2
    slow_down_code_server_watch()
    sys.argv = argv
    result = found[0].load()()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
