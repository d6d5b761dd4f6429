"""Planning a ConnectorX read: whether the path can serve a query, and with which
statements, from metadata only (the prepare probe's column definitions, ``EXPLAIN`` and
``information_schema``, on the source's own connection; nothing of the query runs).

Every column needs a carrier (:mod:`rivet_mysql.carriers`). ConnectorX reads ahead without
back-pressure, so what it reads must be bounded (:mod:`rivet_mysql.keyranges`): a
``table`` export with a single-column integer primary key is split into key ranges of a few
tens of MiB, read ``parallel`` at a time in *waves*; any other statement is read over it
only when ``EXPLAIN`` estimates a small result, and only when the select-list wrapper the
casts need does not make the server materialise the query (a new ``DERIVED`` step). When
the path cannot serve a read, :func:`plan` says why, and the read takes the pymysql path
with that reason in its ``read_path``. TLS never makes a read fall back to plaintext: the
ConnectorX connections carry the mode (:func:`~rivet_mysql.cxread.tls_query`), and when
they cannot check a certificate as the mode asks (a ``ca_file``, which ConnectorX would
trust in addition to the system store rather than alone), every read of the source takes
the pymysql path, which does (:func:`unavailable`).

The statements these decisions read come from the dialect
(:class:`~rivet_mysql.dialect.MysqlDialect`: primary key, table size, key bounds,
``EXPLAIN``). Not here: reading (:mod:`rivet_mysql.cxread`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pymysql
from pymysql.connections import Connection

from rivet_core.api import ColumnInfo, ConnectionParams, Query, ReadOptions
from rivet_mysql import carriers, driver, keyranges, typemap
from rivet_mysql.columns import ColumnPlan
from rivet_mysql.config import MysqlConfig
from rivet_mysql.cxread import (
    CxBatchStream,
    Killer,
    TlsErrors,
    connection_url,
    session_statements,
    tls_check_statement,
    tls_query,
)
from rivet_mysql.dialect import DIALECT

Ranges = list[tuple[int, int | None]]


@attrs.frozen(kw_only=True)
class FastRead:
    """A read the ConnectorX path can serve: mapped columns, carriers, statements."""

    columns: list[ColumnInfo]
    carriers: list[carriers.Carrier]
    waves: list[list[str]]
    batch_rows: int
    """Rows per ConnectorX batch (``batch_size``, fewer for wide rows)."""
    dates: list[str]
    """Columns carried as native dates (named if ConnectorX refuses a zero date)."""
    read_path: str

    def stream(self, *, params: ConnectionParams, config: MysqlConfig,
               settings: list[tuple[str, Any]], options: ReadOptions, label: str,
               kill: Killer, on_end: Callable[[CxBatchStream], None], encrypted: bool,
               mariadb: bool, tls_errors: TlsErrors) -> CxBatchStream:
        """Start the read: ConnectorX sets the session ``settings`` on its connections,
        which are encrypted when the mode requires it or the source's own connection is
        (``encrypted``), and then checked by the server's own view of the session."""
        tls = tls_query(params, encrypted)
        return CxBatchStream(
            columns=self.columns, carriers=self.carriers, waves=self.waves,
            url=connection_url(params, config.connect_timeout_s, tls),
            session=session_statements(settings,
                                       tls_check_statement(mariadb) if tls else None),
            options=attrs.evolve(options, batch_size=self.batch_rows), label=label,
            read_path=self.read_path, kill=kill, dates=self.dates, on_end=on_end,
            tls_errors=tls_errors)


def unavailable(config: MysqlConfig, params: ConnectionParams) -> str | None:
    """Why no read of this source can take the ConnectorX path, or None."""
    if config.read_path == "pymysql":
        return 'read_path = "pymysql"'
    if importlib.util.find_spec("connectorx") is None:
        return "connectorx is not installed"
    if params.tls_verified() and params.ca_file is not None:
        return ("tls.ca_file is set, and ConnectorX would trust the system CA store as well "
                "as that file")
    if params.tls_verified() and params.trust_file() is None:
        return "no system CA bundle file to give ConnectorX for the certificate check"
    return None


SMALL_TABLE_ROWS = 10_000
"""A ``table`` export the server estimates at this many rows or fewer (and more than none)
is read over pymysql when ``read_path = "auto"``: ConnectorX opens connections of its own
and reads the table's key statistics first, about 60 ms before its first row, while the
source's own connection streams a thousand narrow rows in a few milliseconds (200 exports
of 1,000 rows: 9.3 s over ConnectorX)."""


