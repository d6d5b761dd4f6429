"""The SQL both state backends share: every statement written once, with ``?`` parameters, over
a DB-API connection whose ``execute`` returns a cursor (:mod:`sqlite3`, psycopg 3).

A backend subclasses :class:`SqlStateTx` and :class:`SqlStateStore` and supplies what differs:
how a statement's parameters are spelled, transactions and error mapping, the statements
whose SQL differs (a run record's replacement, a chunk claim), and run locks. Not here: any
connection handling.
"""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, ClassVar

from rivet_core.errors import StateError
from rivet_core.redact import redact
from rivet_core.state.base import StateStore, StateTx
from rivet_core.state.records import (
    STATE_TABLES,
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

TASK_COLUMNS = ("run_id, idx, lo, hi, expected_rows, status, attempts, rows, files, bytes, "
                "last_error, updated_at")
LOCK_COLUMNS = "export_name, run_id, pid, host, acquired_at"


def task(row: Sequence[Any]) -> ChunkTask:
    return ChunkTask(run_id=row[0], idx=row[1], lo=row[2], hi=row[3], expected_rows=row[4],
                     status=row[5], attempts=row[6], rows=row[7], files=row[8], bytes=row[9],
                     last_error=row[10], updated_at=row[11])


def lock_record(row: Sequence[Any]) -> LockRecord:
    return LockRecord(export_name=row[0], run_id=row[1], pid=row[2], host=row[3],
                      acquired_at=row[4])


def filters(**equal: Any) -> tuple[str, tuple[Any, ...]]:
    """``WHERE a = ? AND b = ?`` of the arguments that are not None."""
    pairs = [(k, v) for k, v in equal.items() if v is not None]
    if not pairs:
        return "", ()
    return "WHERE " + " AND ".join(f"{k} = ?" for k, _ in pairs), tuple(v for _, v in pairs)


def insert_sql(table: str) -> str:
    columns = STATE_TABLES[table]
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})")


