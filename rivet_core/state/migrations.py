"""Versioned schema migrations of the state store: :data:`MIGRATIONS` for SQLite,
:data:`PG_MIGRATIONS` for PostgreSQL.

Each entry is applied once, in order, inside one transaction together with the row that
records its version. Never edit a released migration; append a new one. Both lists build
the same logical schema (:data:`~rivet_core.state.records.STATE_TABLES`), each numbered on
its own: a change to the schema appends one migration to each.
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

MIGRATIONS.append(
    # 2: incremental cursors, chunk checkpoints, the journal, and per-export run locks
    """
    CREATE TABLE cursors (
        export_name  TEXT PRIMARY KEY,
        value        TEXT NOT NULL,
        run_id       TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE TABLE chunk_runs (
        run_id       TEXT PRIMARY KEY,
        export_name  TEXT NOT NULL,
        plan_hash    TEXT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('in_progress', 'completed')),
        max_attempts INTEGER NOT NULL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX chunk_runs_by_export ON chunk_runs (export_name, status);
    CREATE TABLE chunk_tasks (
        run_id        TEXT NOT NULL REFERENCES chunk_runs (run_id) ON DELETE CASCADE,
        idx           INTEGER NOT NULL,
        lo            TEXT,
        hi            TEXT,
        expected_rows INTEGER,
        status        TEXT NOT NULL
                      CHECK (status IN ('pending', 'running', 'completed', 'failed')),
        attempts      INTEGER NOT NULL DEFAULT 0,
        rows          INTEGER,
        files         INTEGER,
        bytes         INTEGER,
        last_error    TEXT,
        updated_at    TEXT NOT NULL,
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE journal (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id       TEXT NOT NULL,
        export_name  TEXT NOT NULL,
        at           TEXT NOT NULL,
        event        TEXT NOT NULL,
        data         TEXT NOT NULL
    );
    CREATE INDEX journal_by_run ON journal (run_id, id);
    CREATE INDEX journal_by_export ON journal (export_name, id);
    CREATE TABLE locks (
        export_name  TEXT PRIMARY KEY,
        run_id       TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        host         TEXT NOT NULL,
        acquired_at  TEXT NOT NULL
    );
    ALTER TABLE files ADD COLUMN chunk_index INTEGER
    """
)

MIGRATIONS.append(
    # 3: the schema (and text widths) of each export's last successful run, for drift checks
    """
    CREATE TABLE export_schemas (
        export_name  TEXT PRIMARY KEY,
        run_id       TEXT NOT NULL,
        columns      TEXT NOT NULL,
        widths       TEXT NOT NULL,
        recorded_at  TEXT NOT NULL
    )
    """
)


PG_MIGRATIONS: list[str] = [
    # 1: the logical schema of SQLite migrations 1-3. Times stay ISO 8601 text and JSON stays
    # text, so a record reads back exactly as written whatever the backend. `runs.seq` is the
    # insertion order SQLite's rowid gives (a re-recorded run takes a new one).
    """
    CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY,
        export_name  TEXT NOT NULL,
        mode         TEXT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('success', 'failed', 'skipped')),
        started_at   TEXT NOT NULL,
        finished_at  TEXT NOT NULL,
        rows         BIGINT NOT NULL,
        files        BIGINT NOT NULL,
        bytes        BIGINT NOT NULL,
        duration_ms  BIGINT NOT NULL,
        peak_rss_mb  DOUBLE PRECISION,
        retries      INTEGER NOT NULL DEFAULT 0,
        error        TEXT,
        tool_version TEXT NOT NULL,
        seq          BIGINT GENERATED BY DEFAULT AS IDENTITY
    );
    CREATE INDEX runs_by_export ON runs (export_name, started_at);
    CREATE TABLE files (
        id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        run_id       TEXT NOT NULL,
        export_name  TEXT NOT NULL,
        file_name    TEXT NOT NULL,
        uri          TEXT NOT NULL,
        rows         BIGINT NOT NULL,
        bytes        BIGINT NOT NULL,
        sha256       TEXT NOT NULL,
        format       TEXT NOT NULL,
        compression  TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        chunk_index  INTEGER
    );
    CREATE INDEX files_by_export ON files (export_name, id);
    CREATE INDEX files_by_run ON files (run_id);
    CREATE TABLE cursors (
        export_name  TEXT PRIMARY KEY,
        value        TEXT NOT NULL,
        run_id       TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE TABLE chunk_runs (
        run_id       TEXT PRIMARY KEY,
        export_name  TEXT NOT NULL,
        plan_hash    TEXT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('in_progress', 'completed')),
        max_attempts INTEGER NOT NULL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX chunk_runs_by_export ON chunk_runs (export_name, status);
    CREATE TABLE chunk_tasks (
        run_id        TEXT NOT NULL REFERENCES chunk_runs (run_id) ON DELETE CASCADE,
        idx           INTEGER NOT NULL,
        lo            TEXT,
        hi            TEXT,
        expected_rows BIGINT,
        status        TEXT NOT NULL
                      CHECK (status IN ('pending', 'running', 'completed', 'failed')),
        attempts      INTEGER NOT NULL DEFAULT 0,
        rows          BIGINT,
        files         BIGINT,
        bytes         BIGINT,
        last_error    TEXT,
        updated_at    TEXT NOT NULL,
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE journal (
        id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        run_id       TEXT NOT NULL,
        export_name  TEXT NOT NULL,
        at           TEXT NOT NULL,
        event        TEXT NOT NULL,
        data         TEXT NOT NULL
    );
    CREATE INDEX journal_by_run ON journal (run_id, id);
    CREATE INDEX journal_by_export ON journal (export_name, id);
    CREATE TABLE locks (
        export_name  TEXT PRIMARY KEY,
        run_id       TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        host         TEXT NOT NULL,
        acquired_at  TEXT NOT NULL
    );
    CREATE TABLE export_schemas (
        export_name  TEXT PRIMARY KEY,
        run_id       TEXT NOT NULL,
        columns      TEXT NOT NULL,
        widths       TEXT NOT NULL,
        recorded_at  TEXT NOT NULL
    )
    """,
]
