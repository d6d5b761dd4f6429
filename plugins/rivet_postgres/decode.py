"""Wire values → Arrow arrays: the psycopg loaders Rivet installs and the column builders.

Rows arrive in PostgreSQL's binary format. Rivet replaces a few of psycopg's loaders so the
expensive or unfaithful conversions never happen in Python:

- ``date``, ``time``, ``timestamp`` and ``timestamptz`` load as the raw integers of the wire
  format (days / microseconds since 2000-01-01, microseconds since midnight) through psycopg's
  C integer loaders, then become Arrow temporal arrays by one vectorised add. No
  ``datetime`` objects are built; ``timestamptz`` is the UTC instant whatever the session time
  zone; ``±infinity`` and BC values are caught and reported instead of crashing the loader.
- ``json`` and ``jsonb`` load as text, never parsed: JSON ``null`` stays the string ``"null"``
  and the text is exactly PostgreSQL's. The jsonb wire format's leading version byte is
  stripped by an Arrow kernel.
- ``uuid`` loads as its 16 raw bytes; one ``bytes.hex()`` over the whole column and Arrow
  string kernels make the lowercase hyphenated text.

Every other mapped type uses psycopg's C binary loader and one ``pa.array`` call per column.
The mapping itself (which Arrow type) is in :mod:`rivet_postgres.typemap`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import adapt
from psycopg.types.bool import BoolBinaryLoader
from psycopg.types.numeric import (
    Float4BinaryLoader,
    Float8BinaryLoader,
    Int2BinaryLoader,
    Int4BinaryLoader,
    Int8BinaryLoader,
    NumericBinaryLoader,
    OidBinaryLoader,
)
from psycopg.types.string import ByteaBinaryLoader, TextBinaryLoader

from rivet_core.errors import SourceError
from rivet_postgres import typemap as t

# The PostgreSQL epoch is 2000-01-01; Arrow's is 1970-01-01.
_EPOCH_SHIFT_DAYS = 10_957
_US_PER_DAY = 86_400_000_000
_EPOCH_SHIFT_US = _EPOCH_SHIFT_DAYS * _US_PER_DAY
# PostgreSQL sends ±infinity as the extreme integers of the wire type.
_DATE_INFINITY = 2**31 - 1
_DATE_NEG_INFINITY = -(2**31)
_TS_INFINITY = 2**63 - 1
_TS_NEG_INFINITY = -(2**63)
# 0001-01-01, in days since 2000-01-01: anything earlier is a BC value.
_FIRST_AD_DAY = -730_119
_MAX_VALUE_TEXT = 60


LOADERS: dict[int, type[adapt.Loader]] = {
    t.BOOL: BoolBinaryLoader,
    t.INT2: Int2BinaryLoader,
    t.INT4: Int4BinaryLoader,
    t.INT8: Int8BinaryLoader,
    t.OID: OidBinaryLoader,
    t.FLOAT4: Float4BinaryLoader,
    t.FLOAT8: Float8BinaryLoader,
    t.NUMERIC: NumericBinaryLoader,
    t.TEXT: TextBinaryLoader,
    t.VARCHAR: TextBinaryLoader,
    t.BPCHAR: TextBinaryLoader,
    t.NAME: TextBinaryLoader,
    t.JSON: TextBinaryLoader,
    t.JSONB: TextBinaryLoader,
    t.BYTEA: ByteaBinaryLoader,
    t.UUID: ByteaBinaryLoader,
    t.DATE: Int4BinaryLoader,
    t.TIME: Int8BinaryLoader,
    t.TIMESTAMP: Int8BinaryLoader,
    t.TIMESTAMPTZ: Int8BinaryLoader,
}
"""Binary loader per mapped OID, registered on every connection the source opens.
psycopg swaps in its C implementation of each built-in class."""


def register_loaders(adapters: adapt.AdaptersMap) -> None:
    for oid, loader in LOADERS.items():
        adapters.register_loader(oid, loader)


def _fail(name: str, detail: str, hint: str | None = None) -> SourceError:
    return SourceError(f"column {name!r}: {detail}",
                       hint=hint or f"filter or convert these values in SQL, or cast {name} "
                                    f"to text")


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of days since 1970-01-01; year 0 is 1 BC.
    (Howard Hinnant's algorithm; Python's ``date`` stops at year 1.)"""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def pg_date_text(days_since_2000: int) -> str:
    """A wire date as PostgreSQL prints it (``2024-02-29``, ``0044-03-15 BC``, ``infinity``)."""
    if days_since_2000 == _DATE_INFINITY:
        return "infinity"
    if days_since_2000 == _DATE_NEG_INFINITY:
        return "-infinity"
    year, month, day = _civil_from_days(days_since_2000 + _EPOCH_SHIFT_DAYS)
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d} BC"
    return f"{year:04d}-{month:02d}-{day:02d}"


