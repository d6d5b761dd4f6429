"""The ``sqlite`` source: queries on a SQLite file, read with the standard library's
``sqlite3`` on the SQL source toolkit of :mod:`rivet_core.api`.

How a read goes (:meth:`SqliteSource.read`):

1. The connection (opened on first use, then reused, by the toolkit's
   :class:`~rivet_core.api.SqlSource`) is a ``file:...?mode=ro`` URI: SQLite itself refuses
   any write. It runs in autocommit mode, so each SELECT is its own read transaction, one
   consistent snapshot from its first row to its last, released when its cursor closes.
   The runner reads ahead in another thread, hence ``check_same_thread=False``; the toolkit
   allows one statement at a time.
2. The read's settings: ``lock_timeout_s`` is SQLite's busy timeout (how long to wait for a
   writer's lock; 0 waits without limit), ``statement_timeout_s`` is enforced by a
   progress handler that interrupts a statement running longer (per fetch, as PostgreSQL
   counts each ``FETCH`` of a cursor).
3. The zero-row probe (:mod:`rivet_sqlite_jsonl.probe`) gives each result column's
   declared type; :mod:`rivet_sqlite_jsonl.columns` maps it and applies
   ``[exports.columns]``, and a column still without an Arrow type is an
   :class:`~rivet_core.api.UnsupportedTypeError` before the statement runs.
4. The statement runs; :class:`SqliteBatchStream` (the toolkit's fetch loop) fetches
   ``batch_size`` rows at a time and builds each batch with
   :mod:`rivet_sqlite_jsonl.values`, which checks every value against its column's type.

:meth:`SqliteSource.fetch_rows` runs the runner's small statements (key statistics, the
null-cursor probe, histograms, primary key and catalog lookups): their columns are mostly
expressions, which SQLite cannot type, so rows come straight from the cursor, and only
columns with a declared type (a chunk key's bounds) are converted.
"""

from __future__ import annotations

import contextlib
import math
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa

from rivet_core.api import (
    BatchStream,
    ColumnInfo,
    FetchingBatchStream,
    Query,
    ReadOptions,
    SqlSource,
)
from rivet_sqlite_jsonl import probe
from rivet_sqlite_jsonl.columns import ColumnPlan, plan_columns
from rivet_sqlite_jsonl.config import SqliteConfig
from rivet_sqlite_jsonl.errors import wrap_error
from rivet_sqlite_jsonl.typemap import map_column

PROGRESS_STEPS = 10_000
"""SQLite virtual machine steps between two checks of the statement timeout (well under a
millisecond of work)."""

NO_LIMIT_MS = 2**31 - 1
"""The busy timeout for ``lock_timeout_s = 0`` (no limit): SQLite's largest."""