def plan(conn: Connection[Any], sql: str, fields: Sequence[typemap.MyField],
         columns: list[ColumnInfo], plans: Sequence[ColumnPlan], query: Query,
         options: ReadOptions, *, native_dates: bool, small_rows: int = 0) -> FastRead | str:
    """What the ConnectorX path would read of ``query`` (``sql``: its text with the
    parameters in; ``fields``, ``columns`` and ``plans``: its mapped columns), or why it
    cannot. ``small_rows``: a table estimated at that many rows or fewer is not worth it
    (0: any table is)."""
    found: list[carriers.Carrier] = []
    dates: list[str] = []
    for field, column_plan in zip(fields, plans, strict=True):
        key = str(typemap.classify(field)[0])
        carrier = carriers.carrier_for(key, column_plan, native_dates=native_dates)
        if isinstance(carrier, str):
            return carrier
        found.append(carrier)
        if not carrier.cast and key in ("date", "datetime", "timestamp"):
            dates.append(carrier.name)
    table = query.table if not query.params else None
    cast = next((c.name for c in found if c.cast), None)
    if cast is not None and table is None and carriers.has_order_by(sql):
        return (f"the query has ORDER BY, and column {cast} needs a server-side cast "
                f"in a derived table, whose order MariaDB does not keep")
    estimated, row_bytes = _table_size(conn, table) if table is not None else (0, None)
    if 0 < estimated <= small_rows and options.parallel <= 1:
        return (f"a small table (about {estimated:,} rows): one statement on the source's "
                "own connection costs less than ConnectorX's connections")
    batch_rows = keyranges.batch_rows(options.batch_size, options.max_batch_bytes, row_bytes)
    split = (_split(conn, table, options.parallel, estimated, row_bytes) if table is not None
             else "not a table export")
    if not isinstance(split, str):
        key, ranges = split
        statements = [carriers.range_select(found, str(table), key, lo, hi)
                      for lo, hi in ranges]
        parallel = max(1, options.parallel)
        waves = [statements[i:i + parallel] for i in range(0, len(statements), parallel)]
        connections = min(parallel, len(statements))
        how = (f"{connections} connection{'s' if connections > 1 else ''} over "
               f"{len(statements)} ranges of {key}")
        return FastRead(columns=columns, carriers=found, waves=waves, batch_rows=batch_rows,
                        dates=dates, read_path=f"ConnectorX binary protocol, {how}")
    # One statement: it must stream from the server as it is and be small enough for
    # ConnectorX's unbounded read-ahead.
    statement = carriers.select_sql(found, table=table, query=sql)
    reason = _too_big_or_materialised(conn, sql, statement, split)
    if reason is not None:
        return reason
    how = "1 connection"
    if options.parallel > 1:
        how += f" (parallel = {options.parallel} not used: {split})"
    return FastRead(columns=columns, carriers=found, waves=[[statement]],
                    batch_rows=batch_rows, dates=dates,
                    read_path=f"ConnectorX binary protocol, {how}")


def _too_big_or_materialised(conn: Connection[Any], sql: str, statement: str,
                             unsplit: str) -> str | None:
    """Why one statement cannot be read over ConnectorX, from EXPLAIN (which plans without
    executing): more rows than :data:`keyranges.QUERY_ROWS` are estimated, or the
    select-list wrapper makes the server materialise the query instead of streaming it.
    None when it can."""
    try:
        derived, rows = _explain(conn, statement)
        if statement != sql and derived > _explain(conn, sql)[0]:
            return ("the query cannot be merged into the select list the casts need "
                    "(the server would materialise it first)")
    except (pymysql.err.MySQLError, ValueError) as exc:
        return f"EXPLAIN failed ({exc})"
    if rows > keyranges.QUERY_ROWS:
        return (f"{unsplit}, and the server estimates {rows:,} rows; ConnectorX reads "
                f"ahead without limit, so only up to {keyranges.QUERY_ROWS:,} are read "
                f"over it")
    return None


def _explain(conn: Connection[Any], sql: str) -> tuple[int, int]:
    """(``DERIVED`` steps, estimated rows: the product of each step's estimate)."""
    steps = _rows(conn, DIALECT.explain(Query(sql=sql)))
    return DIALECT.derived_steps(steps), DIALECT.estimated_rows(steps) or 1


def _rows(conn: Connection[Any], query: Query) -> list[dict[str, Any]]:
    return driver.rows(conn, query.sql, query.params)


def _table_size(conn: Connection[Any], table: str) -> tuple[int, int | None]:
    """(estimated rows, average row length: None when unknown) from the server's
    statistics."""
    size = next(iter(_rows(conn, DIALECT.table_size(table))), {})
    row_bytes = size.get("avg_row_bytes")
    return int(size.get("estimated_rows") or 0), int(row_bytes) if row_bytes else None


def _split(conn: Connection[Any], table: str, parallel: int, estimated: int,
           row_bytes: int | None) -> tuple[str, Ranges] | str:
    """The table's integer primary key and its ranges (bounded in bytes, at least
    ``parallel``), or why the table cannot be split."""
    keys = _rows(conn, DIALECT.primary_key(table))
    if len(keys) != 1 or not DIALECT.is_integer_type(str(keys[0]["data_type"])):
        found = ", ".join(f"{r['column_name']} {r['data_type']}" for r in keys) or "none"
        return f"table {table} has no single-column integer primary key ({found})"
    key = str(keys[0]["column_name"])
    ((lo, hi),) = [(r["lo"], r["hi"]) for r in _rows(conn, DIALECT.key_bounds(table, key))]
    if lo is None:
        return f"table {table} is empty"
    return key, keyranges.key_ranges(int(lo), int(hi), estimated_rows=estimated,
                                     parallel=parallel,
                                     rows_per_range=keyranges.range_rows(row_bytes))


__all__ = ["SMALL_TABLE_ROWS", "FastRead", "plan", "unavailable"]
