"""The ConnectorX read path, as pure logic: which columns it can carry and how, the SQL it
sends, and how a parallel read is split into key ranges. No database, no ConnectorX import;
the reading itself is :mod:`rivet_mysql.cxread`.

ConnectorX decodes MySQL's binary protocol in Rust into Arrow arrays, with no Python object
per value. It is exact for integers of every width (unsigned ones too), DOUBLE, strings and
bytes, but not for everything (it rounds or refuses wide DECIMALs, panics on TIME values
outside a day, on zero dates and on GEOMETRY, and reads TIMESTAMP as naive local time).
So each result column gets a :class:`Carrier`:

- *native*: the column is selected as it is and ConnectorX's array is checked against the
  expected Arrow type and converted with a safe cast (an unsigned ``uint32`` into the mapped
  ``int64``, say) or a small kernel (``tinyint(1)`` → bool, refusing values other than 0/1);
- *text*: the column is selected as ``CAST(col AS CHAR)`` (DECIMAL, TIME, MySQL 8 JSON, a
  NULL column; DATE, DATETIME and TIMESTAMP when ``zero_dates = "null"``), which is the very
  text the classic protocol sends, and parsed by the same :mod:`rivet_mysql.decode` builders
  the pymysql path uses, so exact decimals, TIME durations and the zero-date policy are the
  same on both paths;
- *dates*: with ``zero_dates = "error"``, DATE, DATETIME and TIMESTAMP travel as they are
  (the session zone is +00:00, so a TIMESTAMP is the UTC instant, labelled UTC here).
  ConnectorX refuses a zero or invalid date with an error (never a made-up value), which
  :mod:`rivet_mysql.cxread` reports as the pymysql path does: the export fails;
- *bits*: BIT(n) as ``CAST(col AS UNSIGNED)``; *bytes*: GEOMETRY as ``CAST(col AS BINARY)``
  (the stored SRID + WKB, turned into EWKB by the same builder).

A column with no carrier (a rounded FLOAT read through a lossy override) sends the whole
read to the pymysql path, with the reason.

When a column needs a cast, the select list wraps the query: ``SELECT <exprs> FROM
<table>`` for a ``table`` export, ``SELECT <exprs> FROM (<query>) AS _rivet_cx`` otherwise.
MariaDB drops an ``ORDER BY`` inside a derived table, so a query with ``ORDER BY`` that needs
the wrapper is read on the pymysql path (the source also refuses a wrapper the server would
materialise; see :mod:`rivet_mysql.source`).

ConnectorX has no back-pressure: it reads a statement as fast as the server sends it, and
holds what the writer has not taken yet. A table export is therefore read in key ranges of
:data:`RANGE_BYTES` (:func:`key_ranges`), and another statement only when the server
estimates at most :data:`QUERY_ROWS` rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from rivet_mysql import decode
from rivet_mysql.typemap import sql_ident

ALIAS = "_rivet_cx"

_INTEGER_KEYS = frozenset({
    "tinyint", "tinyint unsigned", "smallint", "smallint unsigned", "mediumint",
    "mediumint unsigned", "int", "int unsigned", "bigint", "bigint unsigned", "year"})
_STRING_KEYS = frozenset({"char", "varchar", "text", "enum", "set"})
_BYTES_KEYS = frozenset({"binary", "varbinary", "blob"})
_TEXT_KEYS = frozenset({"decimal", "date", "datetime", "timestamp", "time", "json", "null"})

Convert = Callable[[pa.Array], pa.Array]


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_bytes(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


@attrs.frozen(kw_only=True)
class Carrier:
    """How one result column travels through ConnectorX and becomes its written array."""

    name: str
    expr: str
    """The select-list expression (``col``, ``CAST(col AS CHAR)``), aliased to the name."""
    accepts: Callable[[pa.DataType], bool]
    """Whether ConnectorX's Arrow type for the expression is the one this carrier reads."""
    convert: Convert
    """ConnectorX's array → the column's written array (natural type, then override)."""
    cast: bool
    """True when ``expr`` is not the bare column (the query needs the select-list wrapper)."""


def _checked_cast(name: str, target: pa.DataType) -> Convert:
    def convert(array: pa.Array) -> pa.Array:
        if array.type == target:
            return array
        try:
            return array.cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise decode._fail(name, f"cannot convert {array.type} to {target} without "
                                     f"loss: {exc}") from None
    return convert


def _then(first: Convert, second: Convert) -> Convert:
    return lambda array: second(first(array))