def pg_timestamp_text(us_since_2000: int) -> str:
    """A wire timestamp as PostgreSQL prints it (UTC for timestamptz)."""
    if us_since_2000 == _TS_INFINITY:
        return "infinity"
    if us_since_2000 == _TS_NEG_INFINITY:
        return "-infinity"
    days, us = divmod(us_since_2000, _US_PER_DAY)
    date = pg_date_text(days)
    seconds, micros = divmod(us, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if micros:
        clock += f".{micros:06d}".rstrip("0")
    if date.endswith(" BC"):
        return f"{date[:-3]} {clock} BC"
    return f"{date} {clock}"


def _build_date(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    days = pa.array(values, type=pa.int32())
    bounds = pc.min_max(days)
    low, high = bounds["min"], bounds["max"]
    if high.is_valid and high.as_py() == _DATE_INFINITY:
        raise _fail(name, "value infinity has no date32 equivalent")
    if low.is_valid and low.as_py() < _FIRST_AD_DAY:
        raise _fail(name, f"value {pg_date_text(low.as_py())} is before 0001-01-01; "
                          f"BC dates and -infinity are not exported")
    return pc.add_checked(days, pa.scalar(_EPOCH_SHIFT_DAYS, pa.int32())).cast(arrow_type)


def _build_timestamp(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    micros = pa.array(values, type=pa.int64())
    bounds = pc.min_max(micros)
    low, high = bounds["min"], bounds["max"]
    if high.is_valid and high.as_py() == _TS_INFINITY:
        raise _fail(name, "value infinity has no timestamp equivalent")
    if low.is_valid and low.as_py() < _FIRST_AD_DAY * _US_PER_DAY:
        raise _fail(name, f"value {pg_timestamp_text(low.as_py())} is before 0001-01-01; "
                          f"BC timestamps and -infinity are not exported")
    try:
        shifted = pc.add_checked(micros, _EPOCH_SHIFT_US)
    except pa.ArrowInvalid:
        raise _fail(name, f"value {pg_timestamp_text(high.as_py())} is beyond the range of "
                          f"timestamp[us]") from None
    return shifted.view(arrow_type)


def _build_time(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    micros = pa.array(values, type=pa.int64())
    high = pc.max(micros)
    if high.is_valid and high.as_py() >= _US_PER_DAY:
        raise _fail(name, "value 24:00:00 is not a time of day in time64")
    return micros.view(arrow_type)


def _build_jsonb(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    text = pa.array(values, type=pa.string())
    # jsonb's binary format is a version byte (1 since PostgreSQL 9.4) and then the text.
    if pc.all(pc.starts_with(text, "\x01")).as_py() is False:
        raise _fail(name, "unknown jsonb binary format version")
    return pc.utf8_slice_codeunits(text, 1).cast(arrow_type)


_UUID_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


def _build_uuid(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    raw = pa.array(values, type=pa.binary(16))
    count = len(raw)
    validity, data = raw.buffers()
    # Null slots hold zero bytes; the validity bitmap carries over and masks them.
    hexed = pa.py_buffer(data.to_pybytes()[: 16 * count].hex().encode("ascii"))
    offsets = pa.array(range(0, 32 * count + 1, 32), type=pa.int32()).buffers()[1]
    flat = pa.StringArray.from_buffers(count, offsets, hexed, validity, raw.null_count)
    groups = [pc.utf8_slice_codeunits(flat, start, stop) for start, stop in _UUID_GROUPS]
    return pc.binary_join_element_wise(*groups, "-").cast(arrow_type)


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_VALUE_TEXT else text[:_MAX_VALUE_TEXT] + "…"


def _build_decimal(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    # pa.array refuses (rather than rounds) a Decimal that needs more scale or digits than the
    # type holds; the slow search for the culprit only runs to write the error.
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    for value in values:
        if value is None:
            continue
        if isinstance(value, Decimal) and not value.is_finite():
            raise _fail(name, f"value {value} cannot be stored in {arrow_type}")
        try:
            pa.array([value], type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise _fail(name, f"value {_short(value)} does not fit {arrow_type} without "
                              f"rounding or overflow",
                        hint="give the [exports.columns] override more precision or scale "
                             "(up to decimal(76,s)), or cast in SQL") from None
    raise _fail(name, f"values cannot be stored in {arrow_type}")


def _build_plain(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _fail(name, f"values cannot be stored in {arrow_type}: {exc}") from None


Builder = Callable[[Sequence[Any], pa.DataType, str], pa.Array]

BUILDERS: dict[int, Builder] = {
    t.DATE: _build_date,
    t.TIME: _build_time,
    t.TIMESTAMP: _build_timestamp,
    t.TIMESTAMPTZ: _build_timestamp,
    t.JSONB: _build_jsonb,
    t.UUID: _build_uuid,
    t.NUMERIC: _build_decimal,
}
"""Column builders by OID; any other mapped type is one ``pa.array`` call."""


def build_column(values: Sequence[Any], oid: int, natural: pa.DataType | None,
                 target: pa.DataType, name: str) -> pa.Array:
    """One column of a batch as an Arrow array of type ``target``.

    ``natural`` is the mapped type (None for an unsupported column rescued by an override,
    whose values go straight into ``target``). An override is applied with pyarrow's safe
    cast: overflow, truncation or lost scale raise :class:`SourceError` naming the column."""
    builder = BUILDERS.get(oid, _build_plain)
    if natural is None:
        return builder(values, target, name)
    array = builder(values, natural, name)
    if natural == target:
        return array
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise _fail(name, f"cannot convert {natural} to the override {target} without "
                          f"loss: {exc}") from None
