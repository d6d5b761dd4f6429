"""How the runner's statements are spelt for MySQL and MariaDB: :class:`MysqlDialect`.

Standard SQL from :class:`~rivet_core.api.Dialect` with backquoted identifiers, plus the
pieces MySQL has: the server's clock, ``DATEDIFF``, the primary key and the catalog from
``information_schema``, a table's statistics, and ``EXPLAIN`` (and reading its plan),
indexed and generated columns (``rivet init``), the server's settings and session TLS
(``rivet doctor``); and, for the source's own planning of a ConnectorX read, a table's
size statistics, a key's bounds and the ``DERIVED`` steps of a plan. The source sets
``time_zone = '+00:00'``, so ``TIMESTAMP`` columns compare in UTC and ``DATETIME``
columns are taken as UTC wall time; pymysql cannot bind a zone-aware datetime, so instants
are bound as naive UTC.

A ``table`` is written as the export names it (a name the user quoted stays quoted); its
``information_schema`` lookups use the unquoted parts (:func:`table_parts`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from rivet_core.api import Dialect, Query

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
_DENIED_TABLE = re.compile(r"command denied to user \S+ for table (\S+)")
_DENIED_DATABASE = re.compile(r"Access denied for user \S+ to database (\S+)")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


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

    # ------------------------------------------------------ SupportsIntrospection (init)

    def column_traits(self, table: str) -> Query:
        """``indexed``: the column is the first of an index other than FULLTEXT
        (``information_schema.STATISTICS``); ``generated``: from ``EXTRA`` and
        ``COLUMN_DEFAULT`` (MariaDB writes ``current_timestamp()``, MySQL
        ``CURRENT_TIMESTAMP``)."""
        sql = ("SELECT c.COLUMN_NAME AS column_name, EXISTS (SELECT 1 FROM "
               "information_schema.STATISTICS s WHERE s.TABLE_SCHEMA = c.TABLE_SCHEMA "
               "AND s.TABLE_NAME = c.TABLE_NAME AND s.COLUMN_NAME = c.COLUMN_NAME "
               "AND s.SEQ_IN_INDEX = 1 AND s.INDEX_TYPE <> 'FULLTEXT') AS indexed, "
               "CASE WHEN LOWER(c.EXTRA) LIKE '%%auto_increment%%' THEN 'auto_increment' "
               "WHEN LOWER(c.EXTRA) LIKE '%%on update current_timestamp%%' "
               "THEN 'now_on_update' WHEN LOWER(c.COLUMN_DEFAULT) LIKE 'current_timestamp%%' "
               "THEN 'now' END AS generated FROM information_schema.COLUMNS c "
               "WHERE c.TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND c.TABLE_NAME = %s "
               "ORDER BY c.ORDINAL_POSITION")
        return Query(sql=sql, params=table_parts(table), label="catalog: column traits")

    def faithful_cast(self, column: str, source_type: str) -> str | None:
        """A ``FLOAT`` or a fixed-decimals floating type is sent rounded as text: as a
        ``DOUBLE`` it is sent in full (every float is a double). Anything else as its
        text."""
        if source_type.lower().startswith(("float", "double", "real")):
            return f"CAST({self.quote(column)} AS DOUBLE)"
        return f"CAST({self.quote(column)} AS CHAR)"

    # --------------------------------------------------------- SupportsServerInfo (doctor)

    def server_info(self) -> Query:
        """No variable tells whether the transaction in progress is read-only (the
        source starts it with ``START TRANSACTION READ ONLY``): ``read_only`` is NULL."""
        sql = ("SELECT VERSION() AS server_version, CASE WHEN @@global.time_zone = 'SYSTEM' "
               "THEN CONCAT('SYSTEM (', @@system_time_zone, ')') ELSE @@global.time_zone END "
               "AS time_zone, NULL AS read_only")
        return Query(sql=sql, label="server info")

    def session_tls(self) -> Query:
        return Query(sql="SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', "
                         "'Ssl_cipher')", label="session TLS")

    def tls_in_use(self, rows: list[dict[str, Any]]) -> str | None:
        values = {_text(row.get("Variable_name")): _text(row.get("Value")) for row in rows}
        cipher = values.get("Ssl_cipher", "")
        return f"{values.get('Ssl_version', '')} {cipher}".strip() if cipher else None

    def denied_relation(self, message: str) -> str | None:
        """``SELECT command denied to user 'u'@'h' for table `db`.`orders``` (1142), or
        ``Access denied for user 'u'@'h' to database 'db'`` (1044)."""
        found = _DENIED_TABLE.search(message)
        if found:
            return f"table {found.group(1)}"
        found = _DENIED_DATABASE.search(message)
        return f"database {found.group(1)}" if found else None

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

    def table_stats(self, table: str) -> Query:
        """``TABLE_ROWS`` (InnoDB's estimate) and ``DATA_LENGTH``; NULL for a view."""
        sql = ("SELECT TABLE_ROWS AS estimated_rows, DATA_LENGTH AS data_bytes "
               "FROM information_schema.TABLES "
               "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s")
        return Query(sql=sql, params=table_parts(table), label="table statistics")

    def plan_steps(self, plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One step per ``EXPLAIN`` row; access type ``ALL`` (every row) and ``index``
        (every entry of an index) are full scans."""
        steps = []
        for row in plan:
            access, key, rows = row.get("type"), row.get("key"), row.get("rows")
            text = f"{row.get('table')}: {access}" + (f" using {key}" if key else "") + (
                f" (rows={rows})") + (f" {row['Extra']}" if row.get("Extra") else "")
            steps.append({"text": text, "depth": 0, "relation": row.get("table"),
                          "full_scan": access in ("ALL", "index"), "index": key,
                          "rows": None if rows is None else int(rows)})
        return steps


DIALECT = MysqlDialect()