class Deadline:
    """The statement timeout, as SQLite's progress handler: called every
    :data:`PROGRESS_STEPS` steps, a true result interrupts the statement
    (``SQLITE_INTERRUPT``, a transient timeout)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._at = math.inf

    def arm(self) -> None:
        """Start counting (before each step of work: executing, fetching)."""
        self._at = time.monotonic() + self.seconds if self.seconds > 0 else math.inf

    def __call__(self) -> bool:
        return time.monotonic() > self._at


_TYPED_NAME = re.compile(r"^(.*?)\s*\[([^\]]+)\]$")
"""``name [type]``: a column name carrying its declared type."""


def _is_query(sql: str) -> bool:
    """Whether a view can hold the statement (EXPLAIN, for one, cannot)."""
    return sql.lstrip().upper().startswith(("SELECT", "WITH", "VALUES"))


class SqliteSource(SqlSource[sqlite3.Connection]):
    """Reads queries from one SQLite file over a single read-only connection."""

    kind = "sqlite"
    config: SqliteConfig

    def __init__(self, config: SqliteConfig, *, config_dir: Path) -> None:
        super().__init__(config, config_dir=config_dir)
        self.deadline = Deadline()

    # ------------------------------------------------------------------ connection

    def database(self) -> Path:
        return self.config.database(self.config_dir)

    def display_name(self) -> str:
        return self.database().as_uri().replace("file:", "sqlite:", 1)

    def connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(f"{self.database().as_uri()}?mode=ro", uri=True,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as exc:
            raise wrap_error(exc, f"cannot open {self.display_name()}") from None
        conn.set_progress_handler(self.deadline, PROGRESS_STEPS)
        return conn

    def connection_alive(self, conn: sqlite3.Connection) -> bool:
        """A connection to a local file does not die on its own; only a closed one is
        unusable (any attribute read then raises)."""
        try:
            conn.in_transaction  # noqa: B018 - the read is the check
        except sqlite3.ProgrammingError:
            return False
        return True

    def close_connection(self, conn: sqlite3.Connection) -> None:
        conn.close()

    def _session(self, options: ReadOptions) -> sqlite3.Connection:
        """The connection, with the read's lock and statement timeouts (the deadline is
        armed afresh: the previous read's must not interrupt this one)."""
        conn = self.slot.get()
        self.deadline.seconds = options.statement_timeout_s
        self.deadline.arm()
        wait_ms = (round(options.lock_timeout_s * 1000) if options.lock_timeout_s > 0
                   else NO_LIMIT_MS)
        try:
            conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        except sqlite3.Error as exc:
            raise wrap_error(exc, f"cannot use {self.display_name()}") from None
        return conn

    # ------------------------------------------------------------------ reads

    def describe(self, query: Query, options: ReadOptions) -> list[ColumnInfo]:
        """The mapped columns of ``query`` from the probe; the statement does not run."""
        self.begin_read()
        conn = self._session(options)
        try:
            declared = probe.declared_columns(conn, query.sql)
        except sqlite3.Error as exc:
            raise wrap_error(exc, query.label) from None
        return [plan.info for plan in plan_columns(declared, options, query.label)]

    def read(self, query: Query, options: ReadOptions) -> BatchStream:
        self.begin_read()
        conn = self._session(options)
        try:
            plans = plan_columns(probe.declared_columns(conn, query.sql), options,
                                 query.label)
            self.deadline.arm()
            cursor = conn.execute(query.sql, query.params)
        except sqlite3.Error as exc:
            raise wrap_error(exc, query.label) from None
        # The probe's view renames a second column of one name ("id:1"); the statement's
        # own names are what the file gets (and the runner refuses duplicates).
        names = [d[0] for d in cursor.description]
        plans = [plan if plan.info.name == name
                 else attrs.evolve(plan, info=attrs.evolve(plan.info, name=name))
                 for plan, name in zip(plans, names, strict=True)]
        stream = SqliteBatchStream(self, cursor, plans, options, query.label)
        self.stream_started(stream)
        return stream

    def end_read(self, stream: SqliteBatchStream) -> None:
        """A read ends, done or abandoned: closing its cursor ends the read transaction."""
        self.stream_ended(stream)
        with contextlib.suppress(sqlite3.Error):
            stream.cursor.close()

    def fetch_rows(self, query: Query, options: ReadOptions) -> list[dict[str, Any]]:
        """Every row of one small statement, with sqlite3's values (``int``, ``float``,
        ``str``, ``bytes``, ``None``), except in columns whose type is known, which are
        converted as reads convert them:

        - a column with a declared type (the bounds of ``key_stats``: a DATE key's are
          ``date`` values);
        - a column named ``name [type]``, returned as ``name`` converted as the declared
          type ``type``: sqlite3's ``PARSE_COLNAMES`` convention, which the dialect uses
          for an expression SQLite cannot type (``is_nullable [BOOLEAN]``).
        """
        self.begin_read()
        conn = self._session(options)
        try:
            declared = probe.declared_columns(conn, query.sql) if _is_query(query.sql) else []
            self.deadline.arm()
            cursor = conn.execute(query.sql, query.params)
            try:
                names = [d[0] for d in cursor.description or ()]
                rows = cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise wrap_error(exc, query.label) from None
        types = dict(enumerate(decl for _, decl in declared))
        columns = [list(values) for values in zip(*rows, strict=True)] or [[] for _ in names]
        for index, raw_name in enumerate(names):
            named = _TYPED_NAME.match(raw_name)
            if named is not None:
                names[index], types[index] = named.group(1), named.group(2)
            info = map_column(names[index], types.get(index, ""))
            if info.arrow_type is not None:
                plan = ColumnPlan(info, info.arrow_type)
                columns[index] = plan.array(columns[index], query.label).to_pylist()
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


class SqliteBatchStream(FetchingBatchStream):
    """The batches of one SELECT: ``fetchmany`` of ``batch_size`` rows, each turned into one
    Arrow batch. Closing it early closes the cursor (the read transaction ends)."""

    def __init__(self, source: SqliteSource, cursor: sqlite3.Cursor, plans: list[ColumnPlan],
                 options: ReadOptions, label: str) -> None:
        super().__init__([plan.info for plan in plans], options, label)
        self.read_path = "sqlite3 cursor on a read-only connection"
        self.cursor = cursor
        self._source = source
        self._plans = plans

    def fetch(self, rows: int) -> Sequence[tuple[Any, ...]]:
        self._source.deadline.arm()
        try:
            return self.cursor.fetchmany(rows)
        except sqlite3.Error as exc:
            error = wrap_error(exc, self.label)
        self.open = False
        self.abandon()
        raise error

    def to_batch(self, rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
        columns = zip(*rows, strict=True)
        arrays = [plan.array(values, self.label)
                  for values, plan in zip(columns, self._plans, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def finish(self) -> None:
        self._source.end_read(self)

    def abandon(self) -> None:
        self._source.end_read(self)


__all__ = ["SqliteBatchStream", "SqliteSource"]
