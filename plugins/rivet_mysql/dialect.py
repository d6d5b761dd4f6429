"""How the runner's statements are spelt for MySQL and MariaDB: :class:`MysqlDialect`.

Standard SQL from :class:`~rivet_core.api.Dialect` with backquoted identifiers, plus the
pieces MySQL has: the server's clock, ``DATEDIFF``, the primary key and the catalog from
``information_schema``, and ``EXPLAIN``; and, for the source's own planning of a
ConnectorX read, a table's size statistics, a key's bounds and the ``DERIVED`` steps of a
plan. The source sets ``time_zone = '+00:00'``, so ``TIMESTAMP`` columns compare in UTC and
``DATETIME`` columns are taken as UTC wall time; pymysql cannot bind a zone-aware datetime,
so instants are bound as naive UTC.

A ``table`` is written as the export names it (a name the user quoted stays quoted); its
``information_schema`` lookups use the unquoted parts (:func:`table_parts`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rivet_core.api import Dialect, Query

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})


def table_parts(table: str) -> tuple[str | None, str]:
    """``(schema or None, name)`` of ``name`` or ``schema.name``, unquoted."""
    schema, _, name = table.rpartition(".")
    return (schema.strip("`") or None), name.strip("`")


class MysqlDialect(Dialect):
    name = "mysql"
    identifier_quote = "`"
    placeholder = "%s"

    def bind(self, value: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def now_minus(self, seconds: float) -> tuple[str, Any]:
        # INTERVAL takes an integer count; microseconds keep sub-second lags exact.
        return "(UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND)", round(seconds * 1_000_000)

    def days_since(self, column_sql: str) -> str:
        """``DATEDIFF`` counts the days between the dates of its arguments; a time of day is
        ignored."""
        return f"DATEDIFF({column_sql}, %s)"

    def primary_key(self, table: str) -> Query:
        """The columns of the ``PRIMARY`` constraint (``information_schema``), in key order;
        their ``DATA_TYPE`` holds neither width nor sign."""
        sql = ("SELECT k.COLUMN_NAME AS column_name, c.DATA_TYPE AS data_type "
               "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.COLUMNS c "
               "ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME "
               "AND c.COLUMN_NAME = k.COLUMN_NAME WHERE k.CONSTRAINT_NAME = 'PRIMARY' "
               "AND k.TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND k.TABLE_NAME = %s "
               "ORDER BY k.ORDINAL_POSITION")
        return Query(sql=sql, params=table_parts(table), label="primary key")

    def is_integer_type(self, data_type: str) -> bool:
        return data_type.lower().split("(")[0].split()[0] in INTEGER_TYPES

    def tables(self, schema: str | None) -> Query:
        sql = ("SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, "
               "CASE TABLE_TYPE WHEN 'VIEW' THEN 'view' ELSE 'table' END AS table_kind, "
               "TABLE_ROWS AS estimated_rows, DATA_LENGTH + INDEX_LENGTH AS total_bytes "
               "FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) "
               "ORDER BY 1, 2")
        return Query(sql=sql, params=(schema,), label="catalog: tables")

    def columns(self, table: str) -> Query:
        sql = ("SELECT COLUMN_NAME AS column_name, COLUMN_TYPE AS data_type, "
               "IS_NULLABLE = 'YES' AS is_nullable FROM information_schema.COLUMNS "
               "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s "
               "ORDER BY ORDINAL_POSITION")
        return Query(sql=sql, params=table_parts(table), label="catalog: columns")

    def explain(self, query: Query) -> Query:
        return Query(sql=f"EXPLAIN {query.sql}", params=query.params,
                     label=f"explain {query.label}")

    def table_size(self, table: str) -> Query:
        """One row ``estimated_rows`` and ``avg_row_bytes`` of ``table`` from the server's
        statistics (None when unknown); no row for a table that does not exist."""
        sql = ("SELECT TABLE_ROWS AS estimated_rows, AVG_ROW_LENGTH AS avg_row_bytes "
               "FROM information_schema.TABLES "
               "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s")
        return Query(sql=sql, params=table_parts(table), label="table size")

    def key_bounds(self, table: str, column: str) -> Query:
        """One row ``lo``, ``hi``: the least and greatest ``column`` of ``table`` (an index
        lookup each, when the column is a key; NULL for an empty table)."""
        col = self.quote(column)
        return Query(sql=f"SELECT MIN({col}) AS lo, MAX({col}) AS hi FROM {table}",
                     label="key bounds")

    def derived_steps(self, plan: list[dict[str, Any]]) -> int:
        """How many steps of an :meth:`explain` plan materialise a derived table."""
        return sum(1 for row in plan if row.get("select_type") == "DERIVED")

    def estimated_rows(self, plan: list[dict[str, Any]]) -> int | None:
        """The product of every step's estimate: a join of two estimates multiplies."""
        if not plan or all(row.get("rows") is None for row in plan):
            return None
        rows = 1
        for row in plan:
            if row.get("rows") is not None:
                rows *= max(1, int(row["rows"]))
        return rows


DIALECT = MysqlDialect()
