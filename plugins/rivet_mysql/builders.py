"""The server's text of a column → an Arrow array: one builder per mapped type.

A column arrives as the server's text: on the pymysql path (no decoders at all: ``conv``
holds only encoders, and ``use_unicode=False``) as a sequence of ``bytes`` or ``None``; on
the ConnectorX path (:mod:`rivet_mysql.carriers`) as a binary Arrow array of the text of
``CAST(col AS CHAR)``. Either way a builder turns it into Arrow with pyarrow's C kernels:
numbers, decimals and dates are parsed by casts that refuse (never round) text that does
not fit, strings are validated as UTF-8 by a cast. Only BIT(n), GEOMETRY and the ``time``
override of TIME touch each value in Python. Both read paths share these builders, so a
value is parsed the same way whichever path read it.

The rules are those of :mod:`rivet_mysql.typemap`; the zero-date policy is applied here
(:func:`temporal_builder`). Not here: which builder a result column gets and how an
override is applied to what it builds (:mod:`rivet_mysql.columns`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from rivet_core.api import SourceError

ZeroDates = Literal["error", "null"]

_MAX_VALUE_TEXT = 60


def column_error(name: str, detail: str, hint: str | None = None) -> SourceError:
    """A value of column ``name`` that its Arrow type cannot hold."""
    return SourceError(f"column {name!r}: {detail}",
                       hint=hint or f"filter or convert these values in SQL "
                                    f"(e.g. CAST(`{name}` AS CHAR))")


def _short(value: object) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= _MAX_VALUE_TEXT else text[:_MAX_VALUE_TEXT] + "…"


TextColumn: TypeAlias = "Sequence[Any] | pa.Array"
"""The text of one column of a batch: ``bytes``/``None`` values, or a binary Arrow array."""


def _raw(values: TextColumn) -> pa.Array:
    if isinstance(values, pa.Array):
        return values if values.type == pa.binary() else values.cast(pa.binary())
    return pa.array(values, pa.binary())


def _values(values: TextColumn) -> Sequence[Any]:
    """The values as Python ``bytes``/``None`` (for the few builders that work per value)."""
    return values.to_pylist() if isinstance(values, pa.Array) else values


def _first_failure(values: TextColumn, convert: Callable[[pa.Array], pa.Array]) -> object:
    """The first value that ``convert`` refuses (only called to write an error)."""
    for value in _values(values):
        if value is None:
            continue
        try:
            convert(pa.array([value], pa.binary()))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return value
    return None


def _parse(values: TextColumn, target: pa.DataType, name: str,
           via_text: bool = False) -> pa.Array:
    """Cast the text to ``target``; a value that does not parse exactly fails the read."""
    def convert(raw: pa.Array) -> pa.Array:
        return (raw.cast(pa.string()) if via_text else raw).cast(target)

    try:
        return convert(_raw(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        bad = _first_failure(values, convert)
        raise column_error(name, f"value {_short(bad)!r} cannot be stored in {target} "
                          f"without loss") from None


def build_text(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    try:
        return _raw(values).cast(pa.string())
    except pa.ArrowInvalid:
        raise column_error(name, "a value is not valid UTF-8") from None


def build_binary(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    return _raw(values)


def build_number(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    return _parse(values, target, name)


def tinyint_bool(numbers: pa.Array, name: str) -> pa.Array:
    """A TINYINT(1) column's numbers as booleans; a value other than 0 or 1 fails."""
    bounds = pc.min_max(numbers)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if (low is not None and low < 0) or (high is not None and high > 1):
        bad = low if low is not None and low < 0 else high
        raise column_error(name, f"value {bad} of a TINYINT(1) column is not a boolean",
                           hint=f'keep the numbers with the [exports.columns] override '
                                f'{name} = "int8"')
    return pc.not_equal(numbers, 0)


