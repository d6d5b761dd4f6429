"""The SQLite state backend: ``.rivet_state.db`` beside the config file.

Writes happen inside :meth:`SQLiteStateStore.transaction` (``BEGIN IMMEDIATE``), which yields
a :class:`SQLiteStateTx`: every state change of one commit step (a file and its chunk, a
cursor and its journal event) lands in one SQLite transaction or not at all. The database is
in WAL mode, so readers (``rivet state``) never block a running export. One store may be
shared by the threads of a parallel export; a lock serialises its use. A run lock is a row
naming the holder's host and pid: a holder on this host that is gone is taken over, one on
another host cannot be judged from here.

Also here: :func:`open_sqlite_store`, which refuses an empty or corrupt state file unless
told to start over. The interface is :mod:`rivet_core.state.base`; the SQL both backends
share is :mod:`rivet_core.state.sql`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from rivet_core.errors import StateError
from rivet_core.redact import redact
from rivet_core.state.base import StateStore, StateTx
from rivet_core.state.migrations import MIGRATIONS
from rivet_core.state.records import (
    ChunkRun,
    ChunkTask,
    CursorRecord,
    FileRecord,
    JournalEvent,
    LockRecord,
    RunRecord,
    iso,
    utc_now,
)
from rivet_core.state.sql import TASK_COLUMNS, SqlStateStore, SqlStateTx, task

STATE_FILE = ".rivet_state.db"

__all__ = [
    "STATE_FILE",
    "ChunkRun",
    "ChunkTask",
    "CursorRecord",
    "FileRecord",
    "JournalEvent",
    "LockRecord",
    "RunRecord",
    "SQLiteStateStore",
    "SQLiteStateTx",
    "StateStore",
    "StateTx",
    "iso",
    "open_sqlite_store",
    "state_error",
    "utc_now",
]


class SQLiteStateTx(SqlStateTx):
    """The write operations, all inside one open SQLite transaction."""

    db: sqlite3.Connection

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    def record_run(self, record: RunRecord) -> None:
        # REPLACE gives the row a new rowid: a re-recorded run sorts as the newest of its
        # instant, as the runs listing expects.
        self.db.execute(
            "INSERT OR REPLACE INTO runs (run_id, export_name, mode, status, started_at, "
            "finished_at, rows, files, bytes, duration_ms, peak_rss_mb, retries, error, "
            "tool_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (record.run_id, record.export_name, record.mode, record.status,
             record.started_at, record.finished_at, record.rows, record.files,
             record.bytes, record.duration_ms, record.peak_rss_mb, record.retries,
             redact(record.error) if record.error else None, record.tool_version),
        )

    def claim_chunk(self, run_id: str, max_attempts: int,
                    skip: Collection[int] = ()) -> ChunkTask | None:
        # BEGIN IMMEDIATE holds the database's write lock: no other claim runs between the
        # SELECT and the UPDATE.
        row = self.db.execute(
            f"SELECT idx FROM chunk_tasks WHERE run_id = ? AND {self.claimable(skip)} "
            "ORDER BY idx LIMIT 1", (run_id, max_attempts)).fetchone()
        if row is None:
            return None
        self.db.execute(
            "UPDATE chunk_tasks SET status = 'running', attempts = attempts + 1, "
            "updated_at = ? WHERE run_id = ? AND idx = ?", (iso(utc_now()), run_id, row[0]))
        return task(self.db.execute(f"SELECT {TASK_COLUMNS} FROM chunk_tasks WHERE "
                                    "run_id = ? AND idx = ?", (run_id, row[0])).fetchone())

    # ------------------------------------------------------------------------- locks

    def live_lock(self, export_name: str) -> LockRecord | None:
        holder = self.recorded_lock(export_name)
        return holder if holder is not None and holder.holder_alive() else None

    def acquire_lock(self, export_name: str, run_id: str) -> LockRecord | None:
        """A lock whose holder died on this host is taken over; one held on another host
        counts as live (see :attr:`SQLiteStateStore.sees_remote_holders`)."""
        holder = self.live_lock(export_name)
        if holder is not None:
            return holder
        self.db.execute("DELETE FROM locks WHERE export_name = ?", (export_name,))
        self.db.execute(
            "INSERT INTO locks (export_name, run_id, pid, host, acquired_at) "
            "VALUES (?,?,?,?,?)",
            (export_name, run_id, os.getpid(), socket.gethostname(), iso(utc_now())))
        return None

    def release_lock(self, export_name: str, run_id: str) -> None:
        self.db.execute("DELETE FROM locks WHERE export_name = ? AND run_id = ?",
                        (export_name, run_id))


class SQLiteStateStore(SqlStateStore):
    """Durable state in one SQLite file.

    Every SQLite failure (a full disk, a read-only file system, a corrupt file) surfaces as
    a :class:`~rivet_core.errors.StateError` naming the file, with a hint: the transaction
    it interrupted is rolled back, so nothing half-recorded remains."""

    backend: ClassVar[str] = "sqlite"
    sees_remote_holders: ClassVar[bool] = False
    RUN_ORDER: ClassVar[str] = "rowid"

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        super().__init__()
        self.path = path
        try:
            self.db = _connect(path, readonly=readonly)
            if not readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=30000")
            if not readonly:
                self._migrate()
        except sqlite3.Error as exc:
            raise state_error(path, exc) from None

    @property
    def location(self) -> str:
        return str(self.path)

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TEXT NOT NULL)"
        )
        version = self.db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StateError(
                f"state database {self.path} has schema version {version}, newer than this "
                f"Rivet understands ({len(MIGRATIONS)})", hint="upgrade rivet-cli")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript would COMMIT first; run statements one by one in our transaction.
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_version VALUES (?, ?)",
                                (number, iso(utc_now())))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self._query("SELECT MAX(version) FROM schema_version")[0][0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SQLiteStateTx]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` if the block raises)."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise state_error(self.path, exc) from None
            try:
                yield SQLiteStateTx(self.db)
                self.db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise state_error(self.path, exc) from None
                raise

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self.db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise state_error(self.path, exc) from None

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self.db.close()


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if not readonly:
        return sqlite3.connect(path, timeout=30, isolation_level=None,
                               check_same_thread=False)
    uri = path.absolute().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None,
                             check_same_thread=False)
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        if os.access(path.parent, os.W_OK):
            raise
    # A WAL database on a read-only file system cannot create its shared-memory file;
    # nothing can write it either, so it is read as an immutable file.
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                           check_same_thread=False)


def state_error(path: Path, exc: sqlite3.Error) -> StateError:
    """What a SQLite failure means for the state at ``path``, with what to do about it."""
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered or _almost_full(path):
        return StateError(
            f"state database {path}: no space left on its file system ({text})",
            hint="free space there and run again: nothing after the last recorded step was "
                 "recorded, cursors stay where they were, and the run is not certified")
    if "readonly" in lowered or "read-only" in lowered or not os.access(path.parent, os.W_OK):
        return StateError(
            f"state database {path} is read-only ({text})",
            hint=f"Rivet writes {path.name} and its -wal and -shm files beside the config; "
                 "make that directory writable")
    if "not a database" in lowered or "malformed" in lowered:
        return StateError(
            f"state database {path} is corrupt ({text})",
            hint="restore it from a backup, or run `rivet run --init-state` to start with "
                 "empty state (the corrupt file is kept beside it; cursors and checkpoints "
                 "in it are not used)")
    if "locked" in lowered or "busy" in lowered:
        return StateError(f"state database {path} is busy ({text})",
                          hint="another process holds it; try again when it is done")
    return StateError(f"state database {path}: {text}")


def _almost_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < (1 << 20)
    except OSError:
        return False


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def open_sqlite_store(path: Path, *, init: bool = False,
                      inspect: bool = False) -> SQLiteStateStore:
    """The state store in the file ``path`` (``.rivet_state.db`` beside the config). An
    existing state file that is empty or corrupt is refused (its cursors and checkpoints
    would silently be lost) unless ``init`` (``rivet run --init-state``) says to start over,
    which keeps the old file beside it as ``.rivet_state.db.empty-<time>`` or
    ``.corrupt-<time>``. ``inspect`` is for commands that only read: a state file on a
    read-only file system is then opened read-only."""
    if inspect and path.exists() and not os.access(path.parent, os.W_OK):
        return SQLiteStateStore(path, readonly=True)
    if path.exists() and path.stat().st_size == 0:
        if not init:
            raise StateError(
                f"state file {path} is empty (0 bytes): it was truncated or replaced, and "
                "the cursors and chunk checkpoints it held are gone",
                hint="restore it from a backup, or run `rivet run --init-state` to start "
                     "with empty state (incremental exports then export everything again)")
        _set_aside(path, "empty")
    try:
        return SQLiteStateStore(path)
    except StateError:
        if not (init and path.exists() and _corrupt(path)):
            raise
    _set_aside(path, "corrupt")
    return SQLiteStateStore(path)


def _corrupt(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return not f.read(16).startswith(b"SQLite format 3\0")
    except OSError:
        return False


def _set_aside(path: Path, why: str) -> None:
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    for suffix in ("", "-wal", "-shm"):
        old = path.with_name(path.name + suffix)
        if old.exists():
            old.rename(path.with_name(f"{path.name}{suffix}.{why}-{stamp}"))
