"""A private PostgreSQL cluster on loopback for the Dagster instance, from Debian's server.

SQLite is for one user on one machine: two runs starting at once on a fresh SQLite instance
can break it ("alembic_version has more than one head"). A service keeps Dagster on Postgres
(deploy/dagster.yaml, `DAGSTER_PG_URL`); this module gives one machine such a database without
touching the distribution's own cluster: `initdb` into its own folder, `pg_ctl` on 127.0.0.1
with the Unix socket in that folder too, one role and one database for Dagster.

Authentication: over TCP the role needs its password (scram-sha-256), generated at `initdb`
and kept beside the cluster (mode 0600). A loopback port is open to every local user, and the
instance holds run configuration, so "trust" on 127.0.0.1 would hand both to any of them.
The superuser logs in only through the Unix socket, whose folder only the cluster's owner (and
root) can enter: that is where roles and test databases are made.

PostgreSQL refuses to run as root, like Elasticsearch: as root, the cluster runs as the system
user `vt-postgres` (created on first use) through `setpriv`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vt_dagster.local_es import cache_root, free_port

POSTGRES_PACKAGE = "postgresql"
DEBIAN_BIN_ROOT = Path("/usr/lib/postgresql")
DEFAULT_PORT = 5433
"""5432 is the port of the cluster Debian's package creates for itself (`15/main`)."""
ROLE = "vt_dagster"
DATABASE = "vt_dagster"
SUPERUSER = "postgres"
SERVICE_USER = "vt-postgres"
START_TIMEOUT_S = 60.0


class LocalPostgresError(RuntimeError):
    """The local cluster could not be created, started or stopped; the message says why."""


