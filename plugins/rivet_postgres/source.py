"""The PostgreSQL source: a control connection (psycopg) that describes every query and runs
the runner's small statements, and two read paths, chosen per read
(:meth:`PostgresSource.read`) and named in ``BatchStream.read_path``:

- binary COPY decoded in C (:mod:`rivet_postgres.copystream`), the default; a ``table`` read
  is split into ctid ranges over ``ReadOptions.parallel`` connections that import the
  control transaction's snapshot;
- the server-side cursor (:mod:`rivet_postgres.cursor`), when COPY cannot serve the query
  (two result columns of one name that COPY must convert in SQL, or no C decoder) or
  ``read_path = "cursor"``.

Every connection (the control connection and each COPY connection) is opened by
:meth:`PostgresSource.open_connection` with the TLS keywords of the resolved mode
(:func:`~rivet_postgres.connection.tls_keywords`); when the mode requires TLS, a connection
libpq reports as unencrypted is closed and refused, and a TLS failure is a permanent error
naming the failed check (:func:`~rivet_postgres.errors.tls_error`).

Both start on the control connection with the read's transaction
(:mod:`rivet_postgres.connection`) and a declared, described cursor
(:mod:`rivet_postgres.describe`), whose columns are mapped before any row is produced
(:mod:`rivet_postgres.columns`); ``describe`` stops there and rolls back. A reused control
connection found dead when a read begins is replaced once; one read at a time.

:meth:`PostgresSource.fetch_rows` runs a small statement (a probe, key statistics, a
catalog query, ``EXPLAIN``) with a plain client-side cursor in the same transaction, in
PostgreSQL's text format: Rivet's loaders are installed for the binary format only, so the
rows hold psycopg's own Python values (``int``, ``Decimal``, ``date``, aware ``datetime``,
``str``, parsed JSON).

Between two exports of one run the source keeps its connections
(:meth:`PostgresSource.reset_connection`): ``DISCARD ALL`` on the control connection and on
the one COPY connection it keeps, so whatever a query set in its session (``set_config``,
a temporary table, an advisory lock) is gone before the next export reads. No connection
prepares statements (``prepare_threshold=None``), so the reset never leaves psycopg
believing in a prepared statement the server dropped.

``Query.sql`` takes psycopg placeholders (``%s``) when ``Query.params`` is not empty; with no
params the text is sent as written, so a literal ``%`` needs no escaping.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

from rivet_core.api import (
    BatchStream,
    ColumnInfo,
    Query,
    ReadOptions,
    SourceError,
    SqlSource,
)
from rivet_postgres import copyplan, copystream
from rivet_postgres.columns import map_columns
from rivet_postgres.config import PostgresConfig
from rivet_postgres.connection import begin_statements, check_encrypted, conninfo, keywords
from rivet_postgres.copyreader import CopyPool
from rivet_postgres.cursor import CursorBatchStream
from rivet_postgres.describe import (
    CURSOR_NAME,
    Opened,
    TypeCache,
    declare,
    money_scale,
    new_cursor,
)
from rivet_postgres.errors import tls_error, wrap_error
from rivet_postgres.loaders import register_loaders

_IDLE = pq.TransactionStatus.IDLE
_LOST = (psycopg.OperationalError,)


class PostgresSource(SqlSource[psycopg.Connection[Any]]):
    """Reads queries from one PostgreSQL database over a single, reused control connection
    (and, for COPY reads, a pool of its own)."""

    kind = "postgres"
    scheme = "postgresql"
    default_port = 5432
    config: PostgresConfig

    def __init__(self, config: PostgresConfig, *, config_dir: Path) -> None:
        super().__init__(config, config_dir=config_dir)
        self.types = TypeCache()
        self._pool: CopyPool | None = None

    # ------------------------------------------------------------------ connection

    def connect(self) -> psycopg.Connection[Any]:
        params = self.connection_params()
        params.warn_if_unverified(self.kind)
        values: dict[str, Any] = keywords(params, self.config)
        conn = self.open_connection(**values)
        register_loaders(conn.adapters)
        return conn

    def open_connection(self, conninfo: str = "", **values: Any) -> psycopg.Connection[Any]:
        """A new autocommit connection, encrypted when the TLS mode requires it (checked
        on the connection itself, not trusted to the keywords); failures as the source's
        errors. psycopg never prepares statements on it (``prepare_threshold=None``): a
        transaction-mode pooler would route them to the wrong backend, and the ``DISCARD
        ALL`` between exports (:meth:`reset_connection`) drops them behind psycopg's back."""
        params = self.connection_params()
        values.setdefault("prepare_threshold", None)
        label = f"cannot connect to {self.display_name()}"
        with self.phase("connect"):
            try:
                conn = psycopg.connect(conninfo, autocommit=True, **values)
            except psycopg.Error as exc:
                raise (tls_error(exc, label, params) or wrap_error(exc, label)) from None
            check_encrypted(conn, params, label)
        return conn

    def connection_alive(self, conn: psycopg.Connection[Any]) -> bool:
        return not (conn.closed or conn.broken)

    def close_connection(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()

    def forget_connection(self) -> None:
        self.types.clear()

    def reset_connection(self, conn: psycopg.Connection[Any]) -> bool:
        """``DISCARD ALL`` on the control connection and on the COPY connection kept for the
        next export (every session setting back to the connection's defaults, temporary
        tables, prepared statements and advisory locks gone), and what the type cache
        knows of user types forgotten, so the next export learns them afresh. A
        connection inside a transaction is not reset: False."""
        if conn.info.transaction_status != _IDLE:
            return False
        conn.execute("DISCARD ALL")
        self.types.forget_session()
        if self._pool is not None:
            self._reset_copy_connections(self._pool)
        return True

    def _reset_copy_connections(self, pool: CopyPool) -> None:
        """Keep one idle COPY connection, reset (``DISCARD ALL``), for the next export, and
        close the others a parallel read opened: an export reading on one connection
        after one that read on eight holds one. A connection that fails the reset is
        closed."""
        conninfo = self.copy_conninfo()
        idle = []
        while (taken := pool.take(conninfo)) is not None:
            idle.append(taken)
        for extra in idle[1:]:
            extra.close()
        for kept in idle[:1]:
            try:
                kept.execute("DISCARD ALL")
            except psycopg.Error:
                kept.broken = True
            pool.release(conninfo, kept)

    def copy_conninfo(self) -> str:
        """The connection string of the COPY connections."""
        return conninfo(keywords(self.connection_params(), self.config))

    def copy_pool(self) -> CopyPool:
        if self._pool is None:
            self._pool = CopyPool(self.open_connection)
        return self._pool

    def _rollback(self) -> None:
        """End the current transaction, or drop a connection that cannot."""
        conn = self.slot.current
        if conn is None:
            return
        if not self.connection_alive(conn):
            self.slot.discard()
            return
        try:
            if conn.info.transaction_status != _IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            self.slot.discard()

    def _begin(self, options: ReadOptions, *, repeatable_read: bool = False
               ) -> psycopg.Connection[Any]:
        """The read's transaction, begun on the control connection (a reused one found dead
        is replaced once)."""
        begin = "; ".join(begin_statements(options, repeatable_read=repeatable_read))

        def run(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
            if conn.info.transaction_status != _IDLE:
                conn.execute("ROLLBACK")
            conn.execute(begin)
            return conn

        return self.slot.first_use(run, lost=_LOST)

    # ------------------------------------------------------------------ describing

    def _open(self, query: Query, options: ReadOptions, *, fetch: bool = True,
              repeatable_read: bool = False) -> Opened:
        """The transaction begun, the cursor declared and described, its columns mapped. On
        failure the transaction is rolled back. Without ``fetch`` (describe), no loader is
        installed since no row will be read."""
        self.begin_read()
        cursor: psycopg.ServerCursor[Any] | None = None
        try:
            conn = self._begin(options, repeatable_read=repeatable_read)
            with self.phase("describe"):
                cursor = new_cursor(conn)
                names, shapes = declare(cursor, query)
                type_names = self.types.names(conn, shapes)
                resolved = self.types.resolve(conn, shapes)
                scale = money_scale(conn, resolved)
                if fetch and self.types.install_loaders(conn, shapes, resolved):
                    cursor.close()  # sends CLOSE; the transaction stays open
                    cursor = new_cursor(conn)
                    names, shapes = declare(cursor, query)
                columns, plan = map_columns(names, resolved, type_names, scale,
                                            options.column_types, query.label)
        except psycopg.Error as exc:
            error = wrap_error(exc, query.label)
            self.close_cursor(cursor)
            raise error from None
        except BaseException:
            self.close_cursor(cursor)
            raise
        return Opened(cursor, columns, plan, [oid for oid, _ in shapes])

    def close_cursor(self, cursor: psycopg.ServerCursor[Any] | None) -> None:
        """Roll the read back; the cursor goes with its transaction."""
        self._rollback()
        if cursor is not None:
            # After ROLLBACK (or with the connection gone) the portal no longer exists; this
            # sends nothing and only marks the psycopg object closed.
            with contextlib.suppress(psycopg.Error):
                cursor.close()

    def describe(self, query: Query, options: ReadOptions) -> list[ColumnInfo]:
        """The mapped columns of ``query``; the cursor is declared, described and rolled
        back without a single FETCH, so the query does not run."""
        opened = self._open(query, options, fetch=False)
        self.close_cursor(opened.cursor)
        return opened.columns

    # ------------------------------------------------------------------ reading

    def read(self, query: Query, options: ReadOptions) -> BatchStream:
        """Read over binary COPY when the C decoder is there and the result allows it,
        else over the server-side cursor; ``read_path`` of the stream says which, and why."""
        forced = self.config.read_path
        driver_missing = None if forced == "cursor" else _copy_driver_missing()
        if forced == "copy" and driver_missing:
            raise SourceError(f"{query.label}: read_path = \"copy\", but {driver_missing}",
                              hint="reinstall rivet-cli where a C compiler is present, or "
                                   "set read_path = \"auto\"")
        ranged = (forced != "cursor" and driver_missing is None and query.table is not None
                  and not query.params and copyplan.reads_whole_table(query.sql, query.table))
        opened = self._open(query, options, repeatable_read=ranged)
        if forced == "cursor":
            return self._cursor_stream(opened, query, options,
                                       "read_path = \"cursor\" in [source]")
        if driver_missing:
            return self._cursor_stream(opened, query, options, driver_missing)
        conn = self.slot.current
        assert conn is not None
        try:
            columns = copystream.fast_columns(conn, opened)
        except BaseException:
            self.close_cursor(opened.cursor)
            raise
        reason = copyplan.unwrappable([c.plan.name for c in columns], columns)
        if reason is not None:
            if forced == "copy":
                self.close_cursor(opened.cursor)
                raise SourceError(f"{query.label}: read_path = \"copy\", but {reason}, so "
                                  f"the columns cannot be converted for COPY",
                                  hint="give the columns distinct names (AS ...), or set "
                                       "read_path = \"auto\"")
            return self._cursor_stream(opened, query, options, reason)
        stream = copystream.start(self, conn, opened, columns, query, options, ranged=ranged)
        self.stream_started(stream)
        return stream

    def _cursor_stream(self, opened: Opened, query: Query, options: ReadOptions,
                       why: str) -> CursorBatchStream:
        stream = CursorBatchStream(self, opened.cursor, opened.columns, opened.plan, options,
                                   query.label)
        stream.read_path = f"server-side cursor (psycopg): {why}"
        self.stream_started(stream)
        return stream

    def end_cursor(self, stream: CursorBatchStream, *, ok: bool) -> None:
        """A cursor read ends: ``CLOSE`` + ``COMMIT`` when every row is in, else
        ``ROLLBACK``."""
        self.stream_ended(stream)
        if not ok:
            self.close_cursor(stream.cursor)
            return
        conn = self.slot.current
        assert conn is not None
        try:
            conn.execute(f'CLOSE "{CURSOR_NAME}"; COMMIT')
        except psycopg.Error as exc:
            error = wrap_error(exc, stream.label)
            self.close_cursor(stream.cursor)
            raise error from None
        stream.cursor.close()

    def end_copy(self, stream: BatchStream) -> None:
        """A COPY read ends (its connections have ended their own transactions)."""
        self.stream_ended(stream)
        self._rollback()

    def end_snapshot_transaction(self) -> None:
        """Every COPY connection has imported the snapshot: the transaction that exported
        it may end (called from a reader thread; a failure only drops the connection)."""
        try:
            self._rollback()
        except Exception:  # must not break the readers' barrier
            self.slot.discard()

    def fetch_rows(self, query: Query, options: ReadOptions) -> list[dict[str, Any]]:
        """One small statement, in the read's transaction, with a client-side text-format
        cursor (so ``EXPLAIN`` runs too, which neither COPY nor a cursor can)."""
        self.begin_read()
        try:
            conn = self._begin(options)
            with conn.cursor() as cursor:
                cursor.execute(query.sql, query.params or None)
                names = [column.name for column in cursor.description or ()]
                rows = cursor.fetchall() if names else []
        except psycopg.Error as exc:
            raise wrap_error(exc, query.label) from None
        finally:
            self._rollback()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def close(self) -> None:
        super().close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _copy_driver_missing() -> str | None:
    """Why the COPY path is unavailable (the C decoder is not built), or None."""
    from rivet_postgres import copybin

    return copybin.unavailable()


__all__ = ["PostgresSource"]