def _text_of(array: pa.Array) -> pa.Array:
    """ConnectorX's string array of ``CAST(col AS CHAR)`` as the binary text the decode
    builders read (a view: no copy)."""
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    return array.view(pa.binary())


def _bytes_of(array: pa.Array) -> pa.Array:
    return array if array.type == pa.binary() else array.cast(pa.binary())


def _tinyint_bool(name: str) -> Convert:
    def convert(array: pa.Array) -> pa.Array:
        bounds = pc.min_max(array)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if (low is not None and low < 0) or (high is not None and high > 1):
            bad = low if low is not None and low < 0 else high
            raise decode._fail(name, f"value {bad} of a TINYINT(1) column is not a boolean",
                               hint=f'keep the numbers with the [exports.columns] override '
                                    f'{name} = "int8"')
        return pc.not_equal(array, 0)
    return convert


def _as_timestamp(array: pa.Array) -> pa.Array:
    return array if array.type == pa.timestamp("us") else array.cast(pa.timestamp("us"))


_NATIVE_DATES: dict[str, tuple[Callable[[pa.DataType], bool], Convert]] = {
    "date": (pa.types.is_date32, lambda array: array),
    "datetime": (pa.types.is_timestamp, _as_timestamp),
    # The session zone is +00:00: ConnectorX's naive wall time is the UTC instant.
    "timestamp": (pa.types.is_timestamp,
                  lambda array: _as_timestamp(array).view(pa.timestamp("us", tz="UTC"))),
}


def carrier_for(key: str, plan: decode.ColumnPlan, *, native_dates: bool = False
                ) -> Carrier | str:
    """The carrier of one mapped column, or why ConnectorX cannot carry it exactly.
    ``native_dates``: dates and timestamps travel as they are (only when a zero or invalid
    date must fail the export, which is what ConnectorX does with one)."""
    name, ident = plan.name, sql_ident(plan.name)
    override = (_checked_cast(name, plan.target)
                if plan.natural is not None and plan.natural != plan.target else None)

    def native(accepts: Callable[[pa.DataType], bool], natural: Convert) -> Carrier:
        convert = natural if override is None else _then(natural, override)
        return Carrier(name=name, expr=ident, accepts=accepts, convert=convert, cast=False)

    def via(expr: str, accepts: Callable[[pa.DataType], bool],
            to_text: Convert = _text_of) -> Carrier:
        return Carrier(name=name, expr=f"{expr} AS {ident}", accepts=accepts,
                       convert=lambda array: decode.build_column(to_text(array), plan),
                       cast=True)

    if plan.direct:
        # Overrides built from the server's text: tinyint(1) → integer is a checked cast of
        # the number, time → time64 parses the TIME text; rounded floats have no exact
        # source here (the binary protocol sends the float itself, not the rounded text).
        if key == "tinyint(1)":
            return Carrier(name=name, expr=ident, accepts=pa.types.is_integer,
                           convert=_checked_cast(name, plan.target), cast=False)
        if key == "time":
            return via(f"CAST({ident} AS CHAR)", _is_text)
        return (f"column {name} ({key}) is overridden from the server's rounded text, which "
                "only the classic protocol sends")
    assert plan.natural is not None
    if key in _INTEGER_KEYS:
        return native(pa.types.is_integer, _checked_cast(name, plan.natural))
    if key == "tinyint(1)":
        return native(pa.types.is_integer, _tinyint_bool(name))
    if key == "double":
        return native(pa.types.is_float64, _checked_cast(name, plan.natural))
    if key in _STRING_KEYS:
        return native(_is_text, _checked_cast(name, plan.natural))
    if key in _BYTES_KEYS:
        return native(_is_bytes, _checked_cast(name, plan.natural))
    if native_dates and key in _NATIVE_DATES:
        accepts, natural = _NATIVE_DATES[key]
        return native(lambda t: accepts(t) and getattr(t, "tz", None) is None, natural)
    if key == "bit(1)":
        # The one raw byte, as the classic protocol sends it: the decode builder reads it.
        return Carrier(name=name, expr=ident, accepts=_is_bytes,
                       convert=lambda array: decode.build_column(_bytes_of(array), plan),
                       cast=False)
    if key == "bit(n)":
        return Carrier(name=name, expr=f"CAST({ident} AS UNSIGNED) AS {ident}",
                       accepts=pa.types.is_unsigned_integer,
                       convert=(_checked_cast(name, plan.target)), cast=True)
    if key == "geometry":
        return via(f"CAST({ident} AS BINARY)", _is_bytes, to_text=_bytes_of)
    if key in _TEXT_KEYS:
        return via(f"CAST({ident} AS CHAR)", _is_text)
    return f"column {name} has type {key}, which the ConnectorX path does not carry"


