"""How the runner's statements are spelt for SQLite: :class:`SqliteDialect`.

Standard SQL from :class:`~rivet_core.api.Dialect` with ``?`` placeholders and
double-quoted identifiers, plus the optional pieces SQLite can honestly provide:

- :class:`~rivet_core.api.SupportsPrimaryKey` and :class:`~rivet_core.api.SupportsCatalog`
  from ``sqlite_schema`` and ``pragma_table_info``;
- :class:`~rivet_core.api.SupportsExplain` with ``EXPLAIN QUERY PLAN`` (SQLite names the
  steps of a plan but estimates no row count);
- :class:`~rivet_core.api.SupportsDayArithmetic` with ``julianday``.

Left out on purpose: :class:`~rivet_core.api.SupportsServerTime`. SQLite has a clock
(``datetime('now')``), but timestamps are stored as text that SQLite compares byte by byte,
and "now minus a lag" spelt as text in the stored form would be a claim about every
application that writes the file (its time zone, its clock, its text form) that the
plugin cannot check. So the planner rejects ``cursor_lag`` on this source, naming the
plugin, before anything runs; an export that needs a lag can bound its query itself.

Values are bound as SQLite compares them (:meth:`SqliteDialect.bind`): dates and times in
the stored text forms of :mod:`rivet_sqlite_jsonl.timetext`, decimals as text (a NUMERIC
column converts the text as it converted the stored values). Nothing here imports
``sqlite3`` or pyarrow: the planner builds the dialect when the plugin registers.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from rivet_core.api import Dialect, Query
from rivet_sqlite_jsonl import timetext


def table_parts(table: str) -> tuple[str, str]:
    """``(schema, name)`` of ``name`` or ``schema.name``, unquoted; the schema defaults to
    ``main`` (the database file itself)."""
    schema, _, name = table.rpartition(".")
    return (schema.strip('"') or "main"), name.strip('"')


class SqliteDialect(Dialect):
    name = "sqlite"
    identifier_quote = '"'
    placeholder = "?"

    # ------------------------------------------------------------------ binding

    def bind(self, value: Any) -> Any:
        """sqlite3 binds int, float, str and bytes as they are; the rest becomes the text
        SQLite compares the stored values with (its default date adapters are deprecated,
        and it has none for Decimal)."""
        if isinstance(value, dt.datetime):
            return timetext.after_text(value)
        if isinstance(value, dt.date):
            return timetext.date_text(value)
        if isinstance(value, decimal.Decimal):
            return str(value)
        return value

    # ------------------------------------------------------------------ statements

    def time_window(self, base: str, column: str, *, start: dt.datetime,
                    unix: bool) -> Query:
        """As the standard statement, but the window's start is bound in the shortest text
        form: ``>=`` then keeps a stored value equal to it, whatever its trailing zeros
        (:mod:`~rivet_sqlite_jsonl.timetext`)."""
        bound: Any = int(start.timestamp()) if unix else timetext.from_text(start)
        sql = (f"SELECT * FROM {self.derived(base)} "
               f"WHERE {self.column(column)} >= {self.placeholder}")
        return Query(sql=sql, params=(bound,), label="time window")

    def key_stats(self, base: str, column: str) -> Query:
        """The standard row (``lo``, ``hi``, ``n``, ``nulls``), with ``lo`` and ``hi`` as
        plain column references rather than ``MIN(col)`` and ``MAX(col)``: SQLite gives
        an expression no declared type, so the source could not return a DATE key as a
        date. SQLite documents that a bare column beside a single ``min()`` or ``max()``
        takes its value from the row holding that minimum or maximum."""
        col = self.column(column)
        derived = self.derived(base)
        sql = ("SELECT low.key AS lo, high.key AS hi, low.n AS n, low.nulls AS nulls FROM "
               f"(SELECT {col} AS key, MIN({col}) AS extreme, COUNT({col}) AS n, "
               f"COUNT(*) - COUNT({col}) AS nulls FROM {derived}) AS low, "
               f"(SELECT {col} AS key, MAX({col}) AS extreme FROM {derived}) AS high")
        return Query(sql=sql, label="chunk key range")

    def key_histogram(self, base: str, column: str, *, origin: Any, width: int,
                      by_days: bool = False) -> Query:
        """The standard rows (``bucket``, ``n``, ``lo``, ``hi``), with two differences:

        - ``lo`` and ``hi`` are plain column references, as in :meth:`key_stats`, from two
          grouped reads of the query (a bare column follows the group's ``MIN`` in one,
          its ``MAX`` in the other);
        - integer division instead of ``FLOOR``, which SQLite has only when built with
          its math functions. Every key is at least ``origin`` (the smallest key), so the
          offsets are not negative and integer division rounds down like ``FLOOR``.
        """
        col = self.column(column)
        offset = self.days_since(col) if by_days else f"({col} - {self.placeholder})"
        params = (self.bind(origin), width)

        def buckets(extreme: str) -> str:
            return (f"SELECT {offset} / {self.placeholder} AS bucket, COUNT(*) AS n, "
                    f"{col} AS key, {extreme}({col}) AS extreme "
                    f"FROM {self.derived(base, params)} WHERE {col} IS NOT NULL GROUP BY 1")

        sql = ("SELECT low.bucket AS bucket, low.n AS n, low.key AS lo, high.key AS hi "
               f"FROM ({buckets('MIN')}) AS low JOIN ({buckets('MAX')}) AS high "
               "ON high.bucket = low.bucket ORDER BY 1")
        return Query(sql=sql, params=params * 2, label="chunk key histogram")

    # ------------------------------------------------------------------ SupportsDayArithmetic

    def days_since(self, column_sql: str) -> str:
        """``date()`` drops the time of day (and reads a ``+00:00`` suffix), so the
        difference of the two Julian day numbers is a whole number of days."""
        return (f"CAST(julianday(date({column_sql})) - julianday({self.placeholder}) "
                "AS INTEGER)")

    # ------------------------------------------------------------------ SupportsPrimaryKey

    def primary_key(self, table: str) -> Query:
        """``pragma_table_info`` numbers the primary key's columns from 1 in key order
        (``pk``); 0 for the others."""
        sql = ("SELECT name AS column_name, type AS data_type FROM pragma_table_info(?, ?) "
               "WHERE pk > 0 ORDER BY pk")
        schema, name = table_parts(table)
        return Query(sql=sql, params=(name, schema), label="primary key")

    def is_integer_type(self, data_type: str) -> bool:
        """SQLite's own rule: a declared type containing ``INT`` has INTEGER affinity."""
        return "INT" in data_type.upper()

    # ------------------------------------------------------------------ SupportsCatalog

    def tables(self, schema: str | None) -> Query:
        """Tables and views of ``sqlite_schema``, SQLite's internal ones excluded. SQLite
        keeps no row estimate or size per table: both are None."""
        schema = schema or "main"
        sql = ("SELECT ? AS table_schema, name AS table_name, type AS table_kind, "
               "NULL AS estimated_rows, NULL AS total_bytes "
               f"FROM {self.quote(schema)}.sqlite_schema "
               "WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
               "ORDER BY name")
        return Query(sql=sql, params=(schema,), label="catalog: tables")

    def columns(self, table: str) -> Query:
        """``pragma_table_info`` of the table. A column is nullable unless declared NOT
        NULL or it is the rowid: a single-column primary key declared ``INTEGER`` (any
        other primary key of a rowid table accepts NULL, SQLite's legacy; a WITHOUT ROWID
        table's key is reported NOT NULL). SQLite has no boolean, so the expression is
        named ``"is_nullable [BOOLEAN]"``: the source converts such a ``name [type]``
        column of a small statement as that declared type (sqlite3's own
        ``PARSE_COLNAMES`` convention) and returns it as ``is_nullable``."""
        sql = ("WITH info AS (SELECT * FROM pragma_table_info(?, ?)) "
               "SELECT name AS column_name, type AS data_type, "
               'NOT ("notnull" OR (pk = 1 AND upper(type) = \'INTEGER\' '
               "AND (SELECT COUNT(*) FROM info WHERE pk > 0) = 1)) "
               'AS "is_nullable [BOOLEAN]" FROM info ORDER BY cid')
        schema, name = table_parts(table)
        return Query(sql=sql, params=(name, schema), label="catalog: columns")

    # ------------------------------------------------------------------ SupportsExplain

    def explain(self, query: Query) -> Query:
        return Query(sql=f"EXPLAIN QUERY PLAN {query.sql}", params=query.params,
                     label=f"explain {query.label}")

    def estimated_rows(self, plan: list[dict[str, Any]]) -> int | None:
        """SQLite's plan rows (``id``, ``parent``, ``detail`` such as ``SCAN orders``)
        carry no row estimate."""
        return None


DIALECT = SqliteDialect()
