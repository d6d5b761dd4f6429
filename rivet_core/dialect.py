"""SQL dialects: how the runner speaks to a database, and the unit of work it hands a source.

A source plugin supplies a :class:`Dialect` on its :class:`~rivet_core.specs.SourceSpec`.
The runner builds every statement it sends through it, so ``rivet_core`` holds no database's
SQL. :class:`Dialect` is written in standard SQL; a plugin subclasses it, sets how its
database quotes identifiers and spells parameters, and overrides what its database spells
differently. What standard SQL cannot say at all (the server's clock, date arithmetic, the
catalog) is an optional piece, a ``runtime_checkable`` protocol the subclass implements when
its database can: :class:`SupportsServerTime`, :class:`SupportsDayArithmetic`,
:class:`SupportsPrimaryKey`, :class:`SupportsCatalog`, :class:`SupportsExplain`,
:class:`SupportsTableStats`, :class:`SupportsPlanSteps`,
:class:`SupportsIntrospection`, :class:`SupportsServerInfo`. The planner rejects an export
whose mode needs a piece the dialect lacks, naming the plugin, before anything runs.

Every statement wraps the export's query as a derived table (``(<query>) AS _rivet``), so a
mode's predicate applies to any query; a ``table`` export is the same shape with
``SELECT * FROM <table>`` inside, which databases flatten, so an index on the key column is
used. :meth:`Dialect.count` wraps a whole statement once more, as ``_rivet`` again, so it
counts exactly the rows that statement (the query, or one chunk's) returns. Values are
always bound parameters, never spliced into the text.

The statements the runner sends, by mode (each is one short read-only statement; the
*small* ones go through :meth:`~rivet_core.backends.Source.fetch_rows`, the others through
:meth:`~rivet_core.backends.Source.read`):

============  ==========================================  =====================================
mode          statement                                   method
============  ==========================================  =====================================
full          the query itself                            :meth:`Dialect.full`
incremental   any row with a NULL cursor? (small)         :meth:`Dialect.null_cursor_probe`
incremental   rows after the stored cursor, in order      :meth:`Dialect.incremental`
time_window   rows at or after the window's start         :meth:`Dialect.time_window`
chunked       primary key of ``table`` (small)            :meth:`SupportsPrimaryKey.primary_key`
chunked       min, max, count and NULLs of the key        :meth:`Dialect.key_stats`
chunked       rows per key window, sparse keys (small)    :meth:`Dialect.key_histogram`
chunked       the rows of one chunk                       :meth:`Dialect.chunk`
(reconcile)   rows of the query or of a chunk (small)     :meth:`Dialect.count`
(init)        indexed and generated columns (small)       :class:`SupportsIntrospection`
(doctor)      server, time zone, session TLS (small)      :class:`SupportsServerInfo`
============  ==========================================  =====================================
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol, runtime_checkable

import attrs

from rivet_core.errors import PlanRejected

ALIAS = "_rivet"
"""The derived table every statement reads the export's query as."""


@attrs.frozen(kw_only=True)
class Query:
    """One unit of work: a statement the source runs as one short read."""

    sql: str
    """The statement; the dialect's placeholders when ``params`` is not empty. Without
    params the text is sent as written (a literal ``%`` needs no escaping)."""
    params: tuple[Any, ...] = ()
    label: str = "query"
    """How progress and errors name this unit (``"chunk 3 [1000..1999]"``)."""
    table: str | None = None
    """The plain table the statement reads in full (``SELECT * FROM table``), when known: a
    source may then split the read into physical ranges (see ``ReadOptions.parallel``)."""


@attrs.frozen(kw_only=True)
class CursorSpec:
    """The ordering expression of an incremental export: a column, or the first non-NULL of
    a column and its fallback."""

    column: str
    fallback: str | None = None


