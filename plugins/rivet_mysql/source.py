"""The MySQL / MariaDB source: two read paths, one choice per read.

:meth:`MysqlSource.read` first tries the **ConnectorX path**: the column definitions come
from ``COM_STMT_PREPARE`` on the source's pymysql connection (nothing runs), every column is
mapped (:mod:`rivet_mysql.columns`), and when ConnectorX can carry the read exactly and
bounded (:mod:`rivet_mysql.cxplan`), it reads the rows, decoded in Rust, on its own
connections (:mod:`rivet_mysql.cxread`). Otherwise the read takes the **pymysql path**: on
the source's own connection, inside the read's session settings and read-only transaction
(:mod:`rivet_mysql.session`), the query runs on an unbuffered cursor whose column
definitions arrive before the first row (:mod:`rivet_mysql.cursor`). Either way the schema
is fixed, and unmappable columns raise :class:`~rivet_core.api.UnsupportedTypeError`, before
any row is read; ``BatchStream.read_path`` says which path was taken and why.

:meth:`MysqlSource.describe` runs none of that: it sends ``COM_STMT_PREPARE`` for the query
and ``COM_STMT_CLOSE`` right after, which returns the column definitions without executing
anything (a true zero-row probe). :meth:`MysqlSource.fetch_rows` runs a small statement on a
buffered cursor inside the same session settings and transaction as a pymysql read, and
decodes its values as pymysql's defaults would (:func:`rivet_mysql.driver.rows`): ``int``,
``Decimal``, ``date``, naive ``datetime`` (UTC wall time: the session zone is +00:00),
``str``.

Every connection is made where the config says and as ``[source.tls]`` says: the pymysql
connection with Rivet's own TLS context (:func:`rivet_mysql.driver.tls_arguments`), then
asked for its ``Ssl_cipher``, so that a mode requiring TLS refuses a plaintext session
whatever the driver did; ConnectorX's connections over TCP only, with the same mode and the
same check run by the server (:mod:`rivet_mysql.cxread`). A TLS failure is permanent, with a
hint naming the failed check.

A reused connection found dead when a read begins is replaced once; one read at a time.
Between two exports of one run the source keeps its connection, reset with
``COM_RESET_CONNECTION`` (:meth:`MysqlSource.reset_connection`): session and user variables,
temporary tables and prepared statements a query left are gone before the next export
reads.
``Query.sql`` takes pymysql placeholders (``%s``) when ``Query.params`` is not empty; with no
params the text is sent as written. The statement timeout covers the whole streamed read of
one query (MySQL times the statement, not each batch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import pymysql
from pymysql.connections import Connection

from rivet_core.api import (
    BatchStream,
    ColumnInfo,
    ConnectionParams,
    Query,
    ReadOptions,
    SourceError,
    SqlSource,
)
from rivet_mysql import cxplan, cxread, driver
from rivet_mysql.columns import ColumnPlan, map_columns
from rivet_mysql.config import MysqlConfig
from rivet_mysql.cursor import UnbufferedBatchStream
from rivet_mysql.errors import connectorx_tls_error, wrap_error
from rivet_mysql.session import Session
from rivet_mysql.typemap import MyField

T = TypeVar("T")
_LOST = (pymysql.err.OperationalError,)
_FAILED = (pymysql.err.MySQLError, OSError)


class MysqlSource(SqlSource["Connection[Any]"]):
    """Reads queries from one MySQL or MariaDB database over a single, reused connection
    (and, for ConnectorX reads, ConnectorX's own)."""

    kind = "mysql"
    scheme = "mysql"
    default_port = 3306
    config: MysqlConfig
    _mariadb = False
    """Whether the server is MariaDB (known once connected): it names the statement timeout
    differently."""
    _encrypted = False
    """Whether the source's connection is encrypted, as the server reports it (known once
    connected)."""

    # ------------------------------------------------------------------ connection

    def check_params(self, params: ConnectionParams) -> None:
        if params.query:
            raise SourceError(
                f"mysql source: unsupported URL parameter(s) "
                f"{', '.join(sorted(params.query))}",
                hint="use the [source.tls] table and the source's own keys")

    def connect(self) -> Connection[Any]:
        params = self.connection_params()
        params.warn_if_unverified(self.kind)
        label = f"cannot connect to {self.display_name()}"
        try:
            conn = driver.connect(params, self.config)
        except pymysql.err.MySQLError as exc:
            failure = driver.tls_failure(exc)
            if failure is not None:
                raise params.tls_failure(*failure, label) from None
            raise wrap_error(exc, label) from None
        except OSError as exc:  # the CA file (ssl.SSLError is an OSError), read before connecting
            raise params.tls_failure("ca-file", str(exc), label) from None
        try:
            self._mariadb = driver.is_mariadb(conn)
            self._encrypted = driver.check_encrypted(conn, params, label)
        except _FAILED as exc:
            driver.close(conn)
            raise wrap_error(exc, label) from None
        return conn

    def connection_alive(self, conn: Connection[Any]) -> bool:
        return bool(conn.open)

    def close_connection(self, conn: Connection[Any]) -> None:
        driver.close(conn)

    def reset_connection(self, conn: Connection[Any]) -> bool:
        """``COM_RESET_CONNECTION`` (:func:`rivet_mysql.driver.reset`): whatever a read's
        statements set in the session (variables, user variables, temporary tables) is gone
        before the next export reads on it. A connection in a transaction or in the middle
        of a result is not reset: False."""
        if not driver.idle(conn):
            return False
        driver.reset(conn)
        return True

    def _begin(self, options: ReadOptions) -> tuple[Connection[Any], Session]:
        """The read's session and transaction on the source's connection (a reused one
        found dead by the first statement is replaced once)."""
        def save(conn: Connection[Any]) -> tuple[Connection[Any], Session]:
            session = Session(self._mariadb, options)
            session.save(conn)
            return conn, session

        conn, session = self.slot.first_use(save, lost=_LOST)
        session.start(conn)
        return conn, session

    def _end(self, session: Session, *, commit: bool) -> None:
        """End the transaction and restore the session; a connection that cannot is
        closed, so no changed setting outlives the read."""
        conn = self.slot.current
        if conn is None or not conn.open:
            self.slot.discard()
            return
        try:
            session.end(conn, commit=commit)
        except _FAILED:
            self.slot.discard()
            if commit:
                raise

    def _abandon(self, session: Session | None) -> None:
        """After a failure before streaming: roll back and restore, or drop the connection."""
        if session is None:
            self.slot.discard()
            return
        with contextlib.suppress(*_FAILED):
            self._end(session, commit=False)

    # ------------------------------------------------------------------ describing

    def _prepare(self, query: Query) -> tuple[Connection[Any], str, list[MyField]]:
        """(connection, final SQL, column definitions) of ``query``, prepared but not run.
        A reused connection the server dropped meanwhile is replaced once."""
        def probe(conn: Connection[Any]
                  ) -> tuple[Connection[Any], str, list[MyField]]:
            sql = driver.mogrify(conn, query.sql, query.params)
            with self.phase("describe"):
                return conn, sql, driver.prepared_fields(conn, sql)

        return self.slot.first_use(probe, lost=_LOST)

    def _map(self, fields: list[MyField], options: ReadOptions,
             label: str) -> tuple[list[ColumnInfo], list[ColumnPlan]]:
        return map_columns(fields, options.column_types, self.config.zero_dates, label)

    def describe(self, query: Query, options: ReadOptions) -> list[ColumnInfo]:
        """The mapped columns of ``query``, from a prepared statement that never runs."""
        self.begin_read()
        try:
            fields = self._prepare(query)[2]
        except _FAILED as exc:
            error = wrap_error(exc, query.label)
            if isinstance(exc, (pymysql.err.OperationalError, OSError)):
                self.slot.discard()
            raise error from None
        return self._map(fields, options, query.label)[0]

    # ------------------------------------------------------------------ reading

    def read(self, query: Query, options: ReadOptions) -> BatchStream:
        """Read over ConnectorX when it can carry the query exactly, else over pymysql."""
        self.begin_read()
        choice = (cxplan.unavailable(self.config, self.connection_params())
                  or self._plan_fast(query, options))
        if isinstance(choice, cxplan.FastRead):
            params = self.connection_params()
            try:
                fast = choice.stream(
                    params=params, config=self.config,
                    settings=Session(self._mariadb, options).settings(), options=options,
                    label=query.label, kill=self._kill_tagged, on_end=self.stream_ended,
                    encrypted=self._encrypted, mariadb=self._mariadb,
                    tls_errors=lambda exc: connectorx_tls_error(exc, query.label, params))
            except cxread.SchemaMismatch as exc:
                choice = str(exc)
            else:
                self.stream_started(fast)
                return fast
        if self.config.read_path == "connectorx":
            raise SourceError(f"{query.label}: read_path = \"connectorx\", but {choice}",
                              hint='set read_path = "auto" to read such queries over pymysql')
        stream = self._open(query, options)
        stream.read_path = f"pymysql text protocol: {choice}"
        if options.parallel > 1:
            stream.read_path += f" (1 connection, parallel = {options.parallel} not used)"
        self.stream_started(stream)
        return stream

    def _plan_fast(self, query: Query, options: ReadOptions) -> cxplan.FastRead | str:
        """What the ConnectorX path would read, or why it cannot."""
        try:
            conn, sql, fields = self._prepare(query)
        except _FAILED as exc:
            # The pymysql path runs the query and reports the failure in full.
            if isinstance(exc, (pymysql.err.OperationalError, OSError)):
                self.slot.discard()
            return f"the statement cannot be prepared ({wrap_error(exc, 'prepare').message})"
        columns, plan = self._map(fields, options, query.label)
        return cxplan.plan(conn, sql, fields, columns, plan, query, options,
                           native_dates=self.config.zero_dates == "error",
                           small_rows=cxplan.SMALL_TABLE_ROWS
                           if self.config.read_path == "auto" else 0)

    def kill_query(self, busy: Connection[Any]) -> None:
        """``KILL QUERY`` the statement ``busy`` runs, from a connection of its own (any
        thread; never raises)."""
        with contextlib.suppress(*_FAILED, SourceError):
            thread_id = busy.thread_id()
            killer = self.connect()
            try:
                driver.rows(killer, f"KILL QUERY {int(thread_id)}", ())
            finally:
                killer.close()

    def _kill_tagged(self, token: str) -> None:
        """End ConnectorX's sessions of a read that stops early (see :mod:`.cxread`)."""
        with contextlib.suppress(*_FAILED, SourceError):
            conn = self.slot.get()
            cxread.kill_sessions(lambda sql, params: driver.rows(conn, sql, params), token)

    def _in_session(self, options: ReadOptions, label: str,
                    run: Callable[[Connection[Any]], T]) -> tuple[T, Session]:
        """``run`` on the connection once the read's session and transaction are begun. On
        failure the transaction is rolled back and the session restored (or the connection
        dropped)."""
        session: Session | None = None
        try:
            conn, session = self._begin(options)
            return run(conn), session
        except _FAILED as exc:
            error = wrap_error(exc, label)
            self._abandon(session)
            raise error from None
        except BaseException:
            self._abandon(session)
            raise

    def _open(self, query: Query, options: ReadOptions) -> UnbufferedBatchStream:
        """The query started on an unbuffered cursor, in the read's session."""
        cursor, session = self._in_session(
            options, query.label, lambda conn: driver.unbuffered(conn, query.sql, query.params))
        try:
            columns, plan = self._map(driver.result_fields(cursor), options, query.label)
        except BaseException:
            # Nothing of the result has been read: closing the connection is cheaper than
            # reading the rows to their end.
            self.slot.discard()
            raise
        return UnbufferedBatchStream(self, cursor, session, columns, plan, options,
                                     query.label)

    def end_read(self, stream: UnbufferedBatchStream, *, ok: bool,
                 error: bool = False) -> None:
        """A pymysql read ends. ``ok``: every row was read, commit and restore. ``error``:
        the server ended the result with an error, roll back and restore. Otherwise (closed
        early, broken link) close the connection."""
        self.stream_ended(stream)
        if ok or error:
            try:
                self._end(stream.session, commit=ok)
            except _FAILED as exc:
                raise wrap_error(exc, stream.label) from None
        else:
            self.slot.discard()

    def fetch_rows(self, query: Query, options: ReadOptions) -> list[dict[str, Any]]:
        """One small statement, on a buffered cursor in the read's session and
        transaction."""
        self.begin_read()
        rows, session = self._in_session(
            options, query.label, lambda conn: driver.rows(conn, query.sql, query.params))
        try:
            self._end(session, commit=True)
        except _FAILED as exc:
            raise wrap_error(exc, query.label) from None
        return rows


__all__ = ["MysqlSource"]