def find_postgres_bin() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: `VT_POSTGRES_BIN`, else the newest Debian
    server (`/usr/lib/postgresql/<version>/bin`, not on PATH), else PATH."""
    candidates: list[Path] = []
    configured = os.environ.get("VT_POSTGRES_BIN")
    if configured:
        candidates.append(Path(configured))
    versions = sorted((p for p in DEBIAN_BIN_ROOT.glob("*/bin") if p.parent.name.isdigit()),
                      key=lambda p: int(p.parent.name), reverse=True)
    candidates += versions
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _require_bin() -> Path:
    found = find_postgres_bin()
    if found is None:
        raise LocalPostgresError("PostgreSQL is not installed: run `vt-dagster install-system-packages` as root "
                                 f"(Debian's `{POSTGRES_PACKAGE}`), or set VT_POSTGRES_BIN to its bin folder")
    return found


def _ensure_service_user() -> None:
    if subprocess.run(["id", "-u", SERVICE_USER], capture_output=True).returncode == 0:
        return
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        capture_output=True, text=True,
    )
    if result.returncode != 0 and subprocess.run(["id", "-u", SERVICE_USER], capture_output=True).returncode != 0:
        raise LocalPostgresError(f"could not create user {SERVICE_USER}: {result.stderr.strip()}")


def database_url(port: int, password: str | None, database: str = DATABASE, role: str = ROLE) -> str:
    """`postgresql://role[:password]@127.0.0.1:port/database` (the password is hex: no quoting)."""
    secret = f":{password}" if password else ""
    return f"postgresql://{role}{secret}@127.0.0.1:{port}/{database}"


@dataclass
class ClusterStatus:
    running: bool
    home: Path
    port: int | None = None
    pid: int | None = None

    def describe(self) -> str:
        if not self.running:
            return f"local PostgreSQL: not running (cluster folder {self.home})"
        # The password stays out: `start` prints the whole URL to whoever asks for it.
        return (f"local PostgreSQL: running at {database_url(self.port or 0, None)} "
                f"(pid {self.pid}, cluster folder {self.home})")


class LocalPostgres:
    """One cluster folder (data, socket, log, password) and the server running it."""

    def __init__(self, home: Path | None = None, port: int = DEFAULT_PORT) -> None:
        self.home = (home or cache_root() / "postgres" / "default").expanduser().resolve()
        self.port = port

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "socket"

    @property
    def log_path(self) -> Path:
        return self.home / "log" / "postgresql.log"

    @property
    def password_path(self) -> Path:
        return self.home / "password"

    def status(self) -> ClusterStatus:
        """From the server's own `postmaster.pid`, checked with `pg_ctl status`."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return ClusterStatus(False, self.home)
        except PermissionError:
            raise LocalPostgresError(f"cannot read {pid_file}: run this as the user who started the cluster") from None
        if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
            return ClusterStatus(False, self.home)  # written half-way by a server starting or stopping
        if self._pg_ctl("status", check=False).returncode != 0:
            return ClusterStatus(False, self.home)
        return ClusterStatus(True, self.home, port=int(lines[3]), pid=int(lines[0]))

    def url(self, with_password: bool = True, database: str = DATABASE) -> str:
        current = self.status()
        if not current.running:
            raise LocalPostgresError(f"the local PostgreSQL of {self.home} is not running: `vt-dagster local-postgres start`")
        return database_url(current.port or 0, self._password() if with_password else None, database)

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start the cluster (created on first use; a running one is reused) and return the
        URL of Dagster's database once the server accepts connections."""
        _require_bin()
        current = self.status()
        if not current.running:
            port = free_port() if self.port == 0 else self.port
            if _port_in_use(port):
                raise LocalPostgresError(f"port {port} on 127.0.0.1 is already taken by another process: choose --port")
            if not (self.data_dir / "PG_VERSION").is_file():
                self._create()
            self._start_server(port, timeout)
            current = self.status()
            if not current.running:
                raise LocalPostgresError(f"PostgreSQL started but is not running: {self._log_tail()}")
        password = self._password()
        with self.superuser_connection(current.port) as cursor:
            _ensure_role_and_database(cursor, password)
        return database_url(current.port or 0, password)

    def stop(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Stop the server ("fast": open sessions are ended, nothing is lost); False if none ran."""
        if not self.status().running:
            return False
        result = self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(int(timeout)), check=False)
        if result.returncode != 0 and self.status().running:
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", str(int(timeout)), check=False)
        return True

    @contextmanager
    def superuser_connection(self, port: int | None = None) -> Iterator[Any]:
        """A cursor of the superuser, through the cluster's own Unix socket, autocommit."""
        import psycopg2

        port = port or self.status().port
        try:
            connection = psycopg2.connect(host=str(self.socket_dir), port=port, user=SUPERUSER, dbname="postgres")
        except psycopg2.Error as exc:
            raise LocalPostgresError(f"cannot reach the local PostgreSQL through {self.socket_dir}: "
                                     f"{_first_line(exc)}") from None
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                try:
                    yield cursor
                except psycopg2.Error as exc:
                    raise LocalPostgresError(f"local PostgreSQL: {_first_line(exc)}") from None
        finally:
            connection.close()

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database owned by Dagster's role (a copy of `template` if given); its URL."""
        from psycopg2 import sql

        statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(ROLE))
        if template:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        with self.superuser_connection() as cursor:
            cursor.execute(statement)
        return self.url(database=name)

    def drop_database(self, name: str) -> None:
        from psycopg2 import sql

        with self.superuser_connection() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _password(self) -> str:
        try:
            return self.password_path.read_text().strip()
        except FileNotFoundError:
            raise LocalPostgresError(f"{self.password_path} is missing: remove {self.home} and start again "
                                     "(a new, empty cluster)") from None

    def _create(self) -> None:
        """`initdb` into a fresh data folder: superuser through the socket only, passwords over TCP."""
        bin_dir = _require_bin()
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)  # the service user must enter it; what is private inside is 0700/0600
        if not self.password_path.exists():
            descriptor = os.open(self.password_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(16) + "\n")
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # what an interrupted initdb left (no PG_VERSION)
        for folder in (self.data_dir, self.socket_dir, self.log_path.parent):
            folder.mkdir(mode=0o700, exist_ok=True)
        self._hand_to_service_user()
        result = subprocess.run(
            self._as_owner([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8",
                            "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256"]),
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-2:]
            raise LocalPostgresError(f"initdb failed in {self.data_dir}: {' | '.join(tail)}")

    def _start_server(self, port: int, timeout: float) -> None:
        self._hand_to_service_user()
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={self.socket_dir} "
                   "-c unix_socket_permissions=0700")
        result = self._pg_ctl("start", "-w", "-t", str(int(timeout)), "-l", str(self.log_path), "-o", options,
                              check=False)
        if result.returncode != 0:
            raise LocalPostgresError(f"PostgreSQL did not start on 127.0.0.1:{port}: {self._log_tail()}")

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = self._as_owner([str(_require_bin() / "pg_ctl"), "-D", str(self.data_dir), *args])
        # pg_ctl's server keeps no pipe of ours open: its output goes to the log (-l).
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise LocalPostgresError(f"pg_ctl {args[0]} failed: {(result.stderr or result.stdout).strip()}")
        return result

    def _as_owner(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        _ensure_service_user()
        return ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--clear-groups", "--", *command]

    def _hand_to_service_user(self) -> None:
        if os.geteuid() != 0:
            return
        _ensure_service_user()
        for folder in (self.data_dir, self.socket_dir, self.log_path.parent):
            subprocess.run(["chown", "-R", f"{SERVICE_USER}:", str(folder)], check=True)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"no log at {self.log_path}"
        problems = [line for line in lines if "FATAL" in line or "ERROR" in line]
        return (problems or lines or ["empty log"])[-1][:300] + f" (see {self.log_path})"


def _ensure_role_and_database(cursor: Any, password: str) -> None:
    """Dagster's role (its password from the cluster folder) and database, made when missing."""
    from psycopg2 import sql

    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
    verb = "ALTER" if cursor.fetchone() else "CREATE"
    cursor.execute(sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password)))
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
    if not cursor.fetchone():
        cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE)))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