class Dialect:
    """How one database family spells the runner's statements: standard SQL, to subclass.

    Set :attr:`name`, :attr:`identifier_quote` and :attr:`placeholder`; override
    :meth:`bind` if the driver cannot bind some Python values as they are, and any statement
    whose standard form the database does not accept. Instances are immutable in practice:
    one is built when the plugin registers and shared by every export.
    """

    name: str = "sql"
    """Shown by ``rivet plugins`` and in planner messages."""
    identifier_quote: str = '"'
    """Doubled inside a quoted identifier."""
    placeholder: str = "%s"
    """How the driver spells a bound parameter: ``"%s"`` (psycopg, pymysql: a literal ``%``
    in a statement with parameters is then written ``%%``, which the dialect does for the
    export's query) or ``"?"`` (sqlite3 and other qmark drivers)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # ------------------------------------------------------------------ primitives

    def quote(self, identifier: str) -> str:
        """``identifier`` quoted, so any name (spaces, keywords, quotes) is taken as is."""
        q = self.identifier_quote
        return q + identifier.replace(q, q + q) + q

    def bind(self, value: Any) -> Any:
        """A Python value (int, Decimal, str, date, datetime with or without zone) ready to
        bind as a parameter; unchanged by default."""
        return value

    def column(self, name: str) -> str:
        """A result column of the export's query, as the wrapped statements name it."""
        return f"{ALIAS}.{self.quote(name)}"

    def derived(self, base: str, params: tuple[Any, ...] = ()) -> str:
        """``(<base>) AS _rivet``. With parameters and ``%s`` placeholders, a ``%`` in the
        user's query is doubled so the driver does not read it as a placeholder."""
        if params and self.placeholder == "%s":
            base = base.replace("%", "%%")
        return f"({base}) AS {ALIAS}"

    def limit(self, sql: str, rows: int) -> str:
        """``sql`` returning at most ``rows`` rows."""
        return f"{sql} LIMIT {int(rows)}"

    def cursor_expression(self, cursor: CursorSpec) -> str:
        if cursor.fallback is None:
            return self.column(cursor.column)
        return f"COALESCE({self.column(cursor.column)}, {self.column(cursor.fallback)})"

    def _where(self, base: str, where: str, params: tuple[Any, ...], label: str, *,
               order_by: str | None = None) -> Query:
        sql = f"SELECT * FROM {self.derived(base, params)} WHERE {where}"
        if order_by is not None:
            sql += f" ORDER BY {order_by}"
        return Query(sql=sql, params=params, label=label)

    # ------------------------------------------------------------------ statements

    def full(self, base: str, *, table: str | None = None) -> Query:
        """Every row of the query (``table``: the plain table it reads in full, if any)."""
        return Query(sql=base, label="query", table=table)

    def incremental(self, base: str, cursor: CursorSpec, *, after: Any,
                    lag_seconds: float | None, include_nulls: bool) -> Query:
        """Rows after the stored cursor ``after`` (every non-NULL one on a first run, when
        ``after`` is None), ordered by the cursor. ``lag_seconds`` caps the cursor at the
        server's time minus the lag (needs :class:`SupportsServerTime`); NULL cursors are
        included only when asked."""
        expr = self.cursor_expression(cursor)
        conditions: list[str] = []
        params: list[Any] = []
        if after is not None:
            conditions.append(f"{expr} > {self.placeholder}")
            params.append(self.bind(after))
        else:
            conditions.append(f"{expr} IS NOT NULL")
        if lag_seconds is not None:
            server_time = require(self, SupportsServerTime, "cursor_lag")
            bound, value = server_time.now_minus(lag_seconds)
            conditions.append(f"{expr} <= {bound}")
            params.append(value)
        where = " AND ".join(conditions)
        if include_nulls:
            where = f"({where}) OR {expr} IS NULL"
        return self._where(base, where, tuple(params), "incremental", order_by=expr)

    def null_cursor_probe(self, base: str, cursor: CursorSpec) -> Query:
        """One row (column ``found``) if any row's cursor is NULL; stops at the first."""
        expr = self.cursor_expression(cursor)
        sql = self.limit(f"SELECT 1 AS found FROM {self.derived(base)} WHERE {expr} IS NULL",
                         1)
        return Query(sql=sql, label="null cursor probe")

    def time_window(self, base: str, column: str, *, start: dt.datetime,
                    unix: bool) -> Query:
        """Rows whose ``column`` is at or after the instant ``start`` (compared as epoch
        seconds with ``unix``)."""
        bound: Any = int(start.timestamp()) if unix else self.bind(start)
        return self._where(base, f"{self.column(column)} >= {self.placeholder}", (bound,),
                           "time window")

    def key_stats(self, base: str, column: str) -> Query:
        """One row: ``lo`` and ``hi`` (min and max), ``n`` (non-NULL count) and ``nulls``
        of the chunk column."""
        col = self.column(column)
        sql = (f"SELECT MIN({col}) AS lo, MAX({col}) AS hi, COUNT({col}) AS n, "
               f"COUNT(*) - COUNT({col}) AS nulls FROM {self.derived(base)}")
        return Query(sql=sql, label="chunk key range")

    def chunk_key_bounds(self, base: str, column: str) -> Query:
        """One row: ``lo`` and ``hi`` (min and max) of the chunk column; on an indexed
        column, two index lookups (the planner knows the count from the catalog)."""
        col = self.column(column)
        sql = f"SELECT MIN({col}) AS lo, MAX({col}) AS hi FROM {self.derived(base)}"
        return Query(sql=sql, label="chunk key bounds")

    def chunk_key_has_nulls(self, base: str, column: str) -> Query:
        """At most one row, when the chunk column holds a NULL: the scan stops at the
        first (and an index or a NOT NULL constraint answers at once)."""
        col = self.column(column)
        sql = self.limit(f"SELECT 1 AS found FROM {self.derived(base)} WHERE {col} IS NULL", 1)
        return Query(sql=sql, label="chunk key NULLs")

    def key_histogram(self, base: str, column: str, *, origin: Any, width: int,
                      by_days: bool = False) -> Query:
        """Rows ``bucket``, ``n``, ``lo``, ``hi``: the row count and key range of every
        non-empty window ``[origin + k*width, +width)``, by ``bucket`` (= k). With
        ``by_days``, ``width`` counts days from the date ``origin`` (needs
        :class:`SupportsDayArithmetic`)."""
        col = self.column(column)
        if by_days:
            days = require(self, SupportsDayArithmetic, "chunk_by_days")
            offset = days.days_since(col)
        else:
            offset = f"({col} - {self.placeholder})"
        params = (self.bind(origin), width)
        sql = (f"SELECT FLOOR({offset} / {self.placeholder}) AS bucket, COUNT(*) AS n, "
               f"MIN({col}) AS lo, MAX({col}) AS hi FROM {self.derived(base, params)} "
               f"WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY 1")
        return Query(sql=sql, params=params, label="chunk key histogram")

    def chunk(self, base: str, column: str, lo: Any, hi: Any, *, label: str) -> Query:
        """Rows with ``lo <= column < hi``; ``lo`` and ``hi`` both None means the rows whose
        key is NULL (the chunk that keeps them from being dropped)."""
        col = self.column(column)
        if lo is None and hi is None:
            return self._where(base, f"{col} IS NULL", (), label)
        p = self.placeholder
        return self._where(base, f"{col} >= {p} AND {col} < {p}",
                           (self.bind(lo), self.bind(hi)), label)

    def count(self, query: Query, *, cursor: CursorSpec | None = None,
              until: Any = None) -> Query:
        """One row, column ``n``: how many rows ``query`` (the export's, a chunk's, any
        statement built here) returns, with its parameters (``rivet reconcile``, ``rivet
        run --reconcile``). With ``cursor`` and ``until``: only the rows whose cursor is at
        most ``until`` (and those whose cursor is NULL, which ``query`` returns only when
        asked to), so an incremental run's count stops at the newest row it read."""
        inner, params = query.sql, query.params
        where = ""
        if cursor is not None:
            if not params and self.placeholder == "%s":
                inner = inner.replace("%", "%%")  # the count now has a parameter
            expr = self.cursor_expression(cursor)
            where = f" WHERE {expr} <= {self.placeholder} OR {expr} IS NULL"
            params = (*params, self.bind(until))
        return Query(sql=f"SELECT COUNT(*) AS n FROM ({inner}) AS {ALIAS}{where}",
                     params=params, label=f"{query.label} row count", table=query.table)

    def row_count(self, base: str) -> Query:
        """One row, column ``n``: how many rows the query returns."""
        return self.count(self.full(base))