_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


def has_order_by(sql: str) -> bool:
    """Whether the text contains ``ORDER BY`` anywhere (a string literal or comment counts
    too: a false alarm only costs the fast path, a miss would lose the order)."""
    return _ORDER_BY.search(sql) is not None


def select_sql(carriers: list[Carrier], *, table: str | None, query: str) -> str:
    """The statement ConnectorX runs: the query itself when no column needs a cast, else the
    select list over the table (``table`` export) or over the query as a derived table."""
    if not any(c.cast for c in carriers):
        return query
    exprs = ", ".join(c.expr for c in carriers)
    if table is not None:
        return f"SELECT {exprs} FROM {table_ref(table)}"
    return f"SELECT {exprs} FROM ({query}) AS {ALIAS}"


def table_ref(table: str) -> str:
    """The ``table`` key as SQL: as written, exactly as the runner's ``SELECT * FROM``
    spells it (so a name the user quoted stays quoted)."""
    return table


def table_parts(table: str) -> tuple[str | None, str]:
    """(schema or None, name) of the ``table`` key, unquoted, for information_schema."""
    schema, _, name = table.rpartition(".")
    return (schema.strip("`") or None), name.strip("`")


def range_select(carriers: list[Carrier], table: str, key: str, lo: int, hi: int | None
                 ) -> str:
    """One key range of a ``table`` export: ``lo <= key < hi`` (``hi`` None: no upper
    bound). The bounds are integers Rivet computed, written as literals."""
    exprs = ", ".join(c.expr for c in carriers)
    column = sql_ident(key)
    where = f"{column} >= {int(lo)}" + ("" if hi is None else f" AND {column} < {int(hi)}")
    return f"SELECT {exprs} FROM {table_ref(table)} WHERE {where}"


BATCH_BYTES = 16 << 20
"""Arrow bytes a ConnectorX batch aims at when ``max_batch_memory_mb`` is not set: each
connection holds a few batches in flight, so wide rows must shrink the batch."""


def batch_rows(batch_size: int, max_batch_bytes: int | None, row_bytes: int | None) -> int:
    """Rows per ConnectorX batch: ``batch_size``, fewer when the table's average row length
    says such a batch would exceed ``max_batch_bytes`` (or :data:`BATCH_BYTES`)."""
    rows = max(1, batch_size)
    if row_bytes:
        rows = min(rows, max(1, (max_batch_bytes or BATCH_BYTES) // row_bytes))
    return rows


RANGE_BYTES = 32 << 20
"""Table bytes (by the server's average row length) one key range aims at. ConnectorX reads
a statement's rows as fast as the server sends them, whatever the consumer's pace (its
stream has no back-pressure), so a range is the most it can hold ahead: a bounded range
keeps memory flat, and keeps each statement short."""

MIN_RANGE_ROWS = 10_000
QUERY_ROWS = 1_000_000
"""Most rows (the server's EXPLAIN estimate) a query that cannot be split into key ranges
may have to be read over ConnectorX; a bigger one is read over pymysql, which holds only
the batch in hand."""


def range_rows(row_bytes: int | None) -> int:
    """Rows per key range for a table whose average row is ``row_bytes`` long."""
    return max(MIN_RANGE_ROWS, RANGE_BYTES // max(row_bytes or 1, 1))


def key_ranges(lo: int, hi: int, *, estimated_rows: int, parallel: int,
               rows_per_range: int) -> list[tuple[int, int | None]]:
    """Split the keys ``lo..hi`` (inclusive) into ranges of about ``rows_per_range`` rows
    each (at least ``parallel``), assuming the rows are spread evenly over the keys. The
    first range is open below and the last open above, so a row inserted outside the bounds
    seen at planning time is still read."""
    span = hi - lo + 1
    count = max(parallel, math.ceil(max(estimated_rows, 1) / max(rows_per_range, 1)))
    count = max(1, min(count, span))
    width = math.ceil(span / count)
    bounds = [lo + i * width for i in range(count) if lo + i * width <= hi]
    ranges: list[tuple[int, int | None]] = []
    for index, start in enumerate(bounds):
        end = bounds[index + 1] if index + 1 < len(bounds) else None
        ranges.append((start, end))
    if ranges:
        ranges[0] = (-(2**63), ranges[0][1]) if lo > -(2**63) else ranges[0]
    return ranges
