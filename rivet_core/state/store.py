"""The state store: the interface the runner and ``rivet state`` use, and its SQLite backend.

Writes happen inside :meth:`StateStore.transaction`, which yields a :class:`StateTx`: every
state change of one commit step (a file and its chunk, a cursor and its journal event) lands
in one SQLite transaction or not at all. The database lives beside the config file
(``.rivet_state.db``) in WAL mode, so readers (``rivet state``) never block a running export.
One store may be shared by the threads of a parallel export; a lock serialises its use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import attrs

from rivet_core import __version__
from rivet_core.errors import StateError
from rivet_core.redact import redact
from rivet_core.state.migrations import MIGRATIONS

STATE_FILE = ".rivet_state.db"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@attrs.frozen(kw_only=True)
class FileRecord:
    run_id: str
    export_name: str
    file_name: str
    uri: str
    rows: int
    bytes: int
    sha256: str
    format: str
    compression: str
    chunk_index: int | None = None
    created_at: str = ""


@attrs.frozen(kw_only=True)
class RunRecord:
    run_id: str
    export_name: str
    mode: str
    status: str
    started_at: str
    finished_at: str
    rows: int
    files: int
    bytes: int
    duration_ms: int
    peak_rss_mb: float | None
    retries: int = 0
    error: str | None = None
    tool_version: str = __version__


@attrs.frozen(kw_only=True)
class CursorRecord:
    export_name: str
    value: str
    """Typed JSON (see :mod:`rivet_core.runner.cursor`)."""
    run_id: str
    updated_at: str


@attrs.frozen(kw_only=True)
class ChunkRun:
    run_id: str
    export_name: str
    plan_hash: str
    status: str
    max_attempts: int
    created_at: str
    updated_at: str


@attrs.frozen(kw_only=True)
class ChunkTask:
    run_id: str
    idx: int
    lo: str | None
    hi: str | None
    expected_rows: int | None
    status: str
    attempts: int = 0
    rows: int | None = None
    files: int | None = None
    bytes: int | None = None
    last_error: str | None = None
    updated_at: str = ""


@attrs.frozen(kw_only=True)
class JournalEvent:
    id: int
    run_id: str
    export_name: str
    at: str
    event: str
    data: dict[str, Any]


@attrs.frozen(kw_only=True)
class LockRecord:
    export_name: str
    run_id: str
    pid: int
    host: str
    acquired_at: str

    def holder_alive(self) -> bool:
        """Whether the holding process still runs (only knowable on the same host)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class StateTx:
    """The write operations, all inside one open transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # ----------------------------------------------------------------- files and runs

    def record_file(self, record: FileRecord) -> None:
        """A committed file enters the manifest (after the destination committed it)."""
        self.db.execute(
            "INSERT INTO files (run_id, export_name, file_name, uri, rows, bytes, sha256, "
            "format, compression, chunk_index, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (record.run_id, record.export_name, record.file_name, redact(record.uri),
             record.rows, record.bytes, record.sha256, record.format, record.compression,
             record.chunk_index, record.created_at or iso(utc_now())),
        )

    def record_run(self, record: RunRecord) -> None:
        """A finished run's metrics: the last state write of a run."""
        self.db.execute(
            "INSERT OR REPLACE INTO runs (run_id, export_name, mode, status, started_at, "
            "finished_at, rows, files, bytes, duration_ms, peak_rss_mb, retries, error, "
            "tool_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (record.run_id, record.export_name, record.mode, record.status,
             record.started_at, record.finished_at, record.rows, record.files,
             record.bytes, record.duration_ms, record.peak_rss_mb, record.retries,
             redact(record.error) if record.error else None, record.tool_version),
        )

    def journal(self, run_id: str, export_name: str, event: str, **data: Any) -> None:
        payload = redact(json.dumps(data, default=str, sort_keys=True))
        self.db.execute(
            "INSERT INTO journal (run_id, export_name, at, event, data) VALUES (?,?,?,?,?)",
            (run_id, export_name, iso(utc_now()), event, payload),
        )

    def record_schema(self, export_name: str, run_id: str, columns: list[dict[str, Any]],
                      widths: dict[str, int]) -> None:
        """The schema (and text widths) of the export's latest successful run: what the
        next run's drift check compares with."""
        self.db.execute(
            "INSERT OR REPLACE INTO export_schemas (export_name, run_id, columns, widths, "
            "recorded_at) VALUES (?,?,?,?,?)",
            (export_name, run_id, json.dumps(columns), json.dumps(widths, sort_keys=True),
             iso(utc_now())),
        )

    # ---------------------------------------------------------------------- cursors

    def set_cursor(self, export_name: str, value: str, run_id: str) -> None:
        self.db.execute(
            "INSERT INTO cursors (export_name, value, run_id, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT (export_name) DO UPDATE SET value = excluded.value, "
            "run_id = excluded.run_id, updated_at = excluded.updated_at",
            (export_name, value, run_id, iso(utc_now())),
        )

    def reset_cursor(self, export_name: str) -> bool:
        return self.db.execute("DELETE FROM cursors WHERE export_name = ?",
                               (export_name,)).rowcount > 0

    # -------------------------------------------------------------- chunk checkpoints

    def create_chunk_run(self, run: ChunkRun, tasks: list[ChunkTask]) -> None:
        self.db.execute(
            "INSERT INTO chunk_runs (run_id, export_name, plan_hash, status, max_attempts, "
            "created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
            (run.run_id, run.export_name, run.plan_hash, run.status, run.max_attempts,
             run.created_at, run.updated_at),
        )
        self.db.executemany(
            "INSERT INTO chunk_tasks (run_id, idx, lo, hi, expected_rows, status, attempts, "
            "updated_at) VALUES (?,?,?,?,?,?,0,?)",
            [(t.run_id, t.idx, t.lo, t.hi, t.expected_rows, "pending", run.created_at)
             for t in tasks],
        )

    def claim_chunk(self, run_id: str, max_attempts: int,
                    skip: Collection[int] = ()) -> ChunkTask | None:
        """Move the first claimable task (pending, or failed with attempts left, and not in
        ``skip``) to running."""
        excluded = ",".join(str(int(idx)) for idx in skip)
        row = self.db.execute(
            "SELECT idx FROM chunk_tasks WHERE run_id = ? AND (status = 'pending' OR "
            "(status = 'failed' AND attempts < ?))"
            + (f" AND idx NOT IN ({excluded})" if excluded else "")
            + " ORDER BY idx LIMIT 1",
            (run_id, max_attempts),
        ).fetchone()
        if row is None:
            return None
        self.db.execute(
            "UPDATE chunk_tasks SET status = 'running', attempts = attempts + 1, "
            "updated_at = ? WHERE run_id = ? AND idx = ?", (iso(utc_now()), run_id, row[0]))
        return _task(self.db.execute(f"SELECT {_TASK_COLUMNS} FROM chunk_tasks WHERE "
                                     "run_id = ? AND idx = ?", (run_id, row[0])).fetchone())

    def complete_chunk(self, run_id: str, idx: int, *, rows: int, files: int,
                       bytes_: int) -> None:
        """Mark a running task completed; refuses if it is not running any more (its state
        was changed by someone other than the run)."""
        changed = self.db.execute(
            "UPDATE chunk_tasks SET status = 'completed', rows = ?, files = ?, bytes = ?, "
            "last_error = NULL, updated_at = ? WHERE run_id = ? AND idx = ? "
            "AND status = 'running'",
            (rows, files, bytes_, iso(utc_now()), run_id, idx),
        ).rowcount
        if changed != 1:
            raise StateError(f"chunk {idx} of run {run_id} is no longer recorded as running: "
                             "the chunk state was changed outside this run")

    def replace_chunk_files(self, export_name: str, run_id: str, idx: int,
                            records: list[FileRecord], *, rows: int) -> None:
        """``rivet repair``: a completed chunk's file records become ``records``, and its
        task's totals theirs."""
        self.db.execute("DELETE FROM files WHERE run_id = ? AND export_name = ? "
                        "AND chunk_index = ?", (run_id, export_name, idx))
        for record in records:
            self.record_file(record)
        self.db.execute("UPDATE chunk_tasks SET rows = ?, files = ?, bytes = ?, updated_at = ? "
                        "WHERE run_id = ? AND idx = ?",
                        (rows, len(records), sum(r.bytes for r in records), iso(utc_now()),
                         run_id, idx))

    def fail_chunk(self, run_id: str, idx: int, error: str) -> None:
        self.db.execute(
            "UPDATE chunk_tasks SET status = 'failed', last_error = ?, updated_at = ? "
            "WHERE run_id = ? AND idx = ? AND status = 'running'",
            (redact(error), iso(utc_now()), run_id, idx),
        )

    def reopen_tasks(self, run_id: str) -> int:
        """For a resume: tasks left running by a dead process, and failed ones, go back to
        pending (completed tasks never move). Attempts are kept as history."""
        return self.db.execute(
            "UPDATE chunk_tasks SET status = 'pending', updated_at = ? "
            "WHERE run_id = ? AND status IN ('running', 'failed')",
            (iso(utc_now()), run_id)).rowcount

    def finish_chunk_run(self, run_id: str, planned: int) -> None:
        """Mark a chunk run completed; refuses unless its ``planned`` tasks are all there
        and all completed (tasks removed behind the run's back do not count as done)."""
        total, completed = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'completed'), 0) FROM chunk_tasks "
            "WHERE run_id = ?", (run_id,)).fetchone()
        if total != planned or completed != planned:
            raise StateError(f"chunk run {run_id} planned {planned} chunk(s), but the state "
                             f"holds {total} task(s), {completed} completed: it was changed "
                             "outside this run, so the run is not certified",
                             hint="run the export again (without --resume)")
        row = self.db.execute("SELECT status FROM chunk_runs WHERE run_id = ?",
                              (run_id,)).fetchone()
        if row is None:
            raise StateError(f"chunk run {run_id} is no longer in the state store: it was "
                             "removed outside this run, so the run is not certified",
                             hint="run the export again (without --resume)")
        self.db.execute("UPDATE chunk_runs SET status = 'completed', updated_at = ? "
                        "WHERE run_id = ?", (iso(utc_now()), run_id))

    def delete_chunk_runs(self, export_name: str) -> int:
        runs = [r[0] for r in self.db.execute(
            "SELECT run_id FROM chunk_runs WHERE export_name = ?", (export_name,))]
        for run_id in runs:
            self.db.execute("DELETE FROM chunk_tasks WHERE run_id = ?", (run_id,))
            self.db.execute("DELETE FROM chunk_runs WHERE run_id = ?", (run_id,))
        return len(runs)

    # ------------------------------------------------------------------------- locks

    def live_lock(self, export_name: str) -> LockRecord | None:
        """The export's run lock if a process that is alive holds it."""
        row = self.db.execute(
            "SELECT export_name, run_id, pid, host, acquired_at FROM locks "
            "WHERE export_name = ?", (export_name,)).fetchone()
        if row is None:
            return None
        holder = LockRecord(export_name=row[0], run_id=row[1], pid=row[2], host=row[3],
                            acquired_at=row[4])
        return holder if holder.holder_alive() else None

    def refuse_while_running(self, export_name: str) -> None:
        """Raise :class:`StateError` if a live run holds the export: only that run may
        change the export's cursor and chunk state while it runs."""
        holder = self.live_lock(export_name)
        if holder is not None:
            raise StateError(
                f"export {export_name!r} is running (run {holder.run_id}, pid {holder.pid} "
                f"on {holder.host}, since {holder.acquired_at}); its state cannot change "
                "until that run ends",
                hint="wait for the run to finish, or stop it first (SIGTERM lets it abort "
                     "its open files)")

    def acquire_lock(self, export_name: str, run_id: str) -> LockRecord | None:
        """Take the export's run lock; returns the current holder if someone alive has it.

        A lock whose holder died on this host is taken over."""
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


