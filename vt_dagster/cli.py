"""The `vt-dagster` command: local services, demo, and one-off maintenance commands.

Every subcommand is a thin shell over a function of the package, so what the CLI does is the
same code the assets run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """An error the user can fix; printed as one line, exit code 2."""


def _local_es(args: argparse.Namespace) -> int:
    from vt_dagster.local_cluster import LocalCluster
    from vt_dagster.local_es import LocalElasticsearch

    if args.nodes == 1:
        server: LocalElasticsearch | LocalCluster = LocalElasticsearch(home=args.home, port=args.port, heap=args.heap)
        what = "local Elasticsearch"
    else:
        server = LocalCluster(args.nodes, home=args.home, port=args.port, heap=args.heap)
        what = f"local Elasticsearch cluster ({args.nodes} nodes)"
    if args.action == "start":
        url = server.start(timeout=args.timeout)
        print(url)
    elif args.action == "stop":
        print(f"{what}: stopped" if server.stop() else f"{what}: was not running")
    else:
        status = server.status()
        print(status.describe())
        return 0 if status.running else 3
    return 0


def _node_count(value: str) -> int:
    from vt_dagster.local_cluster import MAX_NODES

    if not value.isdigit() or not 1 <= int(value) <= MAX_NODES:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_NODES}, not {value!r}")
    return int(value)


def _add_local_es(subparsers: argparse._SubParsersAction) -> None:
    from vt_dagster.local_cluster import TRANSPORT_OFFSET
    from vt_dagster.local_es import DEFAULT_HEAP, DEFAULT_PORT

    parser = subparsers.add_parser(
        "local-es",
        help="run a real Elasticsearch node or cluster on 127.0.0.1 (fetched from Maven Central)",
        description="Start, stop or query the local Elasticsearch used by the demo and tests: one node, or "
        "with --nodes N a cluster of N nodes. `start` prints the (first node's) URL once it is healthy "
        "(a cluster: green with every node) and reuses what runs, starting only nodes that do not. "
        "`status` and `stop` take the same flags.",
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--nodes", type=_node_count, default=1,
                        help="1: a single node (default); 2-9: a cluster, one home, HTTP and transport port each")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"HTTP port of the (first) node, the others follow: P, P+1, ...; transport ports "
                        f"P+{TRANSPORT_OFFSET}, ... (0: any free ports)")
    parser.add_argument("--home", type=Path, default=None,
                        help="home of the node (data, logs, state), or of the cluster (one folder per node)")
    parser.add_argument("--heap", default=DEFAULT_HEAP, help="JVM heap per node, e.g. 512m or 1g")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health")
    parser.set_defaults(handler=_local_es)


def _local_postgres(args: argparse.Namespace) -> int:
    from vt_dagster.local_postgres import LocalPostgres

    cluster = LocalPostgres(home=args.data_dir, port=args.port)
    if args.action == "start":
        print(cluster.start(timeout=args.timeout))
    elif args.action == "stop":
        print("local PostgreSQL: stopped" if cluster.stop() else "local PostgreSQL: was not running")
    else:
        status = cluster.status()
        print(status.describe())
        return 0 if status.running else 3
    return 0


def _add_local_postgres(subparsers: argparse._SubParsersAction) -> None:
    from vt_dagster.local_postgres import DEFAULT_PORT, START_TIMEOUT_S

    parser = subparsers.add_parser(
        "local-postgres",
        help="run a private PostgreSQL on 127.0.0.1 for the Dagster instance (Debian's server)",
        description="Start, stop or query a private PostgreSQL cluster in its own folder. `start` creates it "
        "on first use (a role and a database `vt_dagster`, a generated password), reuses a running one, and "
        "prints the postgresql:// URL for DAGSTER_PG_URL once it accepts connections.",
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="cluster folder (data, socket, log, password); default under VT_DAGSTER_CACHE")
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds to wait for the server")
    parser.set_defaults(handler=_local_postgres)


def _add_emulator(subparsers: argparse._SubParsersAction) -> None:
    from vt_dagster.emulator.cli import add_arguments, run_from_args

    parser = subparsers.add_parser(
        "emulator",
        help="serve the VT feeds API on 127.0.0.1 with generated (or folder) batches",
        description="A local HTTP emulator of the VirusTotal feeds API: the offline default.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_from_args)


def _demo(args: argparse.Namespace) -> int:
    from vt_dagster.demo import run_demo

    return run_demo(args.data_dir.resolve(), args.dagster_home.resolve(), es_port=args.es_port,
                    hours=args.hours, ui=not args.no_ui, ui_port=args.ui_port,
                    objects_per_minute=args.objects_per_minute)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return number


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    from vt_dagster.demo import DEFAULT_HOURS

    parser = subparsers.add_parser(
        "demo",
        help="offline demo: local Elasticsearch + VT emulator + Dagster webserver, daemon and a real backfill",
        description="Start the local Elasticsearch and the VT emulator, then `dagster dev` (webserver + daemon) "
        "on the demo's instance; run the setup_elasticsearch job and a backfill of the last hours of the "
        "enabled feeds (VT_FEEDS) through the webserver, print its progress, a look-up and a search, and "
        "leave the Dagster UI up until Ctrl-C.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("vt_data"), help="VT_DATA_DIR for the demo")
    parser.add_argument("--dagster-home", type=Path, default=Path(".dagster_home"), help="DAGSTER_HOME")
    parser.add_argument("--es-port", type=int, default=9200, help="port of the local Elasticsearch")
    parser.add_argument("--hours", type=float, default=DEFAULT_HOURS, help="how many recent hours to backfill")
    parser.add_argument("--ui-port", type=int, default=3000, help="port of the Dagster UI")
    parser.add_argument("--objects-per-minute", type=_positive_int, default=None,
                        help="objects in every emulated batch (default: the emulator's, files 100, urls 80)")
    parser.add_argument("--no-ui", action="store_true", help="stop everything after the look-up and search")
    parser.set_defaults(handler=_demo)


def _serve(args: argparse.Namespace) -> int:
    from vt_dagster.service import serve

    return serve(args.dagster_home.resolve(), None if args.no_ui else args.ui_port, host=args.host)


def _add_serve(subparsers: argparse._SubParsersAction) -> None:
    from vt_dagster.service import default_dagster_home

    parser = subparsers.add_parser(
        "serve",
        help="run the service: one code server, the daemon and the Dagster UI on one instance",
        description="The live service on one machine: a long-lived code server, the Dagster daemon and the "
        "webserver, on DAGSTER_HOME (default ./.dagster_home), until Ctrl-C. Turn on vt_live_schedule "
        "in the UI to run live.",
    )
    parser.add_argument("--dagster-home", type=Path, default=default_dagster_home(), help="DAGSTER_HOME")
    parser.add_argument("--host", default="127.0.0.1", help="address of the Dagster UI")
    parser.add_argument("--ui-port", type=int, default=3000, help="port of the Dagster UI")
    parser.add_argument("--no-ui", action="store_true", help="code server and daemon only")
    parser.set_defaults(handler=_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vt-dagster",
        description="VirusTotal feeds into Elasticsearch, orchestrated by Dagster.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _COMMANDS:
        register(subparsers)
    return parser


def _add_summaries(subparsers: argparse._SubParsersAction) -> None:
    from vt_dagster.summaries_cli import add_summary_commands

    add_summary_commands(subparsers)


def _install_browser(args: argparse.Namespace) -> int:
    from vt_dagster.browser import install_chromium

    print(install_chromium())
    return 0


def _add_install_browser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "install-browser", help="make sure Debian's Chromium is there for the UI tests (apt, as root)",
        description="Prints the Chromium binary, installing the Debian package `chromium` first if needed.",
    )
    parser.set_defaults(handler=_install_browser)


def _install_system_packages(args: argparse.Namespace) -> int:
    from vt_dagster.system_packages import install_system_packages

    for package, where in install_system_packages().items():
        print(f"{package}: {where}")
    return 0


def _add_install_system_packages(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "install-system-packages",
        help="make sure Debian's Chromium and PostgreSQL are there for the tests (apt, as root)",
        description="Installs the Debian packages `chromium` (UI tests) and `postgresql` (local-postgres, the "
        "tests on a Postgres instance) when missing, in one apt run, and prints where each is.",
    )
    parser.set_defaults(handler=_install_system_packages)


def _add_elastic(subparsers: argparse._SubParsersAction) -> None:
    from vt_dagster.elastic_cli import add_elastic_commands

    add_elastic_commands(subparsers)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_local_es, _add_local_postgres, _add_emulator, _add_demo, _add_serve, _add_summaries, _add_elastic,
    _add_install_browser, _add_install_system_packages,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; SIGTERM stops it as Ctrl-C does: one line saying what was done, exit
    code 143 (130 for Ctrl-C), no temp file left."""
    from vt_dagster.interrupts import StopSignals

    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    with StopSignals(f"vt-dagster {args.command}") as signals:
        try:
            return handler(args)
        except KeyboardInterrupt as exc:
            return signals.report(exc)
        except (CommandError, RuntimeError, ValueError, OSError) as exc:
            print(f"vt-dagster {args.command}: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
