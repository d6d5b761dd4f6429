"""How the runner's statements are spelt for PostgreSQL: :class:`PostgresDialect`.

Standard SQL from :class:`~rivet_core.api.Dialect`, plus the pieces PostgreSQL has: the
server's clock, date arithmetic, the primary key from ``pg_index``, the catalog, a
table's statistics and ``EXPLAIN`` (and reading its plan), indexed and generated columns
(``rivet init``), the server's settings and session TLS (``rivet doctor``); and, for the
source's own use, a table's size in heap blocks (:meth:`PostgresDialect.table_blocks`,
which splits a table read into ctid ranges). The source sets the session ``TimeZone`` to
UTC, so ``now()`` compared with a ``timestamp`` column reads the column as UTC wall time.

Not here: the statements that describe a result's types (:mod:`rivet_postgres.describe`) and
the COPY statements (:mod:`rivet_postgres.copyplan`).
"""

from __future__ import annotations

import re
from typing import Any

from rivet_core.api import Dialect, Query

_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint", "int2", "int4", "int8"})
_KINDS = ("CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view' "
          "WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' END")
_DENIED = re.compile(r"permission denied for (table|view|materialized view|foreign table|"
                     r"sequence|schema|function|relation) (\S+)")


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

    # ------------------------------------------------------ SupportsIntrospection (init)

    def column_traits(self, table: str) -> Query:
        """``indexed``: the column leads a valid index without a predicate (``pg_index``);
        ``generated``: an identity column, a ``nextval`` default, or a current-time
        default (PostgreSQL has no on-update default: a trigger does that, unseen here)."""
        default = "lower(pg_get_expr(d.adbin, d.adrelid))"
        sql = ("SELECT a.attname AS column_name, EXISTS (SELECT 1 FROM pg_index i "
               "WHERE i.indrelid = a.attrelid AND i.indkey[0] = a.attnum AND i.indisvalid "
               "AND i.indpred IS NULL) AS indexed, CASE WHEN a.attidentity IN ('a', 'd') "
               f"THEN 'identity' WHEN {default} LIKE 'nextval(%%' THEN 'sequence' "
               f"WHEN {default} IN ('now()', 'current_timestamp', 'localtimestamp', "
               "'statement_timestamp()', 'transaction_timestamp()', 'clock_timestamp()') "
               "THEN 'now' END AS generated FROM pg_attribute a LEFT JOIN pg_attrdef d "
               "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
               "WHERE a.attrelid = CAST(%s AS regclass) AND a.attnum > 0 "
               "AND NOT a.attisdropped ORDER BY a.attnum")
        return Query(sql=sql, params=(table,), label="catalog: column traits")

    def faithful_cast(self, column: str, source_type: str) -> str | None:
        """Every PostgreSQL type has a text output that reads back as the same value."""
        return f"CAST({self.quote(column)} AS text)"

    # --------------------------------------------------------- SupportsServerInfo (doctor)

    def server_info(self) -> Query:
        """The zone of the server's settings (``reset_val``): the source's ``SET LOCAL
        TimeZone`` changes only the transaction's."""
        sql = ("SELECT current_setting('server_version') AS server_version, "
               "(SELECT reset_val FROM pg_settings WHERE name = 'TimeZone') AS time_zone, "
               "current_setting('transaction_read_only') = 'on' AS read_only")
        return Query(sql=sql, label="server info")

    def session_tls(self) -> Query:
        sql = ("SELECT ssl, version, cipher FROM pg_stat_ssl "
               "WHERE pid = pg_backend_pid()")
        return Query(sql=sql, label="session TLS")

    def tls_in_use(self, rows: list[dict[str, Any]]) -> str | None:
        if not rows or not rows[0].get("ssl"):
            return None
        return f"{rows[0].get('version') or 'TLS'} {rows[0].get('cipher') or ''}".strip()

    def denied_relation(self, message: str) -> str | None:
        """``permission denied for table orders`` (SQLSTATE 42501)."""
        found = _DENIED.search(message)
        return f"{found.group(1)} {found.group(2)}" if found else None

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

    def table_stats(self, table: str) -> Query:
        """``reltuples`` (-1 before the first ANALYZE: unknown) and ``pg_table_size`` (heap
        and TOAST), summed over the leaf partitions of a partitioned table."""
        sql = ("WITH t AS (SELECT to_regclass(%s) AS oid) "
               "SELECT SUM(CASE WHEN c.reltuples >= 0 THEN c.reltuples END)::int8 AS "
               "estimated_rows, SUM(pg_table_size(c.oid))::int8 AS data_bytes "
               "FROM pg_class c, t WHERE c.relkind IN ('r', 'm') AND (c.oid = t.oid OR c.oid "
               "IN (SELECT relid FROM pg_partition_tree(t.oid) WHERE isleaf))")
        return Query(sql=sql, params=(table,), label="table statistics")

    def plan_steps(self, plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The nodes of an ``EXPLAIN (FORMAT JSON)`` plan, depth first; a ``Seq Scan`` is a
        full scan."""
        steps: list[dict[str, Any]] = []

        def walk(node: dict[str, Any], depth: int) -> None:
            kind, index = str(node.get("Node Type", "?")), node.get("Index Name")
            relation = node.get("Relation Name") or node.get("CTE Name")
            text = kind + (f" using {index}" if index else "") + (
                f" on {relation}" if relation else "") + f" (rows={node.get('Plan Rows')})"
            for key in ("Index Cond", "Filter"):
                if node.get(key):
                    text += f" {key}: {node[key]}"
            steps.append({"text": text, "depth": depth, "relation": relation,
                          "full_scan": kind == "Seq Scan", "index": index,
                          "rows": node.get("Plan Rows")})
            for child in node.get("Plans", []):
                walk(child, depth + 1)

        try:
            walk(plan[0]["QUERY PLAN"][0]["Plan"], 0)
        except (IndexError, KeyError, TypeError):
            return []
        return steps


DIALECT = PostgresDialect()