# ------------------------------------------------------------------------ optional pieces


@runtime_checkable
class SupportsServerTime(Protocol):
    """The database can compute its own current time minus a duration (``cursor_lag``)."""

    def now_minus(self, seconds: float) -> tuple[str, Any]:
        """An SQL expression with one placeholder for the server's current time minus
        ``seconds``, comparable with the export's timestamp columns, and the value to bind
        to it."""


@runtime_checkable
class SupportsDayArithmetic(Protocol):
    """The database can count whole days between two dates (``chunk_by_days``)."""

    def days_since(self, column_sql: str) -> str:
        """An SQL expression with one placeholder: whole days from the date bound to it to
        the date of ``column_sql`` (a date or timestamp column)."""


@runtime_checkable
class SupportsPrimaryKey(Protocol):
    """The database can name a table's primary key (``chunked`` without ``chunk_column``)."""

    def primary_key(self, table: str) -> Query:
        """Rows ``column_name``, ``data_type`` of the primary key of ``table`` (``name`` or
        ``schema.name``), in key order; no row for a table without one."""

    def is_integer_type(self, data_type: str) -> bool:
        """Whether a ``data_type`` of :meth:`primary_key` is an integer type."""


@runtime_checkable
class SupportsCatalog(Protocol):
    """The database can list its tables and their columns (for commands that survey a
    database before any export is written)."""

    def tables(self, schema: str | None) -> Query:
        """Rows ``table_schema``, ``table_name``, ``table_kind`` (``table``, ``view``,
        ``materialized view``, ``foreign table``), ``estimated_rows`` and ``total_bytes``
        (None when unknown) of the tables in ``schema``; with None, of every schema the
        connection reads without qualification (PostgreSQL: every user schema; MySQL: the
        current database), system schemas excluded."""

    def columns(self, table: str) -> Query:
        """Rows ``column_name``, ``data_type``, ``is_nullable`` (a bool, or 0/1 where the
        database has no boolean type) of ``table``'s columns, in table order."""


