"""SQLite declared types → Arrow types: the mapping table and the rule that picks a row.

SQLite stores every value in one of five storage classes (NULL, INTEGER, REAL, TEXT, BLOB)
whatever the column says; a column's declared type only gives it an *affinity*, found by
SQLite's rules on substrings of the name (https://sqlite.org/datatype3.html, section 3.1).
This plugin follows those rules, and reads the declared type as a promise about the values
that it checks on every value it reads (:mod:`rivet_sqlite_jsonl.values`): a value of
another kind fails the read, naming the column, rather than landing in the file as
something else. A few names of NUMERIC affinity get a meaning of their own: DATE,
DATETIME, TIMESTAMP and TIMESTAMPTZ hold text in the forms of
:mod:`rivet_sqlite_jsonl.timetext`, BOOLEAN holds 0 or 1.

A result column that is an expression (``COUNT(*)``, ``price * qty``, even ``CAST(x AS
INTEGER)``) has no declared type in SQLite, and its values may change storage class from row
to row, so it is unsupported until ``[exports.columns]`` names its type. Pure: nothing here
reads a database.
"""

from __future__ import annotations

import re

from rivet_core.api import (
    MAX_DECIMAL_PRECISION,
    ColumnInfo,
    Fidelity,
    TypeRow,
    decimal_type,
    type_table,
)

TYPES = type_table("""
DATE            | date32[day]           | exact | | text YYYY-MM-DD
DATETIME        | timestamp[us]         | exact | | text YYYY-MM-DD HH:MM:SS[.ffffff], no zone (also
  TIMESTAMP)
TIMESTAMPTZ     | timestamp[us, tz=UTC] | exact | | text YYYY-MM-DD HH:MM:SS[.ffffff]+00:00, an
  instant in UTC
BOOLEAN         | bool                  | exact | | 0 or 1 (also BOOL)
INTEGER         | int64                 | exact | | INTEGER affinity: the declared type contains INT
TEXT            | string                | exact | | TEXT affinity: the declared type contains CHAR,
  CLOB or TEXT
BLOB            | binary                | exact | | BLOB affinity: the declared type contains BLOB
REAL            | double                | exact | | REAL affinity: the declared type contains REAL,
  FLOA or DOUB
DECIMAL(p,s)    | decimal128(p, s)      | exact | | also NUMERIC(p,s), decimal256 past 38 digits; a
  value that does not fit, or a REAL of more than 15 significant digits, fails the read
NUMERIC         | —                     | unsupported | | NUMERIC affinity without a precision
  (NUMERIC, DECIMAL, MONEY...): set the type in [exports.columns]
untyped         | —                     | unsupported | | SQLite declares no type for an
  expression (or a column declared without one)
""")
"""The mapping, one row per kind of declared type (also what docs and the README show)."""

_DATETIME_NAMES = frozenset({"DATETIME", "TIMESTAMP"})
_INSTANT_NAMES = frozenset({"TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"})
_BOOLEAN_NAMES = frozenset({"BOOLEAN", "BOOL"})
_DECIMAL = re.compile(r"^(?:NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$")

OVERRIDE_EXAMPLES = ('"int64", "float64", "string", "binary", "date", "timestamp", '
                     '"timestamptz" or "decimal(p,s)"')


def _column(name: str, declared: str, row: TypeRow) -> ColumnInfo:
    return ColumnInfo(name=name, source_type=declared or "untyped", arrow_type=row.arrow_type,
                      fidelity=row.fidelity, note=row.note)


def map_column(name: str, declared: str) -> ColumnInfo:
    """The natural mapping of a result column with declared type ``declared`` (``""`` for
    an expression)."""
    upper = " ".join(declared.upper().split())
    if upper == "DATE":
        return _column(name, declared, TYPES["DATE"])
    if upper in _DATETIME_NAMES:
        return _column(name, declared, TYPES["DATETIME"])
    if upper in _INSTANT_NAMES:
        return _column(name, declared, TYPES["TIMESTAMPTZ"])
    if upper in _BOOLEAN_NAMES:
        return _column(name, declared, TYPES["BOOLEAN"])
    # SQLite's affinity rules, in SQLite's order.
    if "INT" in upper:
        return _column(name, declared, TYPES["INTEGER"])
    if any(part in upper for part in ("CHAR", "CLOB", "TEXT")):
        return _column(name, declared, TYPES["TEXT"])
    if not upper:
        return _column(name, declared, TYPES["untyped"])
    if "BLOB" in upper:
        return _column(name, declared, TYPES["BLOB"])
    if any(part in upper for part in ("REAL", "FLOA", "DOUB")):
        return _column(name, declared, TYPES["REAL"])
    return _numeric(name, declared, upper)


def _numeric(name: str, declared: str, upper: str) -> ColumnInfo:
    """NUMERIC affinity: an exact decimal when the declaration gives the precision."""
    match = _DECIMAL.match(upper)
    if match is None:
        return _column(name, declared, TYPES["NUMERIC"])
    precision, scale = int(match.group(1)), int(match.group(2) or 0)
    if not 1 <= precision <= MAX_DECIMAL_PRECISION or scale > precision:
        return ColumnInfo(name=name, source_type=declared, arrow_type=None,
                          fidelity=Fidelity.UNSUPPORTED,
                          note=f"no Arrow decimal has precision {precision} and scale "
                               f"{scale} (precision 1..{MAX_DECIMAL_PRECISION}, scale at "
                               "most the precision)")
    row = TYPES["DECIMAL(p,s)"]
    return ColumnInfo(name=name, source_type=declared, fidelity=row.fidelity, note=row.note,
                      arrow_type=decimal_type(precision, scale))
