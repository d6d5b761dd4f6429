"""PostgreSQL column type → Arrow type: the mapping table and the rules around it.

Pure logic, no database: a column is known by the type OID and type modifier of the result
description (and the name ``format_type`` gives it, used only in messages). This module holds
the table of built-in types, the decoding of ``numeric`` modifiers, the application of
``[exports.columns]`` overrides, and the :class:`UnsupportedTypeError` that names every column
that cannot be written faithfully. How wire values become Arrow arrays lives in
:mod:`rivet_postgres.decode`.

A domain column needs no entry: PostgreSQL describes it with its base type's OID.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs
import pyarrow as pa

from rivet_core.errors import UnsupportedTypeError
from rivet_core.types import ColumnInfo, Fidelity

# Built-in type OIDs are fixed in the PostgreSQL catalog (pg_type.dat) across versions.
BOOL = 16
BYTEA = 17
NAME = 19
INT8 = 20
INT2 = 21
INT4 = 23
TEXT = 25
OID = 26
JSON = 114
FLOAT4 = 700
FLOAT8 = 701
BPCHAR = 1042
VARCHAR = 1043
DATE = 1082
TIME = 1083
TIMESTAMP = 1114
TIMESTAMPTZ = 1184
NUMERIC = 1700
UUID = 2950
JSONB = 3802

MAX_DECIMAL_PRECISION = 76
"""Widest Arrow decimal (decimal256)."""

_VARHDRSZ = 4


@attrs.frozen(kw_only=True)
class PgType:
    """One row of the mapping table: a PostgreSQL type whose Arrow type does not depend on
    the column's type modifier."""

    typname: str
    """``pg_type.typname`` (``int4``), as the table is read by people."""
    arrow_type: pa.DataType
    fidelity: Fidelity
    logical_type: str | None = None
    note: str = ""


_NONFINITE_NOTE = "±infinity and BC values fail the export (no faithful {} value)"

TYPES: dict[int, PgType] = {
    BOOL: PgType(typname="bool", arrow_type=pa.bool_(), fidelity=Fidelity.EXACT),
    INT2: PgType(typname="int2", arrow_type=pa.int16(), fidelity=Fidelity.EXACT),
    INT4: PgType(typname="int4", arrow_type=pa.int32(), fidelity=Fidelity.EXACT),
    INT8: PgType(typname="int8", arrow_type=pa.int64(), fidelity=Fidelity.EXACT),
    OID: PgType(typname="oid", arrow_type=pa.int64(), fidelity=Fidelity.WIDENED,
                note="unsigned 32-bit, widened to int64"),
    FLOAT4: PgType(typname="float4", arrow_type=pa.float32(), fidelity=Fidelity.EXACT,
                   note="NaN and ±Infinity preserved"),
    FLOAT8: PgType(typname="float8", arrow_type=pa.float64(), fidelity=Fidelity.EXACT,
                   note="NaN and ±Infinity preserved"),
    TEXT: PgType(typname="text", arrow_type=pa.string(), fidelity=Fidelity.EXACT),
    VARCHAR: PgType(typname="varchar", arrow_type=pa.string(), fidelity=Fidelity.EXACT),
    BPCHAR: PgType(typname="bpchar", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
                   note="blank padding kept"),
    NAME: PgType(typname="name", arrow_type=pa.string(), fidelity=Fidelity.EXACT),
    BYTEA: PgType(typname="bytea", arrow_type=pa.binary(), fidelity=Fidelity.EXACT),
    DATE: PgType(typname="date", arrow_type=pa.date32(), fidelity=Fidelity.EXACT,
                 note=_NONFINITE_NOTE.format("date32")),
    TIME: PgType(typname="time", arrow_type=pa.time64("us"), fidelity=Fidelity.EXACT,
                 note="24:00:00 fails the export (time64 holds times of day below 24:00)"),
    TIMESTAMP: PgType(typname="timestamp", arrow_type=pa.timestamp("us"),
                      fidelity=Fidelity.EXACT, note=_NONFINITE_NOTE.format("timestamp")),
    TIMESTAMPTZ: PgType(typname="timestamptz", arrow_type=pa.timestamp("us", tz="UTC"),
                        fidelity=Fidelity.EXACT,
                        note="the instant, in UTC; " + _NONFINITE_NOTE.format("timestamp")),
    UUID: PgType(typname="uuid", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
                 logical_type="uuid", note="lowercase hyphenated text"),
    JSON: PgType(typname="json", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
                 logical_type="json", note="the JSON text exactly as stored"),
    JSONB: PgType(typname="jsonb", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
                  logical_type="json", note="the JSON text as PostgreSQL renders jsonb"),
}
"""Types whose mapping ignores the type modifier. ``numeric`` is mapped by
:func:`numeric_arrow_type`; any OID absent from both is unsupported."""

# An override can stand in for an unsupported mapping only where the loaded values are exact
# and pyarrow converts them with a loss check: numeric loads as decimal.Decimal, which
# pa.array() rescales into a decimal type or refuses ("would cause data loss").
RESCUABLE: dict[int, Callable[[pa.DataType], bool]] = {
    NUMERIC: pa.types.is_decimal,
}