_TASK_COLUMNS = ("run_id, idx, lo, hi, expected_rows, status, attempts, rows, files, bytes, "
                 "last_error, updated_at")


def _task(row: tuple[Any, ...]) -> ChunkTask:
    return ChunkTask(run_id=row[0], idx=row[1], lo=row[2], hi=row[3], expected_rows=row[4],
                     status=row[5], attempts=row[6], rows=row[7], files=row[8], bytes=row[9],
                     last_error=row[10], updated_at=row[11])


class StateStore:
    """Durable state in SQLite. The runner and the CLI use only the public methods here and
    :class:`StateTx`, so a shared server backend (``RIVET_STATE_URL``) can implement the same
    surface later.

    Every SQLite failure (a full disk, a read-only file system, a corrupt file) surfaces as
    a :class:`~rivet_core.errors.StateError` naming the file, with a hint: the transaction
    it interrupted is rolled back, so nothing half-recorded remains."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
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
        return int(self._read("SELECT MAX(version) FROM schema_version")[0][0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateTx]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` if the block raises)."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise state_error(self.path, exc) from None
            try:
                yield StateTx(self.db)
                self.db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise state_error(self.path, exc) from None
                raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self.db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise state_error(self.path, exc) from None

    # -------------------------------------------------------------------------- reads

    def files(self, export_name: str | None = None, *, run_id: str | None = None,
              limit: int = 50) -> list[FileRecord]:
        clauses, args = _filters(export_name=export_name, run_id=run_id)
        rows = self._read(
            "SELECT run_id, export_name, file_name, uri, rows, bytes, sha256, format, "
            f"compression, chunk_index, created_at FROM files {clauses} ORDER BY id DESC "
            "LIMIT ?", (*args, limit))
        return [FileRecord(run_id=r[0], export_name=r[1], file_name=r[2], uri=r[3], rows=r[4],
                           bytes=r[5], sha256=r[6], format=r[7], compression=r[8],
                           chunk_index=r[9], created_at=r[10]) for r in rows]

    def runs(self, export_name: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        clauses, args = _filters(export_name=export_name)
        rows = self._read(
            "SELECT run_id, export_name, mode, status, started_at, finished_at, rows, files, "
            "bytes, duration_ms, peak_rss_mb, retries, error, tool_version FROM runs "
            f"{clauses} ORDER BY started_at DESC, rowid DESC LIMIT ?", (*args, limit))
        return [RunRecord(run_id=r[0], export_name=r[1], mode=r[2], status=r[3],
                          started_at=r[4], finished_at=r[5], rows=r[6], files=r[7], bytes=r[8],
                          duration_ms=r[9], peak_rss_mb=r[10], retries=r[11], error=r[12],
                          tool_version=r[13]) for r in rows]

    def cursor(self, export_name: str) -> CursorRecord | None:
        rows = self._read("SELECT export_name, value, run_id, updated_at FROM cursors "
                          "WHERE export_name = ?", (export_name,))
        return _cursor(rows[0]) if rows else None

    def export_schema(self, export_name: str
                      ) -> tuple[str, list[dict[str, Any]], dict[str, int]] | None:
        """``(run_id, columns, widths)`` of the export's latest successful run, or None."""
        rows = self._read("SELECT run_id, columns, widths FROM export_schemas "
                          "WHERE export_name = ?", (export_name,))
        if not rows:
            return None
        return rows[0][0], json.loads(rows[0][1]), json.loads(rows[0][2])

    def cursors(self) -> list[CursorRecord]:
        return [_cursor(r) for r in self._read(
            "SELECT export_name, value, run_id, updated_at FROM cursors ORDER BY export_name")]

    def chunk_run(self, export_name: str, *, status: str | None = None,
                  run_id: str | None = None) -> ChunkRun | None:
        """The export's latest chunk run (optionally only one with ``status``, or the one
        ``run_id`` names)."""
        clauses, args = _filters(export_name=export_name, status=status, run_id=run_id)
        rows = self._read(
            "SELECT run_id, export_name, plan_hash, status, max_attempts, created_at, "
            f"updated_at FROM chunk_runs {clauses} ORDER BY created_at DESC LIMIT 1", args)
        if not rows:
            return None
        r = rows[0]
        return ChunkRun(run_id=r[0], export_name=r[1], plan_hash=r[2], status=r[3],
                        max_attempts=r[4], created_at=r[5], updated_at=r[6])

    def chunk_tasks(self, run_id: str) -> list[ChunkTask]:
        return [_task(r) for r in self._read(
            f"SELECT {_TASK_COLUMNS} FROM chunk_tasks WHERE run_id = ? ORDER BY idx",
            (run_id,))]

    def journal(self, *, export_name: str | None = None, run_id: str | None = None,
                limit: int = 1000) -> list[JournalEvent]:
        clauses, args = _filters(export_name=export_name, run_id=run_id)
        rows = self._read(
            f"SELECT id, run_id, export_name, at, event, data FROM journal {clauses} "
            "ORDER BY id DESC LIMIT ?", (*args, limit))
        return [JournalEvent(id=r[0], run_id=r[1], export_name=r[2], at=r[3], event=r[4],
                             data=json.loads(r[5])) for r in reversed(rows)]

    def unfinished_runs(self, export_name: str) -> list[str]:
        """Runs that journaled a start but never recorded their metric (the process died)."""
        return [r[0] for r in self._read(
            "SELECT DISTINCT j.run_id FROM journal j WHERE j.export_name = ? "
            "AND j.event = 'run_started' AND NOT EXISTS "
            "(SELECT 1 FROM runs r WHERE r.run_id = j.run_id) ORDER BY j.run_id",
            (export_name,))]

    def lock(self, export_name: str) -> LockRecord | None:
        rows = self._read("SELECT export_name, run_id, pid, host, acquired_at FROM locks "
                          "WHERE export_name = ?", (export_name,))
        if not rows:
            return None
        r = rows[0]
        return LockRecord(export_name=r[0], run_id=r[1], pid=r[2], host=r[3], acquired_at=r[4])

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


