"""PostgreSQL column type → Arrow type: the mapping table and the rules around it.

Pure logic, no database. A result column is known by the type OID and type modifier of the
result description; built-in types have fixed OIDs, and anything else (enums, citext, arrays
of user types, domains inside arrays) is resolved through :class:`CatalogType` rows read
from ``pg_type`` by the source. This module holds the table of mapped types (:data:`TYPES`,
keyed by type name), the resolution of a column to one of them (:func:`resolve`), the
decoding of ``numeric`` modifiers, override rules and the error naming every column that
cannot be written faithfully. How wire values become Arrow arrays lives in
:mod:`rivet_postgres.decode`.

A domain column needs no lookup: PostgreSQL describes it with its base type's OID and
modifier. An *array of a domain* is described by the domain's array type, whose elements
carry the domain's OID; :func:`resolve` follows ``typbasetype`` to the base type.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import pyarrow as pa

from rivet_core.errors import UnsupportedTypeError
from rivet_core.types import (
    MAX_DECIMAL_PRECISION,
    ColumnInfo,
    Fidelity,
    Rescue,
    apply_override,
    decimal_type,
    unsupported_error,
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


@attrs.frozen(kw_only=True)
class PgType:
    """One row of the mapping table. ``arrow_type`` is None where the modifier (numeric) or
    the session (money) decides it; :func:`scalar_mapping` computes those."""

    typname: str
    arrow_type: pa.DataType | None
    fidelity: Fidelity
    logical_type: str | None = None
    note: str = ""
    arrow_text: str = ""
    """How the docs spell an Arrow type the modifier or session decides."""


_NONFINITE_NOTE = "±infinity and BC values fail the export (no faithful {} value)"

TYPES: dict[str, PgType] = {t.typname: t for t in [
    PgType(typname="bool", arrow_type=pa.bool_(), fidelity=Fidelity.EXACT),
    PgType(typname="int2", arrow_type=pa.int16(), fidelity=Fidelity.EXACT),
    PgType(typname="int4", arrow_type=pa.int32(), fidelity=Fidelity.EXACT),
    PgType(typname="int8", arrow_type=pa.int64(), fidelity=Fidelity.EXACT),
    PgType(typname="oid", arrow_type=pa.int64(), fidelity=Fidelity.WIDENED,
           note="unsigned 32-bit, widened to int64"),
    PgType(typname="float4", arrow_type=pa.float32(), fidelity=Fidelity.EXACT,
           note="NaN, ±Infinity and -0 preserved"),
    PgType(typname="float8", arrow_type=pa.float64(), fidelity=Fidelity.EXACT,
           note="NaN, ±Infinity and -0 preserved"),
    PgType(typname="numeric", arrow_type=None, fidelity=Fidelity.EXACT,
           note="NaN and ±Infinity fail the export",
           arrow_text="decimal128(p, s); decimal256(p, s) when p > 38"),
    PgType(typname="money", arrow_type=None, fidelity=Fidelity.EXACT,
           arrow_text="decimal128(19, s)",
           note="the int64 amount, scaled by lc_monetary's fractional digits (read at the "
                "start of each read)"),
    PgType(typname="text", arrow_type=pa.string(), fidelity=Fidelity.EXACT),
    PgType(typname="varchar", arrow_type=pa.string(), fidelity=Fidelity.EXACT),
    PgType(typname="bpchar", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           note="blank padding kept"),
    PgType(typname="name", arrow_type=pa.string(), fidelity=Fidelity.EXACT),
    PgType(typname="citext", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           note="the text as stored (case kept)"),
    PgType(typname="bytea", arrow_type=pa.binary(), fidelity=Fidelity.EXACT),
    PgType(typname="date", arrow_type=pa.date32(), fidelity=Fidelity.EXACT,
           note=_NONFINITE_NOTE.format("date32")),
    PgType(typname="time", arrow_type=pa.time64("us"), fidelity=Fidelity.EXACT,
           note="24:00:00 fails the export (time64 holds times of day below 24:00)"),
    PgType(typname="timetz", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="timetz",
           note="text HH:MM:SS.ffffff+HH:MM (offset seconds appended when not zero); "
                "Arrow has no time-with-zone type"),
    PgType(typname="timestamp", arrow_type=pa.timestamp("us"), fidelity=Fidelity.EXACT,
           note=_NONFINITE_NOTE.format("timestamp")),
    PgType(typname="timestamptz", arrow_type=pa.timestamp("us", tz="UTC"),
           fidelity=Fidelity.EXACT,
           note="the instant, in UTC; " + _NONFINITE_NOTE.format("timestamp")),
    PgType(typname="interval", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="interval",
           note="ISO 8601 text as IntervalStyle iso_8601 prints it (P1Y2M3DT4H5M6.5S); "
                "months, days and time kept apart"),
    PgType(typname="uuid", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="uuid", note="lowercase hyphenated text"),
    PgType(typname="json", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="json", note="the JSON text exactly as stored"),
    PgType(typname="jsonb", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="json", note="the JSON text as PostgreSQL renders jsonb"),
    PgType(typname="xml", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="xml", note="the XML text"),
    PgType(typname="inet", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="inet", note="PostgreSQL's text (/32 and /128 omitted)"),
    PgType(typname="cidr", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="cidr", note="PostgreSQL's text, always with /bits"),
    PgType(typname="macaddr", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="macaddr", note="lowercase, colon-separated"),
    PgType(typname="macaddr8", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="macaddr8", note="lowercase, colon-separated"),
    PgType(typname="enum", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="enum", note="the label"),
]}
"""Every type Rivet maps, by ``typname`` (``enum`` stands for any enum type)."""

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


def override_column(column: ColumnInfo, resolved: Resolved, target: pa.DataType) -> ColumnInfo:
    """The column as an ``[exports.columns]`` override makes it."""
    return apply_override(column, target, rescue_for(resolved, target))


def sql_ident(name: str) -> str:
    if name.isidentifier() and name == name.lower() and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def unsupported(columns: list[ColumnInfo], resolved: list[Resolved],
                label: str) -> UnsupportedTypeError | None:
    """One error naming every column without an Arrow type, or None if all are mapped."""
    bad = [(c, r) for c, r in zip(columns, resolved, strict=True) if c.arrow_type is None]
    numeric = [c for c, r in bad if r.key == "numeric" and not r.array]
    others = [c for c, r in bad if not (r.key == "numeric" and not r.array)]
    fixes = []
    if numeric:
        fixes.append(f'add an [exports.columns] override such as {numeric[0].name} = '
                     f'"decimal(76,20)" or "string" (a value needing more digits fails, it '
                     f'is never rounded)')
    if others:
        fixes.append(f"cast in SQL, e.g. {sql_ident(others[0].name)}::text")
    return unsupported_error(columns, label, fixes)


DocRow = tuple[str, str, str, str]
"""(source type, Arrow type, fidelity, logical type) as the table in docs/types.md has it."""


def doc_rows() -> list[DocRow]:
    """The PostgreSQL table of docs/types.md, from :data:`TYPES` and the rules above."""
    rows: list[DocRow] = []
    for key, entry in TYPES.items():
        arrow = entry.arrow_text or str(entry.arrow_type)
        if key == "numeric":
            rows.append(("numeric(p,s)", arrow, entry.fidelity.value, "—"))
            default, fidelity, _ = numeric_arrow_type(-1)
            rows.append(("numeric", str(default), fidelity.value, "—"))
            continue
        rows.append((key, arrow, entry.fidelity.value, entry.logical_type or "—"))
    rows.append(("T[]", "list<item: T's Arrow type>", "as T", "T's, with []"))
    rows.append(("domain over T", "T's Arrow type", "as T", "as T"))
    return rows
