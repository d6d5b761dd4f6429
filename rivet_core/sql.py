"""The SQL statements the runner builds around an export's query, per mode: pure functions.

Every statement wraps the export's base query as a derived table (``(<base>) AS _rivet``), so a
mode's predicate applies to any query; a ``table`` export is the same shape with
``SELECT * FROM <table>`` as base, which both PostgreSQL and MariaDB/MySQL flatten, so an index
on the key column is used. Values are always bound parameters (``%s``, the placeholder both
psycopg and pymysql take), never spliced into the text; identifiers are quoted per dialect.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from rivet_core.backends import Query


@attrs.frozen
class Dialect:
    """How one database family spells what the runner needs."""

    name: str
    quote_char: str
    now_minus_seconds: str
    """SQL expression: the server's current time minus ``%s`` seconds."""
    naive_utc_datetimes: bool
    """The driver cannot bind a timezone-aware datetime; send naive UTC instead."""
    days_since: str
    """SQL expression: whole days from the date ``%s`` to the date of ``{col}``."""

    def quote(self, identifier: str) -> str:
        q = self.quote_char
        return q + identifier.replace(q, q + q) + q

    def param(self, value: Any) -> Any:
        """A Python value ready to bind for this dialect."""
        if (self.naive_utc_datetimes and isinstance(value, dt.datetime)
                and value.tzinfo is not None):
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value


POSTGRES = Dialect(
    name="postgres", quote_char='"',
    # The source sets the session TimeZone to UTC, so comparing this timestamptz with a
    # `timestamp` column reads the column as UTC wall time.
    now_minus_seconds="(now() - make_interval(secs => %s))",
    naive_utc_datetimes=False,
    days_since="(CAST({col} AS date) - CAST(%s AS date))",
)
MYSQL = Dialect(
    name="mysql", quote_char="`",
    # The source sets time_zone = '+00:00': TIMESTAMP columns compare in UTC, DATETIME
    # columns are taken as UTC wall time.
    now_minus_seconds="(UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND)",
    naive_utc_datetimes=True,
    days_since="DATEDIFF({col}, %s)",
)
DIALECTS = {"postgres": POSTGRES, "mysql": MYSQL}

ALIAS = "_rivet"