def _cursor(row: tuple[Any, ...]) -> CursorRecord:
    return CursorRecord(export_name=row[0], value=row[1], run_id=row[2], updated_at=row[3])


def _filters(**equal: Any) -> tuple[str, tuple[Any, ...]]:
    pairs = [(k, v) for k, v in equal.items() if v is not None]
    if not pairs:
        return "", ()
    return "WHERE " + " AND ".join(f"{k} = ?" for k, _ in pairs), tuple(v for _, v in pairs)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(config_dir: Path, *, init: bool = False,
               inspect: bool = False) -> StateStore:
    """The state store beside the config. An existing state file that is empty or corrupt
    is refused (its cursors and checkpoints would silently be lost) unless ``init`` (``rivet
    run --init-state``) says to start over, which keeps the old file beside it as
    ``.rivet_state.db.empty-<time>`` or ``.corrupt-<time>``. ``inspect`` is for commands
    that only read: a state file on a read-only file system is then opened read-only."""
    path = config_dir / STATE_FILE
    if inspect and path.exists() and not os.access(path.parent, os.W_OK):
        return StateStore(path, readonly=True)
    if path.exists() and path.stat().st_size == 0:
        if not init:
            raise StateError(
                f"state file {path} is empty (0 bytes): it was truncated or replaced, and "
                "the cursors and chunk checkpoints it held are gone",
                hint="restore it from a backup, or run `rivet run --init-state` to start "
                     "with empty state (incremental exports then export everything again)")
        _set_aside(path, "empty")
    try:
        return StateStore(path)
    except StateError:
        if not (init and path.exists() and _corrupt(path)):
            raise
    _set_aside(path, "corrupt")
    return StateStore(path)


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
