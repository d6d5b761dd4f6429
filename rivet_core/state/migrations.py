"""Versioned schema migrations of the SQLite state store.

Each entry is applied once, in order, inside one transaction together with the row that
records its version. Never edit a released migration; append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: runs and the file manifest
    """
    CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY,
        export_name  TEXT NOT NULL,
        mode         TEXT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('success', 'failed', 'skipped')),
        started_at   TEXT NOT NULL,
        finished_at  TEXT NOT NULL,
        rows         INTEGER NOT NULL,
        files        INTEGER NOT NULL,
        bytes        INTEGER NOT NULL,
        duration_ms  INTEGER NOT NULL,
        peak_rss_mb  REAL,
        retries      INTEGER NOT NULL DEFAULT 0,
        error        TEXT,
        tool_version TEXT NOT NULL
    );
    CREATE INDEX runs_by_export ON runs (export_name, started_at);
    CREATE TABLE files (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id       TEXT NOT NULL,
        export_name  TEXT NOT NULL,
        file_name    TEXT NOT NULL,
        uri          TEXT NOT NULL,
        rows         INTEGER NOT NULL,
        bytes        INTEGER NOT NULL,
        sha256       TEXT NOT NULL,
        format       TEXT NOT NULL,
        compression  TEXT NOT NULL,
        created_at   TEXT NOT NULL
    );
    CREATE INDEX files_by_export ON files (export_name, id);
    CREATE INDEX files_by_run ON files (run_id);
    """,
]
