"""PostgreSQL column type → Arrow type: the mapping table and the rules around it.

Pure logic, no database. A result column is known by the type OID and type modifier of the
result description; built-in types have fixed OIDs, and anything else (enums, citext, arrays
of user types, domains inside arrays) is resolved through :class:`CatalogType` rows read
from ``pg_type`` by the source. This module holds the table of mapped types (:data:`TYPES`,
keyed by type name), the resolution of a column to one of them (:func:`resolve`), the
decoding of ``numeric`` modifiers and the override rules. How wire values load and become
Arrow arrays lives in :mod:`rivet_postgres.loaders` and :mod:`rivet_postgres.builders`;
mapping a result's columns with the export's ``[exports.columns]`` overrides, and the error
naming every column that cannot be written faithfully, in :mod:`rivet_postgres.columns`.

A domain column needs no lookup: PostgreSQL describes it with its base type's OID and
modifier. An *array of a domain* is described by the domain's array type, whose elements
carry the domain's OID; :func:`resolve` follows ``typbasetype`` to the base type.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import pyarrow as pa

from rivet_core.api import (
    MAX_DECIMAL_PRECISION,
    ColumnInfo,
    DocRow,
    Fidelity,
    Rescue,
    TypeRow,
    decimal_type,
    type_table,
)

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
XML = 142
CIDR = 650
FLOAT4 = 700
FLOAT8 = 701
MACADDR8 = 774
MONEY = 790
MACADDR = 829
INET = 869
BPCHAR = 1042
VARCHAR = 1043
DATE = 1082
TIME = 1083
TIMESTAMP = 1114
TIMESTAMPTZ = 1184
INTERVAL = 1186
TIMETZ = 1266
NUMERIC = 1700
UUID = 2950
JSONB = 3802

BUILTIN: dict[int, str] = {
    BOOL: "bool", BYTEA: "bytea", NAME: "name", INT8: "int8", INT2: "int2", INT4: "int4",
    TEXT: "text", OID: "oid", JSON: "json", XML: "xml", CIDR: "cidr", FLOAT4: "float4",
    FLOAT8: "float8", MACADDR8: "macaddr8", MONEY: "money", MACADDR: "macaddr",
    INET: "inet", BPCHAR: "bpchar", VARCHAR: "varchar", DATE: "date", TIME: "time",
    TIMESTAMP: "timestamp", TIMESTAMPTZ: "timestamptz", INTERVAL: "interval",
    TIMETZ: "timetz", NUMERIC: "numeric", UUID: "uuid", JSONB: "jsonb",
}
"""Mapped built-in type OID → ``typname`` (the key of :data:`TYPES`)."""

BUILTIN_ARRAYS: dict[int, int] = {
    1000: BOOL, 1001: BYTEA, 1003: NAME, 1016: INT8, 1005: INT2, 1007: INT4, 1009: TEXT,
    1028: OID, 199: JSON, 143: XML, 651: CIDR, 1021: FLOAT4, 1022: FLOAT8, 775: MACADDR8,
    791: MONEY, 1040: MACADDR, 1041: INET, 1014: BPCHAR, 1015: VARCHAR, 1182: DATE,
    1183: TIME, 1115: TIMESTAMP, 1185: TIMESTAMPTZ, 1187: INTERVAL, 1270: TIMETZ,
    1231: NUMERIC, 2951: UUID, 3807: JSONB,
}
"""Built-in array type OID (``pg_type.typarray``) → element type OID."""

UNCONSTRAINED_NUMERIC = (38, 20)
"""``numeric`` without a modifier becomes ``decimal128(38, 20)``: 18 integer digits and 20
decimals, which holds money-like values and PostgreSQL's division and ``avg`` results
(16-20 decimals). A value needing more fails the export; it is never rounded."""

_VARHDRSZ = 4


_NONFINITE_NOTE = "±infinity and BC values fail the export (no faithful {} value)"
_NONFINITE_DATE = _NONFINITE_NOTE.format("date32")
_NONFINITE_TIMESTAMP = _NONFINITE_NOTE.format("timestamp")

# name | Arrow type | fidelity | logical type | note (see rivet_core.types.type_table)
TYPES: dict[str, TypeRow] = type_table(f"""
bool        | bool                  | exact
int2        | int16                 | exact
int4        | int32                 | exact
int8        | int64                 | exact
oid         | int64                 | widened |          | unsigned 32-bit, widened to int64
float4      | float                 | exact   |          | NaN, ±Infinity and -0 preserved
float8      | double                | exact   |          | NaN, ±Infinity and -0 preserved
numeric     | decimal128(p, s); decimal256(p, s) when p > 38 | exact   |          | NaN and
    ±Infinity fail the export
