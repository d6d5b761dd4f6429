"""The state store interface and its SQLite implementation.

Every state change of one commit step happens in one transaction. The database lives beside
the config file (``.rivet_state.db``), in WAL mode so readers (``rivet state``) never block
a running export.
"""

from __future__ import annotations

import abc
import datetime as dt
import sqlite3
from pathlib import Path

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


class StateStore(abc.ABC):
    """What the runner and the ``rivet state`` commands need from durable state."""

    @abc.abstractmethod
    def record_file(self, record: FileRecord) -> None:
        """Add a committed file to the manifest (after the destination committed it)."""

    @abc.abstractmethod
    def record_run(self, record: RunRecord) -> None:
        """Record a finished run's metrics (the last state write of a run)."""

    @abc.abstractmethod
    def files(self, export_name: str | None = None, *, run_id: str | None = None,
              limit: int = 50) -> list[FileRecord]: ...

    @abc.abstractmethod
    def runs(self, export_name: str | None = None, *, limit: int = 20) -> list[RunRecord]: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class SqliteStateStore(StateStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=10, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state database {path} is unusable: {exc}",
                             hint="move it aside to start with empty state") from exc

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TEXT NOT NULL)"
        )
        current = self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        version = current.fetchone()[0]
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

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    def record_file(self, record: FileRecord) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO files (run_id, export_name, file_name, uri, rows, bytes, sha256, "
                "format, compression, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (record.run_id, record.export_name, record.file_name, redact(record.uri),
                 record.rows, record.bytes, record.sha256, record.format, record.compression,
                 record.created_at or iso(utc_now())),
            )

    def record_run(self, record: RunRecord) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO runs (run_id, export_name, mode, status, started_at, finished_at, "
                "rows, files, bytes, duration_ms, peak_rss_mb, retries, error, tool_version) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (record.run_id, record.export_name, record.mode, record.status,
                 record.started_at, record.finished_at, record.rows, record.files,
                 record.bytes, record.duration_ms, record.peak_rss_mb, record.retries,
                 redact(record.error) if record.error else None, record.tool_version),
            )

    def files(self, export_name: str | None = None, *, run_id: str | None = None,
              limit: int = 50) -> list[FileRecord]:
        clauses, args = [], []
        if export_name is not None:
            clauses.append("export_name = ?")
            args.append(export_name)
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.execute(
            "SELECT run_id, export_name, file_name, uri, rows, bytes, sha256, format, "
            f"compression, created_at FROM files {where} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [FileRecord(run_id=r[0], export_name=r[1], file_name=r[2], uri=r[3], rows=r[4],
                           bytes=r[5], sha256=r[6], format=r[7], compression=r[8],
                           created_at=r[9]) for r in rows]

    def runs(self, export_name: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        where, args = ("WHERE export_name = ?", [export_name]) if export_name else ("", [])
        rows = self.db.execute(
            "SELECT run_id, export_name, mode, status, started_at, finished_at, rows, files, "
            "bytes, duration_ms, peak_rss_mb, retries, error, tool_version FROM runs "
            f"{where} ORDER BY started_at DESC, rowid DESC LIMIT ?", (*args, limit),
        ).fetchall()
        return [RunRecord(run_id=r[0], export_name=r[1], mode=r[2], status=r[3],
                          started_at=r[4], finished_at=r[5], rows=r[6], files=r[7], bytes=r[8],
                          duration_ms=r[9], peak_rss_mb=r[10], retries=r[11], error=r[12],
                          tool_version=r[13]) for r in rows]

    def close(self) -> None:
        self.db.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` if the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(config_dir: Path) -> SqliteStateStore:
    """The state store of the config in ``config_dir``."""
    return SqliteStateStore(config_dir / STATE_FILE)