def dialect_for(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {name!r} (known: {', '.join(DIALECTS)})") from None


def _wrapped(base: str) -> str:
    return f"SELECT * FROM ({base}) AS {ALIAS}"


def _lag_seconds_param(dialect: Dialect, seconds: float) -> Any:
    # MySQL's INTERVAL takes an integer count; microseconds keep sub-second lags exact.
    return round(seconds * 1_000_000) if dialect is MYSQL else seconds


# ----------------------------------------------------------------------------- incremental


@attrs.frozen(kw_only=True)
class CursorSpec:
    """The ordering expression of an incremental export."""

    column: str
    fallback: str | None = None

    def expression(self, dialect: Dialect) -> str:
        if self.fallback is None:
            return f"{ALIAS}.{dialect.quote(self.column)}"
        return (f"COALESCE({ALIAS}.{dialect.quote(self.column)}, "
                f"{ALIAS}.{dialect.quote(self.fallback)})")


def incremental_query(base: str, dialect: Dialect, cursor: CursorSpec, *, after: Any,
                      lag_seconds: float | None, include_nulls: bool) -> Query:
    """Rows after the stored cursor (all rows on a first run), ordered by the cursor.

    ``after`` is the stored cursor value (None on a first run). ``lag_seconds`` caps the
    cursor at the server's ``now() - lag``. NULL cursors are included only when asked."""
    expr = cursor.expression(dialect)
    conditions: list[str] = []
    params: list[Any] = []
    if after is not None:
        conditions.append(f"{expr} > %s")
        params.append(dialect.param(after))
    else:
        conditions.append(f"{expr} IS NOT NULL")
    if lag_seconds is not None:
        conditions.append(f"{expr} <= {dialect.now_minus_seconds}")
        params.append(_lag_seconds_param(dialect, lag_seconds))
    where = " AND ".join(conditions)
    if include_nulls:
        where = f"({where}) OR {expr} IS NULL"
    sql = f"{_wrapped(base)} WHERE {where} ORDER BY {expr}"
    return Query(sql=sql, params=tuple(params), label="incremental")


def null_cursor_probe(base: str, dialect: Dialect, cursor: CursorSpec) -> Query:
    """One row if any row's cursor is NULL (stops at the first)."""
    expr = cursor.expression(dialect)
    return Query(sql=f"SELECT 1 AS found FROM ({base}) AS {ALIAS} WHERE {expr} IS NULL LIMIT 1",
                 label="null cursor probe")


# ----------------------------------------------------------------------------- time window


def window_start(now: dt.datetime, days: int) -> dt.datetime:
    """UTC midnight ``days`` days before ``now``: the first instant a window includes."""
    day = now.astimezone(dt.UTC).date() - dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def time_window_query(base: str, dialect: Dialect, column: str, *, start: dt.datetime,
                      unix: bool) -> Query:
    """Rows whose ``column`` is at or after ``start`` (an epoch-seconds bound for ``unix``)."""
    bound: Any = int(start.timestamp()) if unix else dialect.param(start)
    sql = f"{_wrapped(base)} WHERE {ALIAS}.{dialect.quote(column)} >= %s"
    return Query(sql=sql, params=(bound,), label="time window")


# --------------------------------------------------------------------------------- chunked


def key_stats_query(base: str, dialect: Dialect, column: str) -> Query:
    """min, max, non-NULL count and NULL count of the chunk column, in one statement."""
    col = f"{ALIAS}.{dialect.quote(column)}"
    sql = (f"SELECT MIN({col}) AS lo, MAX({col}) AS hi, COUNT({col}) AS n, "
           f"COUNT(*) - COUNT({col}) AS nulls FROM ({base}) AS {ALIAS}")
    return Query(sql=sql, label="chunk key range")


def key_histogram_query(base: str, dialect: Dialect, column: str, *, origin: Any,
                        width: int, by_days: bool = False) -> Query:
    """Row count and key range of every non-empty window ``[origin + k*width, +width)``
    (``width`` in days from the date ``origin`` with ``by_days``)."""
    col = f"{ALIAS}.{dialect.quote(column)}"
    offset = dialect.days_since.format(col=col) if by_days else f"({col} - %s)"
    bucket = f"FLOOR({offset} / %s)"
    sql = (f"SELECT {bucket} AS bucket, COUNT(*) AS n, MIN({col}) AS lo, MAX({col}) AS hi "
           f"FROM ({base}) AS {ALIAS} WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY 1")
    return Query(sql=sql, params=(dialect.param(origin), width), label="chunk key histogram")


def chunk_query(base: str, dialect: Dialect, column: str, lo: Any, hi: Any, *,
                label: str) -> Query:
    """Rows with ``lo <= column < hi``; ``lo`` and ``hi`` None means the rows whose key is
    NULL (the chunk that keeps them from being dropped)."""
    col = f"{ALIAS}.{dialect.quote(column)}"
    if lo is None and hi is None:
        return Query(sql=f"{_wrapped(base)} WHERE {col} IS NULL", label=label)
    sql = f"{_wrapped(base)} WHERE {col} >= %s AND {col} < %s"
    return Query(sql=sql, params=(dialect.param(lo), dialect.param(hi)), label=label)


def primary_key_query(dialect: Dialect, table: str) -> Query:
    """The primary key columns of ``table`` (``name`` or ``schema.name``) and their types."""
    schema, _, name = table.rpartition(".")
    if dialect is POSTGRES:
        sql = ("SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS "
               "data_type FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
               "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(%s AS regclass) "
               "AND i.indisprimary ORDER BY a.attnum")
        return Query(sql=sql, params=(table,), label="primary key")
    sql = ("SELECT k.COLUMN_NAME AS column_name, c.DATA_TYPE AS data_type "
           "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.COLUMNS c "
           "ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME "
           "AND c.COLUMN_NAME = k.COLUMN_NAME WHERE k.CONSTRAINT_NAME = 'PRIMARY' "
           "AND k.TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND k.TABLE_NAME = %s "
           "ORDER BY k.ORDINAL_POSITION")
    return Query(sql=sql, params=(schema or None, name), label="primary key")


_INTEGER_TYPES = ("smallint", "integer", "bigint", "int", "tinyint", "mediumint", "int2",
                  "int4", "int8")


def is_integer_type(type_name: str) -> bool:
    """Whether a catalog type name (``bigint``, ``int(11) unsigned``) is an integer type."""
    base = type_name.lower().split("(")[0].split()[0]
    return base in _INTEGER_TYPES