money       | decimal128(19, s)     | exact   |          | the int64 amount, scaled by
    lc_monetary's fractional digits (read at the start of each read)
text        | string                | exact
varchar     | string                | exact
bpchar      | string                | exact   |          | blank padding kept
name        | string                | exact
citext      | string                | exact   |          | the text as stored (case kept)
bytea       | binary                | exact
date        | date32[day]           | exact   |          | {_NONFINITE_DATE}
time        | time64[us]            | exact   |          | 24:00:00 fails the export (time64 holds
    times of day below 24:00)
timetz      | string                | exact   | timetz   | text HH:MM:SS.ffffff+HH:MM (offset
    seconds appended when not zero); Arrow has no time-with-zone type
timestamp   | timestamp[us]         | exact   |          | {_NONFINITE_TIMESTAMP}
timestamptz | timestamp[us, tz=UTC] | exact   |          | the instant, in UTC;
    {_NONFINITE_TIMESTAMP}
interval    | string                | exact   | interval | ISO 8601 text as IntervalStyle iso_8601
    prints it (P1Y2M3DT4H5M6.5S); months, days and time kept apart
uuid        | string                | exact   | uuid     | lowercase hyphenated text
json        | string                | exact   | json     | the JSON text exactly as stored
jsonb       | string                | exact   | json     | the JSON text as PostgreSQL renders
    jsonb
