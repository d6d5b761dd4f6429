"""The records the state store holds and hands back, whatever its backend, and the tables they
live in.

Pure data: no backend, no I/O (a lock's holder check reads only the local process table).
:data:`STATE_TABLES` is the logical schema every backend implements, column for column; it is
also the order :meth:`~rivet_core.state.base.StateStore.dump` yields rows in and
:meth:`~rivet_core.state.base.StateTx.load` takes them back, so ``rivet state migrate`` can
copy a store to another backend without knowing either.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any

import attrs

from rivet_core import __version__


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


STATE_TABLES: dict[str, tuple[str, ...]] = {
    "runs": ("run_id", "export_name", "mode", "status", "started_at", "finished_at", "rows",
             "files", "bytes", "duration_ms", "peak_rss_mb", "retries", "error",
             "tool_version"),
    "files": ("id", "run_id", "export_name", "file_name", "uri", "rows", "bytes", "sha256",
              "format", "compression", "chunk_index", "created_at"),
    "cursors": ("export_name", "value", "run_id", "updated_at"),
    "chunk_runs": ("run_id", "export_name", "plan_hash", "status", "max_attempts",
                   "created_at", "updated_at"),
    "chunk_tasks": ("run_id", "idx", "lo", "hi", "expected_rows", "status", "attempts", "rows",
                    "files", "bytes", "last_error", "updated_at"),
    "journal": ("id", "run_id", "export_name", "at", "event", "data"),
    "export_schemas": ("export_name", "run_id", "columns", "widths", "recorded_at"),
    "locks": ("export_name", "run_id", "pid", "host", "acquired_at"),
}
"""Every table of the logical schema and its columns, parents before children (a chunk run
before its tasks). ``dump``/``load`` rows are tuples in this column order; JSON columns
(``journal.data``, ``export_schemas.columns``/``widths``) travel as their JSON text."""

COPIED_TABLES = tuple(name for name in STATE_TABLES if name != "locks")
"""What ``rivet state migrate`` copies: everything but the run locks, which belong to the
processes of the store they were taken in."""
