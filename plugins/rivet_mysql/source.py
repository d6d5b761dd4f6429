"""The MySQL / MariaDB source: two read paths, one choice per read.

:meth:`MysqlSource.read` first tries the **ConnectorX path** (:mod:`rivet_mysql.fastpath`
decides what it can carry and how, :mod:`rivet_mysql.cxread` reads): the column definitions
come from ``COM_STMT_PREPARE`` on the source's pymysql connection (nothing runs), every
column is mapped exactly as below, and ConnectorX reads the rows, decoded in Rust, on its
own connections. ConnectorX reads ahead without back-pressure, so what it reads must be
bounded: a ``table`` export is split into primary-key ranges of a few tens of MiB, read
``parallel`` at a time; any other statement is read over it only when EXPLAIN estimates a
small result. When it cannot carry a column exactly, the query cannot take the select-list
wrapper the casts need, or the result cannot be bounded, the read takes the **pymysql
path** below, and ``BatchStream.read_path`` says which path was taken and why.

Protocol of one read on the pymysql path:

1. ``SELECT @@session.time_zone, @@session.<timeout>, @@session.lock_wait_timeout,
   @@session.innodb_lock_wait_timeout``: the session values Rivet is about to change.
   ``<timeout>`` is ``max_statement_time`` (seconds) on MariaDB and ``max_execution_time``
   (milliseconds) on MySQL, chosen from the server's version string.
2. ``SET SESSION time_zone = '+00:00'`` plus, when configured, the statement timeout and
   ``lock_wait_timeout`` / ``innodb_lock_wait_timeout`` (whole seconds, at least 1). The
   zone makes ``TIMESTAMP`` text UTC whatever the server's or the session's zone.
3. ``START TRANSACTION READ ONLY``: a query that writes fails. No ``WITH CONSISTENT
   SNAPSHOT``: the read is one statement, and one statement reads one snapshot anyway.
4. The query, on an unbuffered cursor: the server streams rows and pymysql reads them only
   as Rivet asks, ``batch_size`` at a time, so the result set is never held in memory. The
   column definitions arrive before the first row: the Arrow schema is fixed from them,
   and unmappable columns raise :class:`~rivet_core.errors.UnsupportedTypeError` before
   any row is read. ``throttle_ms`` sleeps between batches.
5. ``COMMIT``, then ``SET SESSION`` of the values saved in step 1, once the last row is
   read. After a server error the transaction is rolled back and the values restored the
   same way. A stream closed early, or a connection that failed, is *closed* instead: an
   unbuffered result cannot be abandoned without reading it to its end, and the session's
   settings end with it.

:meth:`MysqlSource.describe` runs none of that: it sends ``COM_STMT_PREPARE`` for the query
and ``COM_STMT_CLOSE`` right after, which returns the column definitions without executing
anything (a true zero-row probe; pymysql has no prepared statements, so this uses its packet
functions ``_execute_command`` and ``_read_packet``).

pymysql reliance, in one place: the source reads the column definitions from
``cursor._result.fields`` (pymysql's ``FieldDescriptorPacket``: ``type_code``, ``flags``,
``charsetnr``, ``length``, ``scale``), which pymysql keeps but does not document, and it
clears ``connection._result.unbuffered_active`` before closing a connection in the middle
of a result (otherwise pymysql tries to read the rest from the closed socket). Values are
read with no decoders at all, as the server's text (see :mod:`rivet_mysql.decode`).

``Query.sql`` takes pymysql placeholders (``%s``) when ``Query.params`` is not empty; with no
params the text is sent as written. The statement timeout covers the whole streamed read of
one query (MySQL times the statement, not each batch).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import ssl
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pymysql
from pymysql import converters
from pymysql.constants import COMMAND
from pymysql.cursors import Cursor, SSCursor
from pymysql.protocol import FieldDescriptorPacket

from rivet_core.backends import BatchStream, Query, ReadOptions, Source
from rivet_core.config.connection import ConnectionParams
from rivet_core.errors import SourceError
from rivet_core.redact import redact
from rivet_core.types import ColumnInfo, schema_of, unmatched_overrides
from rivet_mysql import cxread, decode, fastpath, typemap
from rivet_mysql.config import MysqlConfig
from rivet_mysql.errcodes import to_error

ENCODERS = {k: v for k, v in converters.conversions.items() if not isinstance(k, int)}
"""pymysql's parameter encoders without any decoder: result values stay the server's bytes."""

SESSION_ZONE = "+00:00"


def _wrap(exc: BaseException, label: str) -> SourceError:
    """A pymysql failure as a Rivet error: the server's first line, error number, redacted."""
    args: tuple[Any, ...] = tuple(exc.args)
    code = args[0] if args and isinstance(args[0], int) and args[0] > 0 else None
    message = str(args[1]) if len(args) > 1 else str(exc) or type(exc).__name__
    lost = isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError))
    return to_error(label, code, message, connection_lost=lost)