def build_tinyint_bool(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    return tinyint_bool(_parse(values, pa.int8(), name), name)


def checked_cast(array: pa.Array, target: pa.DataType, name: str, *,
                 override: bool = False) -> pa.Array:
    """``array`` as ``target`` by pyarrow's safe cast: a value that would change (overflow,
    truncation, lost scale) fails naming the column (and ``override``: that ``target`` is
    the column's ``[exports.columns]`` type)."""
    if array.type == target:
        return array
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        into = f"the override {target}" if override else str(target)
        raise column_error(name, f"cannot convert {array.type} to {into} without loss: "
                                 f"{exc}") from None


def build_bit_bool(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    # BIT(1) arrives as one raw byte, 0x00 or 0x01.
    return pc.not_equal(_raw(values), pa.scalar(b"\x00", pa.binary()))


def build_bit_int(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    # BIT(n) arrives as ceil(n/8) raw bytes, most significant first.
    return pa.array([None if v is None else int.from_bytes(v, "big") for v in _values(values)],
                    pa.uint64())


def build_null(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    return pa.nulls(len(values))


def to_ewkb(value: bytes) -> bytes:
    """MySQL's geometry value (4-byte little-endian SRID, then WKB) as WKB, or as PostGIS
    EWKB when the SRID is not 0: the SRID flag 0x20000000 is set in the geometry type and
    the SRID follows it, both in the WKB's own byte order."""
    srid = int.from_bytes(value[:4], "little")
    wkb = value[4:]
    if srid == 0:
        return wkb
    order: Literal["little", "big"] = "little" if wkb[0] == 1 else "big"
    geometry_type = int.from_bytes(wkb[1:5], order) | 0x20000000
    return wkb[:1] + geometry_type.to_bytes(4, order) + srid.to_bytes(4, order) + wkb[5:]


def build_geometry(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    return pa.array([None if v is None else to_ewkb(v) for v in _values(values)], pa.binary())


def _valid_dates(text: pa.Array) -> pa.Array:
    """True where the text starts with a real calendar date. ``strptime`` rejects zero
    months and days and rolls ``02-30`` over to ``03-01``, so a date is real when it parses
    and formats back to the same text."""
    date_part = pc.utf8_slice_codeunits(text, 0, 10)
    parsed = pc.strptime(date_part, format="%Y-%m-%d", unit="s", error_is_null=True)
    same = pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), date_part)
    return pc.fill_null(same, False)


def _build_temporal(values: TextColumn, parse_type: pa.DataType, name: str,
                    zero_dates: ZeroDates) -> pa.Array:
    text = _raw(values).cast(pa.string())
    try:
        return text.cast(parse_type)
    except pa.ArrowInvalid:
        pass
    valid = _valid_dates(text)
    invalid = pc.and_(text.is_valid(), pc.invert(valid))
    if zero_dates == "error" and pc.any(invalid).as_py():
        bad = text.filter(invalid)[0].as_py()
        raise column_error(name, f"value {bad!r} is a zero or invalid date, which no date or "
                          f"timestamp can hold",
                    hint='set zero_dates = "null" in [source] to export such values as NULL, '
                         'or filter them in SQL')
    cleaned = pc.if_else(valid, text, pa.scalar(None, pa.string()))
    try:
        return cleaned.cast(parse_type)
    except pa.ArrowInvalid as exc:
        raise column_error(name, f"values cannot be stored in {parse_type}: {exc}") from None


def temporal_builder(kind: str, zero_dates: ZeroDates) -> Builder:
    """The builder of a DATE, DATETIME or TIMESTAMP column under a zero-date policy."""
    def build(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
        if kind == "date":
            return _build_temporal(values, pa.date32(), name, zero_dates)
        micros = _build_temporal(values, pa.timestamp("us"), name, zero_dates)
        # TIMESTAMP text is UTC (the session zone is +00:00): same integers, UTC label.
        return micros if kind == "datetime" else micros.view(pa.timestamp("us", tz="UTC"))
    return build


def build_time_of_day(values: TextColumn, target: pa.DataType, name: str) -> pa.Array:
    """TIME text as ``time64[us]`` (the ``time`` override): refuses negative values and
    values of 24 hours or more instead of wrapping them."""
    micros: list[int | None] = []
    for value in _values(values):
        if value is None:
            micros.append(None)
            continue
        text = value.decode("ascii")
        hours, minutes, seconds = text.split(":")
        whole, _, fraction = seconds.partition(".")
        total = ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1_000_000
        total += int(fraction.ljust(6, "0")[:6]) if fraction else 0
        if text.startswith("-") or total >= 86_400_000_000:
            raise column_error(name, f"value {text!r} is not a time of day",
                        hint=f"drop the time override of {name} to export the text")
        micros.append(total)
    return pa.array(micros, pa.int64()).view(pa.time64("us"))


Builder = Callable[[TextColumn, pa.DataType, str], pa.Array]

BUILDERS: dict[str, Builder] = {
    "tinyint": build_number,
    "tinyint unsigned": build_number,
    "tinyint(1)": build_tinyint_bool,
    "smallint": build_number,
    "smallint unsigned": build_number,
    "mediumint": build_number,
    "mediumint unsigned": build_number,
    "int": build_number,
    "int unsigned": build_number,
    "bigint": build_number,
    "bigint unsigned": build_number,
    "decimal": build_number,
    "double": build_number,
    "bit(1)": build_bit_bool,
    "bit(n)": build_bit_int,
    "year": build_number,
    "char": build_text,
    "varchar": build_text,
    "text": build_text,
    "enum": build_text,
    "set": build_text,
    "json": build_text,
    "time": build_text,
    "binary": build_binary,
    "varbinary": build_binary,
    "blob": build_binary,
    "geometry": build_geometry,
    "null": build_null,
}
"""Builders by type key; dates and timestamps come from :func:`temporal_builder`."""

_TEMPORAL = frozenset({"date", "datetime", "timestamp"})


def builder_for(key: str, zero_dates: ZeroDates) -> Builder:
    if key in _TEMPORAL:
        return temporal_builder(key, zero_dates)
    return BUILDERS[key]


def direct_builder(key: str | None, target: pa.DataType) -> Builder:
    """The builder of an override made straight from the text (see
    :func:`rivet_mysql.typemap.rescue_for`)."""
    if key == "time":
        return build_time_of_day
    if target == pa.string():
        return build_text
    return build_number
