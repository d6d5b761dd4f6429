"""The ``sqlite`` source against Rivet's source conformance kit.

Each test gets a database file of its own; the sample is stored with sqlite3 directly (never
through the source), in the text forms the plugin documents: ``seen_at`` as a TIMESTAMPTZ,
so it reads back as the instant the kit inserted.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from rivet_sqlite_jsonl import SQLITE

from rivet_core.testing import SourceTests


def stored(value: object) -> object:
    """A sample value as the plugin's documented text forms store it."""
    if isinstance(value, dt.datetime):  # aware UTC: "YYYY-MM-DD HH:MM:SS[.ffffff]+00:00"
        return value.isoformat(" ")
    if isinstance(value, dt.date | Decimal):  # "YYYY-MM-DD", plain digits
        return str(value)
    return value


class TestSqliteSource(SourceTests):
    @pytest.fixture
    def database(self, tmp_path: Path) -> Path:
        """An empty database file: the kit loads the config (which checks that the file
        exists) before it asks for the sample table."""
        path = tmp_path / "kit.sqlite"
        sqlite3.connect(path).close()
        return path

    @pytest.fixture
    def source_spec(self):
        return SQLITE

    @pytest.fixture
    def source_config(self, database: Path):
        return {"path": str(database)}

    @pytest.fixture
    def sample_table(self, sample_rows, database: Path) -> str:
        with sqlite3.connect(database) as conn:
            conn.execute("CREATE TABLE kit_sample (id INTEGER PRIMARY KEY, name TEXT, "
                         "amount DECIMAL(12,2), day DATE, seen_at TIMESTAMPTZ)")
            conn.executemany("INSERT INTO kit_sample VALUES (?, ?, ?, ?, ?)",
                             [tuple(map(stored, row)) for row in sample_rows])
        conn.close()
        return "kit_sample"

    @pytest.fixture
    def unsupported_query(self, sample_table: str) -> str:
        # An expression has no declared type in SQLite.
        return f"SELECT id, amount * 2 AS doubled FROM {sample_table}"

    @pytest.fixture
    def failing_query(self, sample_table: str) -> str:
        # Preparing it is fine; abs() of the smallest integer overflows when row 150 is
        # reached.
        return (f"SELECT id, name FROM {sample_table} WHERE abs(CASE WHEN id = 150 "
                "THEN -9223372036854775807 - 1 ELSE id END) > 0")

    @pytest.fixture
    def wrong_password_config(self):
        return None  # a SQLite file has no login

    @pytest.fixture
    def open_sessions(self, database: Path):
        """A file has no server sessions: count this process's open descriptors of the
        database file (Linux's /proc), which is what a connection holds."""
        fds = Path("/proc/self/fd")
        if not fds.is_dir():
            return None

        def count() -> int:
            opened = 0
            for fd in fds.iterdir():
                try:
                    opened += os.readlink(fd) == str(database)
                except OSError:
                    continue
            return opened

        return count

    @pytest.fixture
    def slow_query(self, sample_table: str) -> str:
        # Counts to a billion before the first row (minutes of work); the column is a
        # table's, so it has a type and the read gets as far as running the statement.
        return (f"SELECT id FROM {sample_table} WHERE id = (WITH RECURSIVE n(i) AS "
                "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
                "SELECT COUNT(*) FROM n)")
