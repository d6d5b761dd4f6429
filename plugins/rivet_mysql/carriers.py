"""The ConnectorX read path's columns, as pure logic: which columns it can carry and how, and
the SQL it sends. No database, no ConnectorX import; how big a read may be and how a table
is split into key ranges is :mod:`rivet_mysql.keyranges`, planning a read
:mod:`rivet_mysql.cxplan`, the reading itself :mod:`rivet_mysql.cxread`.

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
  text the classic protocol sends, and parsed by the same :mod:`rivet_mysql.builders`
  the pymysql path uses, so exact decimals, TIME durations and the zero-date policy are the
  same on both paths;
- *dates*: with ``zero_dates = "error"``, DATE, DATETIME and TIMESTAMP travel as they are
  (the session zone is +00:00, so a TIMESTAMP is the UTC instant, labelled UTC here).
  ConnectorX refuses a zero or invalid date with an error (never a made-up value), which
  :func:`rivet_mysql.errors.connectorx_error` reports as the pymysql path does: the export
  fails;
- *bits*: BIT(n) as ``CAST(col AS UNSIGNED)``; *bytes*: GEOMETRY as ``CAST(col AS BINARY)``
  (the stored SRID + WKB, turned into EWKB by the same builder).

A column with no carrier (a rounded FLOAT read through a lossy override) sends the whole
read to the pymysql path, with the reason.

When a column needs a cast, the select list wraps the query: ``SELECT <exprs> FROM
<table>`` for a ``table`` export (the table as the export writes it, so a name the user
quoted stays quoted), ``SELECT <exprs> FROM (<query>) AS _rivet_cx`` otherwise. MariaDB
drops an ``ORDER BY`` inside a derived table, so a query with ``ORDER BY`` that needs the
wrapper is read on the pymysql path (a wrapper the server would materialise is refused too;
see :mod:`rivet_mysql.cxplan`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import attrs
import pyarrow as pa

from rivet_mysql.builders import checked_cast, tinyint_bool
from rivet_mysql.columns import ColumnPlan, build_column
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
    return functools.partial(checked_cast, target=target, name=name)


def _then(first: Convert, second: Convert) -> Convert:
    return lambda array: second(first(array))


def _text_of(array: pa.Array) -> pa.Array:
    """ConnectorX's string array of ``CAST(col AS CHAR)`` as the binary text the
    builders read (a view: no copy)."""
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    return array.view(pa.binary())


def _bytes_of(array: pa.Array) -> pa.Array:
    return array if array.type == pa.binary() else array.cast(pa.binary())


def _as_timestamp(array: pa.Array) -> pa.Array:
    return array if array.type == pa.timestamp("us") else array.cast(pa.timestamp("us"))


_NATIVE_DATES: dict[str, tuple[Callable[[pa.DataType], bool], Convert]] = {
    "date": (pa.types.is_date32, lambda array: array),
    "datetime": (pa.types.is_timestamp, _as_timestamp),
    # The session zone is +00:00: ConnectorX's naive wall time is the UTC instant.
    "timestamp": (pa.types.is_timestamp,
                  lambda array: _as_timestamp(array).view(pa.timestamp("us", tz="UTC"))),
}


def carrier_for(key: str, plan: ColumnPlan, *, native_dates: bool = False
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
                       convert=lambda array: build_column(to_text(array), plan),
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
        return native(pa.types.is_integer, functools.partial(tinyint_bool, name=name))
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
        # The one raw byte, as the classic protocol sends it: the bit(1) builder reads it.
        return Carrier(name=name, expr=ident, accepts=_is_bytes,
                       convert=lambda array: build_column(_bytes_of(array), plan),
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
        return f"SELECT {exprs} FROM {table}"
    return f"SELECT {exprs} FROM ({query}) AS {ALIAS}"


def range_select(carriers: list[Carrier], table: str, key: str, lo: int, hi: int | None
                 ) -> str:
    """One key range of a ``table`` export: ``lo <= key < hi`` (``hi`` None: no upper
    bound). The bounds are integers Rivet computed, written as literals."""
    exprs = ", ".join(c.expr for c in carriers)
    column = sql_ident(key)
    where = f"{column} >= {int(lo)}" + ("" if hi is None else f" AND {column} < {int(hi)}")
    return f"SELECT {exprs} FROM {table} WHERE {where}"