xml         | string                | exact   | xml      | the XML text
inet        | string                | exact   | inet     | PostgreSQL's text (/32 and /128 omitted)
cidr        | string                | exact   | cidr     | PostgreSQL's text, always with /bits
macaddr     | string                | exact   | macaddr  | lowercase, colon-separated
macaddr8    | string                | exact   | macaddr8 | lowercase, colon-separated
enum        | string                | exact   | enum     | the label
""")
"""Every type Rivet maps, by ``typname`` (``enum`` stands for any enum type). A ``numeric``
or ``money`` row has no ``arrow_type``: the modifier or the session decides it
(:func:`scalar_mapping`)."""

ARRAY_NOTE = ("one-dimensional arrays only, NULL elements kept; a multi-dimensional value or "
              "a lower bound other than 1 fails the export")


@attrs.frozen(kw_only=True)
class CatalogType:
    """The ``pg_type`` row of a type that is not built in."""

    oid: int
    typname: str
    typtype: str
    """``b`` base, ``d`` domain, ``e`` enum, ``c`` composite, ``r`` range, ``p`` pseudo..."""
    base_oid: int = 0
    """``typbasetype`` of a domain."""
    base_typmod: int = -1
    """``typtypmod`` of a domain (its base type's modifier)."""
    element_oid: int = 0
    """``typelem`` of an array type (``typcategory = 'A'``), else 0."""


@attrs.frozen(kw_only=True)
class Resolved:
    """A result column reduced to a mapped type: ``key`` in :data:`TYPES` (None when there
    is none), its modifier, and whether the column is an array of it."""

    key: str | None
    typmod: int = -1
    array: bool = False
    element_oid: int = 0
    """For arrays: the element OID as it appears inside the array's wire data."""
    reason: str = ""


def _scalar(oid: int, typmod: int, catalog: Mapping[int, CatalogType],
            depth: int = 0) -> tuple[str, int] | None:
    if oid in BUILTIN:
        return BUILTIN[oid], typmod
    info = catalog.get(oid)
    if info is None or depth > 16:
        return None
    if info.typtype == "d":
        base_typmod = info.base_typmod if info.base_typmod != -1 else typmod
        return _scalar(info.base_oid, base_typmod, catalog, depth + 1)
    if info.typtype == "e":
        return "enum", -1
    if info.typtype == "b" and info.typname == "citext":
        return "citext", -1
    return None


def array_element(oid: int, catalog: Mapping[int, CatalogType]) -> int:
    """The element OID of an array type, or 0 when ``oid`` is not an array."""
    if oid in BUILTIN_ARRAYS:
        return BUILTIN_ARRAYS[oid]
    info = catalog.get(oid)
    return info.element_oid if info is not None else 0


def unknown_oids(oids: list[int], catalog: Mapping[int, CatalogType]) -> set[int]:
    """OIDs :func:`resolve` needs catalog rows for and that ``catalog`` lacks (domains and
    array elements are followed one level; call again after adding the rows)."""
    missing: set[int] = set()
    for oid in oids:
        if oid in BUILTIN or oid in BUILTIN_ARRAYS:
            continue
        info = catalog.get(oid)
        if info is None:
            missing.add(oid)
            continue
        for ref in (info.base_oid, info.element_oid):
            if ref and ref not in BUILTIN and ref not in catalog:
                missing.add(ref)
    return missing


def resolve(oid: int, typmod: int, catalog: Mapping[int, CatalogType]) -> Resolved:
    """The mapped type of a result column with this OID and modifier."""
    scalar = _scalar(oid, typmod, catalog)
    if scalar is not None:
        return Resolved(key=scalar[0], typmod=scalar[1])
    element = array_element(oid, catalog)
    if element:
        inner = _scalar(element, typmod, catalog)
        if inner is None:
            return Resolved(key=None, reason="array of a type without an Arrow mapping")
        return Resolved(key=inner[0], typmod=inner[1], array=True, element_oid=element)
    info = catalog.get(oid)
    if info is not None and info.typtype == "d":
        # A domain over an array type: describe it as its base.
        base_typmod = info.base_typmod if info.base_typmod != -1 else typmod
        return resolve(info.base_oid, base_typmod, catalog)
    return Resolved(key=None, reason="no Arrow mapping for this type")


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


def numeric_arrow_type(typmod: int) -> tuple[pa.DataType | None, Fidelity, str]:
    """Arrow type, fidelity and note for a ``numeric`` column with this type modifier."""
    decoded = decode_numeric_typmod(typmod)
    if decoded is None:
        precision, scale = UNCONSTRAINED_NUMERIC
        return decimal_type(precision, scale), Fidelity.EXACT, (
            f"unconstrained numeric: decimal({precision},{scale}); a value with more than "
            f"{precision - scale} integer digits or {scale} decimals fails the export naming "
            f"the override that holds it (never rounded, never float)")
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


MONEY_PRECISION = 19
"""Digits of the largest money amount (an int64)."""


def scalar_mapping(key: str, typmod: int, money_scale: int | None = None
                   ) -> tuple[pa.DataType | None, Fidelity, str, str | None]:
    """(Arrow type, fidelity, note, logical type) of one mapped scalar type."""
    entry = TYPES[key]
    if key == "numeric":
        arrow_type, fidelity, note = numeric_arrow_type(typmod)
        return arrow_type, fidelity, note or entry.note, None
    if key == "money":
        scale = 2 if money_scale is None else money_scale
        return decimal_type(MONEY_PRECISION, scale), entry.fidelity, entry.note, None
    return entry.arrow_type, entry.fidelity, entry.note, entry.logical_type


def map_column(name: str, resolved: Resolved, source_type: str,
               money_scale: int | None = None) -> ColumnInfo:
    """The natural mapping of one result column (before overrides)."""
    if resolved.key is None:
        return ColumnInfo(name=name, source_type=source_type, arrow_type=None,
                          fidelity=Fidelity.UNSUPPORTED, note=resolved.reason)
    arrow_type, fidelity, note, logical = scalar_mapping(resolved.key, resolved.typmod,
                                                         money_scale)
    if not resolved.array:
        return ColumnInfo(name=name, source_type=source_type, arrow_type=arrow_type,
                          fidelity=fidelity, note=note, logical_type=logical)
    if arrow_type is None:
        return ColumnInfo(name=name, source_type=source_type, arrow_type=None,
                          fidelity=Fidelity.UNSUPPORTED, note=f"elements: {note}")
    return ColumnInfo(name=name, source_type=source_type, arrow_type=pa.list_(arrow_type),
                      fidelity=fidelity, logical_type=f"{logical}[]" if logical else None,
                      note=ARRAY_NOTE + (f"; elements: {note}" if note else ""))


def rescue_for(resolved: Resolved, target: pa.DataType) -> Rescue | None:
    """How an override of a scalar numeric is built: straight from the loaded
    ``Decimal`` values into a decimal (refusing, not rounding, what does not fit) or into
    their exact text. No other column needs or allows this."""
    if resolved.key != "numeric" or resolved.array:
        return None
    if pa.types.is_decimal(target):
        return Rescue(Fidelity.EXACT, f"[exports.columns] override to {target}; a value "
                                      f"needing more digits or decimals fails the export")
    if target == pa.string():
        return Rescue(Fidelity.EXACT, "[exports.columns] override: the exact decimal text "
                                      "(NaN and Infinity as words)")
    return None


def sql_ident(name: str) -> str:
    if name.isidentifier() and name == name.lower() and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def doc_rows() -> list[DocRow]:
    """The PostgreSQL table of docs/types.md, from :data:`TYPES` and the rules above."""
    rows: list[DocRow] = []
    for key, entry in TYPES.items():
        if key == "numeric":
            rows.append(entry.doc_row("numeric(p,s)"))
            default, fidelity, _ = numeric_arrow_type(-1)
            rows.append(("numeric", str(default), fidelity.value, "—"))
            continue
        rows.append(entry.doc_row())
    rows.append(("T[]", "list<item: T's Arrow type>", "as T", "T's, with []"))
    rows.append(("domain over T", "T's Arrow type", "as T", "as T"))
    return rows
