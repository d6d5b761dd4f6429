"""Values from sqlite3 → Arrow arrays of a column's type, checked on every value.

sqlite3 returns each value as its storage class says (``int``, ``float``, ``str``,
``bytes`` or ``None``), which may differ from row to row within one column. :func:`build`
turns one column of a batch into an array of the Arrow type the column was mapped to, or
raises :class:`ValueProblem` naming the first value that is not one of that type: no value
is ever coerced into something it is not (a text in an INTEGER column is not parsed, a
float in a DECIMAL column must be exactly a decimal of its scale).

==========================  =================  ===========================================
Arrow type                  storage classes    rule
==========================  =================  ===========================================
int64 (and narrower ints)   INTEGER            as is; a narrower type must hold the value
double                      REAL, INTEGER      an integer must be exactly representable
string                      TEXT               as is
binary                      BLOB               as is
bool                        INTEGER            0 or 1
date32                      TEXT               ``YYYY-MM-DD``, a real date
timestamp[us]               TEXT               ``YYYY-MM-DD HH:MM:SS[.ffffff]``
timestamp[us, tz=UTC]       TEXT               the same followed by ``+00:00``
decimal128 / decimal256     INTEGER, REAL,     the exact value must fit the precision and
                            TEXT               scale; a REAL is read as the shortest
                                               decimal that is that float (SQLite's NUMERIC
                                               affinity stored ``'1.10'`` as the REAL 1.1),
                                               and refused past 15 significant digits
                                               (SQLite rounded the text it was given)
==========================  =================  ===========================================

Text forms of dates and times: :mod:`rivet_sqlite_jsonl.timetext`. The work is done by
Arrow kernels (casts, regex matches) where one exists; decimals are built from Python
``Decimal`` values, as sqlite3 hands over floats and text.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rivet_sqlite_jsonl import timetext

STORAGE_CLASS = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


class ValueProblem(ValueError):
    """A value that is not one of the column's type (the message says which, and why)."""


Builder = Callable[[Sequence[Any], pa.DataType], pa.Array]