def _field(packet: Any) -> typemap.MyField:
    return typemap.MyField(name=packet.name, type_code=packet.type_code, flags=packet.flags,
                           charsetnr=packet.charsetnr, length=packet.length,
                           decimals=packet.scale)


class _Session:
    """The session values a read changes, and the statements that set and restore them."""

    def __init__(self, mariadb: bool, options: ReadOptions) -> None:
        self.timeout_var = "max_statement_time" if mariadb else "max_execution_time"
        self.names = ["time_zone"]
        self.values: list[Any] = [SESSION_ZONE]
        if options.statement_timeout_s > 0:
            self.names.append(self.timeout_var)
            self.values.append(options.statement_timeout_s if mariadb
                               else max(1, round(options.statement_timeout_s * 1000)))
        if options.lock_timeout_s > 0:
            seconds = max(1, math.ceil(options.lock_timeout_s))
            self.names += ["lock_wait_timeout", "innodb_lock_wait_timeout"]
            self.values += [seconds, seconds]
        self.saved: list[Any] | None = None

    def save_sql(self) -> str:
        return "SELECT " + ", ".join(f"@@session.{name}" for name in self.names)

    def remember(self, row: Sequence[Any]) -> None:
        saved: list[Any] = []
        for name, value in zip(self.names, row, strict=True):
            text = value.decode() if isinstance(value, bytes) else str(value)
            if name == "time_zone":
                saved.append(text)
            elif name == "max_statement_time":
                saved.append(float(text))
            else:
                saved.append(int(float(text)))
        self.saved = saved

    def set_sql(self, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        # Variable names are ours, values are bound: SET takes expressions.
        return ("SET " + ", ".join(f"SESSION {name} = %s" for name in self.names),
                tuple(values))


class MysqlSource(Source):
    """Reads queries from one MySQL or MariaDB database over a single, reused connection."""

    def __init__(self, config: MysqlConfig, *, config_dir: Path) -> None:
        self._config = config
        self._config_dir = config_dir
        self._params: ConnectionParams | None = None
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._mariadb = False
        self._active: MysqlBatchStream | cxread.CxBatchStream | None = None

    # ------------------------------------------------------------------ connection

    def _connection_params(self) -> ConnectionParams:
        if self._params is None:
            try:
                params = self._config.resolve(self._config_dir, default_port=3306)
            except (ValueError, KeyError, OSError) as exc:
                raise SourceError(redact(f"mysql source: bad connection settings: {exc}"),
                                  hint="run `rivet check` to see every config problem") from None
            if params.query:
                raise SourceError(
                    f"mysql source: unsupported URL parameter(s) "
                    f"{', '.join(sorted(params.query))}",
                    hint="use the [source.tls] table and the source's own keys")
            self._params = params
        return self._params

    def display_name(self) -> str:
        try:
            return self._connection_params().safe_url("mysql")
        except SourceError:
            return "mysql (connection settings unresolved)"

    def _ssl(self, params: ConnectionParams) -> dict[str, Any] | None:
        mode = params.tls_mode
        if mode is None or mode == "disable":
            return None
        settings: dict[str, Any] = {"check_hostname": mode == "verify-full",
                                    "verify_mode": ssl.CERT_NONE if mode == "require"
                                    else ssl.CERT_REQUIRED}
        if params.ca_file is not None and mode != "require":
            settings["ca"] = params.ca_file
        return settings

    def _connect(self) -> pymysql.connections.Connection[Any]:
        params = self._connection_params()
        try:
            conn = pymysql.connect(
                host=params.host, port=params.port, user=params.user,
                password=params.password or "", database=params.database or None,
                charset="utf8mb4", use_unicode=False, conv=ENCODERS, autocommit=True,
                connect_timeout=self._config.connect_timeout_s,
                program_name=self._config.application_name, ssl=self._ssl(params),
            )
        except pymysql.err.MySQLError as exc:
            raise _wrap(exc, f"cannot connect to {self.display_name()}") from None
        self._mariadb = "mariadb" in conn.get_server_info().lower()
        return conn

    def _connection(self) -> pymysql.connections.Connection[Any]:
        if self._conn is not None and not self._conn.open:
            self._discard_connection()
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # An unbuffered result still streaming would make pymysql read it to its end when
        # the cursor or result is collected; the socket closing below ends it instead.
        result = getattr(conn, "_result", None)
        if result is not None:
            result.unbuffered_active = False
        if conn.open:
            with contextlib.suppress(Exception):
                conn.close()

    @staticmethod
    def _execute(conn: pymysql.connections.Connection[Any], sql: str,
                 params: tuple[Any, ...] | None = None) -> tuple[Any, ...] | None:
        with conn.cursor(Cursor) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    # ------------------------------------------------------------------ reading

    def _begin(self, options: ReadOptions) -> tuple[pymysql.connections.Connection[Any],
                                                    _Session]:
        """Steps 1-3. A reused connection found dead here (server restart, wait_timeout) is
        replaced once: nothing has run on it yet, so this cannot repeat work."""
        reused = self._conn is not None and self._conn.open
        conn = self._connection()
        session = _Session(self._mariadb, options)
        try:
            row = self._execute(conn, session.save_sql())
        except pymysql.err.OperationalError:
            if not reused:
                raise
            self._discard_connection()
            conn = self._connection()
            session = _Session(self._mariadb, options)
            row = self._execute(conn, session.save_sql())
        assert row is not None
        session.remember(row)
        self._execute(conn, *session.set_sql(session.values))
        self._execute(conn, "START TRANSACTION READ ONLY")
        return conn, session

    def _end(self, session: _Session, *, commit: bool) -> None:
        """Step 5: end the transaction and restore the session; a connection that cannot
        is closed, so no changed setting outlives the read."""
        conn = self._conn
        if conn is None or not conn.open:
            self._discard_connection()
            return
        try:
            self._execute(conn, "COMMIT" if commit else "ROLLBACK")
            if session.saved is not None:
                self._execute(conn, *session.set_sql(session.saved))
        except (pymysql.err.MySQLError, OSError):
            self._discard_connection()
            if commit:
                raise

    def _open(self, query: Query, options: ReadOptions
              ) -> tuple[SSCursor, _Session, list[ColumnInfo], list[decode.ColumnPlan]]:
        if self._active is not None:
            raise RuntimeError("a previous read on this source is still open; close its "
                               "stream before starting another")
        session: _Session | None = None
        try:
            conn, session = self._begin(options)
            cursor = conn.cursor(SSCursor)
            cursor.execute(query.sql, query.params or None)
            result = cursor._result
            fields = [_field(f) for f in (result.fields if result is not None else [])]
        except (pymysql.err.MySQLError, OSError) as exc:
            error = _wrap(exc, query.label)
            self._abandon(session)
            raise error from None
        except BaseException:
            self._abandon(session)
            raise
        try:
            columns, plan = self._map(fields, options, query.label)
        except BaseException:
            # Nothing of the result has been read: closing the connection is cheaper than
            # reading the rows to their end.
            self._discard_connection()
            raise
        return cursor, session, columns, plan

    def _abandon(self, session: _Session | None) -> None:
        """After a failure before streaming: roll back and restore, or drop the connection."""
        if session is None:
            self._discard_connection()
            return
        with contextlib.suppress(pymysql.err.MySQLError, OSError):
            self._end(session, commit=False)

    def _map(self, fields: list[typemap.MyField], options: ReadOptions, label: str
             ) -> tuple[list[ColumnInfo], list[decode.ColumnPlan]]:
        overrides = options.column_types
        names = [f.name for f in fields]
        unknown = unmatched_overrides(names, overrides)
        if unknown:
            raise SourceError(
                f"{label}: [exports.columns] names {', '.join(map(repr, unknown))}, which the "
                f"query does not return (columns: {', '.join(names)})",
                hint="column names are case-sensitive; fix the name or drop the override")
        zero_dates = self._config.zero_dates
        columns: list[ColumnInfo] = []
        keys: list[str | None] = []
        plan: list[decode.ColumnPlan] = []
        for field in fields:
            key, natural = typemap.map_field(field)
            column, direct = natural, False
            if field.name in overrides:
                target = overrides[field.name]
                column = typemap.override_column(natural, key, target)
                direct = typemap.rescue_for(key, target) is not None
            columns.append(column)
            keys.append(key)
            if column.arrow_type is None or key is None:
                continue
            build = (decode.direct_builder(key, column.arrow_type) if direct
                     else decode.builder_for(key, zero_dates))
            plan.append(decode.ColumnPlan(field.name, build, natural.arrow_type,
                                          column.arrow_type, direct))
        error = typemap.unsupported(columns, keys, label)
        if error is not None:
            raise error
        return columns, plan

    def _prepare(self, query: Query) -> tuple[pymysql.connections.Connection[Any], str,
                                              list[typemap.MyField]]:
        """(connection, final SQL, column definitions) of ``query``, prepared but not run.
        A reused connection the server dropped meanwhile is replaced once."""
        reused = self._conn is not None and self._conn.open
        conn = self._connection()
        sql = query.sql
        if query.params:
            sql = Cursor(conn).mogrify(query.sql, query.params)
        try:
            return conn, sql, self._prepared_fields(conn, sql)
        except pymysql.err.OperationalError:
            if not reused:
                raise
            self._discard_connection()
            conn = self._connection()
            return conn, sql, self._prepared_fields(conn, sql)

    def _prepared_fields(self, conn: pymysql.connections.Connection[Any],
                         sql: str) -> list[typemap.MyField]:
        """Column definitions of ``sql`` from ``COM_STMT_PREPARE``; nothing is executed."""
        conn._execute_command(COMMAND.COM_STMT_PREPARE, sql)
        ok = conn._read_packet()
        statement_id, columns, params = struct.unpack_from("<IHH", ok.get_all_data(), 1)
        try:
            for _ in range(params + (1 if params else 0)):  # definitions, then EOF
                conn._read_packet()
            packets = [conn._read_packet(FieldDescriptorPacket) for _ in range(columns)]
            if columns:
                conn._read_packet()  # EOF
        finally:
            conn._execute_command(COMMAND.COM_STMT_CLOSE, struct.pack("<I", statement_id))
        return [_field(p) for p in packets]

    def describe(self, query: Query, options: ReadOptions) -> list[ColumnInfo]:
        """The mapped columns of ``query``, from a prepared statement that never runs."""
        if self._active is not None:
            raise RuntimeError("a previous read on this source is still open; close its "
                               "stream before starting another")
        try:
            fields = self._prepare(query)[2]
        except (pymysql.err.MySQLError, OSError) as exc:
            error = _wrap(exc, query.label)
            if isinstance(exc, (pymysql.err.OperationalError, OSError)):
                self._discard_connection()
            raise error from None
        columns, _ = self._map(fields, options, query.label)
        return columns

    def read(self, query: Query, options: ReadOptions) -> BatchStream:
        """Read over ConnectorX when it can carry the query exactly, else over pymysql."""
        if self._active is not None:
            raise RuntimeError("a previous read on this source is still open; close its "
                               "stream before starting another")
        choice = self._fast_unavailable() or self._plan_fast(query, options)
        if isinstance(choice, _FastRead):
            try:
                fast = self._start_fast(choice, options, query.label)
            except cxread.SchemaMismatch as exc:
                choice = str(exc)
            else:
                self._active = fast
                return fast
        if self._config.read_path == "connectorx":
            raise SourceError(f"{query.label}: read_path = \"connectorx\", but {choice}",
                              hint='set read_path = "auto" to read such queries over pymysql')
        cursor, session, columns, plan = self._open(query, options)
        stream = MysqlBatchStream(self, cursor, session, columns, plan, options, query.label)
        stream.read_path = f"pymysql text protocol: {choice}"
        if options.parallel > 1:
            stream.read_path += f" (1 connection, parallel = {options.parallel} not used)"
        self._active = stream
        return stream

    # ------------------------------------------------------------------ ConnectorX path

    def _fast_unavailable(self) -> str | None:
        """Why no read of this source can take the ConnectorX path, or None."""
        if self._config.read_path == "pymysql":
            return 'read_path = "pymysql"'
        if importlib.util.find_spec("connectorx") is None:
            return "connectorx is not installed"
        mode = self._connection_params().tls_mode
        if mode is not None and mode != "disable":
            return "TLS is configured ([source.tls]), which ConnectorX is not given"
        return None

    def _plan_fast(self, query: Query, options: ReadOptions) -> _FastRead | str:
        """What the ConnectorX path would read (statements, carriers), or why it cannot.
        Runs only metadata statements: the prepare probe, EXPLAIN, information_schema."""
        try:
            conn, sql, fields = self._prepare(query)
        except (pymysql.err.MySQLError, OSError) as exc:
            # The pymysql path runs the query and reports the failure in full.
            if isinstance(exc, (pymysql.err.OperationalError, OSError)):
                self._discard_connection()
            return f"the statement cannot be prepared ({_wrap(exc, 'prepare').message})"
        columns, plan = self._map(fields, options, query.label)
        carriers: list[fastpath.Carrier] = []
        dates: list[str] = []
        native_dates = self._config.zero_dates == "error"
        for field, column_plan in zip(fields, plan, strict=True):
            key = str(typemap.classify(field)[0])
            carrier = fastpath.carrier_for(key, column_plan, native_dates=native_dates)
            if isinstance(carrier, str):
                return carrier
            carriers.append(carrier)
            if not carrier.cast and key in ("date", "datetime", "timestamp"):
                dates.append(carrier.name)
        table = query.table if not query.params else None
        cast = next((c.name for c in carriers if c.cast), None)
        if cast is not None and table is None and fastpath.has_order_by(sql):
            return (f"the query has ORDER BY, and column {cast} needs a server-side cast "
                    f"in a derived table, whose order MariaDB does not keep")
        row_bytes = self._row_bytes(conn, table) if table is not None else None
        batch_rows = fastpath.batch_rows(options.batch_size, options.max_batch_bytes,
                                         row_bytes)
        split = (self._split(conn, table, options.parallel, row_bytes) if table is not None
                 else "not a table export")
        if not isinstance(split, str):
            key, ranges = split
            statements = [fastpath.range_select(carriers, str(table), key, lo, hi)
                          for lo, hi in ranges]
            parallel = max(1, options.parallel)
            waves = [statements[i:i + parallel] for i in range(0, len(statements), parallel)]
            connections = min(parallel, len(statements))
            how = (f"{connections} connection{'s' if connections > 1 else ''} over "
                   f"{len(statements)} ranges of {key}")
            return _FastRead(columns=columns, carriers=carriers, waves=waves,
                             batch_rows=batch_rows, dates=dates,
                             read_path=f"ConnectorX binary protocol, {how}")
        # One statement: it must stream from the server as it is and be small enough for
        # ConnectorX's unbounded read-ahead.
        statement = fastpath.select_sql(carriers, table=table, query=sql)
        reason = self._too_big_or_materialised(conn, sql, statement, split)
        if reason is not None:
            return reason
        how = "1 connection"
        if options.parallel > 1:
            how += f" (parallel = {options.parallel} not used: {split})"
        return _FastRead(columns=columns, carriers=carriers, waves=[[statement]],
                         batch_rows=batch_rows, dates=dates,
                         read_path=f"ConnectorX binary protocol, {how}")

    def _too_big_or_materialised(self, conn: pymysql.connections.Connection[Any], sql: str,
                                 statement: str, unsplit: str) -> str | None:
        """Why one statement cannot be read over ConnectorX, from EXPLAIN (which plans
        without executing): more rows than :data:`fastpath.QUERY_ROWS` are estimated, or the
        select-list wrapper makes the server materialise the query (a new ``DERIVED``
        step) instead of streaming it. None when it can."""
        try:
            derived, rows = self._explain(conn, statement)
            if statement != sql and derived > self._explain(conn, sql)[0]:
                return ("the query cannot be merged into the select list the casts need "
                        "(the server would materialise it first)")
        except (pymysql.err.MySQLError, ValueError) as exc:
            return f"EXPLAIN failed ({exc})"
        if rows > fastpath.QUERY_ROWS:
            return (f"{unsplit}, and the server estimates {rows:,} rows; ConnectorX reads "
                    f"ahead without limit, so only up to {fastpath.QUERY_ROWS:,} are read "
                    f"over it")
        return None

    @staticmethod
    def _explain(conn: pymysql.connections.Connection[Any], sql: str) -> tuple[int, int]:
        """(``DERIVED`` steps, estimated rows: the product of each step's estimate)."""
        with conn.cursor(Cursor) as cursor:
            cursor.execute("EXPLAIN " + sql)
            names = [d[0].lower() for d in cursor.description or ()]
            records = cursor.fetchall()
        kind, count = names.index("select_type"), names.index("rows")
        derived, rows = 0, 1
        for record in records:
            if record[kind] in (b"DERIVED", "DERIVED"):
                derived += 1
            if record[count] is not None:
                rows *= max(1, int(record[count]))
        return derived, rows

    def _split(self, conn: pymysql.connections.Connection[Any], table: str, parallel: int,
               row_bytes: int | None) -> tuple[str, list[tuple[int, int | None]]] | str:
        """The table's integer primary key and its ranges (bounded in bytes, at least
        ``parallel``), or why the table cannot be split."""
        schema, name = fastpath.table_parts(table)
        rows = self._rows(conn, _PRIMARY_KEY_SQL, (schema, name))
        text = [[v.decode() if isinstance(v, bytes) else v for v in row] for row in rows]
        if len(text) != 1 or str(text[0][1]).lower() not in _INTEGER_TYPES:
            found = ", ".join(f"{r[0]} {r[1]}" for r in text) or "none"
            return f"table {table} has no single-column integer primary key ({found})"
        key, estimated = str(text[0][0]), int(text[0][2] or 0)
        ident = typemap.sql_ident(key)
        ((lo, hi),) = self._rows(conn, f"SELECT MIN({ident}), MAX({ident}) FROM "
                                       f"{fastpath.table_ref(table)}", ())
        if lo is None:
            return f"table {table} is empty"
        return key, fastpath.key_ranges(int(lo), int(hi), estimated_rows=estimated,
                                        parallel=parallel,
                                        rows_per_range=fastpath.range_rows(row_bytes))

    def _row_bytes(self, conn: pymysql.connections.Connection[Any], table: str) -> int | None:
        """The table's average row length from the server's statistics (None: unknown)."""
        schema, name = fastpath.table_parts(table)
        rows = self._rows(conn, "SELECT AVG_ROW_LENGTH FROM information_schema.TABLES WHERE "
                                "TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s",
                          (schema, name))
        value = rows[0][0] if rows else None
        return int(value) if value else None

    @staticmethod
    def _rows(conn: pymysql.connections.Connection[Any], sql: str,
              params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with conn.cursor(Cursor) as cursor:
            cursor.execute(sql, params or None)
            return list(cursor.fetchall())

    def _start_fast(self, choice: _FastRead, options: ReadOptions,
                    label: str) -> cxread.CxBatchStream:
        session = _Session(self._mariadb, options)
        return cxread.CxBatchStream(
            columns=choice.columns, carriers=choice.carriers, waves=choice.waves,
            url=cxread.connection_url(self._connection_params(),
                                      self._config.connect_timeout_s),
            session=cxread.session_statements(list(zip(session.names, session.values,
                                                       strict=True))),
            options=attrs.evolve(options, batch_size=choice.batch_rows), label=label,
            read_path=choice.read_path,
            kill=self._kill_tagged, dates=choice.dates, on_end=self._fast_ended)

    def _kill_tagged(self, token: str) -> None:
        """End ConnectorX's sessions of a read that stops early (see :mod:`.cxread`)."""
        with contextlib.suppress(pymysql.err.MySQLError, OSError, SourceError):
            conn = self._connection()
            cxread.kill_sessions(lambda sql, params: self._rows(conn, sql, params), token)

    def _fast_ended(self, stream: cxread.CxBatchStream) -> None:
        if self._active is stream:
            self._active = None

    def _finished(self, stream: MysqlBatchStream, *, ok: bool, error: bool = False) -> None:
        """Called by the stream when it ends. ``ok``: every row was read, commit and
        restore. ``error``: the server ended the result with an error, roll back and
        restore. Otherwise (closed early, broken link) close the connection."""
        if self._active is stream:
            self._active = None
        if ok or error:
            try:
                self._end(stream.session, commit=ok)
            except (pymysql.err.MySQLError, OSError) as exc:
                raise _wrap(exc, stream.label) from None
        else:
            self._discard_connection()

    def close(self) -> None:
        if self._active is not None:
            self._active.close()
        self._discard_connection()


_PRIMARY_KEY_SQL = (
    "SELECT k.COLUMN_NAME, c.DATA_TYPE, t.TABLE_ROWS "
    "FROM information_schema.KEY_COLUMN_USAGE k "
    "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = k.TABLE_SCHEMA "
    "AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME "
    "JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = k.TABLE_SCHEMA "
    "AND t.TABLE_NAME = k.TABLE_NAME "
    "WHERE k.CONSTRAINT_NAME = 'PRIMARY' AND k.TABLE_SCHEMA = COALESCE(%s, DATABASE()) "
    "AND k.TABLE_NAME = %s ORDER BY k.ORDINAL_POSITION")
_INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})


