"""The PostgreSQL source: a control connection (psycopg) that describes every query, and two
read paths, chosen per read (:meth:`PostgresSource.read`) and named in
``BatchStream.read_path``:

- binary COPY decoded in C (:mod:`rivet_postgres.copyreader`, conversions in
  :mod:`rivet_postgres.fastpath`), the default; a ``table`` read is split into ctid ranges
  over ``ReadOptions.parallel`` connections that import the control transaction's snapshot;
- the server-side cursor below, when COPY cannot serve the query (two result columns of one
  name that COPY must convert in SQL, or no C decoder) or ``read_path = "cursor"``.

Both start with steps 1-3 on the control connection. Protocol of a cursor read
(``describe`` stops after step 3 and rolls back):

1. ``BEGIN READ ONLY; SET LOCAL statement_timeout = <ms>; SET LOCAL lock_timeout = <ms>;
   SET LOCAL TimeZone = 'UTC'`` in one round trip (the timeouts only when > 0). Every
   setting is transaction-scoped, so nothing leaks into a pooled session.
2. ``DECLARE "_rivet" NO SCROLL CURSOR FOR <sql>`` with the parameters bound (extended
   protocol), then Describe Portal: the columns are known before any row is produced.
3. ``SELECT format_type(oid, typmod) ...`` for column types not seen before on this
   connection, so messages spell types as PostgreSQL does, and ``SELECT ... FROM pg_type``
   for OIDs that are not built in (enums, citext, arrays of user types and of domains),
   cached per connection. With a ``money`` column, ``SELECT scale('0'::money::numeric)``
   reads the fractional digits of ``lc_monetary``. Unmappable columns raise
   :class:`~rivet_core.errors.UnsupportedTypeError` here, before any batch. The first time
   a connection meets a non-built-in type, Rivet installs its loader, closes the cursor and
   declares it again (psycopg fixes a cursor's loaders when it is described); the query
   still has not produced a row.
4. ``FETCH FORWARD <n> FROM "_rivet"`` (binary results) until a short fetch, one Arrow
   batch per fetch, sleeping ``throttle_ms`` between fetches.
5. ``CLOSE "_rivet"; COMMIT`` as soon as the last rows are in hand (before the last batch
   is handed over, so the snapshot is released early). On any error, or when the stream is
   closed early, ``ROLLBACK``; a connection that cannot roll back is discarded.

``Query.sql`` takes psycopg placeholders (``%s``) when ``Query.params`` is not empty; with no
params the text is sent as written, so a literal ``%`` needs no escaping.

``ReadOptions.max_batch_bytes`` (64 MiB when unset): when a batch's Arrow size exceeds it,
later fetches ask for half as many rows (never fewer than 1). The oversized batch itself is
still delivered.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import psycopg
import pyarrow as pa
from psycopg import pq

from rivet_core.backends import BatchStream, Query, ReadOptions, Source
from rivet_core.config.connection import ConnectionParams
from rivet_core.errors import SourceError
from rivet_core.redact import redact
from rivet_core.types import ColumnInfo, schema_of, unmatched_overrides
from rivet_postgres import decode, fastpath, typemap
from rivet_postgres.config import PostgresConfig
from rivet_postgres.sqlstate import wrap_error

if TYPE_CHECKING:
    from rivet_postgres.copyreader import CopyPool

CURSOR_NAME = "_rivet"
CURSOR_BATCH_BYTES = 64 << 20
"""Arrow bytes of a cursor batch past which the next fetches ask for half as many rows,
when the export sets no ``max_batch_memory_mb``."""
MONEY_SCALE_SQL = "SELECT scale('0'::money::numeric)"
"""Fractional digits of ``lc_monetary``, exactly as ``money::numeric`` applies them."""
_IDLE = pq.TransactionStatus.IDLE


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _begin_sql(options: ReadOptions, *, repeatable_read: bool = False) -> str:
    return "; ".join(begin_statements(options, repeatable_read=repeatable_read))


def begin_statements(options: ReadOptions, *, repeatable_read: bool = False,
                     snapshot: str | None = None) -> list[str]:
    """Step 1, as statements: the same on the cursor connection and on every COPY
    connection. REPEATABLE READ when a snapshot is exported to (or imported by) the COPY
    connections of a ranged read; the snapshot id is the server's own
    ``pg_export_snapshot()`` text."""
    statements = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if repeatable_read
                  else "BEGIN READ ONLY"]
    if snapshot is not None:
        statements.append(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    # Integers formatted by us, never user text: SET takes no bind parameters.
    if options.statement_timeout_s > 0:
        statements.append(
            f"SET LOCAL statement_timeout = {_milliseconds(options.statement_timeout_s)}")
    if options.lock_timeout_s > 0:
        statements.append(f"SET LOCAL lock_timeout = {_milliseconds(options.lock_timeout_s)}")
    statements.append("SET LOCAL TimeZone = 'UTC'")
    return statements


class PostgresSource(Source):
    """Reads queries from one PostgreSQL database over a single, reused connection."""

    def __init__(self, config: PostgresConfig, *, config_dir: Path) -> None:
        self._config = config
        self._config_dir = config_dir
        self._params: ConnectionParams | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._type_names: dict[tuple[int, int], str] = {}
        self._catalog: dict[int, typemap.CatalogType] = {}
        self._dynamic_loaders: set[int] = set()
        self._active: BatchStream | None = None
        self._pool: CopyPool | None = None

    # ------------------------------------------------------------------ connection

    def _connection_params(self) -> ConnectionParams:
        if self._params is None:
            try:
                self._params = self._config.resolve(self._config_dir, default_port=5432)
            except (ValueError, KeyError, OSError) as exc:
                raise SourceError(redact(f"postgres source: bad connection settings: {exc}"),
                                  hint="run `rivet check` to see every config problem") from None
        return self._params

    def display_name(self) -> str:
        try:
            return self._connection_params().safe_url("postgresql")
        except SourceError:
            return "postgresql (connection settings unresolved)"

    def _connect(self) -> psycopg.Connection[Any]:
        params = self._connection_params()
        # URL query parameters (sslmode, options, ...) are libpq keywords and override ours.
        kwargs: dict[str, Any] = {
            "host": params.host, "port": params.port, "user": params.user,
            "dbname": params.database, "application_name": self._config.application_name,
            "connect_timeout": self._config.connect_timeout_s,
        }
        if params.password is not None:
            kwargs["password"] = params.password
        if params.tls_mode is not None:
            kwargs["sslmode"] = params.tls_mode
        if params.ca_file is not None:
            kwargs["sslrootcert"] = params.ca_file
        kwargs.update(params.query)
        try:
            # prepare_threshold=None: no server-side prepared statements, which a
            # transaction-mode pooler would route to the wrong backend.
            conn = psycopg.connect(autocommit=True, prepare_threshold=None,
                                   client_encoding="UTF8", **kwargs)
        except psycopg.Error as exc:
            raise wrap_error(exc, f"cannot connect to {self.display_name()}") from None
        decode.register_loaders(conn.adapters)
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            self._discard_connection()
            conn = None
        if conn is None:
            conn = self._conn = self._connect()
        return conn

    def _discard_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        # OIDs of user types can be reused after DROP/CREATE; what is known about them is
        # cached per connection only.
        self._type_names.clear()
        self._catalog.clear()
        self._dynamic_loaders.clear()

    def _rollback(self) -> None:
        """End the current transaction, or drop a connection that cannot."""
        conn = self._conn
        if conn is None:
            return
        if conn.closed or conn.broken:
            self._discard_connection()
            return
        try:
            if conn.info.transaction_status != _IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            self._discard_connection()

    # ------------------------------------------------------------------ reading

    def _begin(self, options: ReadOptions, *, repeatable_read: bool = False
               ) -> psycopg.Connection[Any]:
        """Step 1. A reused connection found dead here (server restart, idle timeout,
        pooler) is replaced once: nothing has run on it yet, so this cannot repeat work."""
        reused = self._conn is not None and not (self._conn.closed or self._conn.broken)
        conn = self._connection()
        begin = _begin_sql(options, repeatable_read=repeatable_read)
        try:
            if conn.info.transaction_status != _IDLE:
                conn.execute("ROLLBACK")
            conn.execute(begin)
            return conn
        except psycopg.OperationalError:
            if not reused or not (conn.closed or conn.broken):
                raise
        self._discard_connection()
        conn = self._connection()
        conn.execute(begin)
        return conn

    def _resolve_type_names(self, conn: psycopg.Connection[Any],
                            shapes: list[tuple[int, int]]) -> list[str]:
        missing = sorted({shape for shape in shapes if shape not in self._type_names})
        if missing:
            rows = conn.execute(
                "SELECT format_type(t.oid, t.typmod) FROM unnest(%s::oid[], %s::int4[])"
                " WITH ORDINALITY AS t(oid, typmod, n) ORDER BY t.n",
                ([oid for oid, _ in missing], [mod for _, mod in missing]),
            ).fetchall()
            for shape, (name,) in zip(missing, rows, strict=True):
                self._type_names[shape] = name or f"oid {shape[0]}"
        return [self._type_names[shape] for shape in shapes]

    def _resolve_types(self, conn: psycopg.Connection[Any],
                       shapes: list[tuple[int, int]]) -> list[typemap.Resolved]:
        """Read the ``pg_type`` rows the columns' OIDs lead to (domains and array elements
        followed), then reduce each column to a mapped type."""
        oids = [oid for oid, _ in shapes]
        for _ in range(8):  # each round follows one more domain / element level
            missing = typemap.unknown_oids(oids + list(self._catalog), self._catalog)
            if not missing:
                break
            rows = conn.execute(
                "SELECT oid::int8, typname::text, typtype::text, typbasetype::int8, typtypmod,"
                " CASE WHEN typcategory = 'A' THEN typelem::int8 ELSE 0 END"
                " FROM pg_type WHERE oid = ANY(%s::oid[])",
                (sorted(missing),),
            ).fetchall()
            for oid, name, kind, base, base_typmod, element in rows:
                self._catalog[oid] = typemap.CatalogType(
                    oid=oid, typname=name, typtype=kind, base_oid=base,
                    base_typmod=base_typmod, element_oid=element)
            for oid in missing - {row[0] for row in rows}:
                self._catalog[oid] = typemap.CatalogType(oid=oid, typname="?", typtype="?")
        return [typemap.resolve(oid, typmod, self._catalog) for oid, typmod in shapes]

    def _install_loaders(self, conn: psycopg.Connection[Any], shapes: list[tuple[int, int]],
                         resolved: list[typemap.Resolved]) -> bool:
        """Register the loaders non-built-in columns need; True if any was new (the cursor
        must then be declared again to use them)."""
        added = False
        for (oid, _), column in zip(shapes, resolved, strict=True):
            for type_oid, loader in decode.dynamic_loaders(oid, column).items():
                if type_oid not in self._dynamic_loaders:
                    conn.adapters.register_loader(type_oid, loader)
                    self._dynamic_loaders.add(type_oid)
                    added = True
        return added

    def _declare(self, conn: psycopg.Connection[Any], query: Query
                 ) -> tuple[psycopg.ServerCursor[Any], list[str], list[tuple[int, int]]]:
        """Step 2: declare and describe the cursor."""
        cursor = conn.cursor(CURSOR_NAME, binary=True, scrollable=False)
        try:
            cursor.execute(query.sql, query.params or None)
        except BaseException:
            self._close_cursor(cursor)
            raise
        result = cursor.pgresult
        assert result is not None  # set by the Describe Portal of execute()
        names = [(result.fname(i) or b"?column?").decode() for i in range(result.nfields)]
        shapes = [(result.ftype(i), result.fmod(i)) for i in range(result.nfields)]
        return cursor, names, shapes

    def _open(self, query: Query, options: ReadOptions, *, fetch: bool = True,
              repeatable_read: bool = False) -> Opened:
        """Steps 1-3 of the protocol. On failure the transaction is rolled back. Without
        ``fetch`` (describe), no loader is installed since no row will be read."""
        if self._active is not None:
            raise RuntimeError("a previous read on this source is still open; close its "
                               "stream before starting another")
        cursor: psycopg.ServerCursor[Any] | None = None
        try:
            conn = self._begin(options, repeatable_read=repeatable_read)
            cursor, names, shapes = self._declare(conn, query)
            type_names = self._resolve_type_names(conn, shapes)
            resolved = self._resolve_types(conn, shapes)
            money_scale: int | None = None
            if any(r.key == "money" for r in resolved):
                row = conn.execute(MONEY_SCALE_SQL).fetchone()
                money_scale = int(row[0]) if row else None
            if fetch and self._install_loaders(conn, shapes, resolved):
                cursor.close()  # sends CLOSE; the transaction stays open
                cursor = None
                cursor, names, shapes = self._declare(conn, query)
        except psycopg.Error as exc:
            error = wrap_error(exc, query.label)
            self._close_cursor(cursor)
            raise error from None
        except BaseException:
            self._close_cursor(cursor)
            raise
        try:
            columns, plan = self._map(names, resolved, type_names, money_scale, options,
                                      query.label)
        except BaseException:
            self._close_cursor(cursor)
            raise
        return Opened(cursor, columns, plan, [oid for oid, _ in shapes])

    def _close_cursor(self, cursor: psycopg.ServerCursor[Any] | None) -> None:
        self._rollback()
        if cursor is not None:
            # After ROLLBACK (or with the connection gone) the portal no longer exists; this
            # sends nothing and only marks the psycopg object closed.
            with contextlib.suppress(psycopg.Error):
                cursor.close()

    def _map(self, names: list[str], resolved: list[typemap.Resolved], type_names: list[str],
             money_scale: int | None, options: ReadOptions, label: str
             ) -> tuple[list[ColumnInfo], list[decode.ColumnPlan]]:
        overrides = options.column_types
        unknown = unmatched_overrides(names, overrides)
        if unknown:
            raise SourceError(
                f"{label}: [exports.columns] names {', '.join(map(repr, unknown))}, which the "
                f"query does not return (columns: {', '.join(names)})",
                hint="column names are case-sensitive; fix the name or drop the override")
        columns: list[ColumnInfo] = []
        plan: list[decode.ColumnPlan] = []
        for name, column_type, type_name in zip(names, resolved, type_names, strict=True):
            natural = typemap.map_column(name, column_type, type_name, money_scale)
            column, direct = natural, False
            if name in overrides:
                column = typemap.override_column(natural, column_type, overrides[name])
                direct = typemap.rescue_for(column_type, overrides[name]) is not None
            columns.append(column)
            if column.arrow_type is not None:
                plan.append(decode.ColumnPlan(name, column_type.key, column_type.array,
                                              natural.arrow_type, column.arrow_type, direct))
        error = typemap.unsupported(columns, resolved, label)
        if error is not None:
            raise error
        return columns, plan

    def describe(self, query: Query, options: ReadOptions) -> list[ColumnInfo]:
        """The mapped columns of ``query``; the cursor is declared, described and rolled
        back without a single FETCH, so the query does not run."""
        opened = self._open(query, options, fetch=False)
        self._close_cursor(opened.cursor)
        return opened.columns

    def read(self, query: Query, options: ReadOptions) -> BatchStream:
        """Read over binary COPY when the C decoder is there and the result allows it,
        else over the server-side cursor; ``read_path`` of the stream says which, and why."""
        forced = self._config.read_path
        driver_missing = None if forced == "cursor" else _copy_driver_missing()
        if forced == "copy" and driver_missing:
            raise SourceError(f"{query.label}: read_path = \"copy\", but {driver_missing}",
                              hint="reinstall rivet-cli where a C compiler is present, or "
                                   "set read_path = \"auto\"")
        ranged = (forced != "cursor" and driver_missing is None and query.table is not None
                  and not query.params and fastpath.reads_whole_table(query.sql, query.table))
        opened = self._open(query, options, repeatable_read=ranged)
        if forced == "cursor":
            return self._cursor_stream(opened, query, options,
                                       "read_path = \"cursor\" in [source]")
        if driver_missing:
            return self._cursor_stream(opened, query, options, driver_missing)
        try:
            columns = self._fast_columns(opened)
        except BaseException:
            self._close_cursor(opened.cursor)
            raise
        reason = fastpath.unwrappable([c.plan.name for c in columns], columns)
        if reason is not None:
            if forced == "copy":
                self._close_cursor(opened.cursor)
                raise SourceError(f"{query.label}: read_path = \"copy\", but {reason}, so "
                                  f"the columns cannot be converted for COPY",
                                  hint="give the columns distinct names (AS ...), or set "
                                       "read_path = \"auto\"")
            return self._cursor_stream(opened, query, options, reason)
        return self._copy_stream(opened, columns, query, options, ranged=ranged)

    def _cursor_stream(self, opened: Opened, query: Query, options: ReadOptions,
                       why: str) -> PostgresBatchStream:
        stream = PostgresBatchStream(self, opened.cursor, opened.columns, opened.plan, options,
                                     query.label)
        stream.read_path = f"server-side cursor (psycopg): {why}"
        self._active = stream
        return stream

    def _fast_columns(self, opened: Opened) -> list[fastpath.FastColumn]:
        conn = self._conn
        assert conn is not None
        columns = []
        for oid, plan in zip(opened.oids, opened.plan, strict=True):
            carry, send = fastpath.carry_for(plan)
            load = None
            if carry is fastpath.Carry.WIRE:
                # The loader the cursor would use for this column: the same decoding.
                loader_cls = conn.adapters.get_loader(oid, pq.Format.BINARY)
                if loader_cls is None:
                    raise SourceError(f"no binary loader for column {plan.name!r}")
                load = loader_cls(oid, conn).load
            columns.append(fastpath.FastColumn(plan, carry, send, load))
        return columns

    def _copy_conninfo(self) -> str:
        params = self._connection_params()
        keywords: dict[str, str | int | None] = {
            "host": params.host, "port": params.port, "user": params.user,
            "dbname": params.database, "password": params.password,
            "application_name": self._config.application_name,
            "connect_timeout": self._config.connect_timeout_s,
            "client_encoding": "UTF8", "sslmode": params.tls_mode,
            "sslrootcert": params.ca_file,
        }
        keywords.update(params.query)
        return fastpath.conninfo(keywords)

    def _copy_stream(self, opened: Opened, columns: list[fastpath.FastColumn], query: Query,
                     options: ReadOptions, *, ranged: bool) -> CopyBatchStream:
        # Imported here: only needed once a COPY read is chosen.
        from rivet_postgres import copyreader

        conn = self._conn
        assert conn is not None
        if self._pool is None:
            self._pool = copyreader.CopyPool()
        schema = schema_of(opened.columns)
        max_bytes = options.max_batch_bytes
        batch_bytes = min(fastpath.BATCH_HINT_BYTES, max_bytes or fastpath.BATCH_HINT_BYTES)
        throttle_s = options.throttle_ms / 1000
        plans = opened.plan
        layout = fastpath.copy_layout(columns)

        def convert(raw: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
            fastpath.check_schema(raw.schema, columns)
            try:
                batch = fastpath.convert_batch(raw, columns, schema)
            except decode.ArrayShapeError as exc:
                raise array_shape_error(plans, query.label, exc) from None
            return fastpath.slices(batch, options.batch_size, max_bytes)

        try:
            settings = self._copy_conninfo()
            table = self._table_blocks(conn, query.table) if ranged and query.table else None
            if table is not None and len(fastpath.block_ranges(table[1])) > 1:
                name, blocks = table
                ranges = fastpath.block_ranges(blocks)
                (snapshot,) = conn.execute("SELECT pg_export_snapshot()").fetchone() or ("",)
                opened.cursor.close()  # CLOSE; the transaction (and snapshot) stays open
                statements = [fastpath.select_sql(fastpath.range_sql(name, r), columns)
                              for r in ranges]
                workers = max(1, min(options.parallel, len(ranges)))
                reader = copyreader.RangedCopy(
                    self._pool, settings, statements, layout=layout, workers=workers,
                    begin=begin_statements(options, repeatable_read=True, snapshot=snapshot),
                    batch_bytes=batch_bytes, convert=convert, label=query.label,
                    throttle_s=throttle_s, on_imported=self._end_snapshot_transaction)
                noun = "connection" if workers == 1 else "connections"
                path = (f"binary COPY, {workers} {noun} over {len(ranges)} ctid ranges "
                        f"of {name}")
                stream = CopyBatchStream(self, opened.columns, iter(reader),
                                         closer=reader.close, label=query.label)
            else:
                sql = query.sql
                if query.params:
                    sql = render_params(conn, query.sql, query.params)
                self._close_cursor(opened.cursor)
                generator = copyreader.single_copy(
                    self._pool, settings, fastpath.select_sql(sql, columns), layout=layout,
                    begin=begin_statements(options),
                    batch_bytes=batch_bytes, convert=convert, label=query.label,
                    throttle_s=throttle_s)
                path = "binary COPY"
                stream = CopyBatchStream(self, opened.columns, generator,
                                         closer=generator.close, label=query.label)
        except psycopg.Error as exc:
            error = wrap_error(exc, query.label)
            self._close_cursor(opened.cursor)
            raise error from None
        except BaseException:
            self._close_cursor(opened.cursor)
            raise
        stream.read_path = path
        self._active = stream
        return stream

    def _table_blocks(self, conn: psycopg.Connection[Any], table: str
                      ) -> tuple[str, int] | None:
        """(quoted name, size in blocks) of a plain table, or None for anything a ctid range
        cannot split (a view, a partitioned or foreign table)."""
        row = conn.execute(
            "SELECT c.relkind::text, format('%%I.%%I', n.nspname, c.relname),"
            " pg_relation_size(c.oid) / current_setting('block_size')::int8"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = %s::regclass", (table,)).fetchone()
        if row is None or row[0] not in ("r", "m"):
            return None
        return str(row[1]), int(row[2])

    def _end_snapshot_transaction(self) -> None:
        """Every COPY connection has imported the snapshot: the transaction that exported
        it may end (called from a reader thread; a failure only drops the connection)."""
        try:
            self._rollback()
        except Exception:  # must not break the readers' barrier
            self._conn = None

    def _stream_closed(self, stream: BatchStream) -> None:
        if self._active is stream:
            self._active = None
        self._rollback()

    def _finished(self, stream: PostgresBatchStream, *, ok: bool) -> None:
        """Called by the stream when it ends: ``CLOSE`` + ``COMMIT`` or ``ROLLBACK``."""
        if self._active is stream:
            self._active = None
        if not ok:
            self._close_cursor(stream.cursor)
            return
        conn = self._conn
        assert conn is not None
        try:
            conn.execute(f'CLOSE "{CURSOR_NAME}"; COMMIT')
        except psycopg.Error as exc:
            error = wrap_error(exc, stream.label)
            self._close_cursor(stream.cursor)
            raise error from None
        stream.cursor.close()

    def close(self) -> None:
        if self._active is not None:
            self._active.close()
        self._discard_connection()
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _Literal:
    """A parameter already rendered as an SQL literal by psycopg."""

    def __init__(self, text: bytes) -> None:
        self.text = text


class _ParenthesizedDumper(psycopg.adapt.Dumper):
    def dump(self, obj: _Literal) -> bytes:
        return obj.text

    def quote(self, obj: _Literal) -> bytes:
        return b"(" + obj.text + b")"


def render_params(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> str:
    """``sql`` with its ``%s`` parameters as literals, for COPY, which takes no bind
    parameters. psycopg's client-side binding writes each literal with the server's quoting
    rules (never formatted by Rivet); each is then parenthesized, because a cast in the
    query binds tighter than a minus sign (``-9223372036854775808::int8`` overflows where
    ``(-9223372036854775808)::int8`` does not)."""
    cursor = psycopg.ClientCursor(conn)
    literals = [_Literal(cursor.mogrify("%s", (value,)).strip().encode()) for value in params]
    cursor.adapters.register_dumper(_Literal, _ParenthesizedDumper)
    return cursor.mogrify(sql, literals)


def _copy_driver_missing() -> str | None:
    """Why the COPY path is unavailable (the C decoder is not built), or None."""
    from rivet_postgres import copybin

    return copybin.unavailable()


@attrs.frozen
class Opened:
    """A declared and described cursor: its mapped columns, their decoding plans and the
    type OIDs of the result columns."""

    cursor: psycopg.ServerCursor[Any]
    columns: list[ColumnInfo]
    plan: list[decode.ColumnPlan]
    oids: list[int]


def array_shape_error(plan: Sequence[decode.ColumnPlan], label: str,
                      exc: decode.ArrayShapeError) -> SourceError:
    # The loader sees an array value, not its column: name every array column.
    names = [col.name for col in plan if col.array] or ["?"]
    which = (f"column {names[0]!r}" if len(names) == 1
             else "one of the columns " + ", ".join(map(repr, names)))
    return SourceError(
        f"{label}: {which} holds {exc}; Rivet exports one-dimensional arrays with "
        f"lower bound 1 as Arrow lists",
        hint=f"cast the column to text in SQL (e.g. {typemap.sql_ident(names[0])}::text) "
             f"or unnest it")


class CopyBatchStream(BatchStream):
    """Batches of a binary COPY read (one statement, or ctid ranges over several
    connections). Iterate once; ``close()`` stops the readers and ends the transactions."""

    def __init__(self, source: PostgresSource, columns: list[ColumnInfo],
                 batches: Iterator[pa.RecordBatch], *, closer: Callable[[], None],
                 label: str) -> None:
        self.columns = columns
        self.schema = schema_of(columns)
        self.label = label
        self._source = source
        self._inner = batches
        self._closer = closer
        self._open = True

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._inner
        finally:
            self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._closer()
            finally:
                self._source._stream_closed(self)


class PostgresBatchStream(BatchStream):
    """Batches of one server-side cursor. Iterate once; ``close()`` rolls back if the
    stream did not run to its end."""

    def __init__(self, source: PostgresSource, cursor: psycopg.ServerCursor[Any],
                 columns: list[ColumnInfo], plan: list[decode.ColumnPlan],
                 options: ReadOptions,
                 label: str) -> None:
        self.columns = columns
        self.schema = schema_of(columns)
        self.cursor = cursor
        self.label = label
        self._source = source
        self._plan = plan
        self._options = options
        self._fetch_size = max(1, options.batch_size)
        self._open = True

    def batches(self) -> Iterator[pa.RecordBatch]:
        throttle_s = self._options.throttle_ms / 1000
        # Without a cap, wide rows still shrink the fetches once a batch passes the COPY
        # path's batch size, so memory does not grow with the width of the rows.
        max_bytes = self._options.max_batch_bytes or CURSOR_BATCH_BYTES
        try:
            while self._open:
                size = self._fetch_size
                try:
                    rows = self.cursor.fetchmany(size)
                except psycopg.Error as exc:
                    raise wrap_error(exc, self.label) from None
                except decode.ArrayShapeError as exc:
                    raise array_shape_error(self._plan, self.label, exc) from None
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
        arrays = [
            decode.build_column(values, col)
            for values, col in zip(columns, self._plan, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._source._finished(self, ok=False)