def _accept(values: Sequence[Any], kinds: tuple[type, ...], what: str) -> None:
    """Refuse a batch holding a storage class the type cannot come from."""
    found = set(map(type, values)) - {type(None)}
    wrong = found.difference(kinds)
    if wrong:
        bad = next(v for v in values if type(v) in wrong)
        raise ValueProblem(f"{STORAGE_CLASS.get(type(bad), type(bad).__name__)} value "
                           f"{_show(bad)} is not {what}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _matching(array: pa.Array, pattern: str, what: str) -> None:
    """Refuse text not in the stored form ``pattern`` (NULLs pass)."""
    matches = pc.match_substring_regex(array, pattern)
    bad = pc.filter(array, pc.invert(matches.fill_null(True)))
    if len(bad):
        raise ValueProblem(f"TEXT value {_show(bad[0].as_py())} is not {what}")


# ---------------------------------------------------------------------------- builders


def _integers(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    _accept(values, (int,), "an integer")
    array = pa.array(values, pa.int64())
    return array if typ == pa.int64() else array.cast(typ)


def _floats(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    _accept(values, (float, int), "a number")
    return pa.array(values, pa.float64())


def _strings(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    _accept(values, (str,), "text")
    return pa.array(values, typ)


def _binaries(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    _accept(values, (bytes,), "a BLOB")
    return pa.array(values, typ)


def _booleans(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    _accept(values, (int,), "0 or 1")
    bad = next((v for v in values if v is not None and v not in (0, 1)), None)
    if bad is not None:
        raise ValueProblem(f"INTEGER value {bad} is not 0 or 1")
    return pa.array(values, pa.int64()).cast(pa.bool_())


def _dates(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    _accept(values, (str,), "a date (YYYY-MM-DD text)")
    text = pa.array(values, pa.string())
    _matching(text, timetext.DATE_PATTERN, "a date (YYYY-MM-DD)")
    return text.cast(pa.date32())


def _timestamps(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    instant = typ.tz is not None
    form = ("YYYY-MM-DD HH:MM:SS[.ffffff]+00:00" if instant
            else "YYYY-MM-DD HH:MM:SS[.ffffff]")
    _accept(values, (str,), f"a timestamp ({form} text)")
    text = pa.array(values, pa.string())
    _matching(text, timetext.INSTANT_PATTERN if instant else timetext.DATETIME_PATTERN,
              f"a timestamp ({form})")
    if instant:
        text = pc.utf8_slice_codeunits(text, 0, -len(timetext.UTC_SUFFIX))
    # The cast checks the calendar (month 13, 25:00, February 30th fail); a naive
    # timestamp cast to a zone keeps its value, which is the UTC wall time here.
    return text.cast(pa.timestamp("us")).cast(typ)


REAL_DIGITS = 15
"""Significant decimal digits every double keeps (DBL_DIG): decimal text of at most 15
digits that SQLite stored as a REAL reads back as that same text."""


def _decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, float):
        # repr is the shortest text that reads back as this float: the decimal SQLite was
        # given, when NUMERIC affinity turned decimal text of up to 15 digits into a REAL.
        # Longer text was rounded when it was stored, and the digits are gone.
        text = repr(value)
        number = decimal.Decimal(text)
        if not number.is_finite():
            raise ValueProblem(f"REAL value {value!r} is not a finite decimal number")
        # Significant digits: those of the mantissa, without the zeros on either end.
        mantissa = text.partition("e")[0]
        if len(mantissa.replace("-", "").replace(".", "").strip("0")) > REAL_DIGITS:
            raise ValueProblem(
                f"REAL value {value!r} has more than {REAL_DIGITS} significant digits: a "
                f"REAL holds no exact decimal of that length (SQLite rounds longer decimal "
                f"text to a REAL when a NUMERIC column stores it; declare the column TEXT "
                f"to keep every digit)")
        return number
    try:
        number = decimal.Decimal(value)
    except decimal.InvalidOperation:
        raise ValueProblem(f"TEXT value {_show(value)} is not a decimal number") from None
    if not number.is_finite():
        raise ValueProblem(f"TEXT value {_show(value)} is not a finite decimal number")
    return number


def _decimals(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    _accept(values, (int, float, str), "a decimal number")
    numbers = [None if v is None else _decimal(v) for v in values]
    try:
        return pa.array(numbers, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Name the value: the first one that does not fit on its own.
        for value, number in zip(values, numbers, strict=True):
            try:
                pa.array([number], typ)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise ValueProblem(
                    f"{STORAGE_CLASS[type(value)]} value {_show(value)} does not fit "
                    f"{typ} exactly (precision {typ.precision}, scale {typ.scale})"
                ) from None
        raise


def builder_for(typ: pa.DataType) -> Builder | None:
    """How to build an array of ``typ`` from sqlite3 values, or None when this plugin has no
    rule for it (a type it would have to guess at)."""
    t = pa.types
    if t.is_integer(typ):
        return _integers
    if typ == pa.float64():
        return _floats
    if t.is_string(typ) or t.is_large_string(typ):
        return _strings
    if t.is_binary(typ) or t.is_large_binary(typ):
        return _binaries
    if t.is_boolean(typ):
        return _booleans
    if typ == pa.date32():
        return _dates
    if t.is_timestamp(typ) and typ.unit == "us" and typ.tz in (None, "UTC"):
        return _timestamps
    if t.is_decimal128(typ) or t.is_decimal256(typ):
        return _decimals
    return None


def build(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """An array of ``typ`` holding ``values``; :class:`ValueProblem` naming the first value
    that is not of that type (or does not fit it)."""
    builder = builder_for(typ)
    if builder is None:
        raise ValueProblem(f"values cannot be read as {typ}")
    try:
        return builder(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        # A cast or a range check of Arrow's refused a value: a narrower integer that
        # overflows, a number no float holds exactly, a date that is not in the calendar.
        raise ValueProblem(f"a value is not a valid {typ}: {exc}") from None
