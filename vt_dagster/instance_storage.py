"""The single-machine instance's SQLite storage, with its database connections kept open.

Dagster's SQLite storages build a new SQLAlchemy engine for every query and every event
(`create_engine` inside each `connect`), so every one pays SQLAlchemy's set-up, compiles its
SQL afresh, opens the file and, closing it as the last connection, checkpoints the WAL. On the
live service that is most of what Dagster costs besides starting processes: the daemon polls
the run queue, sensors, schedules and monitoring every few seconds, and a live run writes a
couple of hundred events. Measured on 2 cores (bench/instance_storage): an asset event 11.7 ms
of CPU with Dagster's classes, 3.1 ms here; a run-queue poll 4.3 ms, 0.9 ms here.

These are Dagster's classes with one change: each keeps one engine per database file, whose
pool keeps connections open. The files, schema and layout are Dagster's own (`storage: sqlite`
reads the same folder). A run's event file is closed when its events are deleted, and at most
`OPEN_RUN_SHARDS` of them stay open in a process, so a long-lived daemon or webserver does not
collect open files. Open files matter beyond their count: SQLite deletes a file's WAL when its
last connection closes, so a reader keeping a run's file open keeps the writer's WAL on disk.
A process therefore closes a run file it has not used for `IDLE_RUN_SHARD_S`, and every file
it still has open when it exits.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster._config import StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils import mkdir_p

# Run event files a process keeps open besides the index: a run worker writes one; the daemon
# and the webserver read the few runs in progress or on screen.
OPEN_RUN_SHARDS = 8
# A run file this process has not used for this long is closed (see the module's docstring).
IDLE_RUN_SHARD_S = 30.0


def pooled_sqlite_engine(conn_string: str, busy_timeout_s: float | None = None) -> sa.engine.Engine:
    """An engine whose pool keeps its SQLite connections open between uses.

    Any thread may use a connection the pool hands out (one at a time), as SQLAlchemy's own
    default for file databases allows.
    """
    connect_args: dict[str, Any] = {"check_same_thread": False}
    if busy_timeout_s is not None:
        connect_args["timeout"] = busy_timeout_s
    return sa.create_engine(conn_string, poolclass=sa.pool.QueuePool, connect_args=connect_args)


class _ProcessEngine:
    """One engine for one database file, created on first use and remade in a forked child
    (which must not use its parent's open connections)."""

    def __init__(self, conn_string: str, busy_timeout_s: float | None = None):
        self._conn_string = conn_string
        self._busy_timeout_s = busy_timeout_s
        self._engine: sa.engine.Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.last_used = time.monotonic()
        _ENGINES.add(self)

    def get(self) -> sa.engine.Engine:
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)
                self._engine = pooled_sqlite_engine(self._conn_string, self._busy_timeout_s)
                self._pid = os.getpid()
            return self._engine

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None

    @contextmanager
    def begin(self) -> Iterator[sa.engine.Connection]:
        self.last_used = time.monotonic()
        with self.get().connect() as conn, conn.begin():
            yield conn


_ENGINES: weakref.WeakSet[_ProcessEngine] = weakref.WeakSet()


@atexit.register
def _close_engines_at_exit() -> None:
    """Closes what a process that never disposed its instance left open, so that SQLite
    checkpoints and deletes the WALs (else each stays beside its file until it is opened again)."""
    for engine in list(_ENGINES):
        engine.dispose()


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage (`runs.db`), on one engine."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(conn_string, inst_data)
        self._pooled = _ProcessEngine(conn_string)
        self.disposed_with: list[Any] = []

    @contextmanager
    def connect(self) -> Iterator[sa.engine.Connection]:
        with self._pooled.begin() as conn:
            yield conn

    def dispose(self) -> None:
        """Closes runs.db, and what was handed over in `disposed_with`: the instance disposes
        its run and event storages but never its schedule storage."""
        super().dispose()
        self._pooled.dispose()
        for storage in self.disposed_with:
            storage.dispose()


class PooledSqliteScheduleStorage(SqliteScheduleStorage):
    """Dagster's SQLite schedule and sensor storage (`schedules.db`), on one engine."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(conn_string, inst_data)
        self._pooled = _ProcessEngine(conn_string)

    @contextmanager
    def connect(self) -> Iterator[sa.engine.Connection]:
        with self._pooled.begin() as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()
        self._pooled.dispose()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event storage (an index file and one file per run), one engine a file."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._shard_engines: OrderedDict[str, _ProcessEngine] = OrderedDict()
        self._shard_engines_lock = threading.Lock()
        super().__init__(base_dir, inst_data)

    def _shard_engine(self, shard: str) -> _ProcessEngine:
        with self._shard_engines_lock:
            engine = self._shard_engines.get(shard)
            if engine is None:
                engine = _ProcessEngine(self.conn_string_for_shard(shard), SQLITE_BUSY_TIMEOUT_SECONDS)
                self._shard_engines[shard] = engine
            self._shard_engines.move_to_end(shard)
            run_shards = [name for name in self._shard_engines if name not in (INDEX_SHARD_NAME, shard)]
            idle_since = time.monotonic() - IDLE_RUN_SHARD_S
            over = max(0, len(run_shards) + 1 - OPEN_RUN_SHARDS)
            for index, name in enumerate(run_shards):
                if index < over or self._shard_engines[name].last_used < idle_since:
                    self._shard_engines.pop(name).dispose()
            return engine

    def _forget_shard(self, shard: str) -> None:
        with self._shard_engines_lock:
            engine = self._shard_engines.pop(shard, None)
        if engine is not None:
            engine.dispose()

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.engine.Connection]:
        with self._db_lock:
            engine = self._shard_engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine.get())
                self._initialized_dbs.add(shard)
            with engine.begin() as conn:
                yield conn

    def delete_events(self, run_id: str) -> None:
        """Deletes the run's events and closes its file, so that removing the file frees it."""
        super().delete_events(run_id)
        self._forget_shard(run_id)

    def wipe(self) -> None:
        with self._shard_engines_lock:
            shards = [name for name in self._shard_engines if name != INDEX_SHARD_NAME]
        for shard in shards:
            self._forget_shard(shard)
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._shard_engines_lock:
            engines = list(self._shard_engines.values())
            self._shard_engines.clear()
        for engine in engines:
            engine.dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite` (same folder layout under `base_dir`) on the pooled storages above."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._run_storage.disposed_with.append(self._schedule_storage)
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": StringSource}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]) -> PooledSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @classmethod
    def from_local(cls, base_dir: str, inst_data: ConfigurableClassData | None = None) -> PooledSqliteStorage:
        mkdir_p(base_dir)
        return cls(base_dir, inst_data=inst_data)
