"""How the runner's statements are spelt for PostgreSQL: :class:`PostgresDialect`.

Standard SQL from :class:`~rivet_core.api.Dialect`, plus the pieces PostgreSQL has: the
server's clock, date arithmetic, the primary key from ``pg_index``, the catalog and
``EXPLAIN``; and, for the source's own use, a table's size in heap blocks
(:meth:`PostgresDialect.table_blocks`, which splits a table read into ctid ranges). The
source sets the session ``TimeZone`` to UTC, so ``now()`` compared with a ``timestamp``
column reads the column as UTC wall time.

Not here: the statements that describe a result's types (:mod:`rivet_postgres.describe`) and
the COPY statements (:mod:`rivet_postgres.copyplan`).
"""

from __future__ import annotations

from typing import Any

from rivet_core.api import Dialect, Query

_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint", "int2", "int4", "int8"})
_KINDS = ("CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view' "
          "WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' END")


class PostgresDialect(Dialect):
    name = "postgres"
    identifier_quote = '"'
    placeholder = "%s"

    def now_minus(self, seconds: float) -> tuple[str, Any]:
        return "(now() - make_interval(secs => %s))", seconds

    def days_since(self, column_sql: str) -> str:
        """A ``date`` minus a ``date`` is a whole number of days."""
        return f"(CAST({column_sql} AS date) - CAST(%s AS date))"

    def primary_key(self, table: str) -> Query:
        """The columns of the table's primary key index (``pg_index``), in key order."""
        sql = ("SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS "
               "data_type FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
               "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(%s AS regclass) "
               "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)")
        return Query(sql=sql, params=(table,), label="primary key")

    def is_integer_type(self, data_type: str) -> bool:
        return data_type.lower().split("(")[0].strip() in _INTEGER_TYPES

    def tables(self, schema: str | None) -> Query:
        sql = (f"SELECT n.nspname AS table_schema, c.relname AS table_name, {_KINDS} AS "
               "table_kind, CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8 END AS "
               "estimated_rows, CASE WHEN c.relkind IN ('r', 'm', 'p') THEN "
               "pg_total_relation_size(c.oid) END AS total_bytes "
               "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition "
               "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
               "AND n.nspname NOT LIKE 'pg\\_%%' AND (CAST(%s AS text) IS NULL OR n.nspname = %s) "
               "AND has_schema_privilege(n.oid, 'USAGE') ORDER BY 1, 2")
        return Query(sql=sql, params=(schema, schema), label="catalog: tables")

    def columns(self, table: str) -> Query:
        sql = ("SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS "
               "data_type, NOT a.attnotnull AS is_nullable FROM pg_attribute a "
               "WHERE a.attrelid = CAST(%s AS regclass) AND a.attnum > 0 "
               "AND NOT a.attisdropped ORDER BY a.attnum")
        return Query(sql=sql, params=(table,), label="catalog: columns")

    def explain(self, query: Query) -> Query:
        return Query(sql=f"EXPLAIN (FORMAT JSON) {query.sql}", params=query.params,
                     label=f"explain {query.label}")

    def table_blocks(self, table: str) -> Query:
        """One row ``kind`` (``relkind``), ``name`` (schema-qualified, quoted by the
        server) and ``blocks`` (size in heap blocks) of ``table``."""
        sql = ("SELECT c.relkind::text AS kind, format('%%I.%%I', n.nspname, c.relname) AS "
               "name, pg_relation_size(c.oid) / current_setting('block_size')::int8 AS blocks "
               "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE c.oid = %s::regclass")
        return Query(sql=sql, params=(table,), label="table blocks")

    def estimated_rows(self, plan: list[dict[str, Any]]) -> int | None:
        try:
            document = plan[0]["QUERY PLAN"]
            return int(document[0]["Plan"]["Plan Rows"])
        except (IndexError, KeyError, TypeError, ValueError):
            return None


DIALECT = PostgresDialect()