class SqlStateTx(StateTx):
    """The writes whose SQL every backend shares."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def _sql(self, sql: str) -> str:
        """``sql`` with its ``?`` parameters spelled as the driver wants them."""
        return sql

    def _text(self, value: str) -> str:
        """Free text (an error message) as the backend can store it."""
        return value

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.db.execute(self._sql(sql), args)

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run ``sql`` once per row of parameters."""

    # ----------------------------------------------------------------- files and runs

    def record_file(self, record: FileRecord) -> None:
        self.execute(
            "INSERT INTO files (run_id, export_name, file_name, uri, rows, bytes, sha256, "
            "format, compression, chunk_index, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (record.run_id, record.export_name, record.file_name,
             self._text(redact(record.uri)), record.rows, record.bytes, record.sha256,
             record.format, record.compression, record.chunk_index,
             record.created_at or iso(utc_now())),
        )

    def journal(self, run_id: str, export_name: str, event: str, **data: Any) -> None:
        payload = redact(json.dumps(data, default=str, sort_keys=True))
        self.execute(
            "INSERT INTO journal (run_id, export_name, at, event, data) VALUES (?,?,?,?,?)",
            (run_id, export_name, iso(utc_now()), event, payload),
        )

    def record_schema(self, export_name: str, run_id: str, columns: list[dict[str, Any]],
                      widths: dict[str, int]) -> None:
        self.execute(
            "INSERT INTO export_schemas (export_name, run_id, columns, widths, recorded_at) "
            "VALUES (?,?,?,?,?) ON CONFLICT (export_name) DO UPDATE SET "
            "run_id = excluded.run_id, columns = excluded.columns, widths = excluded.widths, "
            "recorded_at = excluded.recorded_at",
            (export_name, run_id, json.dumps(columns), json.dumps(widths, sort_keys=True),
             iso(utc_now())),
        )

    # ---------------------------------------------------------------------- cursors

    def set_cursor(self, export_name: str, value: str, run_id: str) -> None:
        self.execute(
            "INSERT INTO cursors (export_name, value, run_id, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT (export_name) DO UPDATE SET value = excluded.value, "
            "run_id = excluded.run_id, updated_at = excluded.updated_at",
            (export_name, value, run_id, iso(utc_now())),
        )

    def reset_cursor(self, export_name: str) -> bool:
        return int(self.execute("DELETE FROM cursors WHERE export_name = ?",
                                (export_name,)).rowcount) > 0

    # -------------------------------------------------------------- chunk checkpoints

    def create_chunk_run(self, run: ChunkRun, tasks: list[ChunkTask]) -> None:
        self.execute(
            "INSERT INTO chunk_runs (run_id, export_name, plan_hash, status, max_attempts, "
            "created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
            (run.run_id, run.export_name, run.plan_hash, run.status, run.max_attempts,
             run.created_at, run.updated_at),
        )
        self.executemany(
            "INSERT INTO chunk_tasks (run_id, idx, lo, hi, expected_rows, status, attempts, "
            "updated_at) VALUES (?,?,?,?,?,?,0,?)",
            [(t.run_id, t.idx, t.lo, t.hi, t.expected_rows, "pending", run.created_at)
             for t in tasks],
        )

    @staticmethod
    def claimable(skip: Collection[int]) -> str:
        """The condition of a task :meth:`claim_chunk` may take (one ``?``: the most
        attempts a task may have had)."""
        excluded = ",".join(str(int(idx)) for idx in skip)
        return ("(status = 'pending' OR (status = 'failed' AND attempts < ?))"
                + (f" AND idx NOT IN ({excluded})" if excluded else ""))

    ROW_LOCK = ""
    """What makes a ``SELECT`` lock the rows it reads until the transaction ends (SQLite's
    write transaction already excludes every other writer)."""

    def claim_chunk_at(self, run_id: str, idx: int, max_attempts: int) -> ChunkTask | None:
        claimed = self.execute(
            "UPDATE chunk_tasks SET status = 'running', attempts = attempts + 1, "
            "updated_at = ? WHERE run_id = ? AND idx = ? AND (status = 'pending' OR "
            "(status IN ('failed', 'running') AND attempts < ?))",
            (iso(utc_now()), run_id, idx, max_attempts)).rowcount
        if claimed != 1:
            return None
        return task(self.execute(f"SELECT {TASK_COLUMNS} FROM chunk_tasks WHERE run_id = ? "
                                 "AND idx = ?", (run_id, idx)).fetchone())

    def lock_chunk_run(self, run_id: str) -> str | None:
        row = self.execute(f"SELECT status FROM chunk_runs WHERE run_id = ?{self.ROW_LOCK}",
                           (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def complete_chunk(self, run_id: str, idx: int, *, rows: int, files: int,
                       bytes_: int) -> None:
        changed = self.execute(
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
        self.execute("DELETE FROM files WHERE run_id = ? AND export_name = ? "
                     "AND chunk_index = ?", (run_id, export_name, idx))
        for record in records:
            self.record_file(record)
        self.execute("UPDATE chunk_tasks SET rows = ?, files = ?, bytes = ?, updated_at = ? "
                     "WHERE run_id = ? AND idx = ?",
                     (rows, len(records), sum(r.bytes for r in records), iso(utc_now()),
                      run_id, idx))

    def fail_chunk(self, run_id: str, idx: int, error: str) -> None:
        self.execute(
            "UPDATE chunk_tasks SET status = 'failed', last_error = ?, updated_at = ? "
            "WHERE run_id = ? AND idx = ? AND status = 'running'",
            (self._text(redact(error)), iso(utc_now()), run_id, idx),
        )

    def reopen_tasks(self, run_id: str) -> int:
        return int(self.execute(
            "UPDATE chunk_tasks SET status = 'pending', updated_at = ? "
            "WHERE run_id = ? AND status IN ('running', 'failed')",
            (iso(utc_now()), run_id)).rowcount)

    def finish_chunk_run(self, run_id: str, planned: int) -> None:
        total, completed = self.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), "
            "0) FROM chunk_tasks WHERE run_id = ?", (run_id,)).fetchone()
        if total != planned or completed != planned:
            raise StateError(f"chunk run {run_id} planned {planned} chunk(s), but the state "
                             f"holds {total} task(s), {completed} completed: it was changed "
                             "outside this run, so the run is not certified",
                             hint="run the export again (without --resume)")
        row = self.execute("SELECT status FROM chunk_runs WHERE run_id = ?",
                           (run_id,)).fetchone()
        if row is None:
            raise StateError(f"chunk run {run_id} is no longer in the state store: it was "
                             "removed outside this run, so the run is not certified",
                             hint="run the export again (without --resume)")
        self.execute("UPDATE chunk_runs SET status = 'completed', updated_at = ? "
                     "WHERE run_id = ?", (iso(utc_now()), run_id))

    def delete_chunk_runs(self, export_name: str) -> int:
        runs = [r[0] for r in self.execute(
            "SELECT run_id FROM chunk_runs WHERE export_name = ?", (export_name,)).fetchall()]
        for run_id in runs:
            self.execute("DELETE FROM chunk_tasks WHERE run_id = ?", (run_id,))
            self.execute("DELETE FROM chunk_runs WHERE run_id = ?", (run_id,))
        return len(runs)

    # ------------------------------------------------------------------------- locks

    def recorded_lock(self, export_name: str) -> LockRecord | None:
        row = self.execute(f"SELECT {LOCK_COLUMNS} FROM locks WHERE export_name = ?",
                           (export_name,)).fetchone()
        return lock_record(row) if row is not None else None

    # ---------------------------------------------------------------- whole-store copy

    def load(self, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
        batch = list(rows)
        if batch:
            self.executemany(insert_sql(table), batch)
        return len(batch)

    def clear(self) -> None:
        for table in reversed(list(STATE_TABLES)):
            self.execute(f"DELETE FROM {table}")


class SqlStateStore(StateStore):
    """The reads whose SQL every backend shares; ``_query`` runs one under the store's lock
    and maps the driver's errors."""

    RUN_ORDER: ClassVar[str]
    """The column that orders runs recorded at the same instant (insertion order)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @abc.abstractmethod
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read (``?`` parameters), under the store's lock; a driver error
        is a :class:`StateError`."""

    def files(self, export_name: str | None = None, *, run_id: str | None = None,
              limit: int = 50) -> list[FileRecord]:
        clauses, args = filters(export_name=export_name, run_id=run_id)
        rows = self._query(
            "SELECT run_id, export_name, file_name, uri, rows, bytes, sha256, format, "
            f"compression, chunk_index, created_at FROM files {clauses} ORDER BY id DESC "
            "LIMIT ?", (*args, limit))
        return [FileRecord(run_id=r[0], export_name=r[1], file_name=r[2], uri=r[3], rows=r[4],
                           bytes=r[5], sha256=r[6], format=r[7], compression=r[8],
                           chunk_index=r[9], created_at=r[10]) for r in rows]

    def runs(self, export_name: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        clauses, args = filters(export_name=export_name)
        rows = self._query(
            "SELECT run_id, export_name, mode, status, started_at, finished_at, rows, files, "
            "bytes, duration_ms, peak_rss_mb, retries, error, tool_version FROM runs "
            f"{clauses} ORDER BY started_at DESC, {self.RUN_ORDER} DESC LIMIT ?",
            (*args, limit))
        return [RunRecord(run_id=r[0], export_name=r[1], mode=r[2], status=r[3],
                          started_at=r[4], finished_at=r[5], rows=r[6], files=r[7], bytes=r[8],
                          duration_ms=r[9], peak_rss_mb=r[10], retries=r[11], error=r[12],
                          tool_version=r[13]) for r in rows]

    def cursor(self, export_name: str) -> CursorRecord | None:
        rows = self._query("SELECT export_name, value, run_id, updated_at FROM cursors "
                           "WHERE export_name = ?", (export_name,))
        return _cursor(rows[0]) if rows else None

    def cursors(self) -> list[CursorRecord]:
        return [_cursor(r) for r in self._query(
            "SELECT export_name, value, run_id, updated_at FROM cursors ORDER BY export_name")]

    def export_schema(self, export_name: str
                      ) -> tuple[str, list[dict[str, Any]], dict[str, int]] | None:
        rows = self._query("SELECT run_id, columns, widths FROM export_schemas "
                           "WHERE export_name = ?", (export_name,))
        if not rows:
            return None
        return rows[0][0], json.loads(rows[0][1]), json.loads(rows[0][2])

    def chunk_run(self, export_name: str, *, status: str | None = None,
                  run_id: str | None = None) -> ChunkRun | None:
        clauses, args = filters(export_name=export_name, status=status, run_id=run_id)
        rows = self._query(
            "SELECT run_id, export_name, plan_hash, status, max_attempts, created_at, "
            f"updated_at FROM chunk_runs {clauses} ORDER BY created_at DESC LIMIT 1", args)
        if not rows:
            return None
        r = rows[0]
        return ChunkRun(run_id=r[0], export_name=r[1], plan_hash=r[2], status=r[3],
                        max_attempts=r[4], created_at=r[5], updated_at=r[6])

    def chunk_tasks(self, run_id: str) -> list[ChunkTask]:
        return [task(r) for r in self._query(
            f"SELECT {TASK_COLUMNS} FROM chunk_tasks WHERE run_id = ? ORDER BY idx",
            (run_id,))]

    def journal(self, *, export_name: str | None = None, run_id: str | None = None,
                limit: int = 1000) -> list[JournalEvent]:
        clauses, args = filters(export_name=export_name, run_id=run_id)
        rows = self._query(
            f"SELECT id, run_id, export_name, at, event, data FROM journal {clauses} "
            "ORDER BY id DESC LIMIT ?", (*args, limit))
        return [JournalEvent(id=r[0], run_id=r[1], export_name=r[2], at=r[3], event=r[4],
                             data=json.loads(r[5])) for r in reversed(rows)]

    def unfinished_runs(self, export_name: str) -> list[str]:
        return [r[0] for r in self._query(
            "SELECT DISTINCT j.run_id FROM journal j WHERE j.export_name = ? "
            "AND j.event = 'run_started' AND NOT EXISTS "
            "(SELECT 1 FROM runs r WHERE r.run_id = j.run_id) ORDER BY j.run_id",
            (export_name,))]

    def lock(self, export_name: str) -> LockRecord | None:
        rows = self._query(f"SELECT {LOCK_COLUMNS} FROM locks WHERE export_name = ?",
                           (export_name,))
        return lock_record(rows[0]) if rows else None

    # ---------------------------------------------------------------- whole-store copy

    def counts(self) -> dict[str, int]:
        return {table: int(self._query(f"SELECT COUNT(*) FROM {table}")[0][0])
                for table in STATE_TABLES}

    def dump(self, table: str) -> Iterator[tuple[Any, ...]]:
        order = {"runs": self.RUN_ORDER, "files": "id", "journal": "id",
                 "chunk_tasks": "run_id, idx"}.get(table, STATE_TABLES[table][0])
        yield from self._query(f"SELECT {', '.join(STATE_TABLES[table])} FROM {table} "
                               f"ORDER BY {order}")


def _cursor(row: Sequence[Any]) -> CursorRecord:
    return CursorRecord(export_name=row[0], value=row[1], run_id=row[2], updated_at=row[3])