@runtime_checkable
class SupportsExplain(Protocol):
    """The database can plan a statement without running it."""

    def explain(self, query: Query) -> Query:
        """A statement whose rows describe how ``query`` would run, without running it."""

    def estimated_rows(self, plan: list[dict[str, Any]]) -> int | None:
        """The planner's estimate of the rows ``query`` returns, read from the rows of
        :meth:`explain`; None when the plan does not say."""


@runtime_checkable
class SupportsTableStats(Protocol):
    """The database keeps a table's size in its statistics (``rivet check --preflight``,
    the progress line's percentage), readable without reading the table."""

    def table_stats(self, table: str) -> Query:
        """At most one row: ``estimated_rows`` and ``data_bytes`` (the table's own data,
        indexes excluded) of ``table`` (``name`` or ``schema.name``), each None when unknown
        (a view, no statistics yet); no row, or Nones, for a table that does not exist."""


@runtime_checkable
class SupportsPlanSteps(Protocol):
    """The dialect can read the steps of an :meth:`SupportsExplain.explain` plan
    (``rivet check --preflight``: is an index used, or is a table read in full?)."""

    def plan_steps(self, plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The plan's steps, outermost first, each a dict: ``text`` (the step as the
        database words it, one line), ``depth`` (0 for the outermost), ``relation`` (the
        table or derived table it reads, or None), ``full_scan`` (it reads every row of
        ``relation``, or every entry of an index), ``index`` (the index it reads through,
        or None) and ``rows`` (the planner's estimate, or None)."""


@runtime_checkable
class SupportsIntrospection(Protocol):
    """The database can say which columns of a table lead an index and which it fills
    itself, and cast a column it cannot map into one it can (``rivet init``: cursor and
    chunk candidates, a scaffold that runs as written). Sizes come from
    :class:`SupportsCatalog`, keys from :class:`SupportsPrimaryKey`."""

    def column_traits(self, table: str) -> Query:
        """Rows ``column_name``, ``indexed`` (a bool, or 0/1: the column is the first
        column of a usable index, so a range or an ORDER BY on it can read the index) and
        ``generated`` (how the database fills the column: ``"identity"``, ``"sequence"``
        (a serial default), ``"auto_increment"``, ``"now"`` (defaults to the current
        time), ``"now_on_update"`` (set to the current time by every update), or None) of
        ``table``'s columns (``name`` or ``schema.name``, quoted as the dialect quotes), in
        table order."""

    def faithful_cast(self, column: str, source_type: str) -> str | None:
        """An expression of the column named ``column``, whose type ``source_type`` (as
        :meth:`~rivet_core.backends.Source.describe` names it) has no faithful Arrow
        mapping, cast to a type the source maps exactly (its exact text, or a wider type);
        None when no cast keeps every value."""


@runtime_checkable
class SupportsServerInfo(Protocol):
    """The database can describe itself and the session a source opened, and name what a
    permission error refers to (``rivet doctor``)."""

    def server_info(self) -> Query:
        """One row: ``server_version`` (text), ``time_zone`` (the server's default zone, not
        the one the source sets for its session) and ``read_only`` (whether the transaction
        the statement runs in is read-only: a bool or 0/1; None where the server does not
        say)."""

    def session_tls(self) -> Query:
        """Rows describing the encryption of the session the statement runs on, read by
        :meth:`tls_in_use`."""

    def tls_in_use(self, rows: list[dict[str, Any]]) -> str | None:
        """From the rows of :meth:`session_tls`: the session's TLS protocol and cipher
        (``"TLSv1.3 TLS_AES_256_GCM_SHA384"``) when it is encrypted, None when not."""

    def denied_relation(self, message: str) -> str | None:
        """The object a missing grant is on (``"table orders"``), read from the message of
        the :class:`~rivet_core.errors.SourceError` a statement failed with; None when the
        message is not about a missing grant."""


PIECES: dict[type, str] = {
    SupportsServerTime: "the server's current time (now minus a lag)",
    SupportsDayArithmetic: "whole days between two dates",
    SupportsPrimaryKey: "a table's primary key",
    SupportsCatalog: "the catalog of tables and columns",
    SupportsExplain: "an EXPLAIN of a statement",
    SupportsTableStats: "a table's size from the server's statistics",
    SupportsPlanSteps: "the steps of an EXPLAIN plan",
    SupportsIntrospection: "a table's indexed and generated columns, and faithful casts",
    SupportsServerInfo: "the server's version, time zone, session TLS and grant errors",
}
"""Every optional piece and what it computes, as planner messages name it."""


class DialectMissing(PlanRejected):
    """A statement needs a piece the dialect does not implement. The planner rejects such
    exports before anything runs; this guards any other caller."""


def require(dialect: Dialect, piece: type, key: str) -> Any:
    """``dialect`` as the optional ``piece``, or :class:`DialectMissing` naming ``key``."""
    if not isinstance(dialect, piece):
        raise DialectMissing(f"{key} needs {PIECES[piece]}, which dialect {dialect.name!r} "
                             f"does not provide")
    return dialect