@attrs.frozen(kw_only=True)
class _FastRead:
    """A read the ConnectorX path can serve: mapped columns, carriers, statements."""

    columns: list[ColumnInfo]
    carriers: list[fastpath.Carrier]
    waves: list[list[str]]
    batch_rows: int
    """Rows per ConnectorX batch (``batch_size``, fewer for wide rows)."""
    dates: list[str]
    """Columns carried as native dates (named if ConnectorX refuses a zero date)."""
    read_path: str


class MysqlBatchStream(BatchStream):
    """Batches of one unbuffered result. Iterate once; ``close()`` before the end closes the
    connection (the server stops sending when the socket goes away)."""

    def __init__(self, source: MysqlSource, cursor: SSCursor, session: _Session,
                 columns: list[ColumnInfo], plan: list[decode.ColumnPlan],
                 options: ReadOptions, label: str) -> None:
        self.columns = columns
        self.schema = schema_of(columns)
        self.cursor = cursor
        self.session = session
        self.label = label
        self._source = source
        self._plan = plan
        self._options = options
        self._fetch_size = max(1, options.batch_size)
        self._open = True

    def batches(self) -> Iterator[pa.RecordBatch]:
        throttle_s = self._options.throttle_ms / 1000
        max_bytes = self._options.max_batch_bytes
        try:
            while self._open:
                size = self._fetch_size
                try:
                    rows = self.cursor.fetchmany(size)
                except (pymysql.err.MySQLError, OSError) as exc:
                    error = _wrap(exc, self.label)
                    server_error = (isinstance(exc, pymysql.err.MySQLError) and exc.args
                                    and isinstance(exc.args[0], int) and exc.args[0] < 2000)
                    self._open = False
                    with contextlib.suppress(SourceError):
                        self._source._finished(self, ok=False, error=bool(server_error))
                    raise error from None
                last = len(rows) < size
                if last:
                    self._open = False
                    self._source._finished(self, ok=True)
                if rows:
                    batch = self._convert(rows)
                    if max_bytes is not None and batch.nbytes > max_bytes:
                        self._fetch_size = max(1, size // 2)
                    yield batch
                if not last and throttle_s > 0:
                    time.sleep(throttle_s)
        finally:
            # An error, or the consumer stopping early (GeneratorExit), ends up here.
            self.close()

    def _convert(self, rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True))
        arrays = [decode.build_column(values, col)
                  for values, col in zip(columns, self._plan, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._source._finished(self, ok=False)