def decode_numeric_typmod(typmod: int) -> tuple[int, int] | None:
    """``(precision, scale)`` of a ``numeric`` type modifier, or None when unconstrained.

    PostgreSQL stores ``((precision << 16) | (scale & 0x7ff)) + VARHDRSZ``; since version 15
    the scale is an 11-bit signed value (``numeric(5,-2)``) and may exceed the precision."""
    if typmod < _VARHDRSZ:
        return None
    value = typmod - _VARHDRSZ
    precision = (value >> 16) & 0xFFFF
    scale = ((value & 0x7FF) ^ 1024) - 1024
    return precision, scale


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """decimal128 up to 38 digits, decimal256 beyond."""
    if precision <= 38:
        return pa.decimal128(precision, scale)
    return pa.decimal256(precision, scale)


def numeric_arrow_type(typmod: int) -> tuple[pa.DataType | None, Fidelity, str]:
    """Arrow type, fidelity and note for a ``numeric`` column with this type modifier."""
    decoded = decode_numeric_typmod(typmod)
    if decoded is None:
        return None, Fidelity.UNSUPPORTED, (
            "unconstrained numeric has no fixed precision/scale; never mapped to float"
        )
    precision, scale = decoded
    fidelity, note = Fidelity.EXACT, ""
    # Parquet and most readers reject a negative scale, and a decimal needs precision >=
    # scale; both are widened to a decimal that holds every value of the column exactly.
    if scale < 0:
        precision, scale = precision - scale, 0
        fidelity, note = Fidelity.WIDENED, "negative scale stored as whole numbers (scale 0)"
    elif scale > precision:
        precision = scale
        fidelity, note = Fidelity.WIDENED, "scale above precision: precision raised to scale"
    if precision > MAX_DECIMAL_PRECISION:
        return None, Fidelity.UNSUPPORTED, (
            f"needs {precision} digits; Arrow decimals hold at most {MAX_DECIMAL_PRECISION}"
        )
    return decimal_type(precision, scale), fidelity, note


def map_column(name: str, oid: int, typmod: int, source_type: str) -> ColumnInfo:
    """The natural mapping of one result column (before overrides)."""
    if oid == NUMERIC:
        arrow_type, fidelity, note = numeric_arrow_type(typmod)
        return ColumnInfo(name=name, source_type=source_type, arrow_type=arrow_type,
                          fidelity=fidelity, note=note)
    entry = TYPES.get(oid)
    if entry is None:
        return ColumnInfo(name=name, source_type=source_type, arrow_type=None,
                          fidelity=Fidelity.UNSUPPORTED, note="no Arrow mapping for this type")
    return ColumnInfo(name=name, source_type=source_type, arrow_type=entry.arrow_type,
                      fidelity=entry.fidelity, note=entry.note, logical_type=entry.logical_type)


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    try:
        pa.array([], type=source).cast(target)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def apply_override(column: ColumnInfo, oid: int, target: pa.DataType) -> ColumnInfo:
    """The column as an ``[exports.columns]`` override makes it.

    A mapped column is cast to ``target`` with pyarrow's safe cast (a value that does not fit
    fails the read). An unsupported column is rescued only where :data:`RESCUABLE` says its
    values convert with a loss check; otherwise, like an impossible cast, it stays
    unsupported with a note saying why."""
    if column.arrow_type is not None and column.arrow_type == target:
        return column
    if column.arrow_type is None:
        rescue = RESCUABLE.get(oid)
        if rescue is None or not rescue(target):
            return attrs.evolve(column, note=f"override {target} cannot apply: {column.note}")
    elif not _castable(column.arrow_type, target):
        return attrs.evolve(column, arrow_type=None, fidelity=Fidelity.UNSUPPORTED,
                            logical_type=None,
                            note=f"override {target} cannot apply: no cast from "
                                 f"{column.arrow_type}")
    return attrs.evolve(
        column, arrow_type=target, logical_type=None,
        fidelity=Fidelity.EXACT if column.arrow_type is None else column.fidelity,
        note=f"[exports.columns] override to {target}; a value that does not convert "
             f"exactly fails the export",
    )


def _sql_ident(name: str) -> str:
    if name.isidentifier() and name == name.lower() and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def unsupported_error(columns: list[ColumnInfo], oids: list[int],
                      label: str) -> UnsupportedTypeError | None:
    """One error naming every column without an Arrow type, or None if all are mapped."""
    bad = [(c, oid) for c, oid in zip(columns, oids, strict=True) if c.arrow_type is None]
    if not bad:
        return None
    listed = "; ".join(f"{c.name!r} ({c.source_type}: {c.note})" for c, _ in bad)
    overrides = [c for c, oid in bad if oid in RESCUABLE]
    casts = [c for c, oid in bad if oid not in RESCUABLE]
    fixes = []
    if overrides:
        example = overrides[0].name
        fixes.append(f'add an [exports.columns] override such as {example} = "decimal(38,10)" '
                     f"(a value needing more digits or scale fails, it is never rounded)")
    if casts:
        fixes.append(f"cast in SQL, e.g. {_sql_ident(casts[0].name)}::text")
    noun = "column has" if len(bad) == 1 else "columns have"
    return UnsupportedTypeError(
        f"{label}: {len(bad)} {noun} no faithful Arrow mapping: {listed}",
        hint="; or ".join(fixes),
        columns=columns,
    )


def unmatched_overrides(names: list[str], overrides: Mapping[str, object]) -> list[str]:
    """Override names that match no result column (a typo would otherwise go unnoticed)."""
    present = set(names)
    return sorted(name for name in overrides if name not in present)
