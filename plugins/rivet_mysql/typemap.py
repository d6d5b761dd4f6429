"""MySQL / MariaDB column type → Arrow type: the mapping table and the rules around it.

Pure logic, no database. A result column is known by the metadata of its column definition
packet (:class:`MyField`: type code, flags, character set, length, decimals), which the
source copies from pymysql's field objects before the first row. This module holds the
table of mapped types (:data:`TYPES`, keyed by the names the type report and the docs use),
the reduction of a field to one of them (:func:`map_field`), the override rules and the
error naming every column that cannot be written faithfully. How the text protocol's bytes
become Arrow arrays lives in :mod:`rivet_mysql.decode`.

Every value arrives as text over the classic protocol. That text is exact for every type
except floating-point columns whose text is rounded by the server: ``FLOAT`` is sent with 6
significant digits, and a ``FLOAT``/``DOUBLE`` with fixed decimals (``DOUBLE(10,2)``, or an
expression such as ``f * 1``) is sent rounded to those decimals. Those columns are
unsupported unless the query casts them (``CAST(f AS DOUBLE)`` is exact: every float is a
double) or an override accepts the rounded text, which the type report marks lossy.
"""

from __future__ import annotations

import attrs
import pyarrow as pa

from rivet_core.errors import UnsupportedTypeError
from rivet_core.types import (
    ColumnInfo,
    Fidelity,
    Rescue,
    apply_override,
    decimal_type,
    unsupported_error,
)

# Column definition type codes (include/mysql_com.h enum_field_types; pymysql FIELD_TYPE).
DECIMAL = 0
TINY = 1
SHORT = 2
LONG = 3
FLOAT = 4
DOUBLE = 5
NULL = 6
TIMESTAMP = 7
LONGLONG = 8
INT24 = 9
DATE = 10
TIME = 11
DATETIME = 12
YEAR = 13
NEWDATE = 14
VARCHAR = 15
BIT = 16
JSON = 245
NEWDECIMAL = 246
ENUM = 247
SET = 248
TINY_BLOB = 249
MEDIUM_BLOB = 250
LONG_BLOB = 251
BLOB = 252
VAR_STRING = 253
STRING = 254
GEOMETRY = 255

# Column definition flags.
UNSIGNED_FLAG = 32
ENUM_FLAG = 256
SET_FLAG = 2048

BINARY_CHARSET = 63
"""Character set number of ``binary``: BINARY, VARBINARY and BLOB columns carry it."""

NOT_FIXED_DEC = 31
"""``decimals`` of a floating-point column printed in full (no fixed decimals)."""


@attrs.frozen(kw_only=True)
class MyField:
    """What the column definition packet says about one result column."""

    name: str
    type_code: int
    flags: int = 0
    charsetnr: int = BINARY_CHARSET
    length: int = 0
    """Display length: digits of a number, bits of a BIT, bytes of a string."""
    decimals: int = 0

    @property
    def unsigned(self) -> bool:
        return bool(self.flags & UNSIGNED_FLAG)


@attrs.frozen(kw_only=True)
class MyType:
    """One row of the mapping table. ``arrow_type`` is None where the field's metadata
    decides it (``decimal``) or where there is no faithful mapping."""

    key: str
    arrow_type: pa.DataType | None
    fidelity: Fidelity
    logical_type: str | None = None
    note: str = ""
    arrow_text: str = ""
    """How the docs spell a parametric Arrow type (``decimal128(p, s)``)."""


_ZERO_DATE_NOTE = ("zero and invalid dates ('0000-00-00', '2024-02-30') fail the export, or "
                   "become NULL with zero_dates = \"null\"")
_ROUNDED_NOTE = ("the server sends this column's text rounded ({}), so no value can be "
                 "exported exactly; CAST(col AS DOUBLE) in the query is exact")

TYPES: dict[str, MyType] = {t.key: t for t in [
    MyType(key="tinyint", arrow_type=pa.int8(), fidelity=Fidelity.EXACT),
    MyType(key="tinyint unsigned", arrow_type=pa.int16(), fidelity=Fidelity.WIDENED),
    MyType(key="tinyint(1)", arrow_type=pa.bool_(), fidelity=Fidelity.EXACT,
           note="BOOL/BOOLEAN; a value other than 0 or 1 fails the export (override the "
                "column to int8 to keep such values)"),
    MyType(key="smallint", arrow_type=pa.int16(), fidelity=Fidelity.EXACT),
    MyType(key="smallint unsigned", arrow_type=pa.int32(), fidelity=Fidelity.WIDENED),
    MyType(key="mediumint", arrow_type=pa.int32(), fidelity=Fidelity.WIDENED),
    MyType(key="mediumint unsigned", arrow_type=pa.int32(), fidelity=Fidelity.WIDENED),
    MyType(key="int", arrow_type=pa.int32(), fidelity=Fidelity.EXACT),
    MyType(key="int unsigned", arrow_type=pa.int64(), fidelity=Fidelity.WIDENED),
    MyType(key="bigint", arrow_type=pa.int64(), fidelity=Fidelity.EXACT),
    MyType(key="bigint unsigned", arrow_type=pa.uint64(), fidelity=Fidelity.EXACT,
           note="up to 18446744073709551615, never wrapped"),
    MyType(key="decimal", arrow_type=None, fidelity=Fidelity.EXACT,
           arrow_text="decimal128(p, s); decimal256(p, s) when p > 38"),
    MyType(key="double", arrow_type=pa.float64(), fidelity=Fidelity.EXACT,
           note="the server sends the shortest text that reads back as the same double"),
    MyType(key="float", arrow_type=None, fidelity=Fidelity.UNSUPPORTED,
           note=_ROUNDED_NOTE.format("6 significant digits")),
    MyType(key="float(m,d)", arrow_type=None, fidelity=Fidelity.UNSUPPORTED,
           note=_ROUNDED_NOTE.format("to d decimals")),
    MyType(key="double(m,d)", arrow_type=None, fidelity=Fidelity.UNSUPPORTED,
           note=_ROUNDED_NOTE.format("to d decimals")),
    MyType(key="bit(1)", arrow_type=pa.bool_(), fidelity=Fidelity.EXACT),
    MyType(key="bit(n)", arrow_type=pa.uint64(), fidelity=Fidelity.EXACT,
           note="the bits as an unsigned integer (b'101' → 5)"),
    MyType(key="year", arrow_type=pa.int16(), fidelity=Fidelity.EXACT,
           note="0000 is 0"),
    MyType(key="char", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           note="received as utf8mb4 whatever the column's character set"),
    MyType(key="varchar", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           note="received as utf8mb4 whatever the column's character set"),
    MyType(key="text", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           note="TINYTEXT..LONGTEXT, received as utf8mb4; MariaDB's JSON arrives as this"),
    MyType(key="binary", arrow_type=pa.binary(), fidelity=Fidelity.EXACT),
    MyType(key="varbinary", arrow_type=pa.binary(), fidelity=Fidelity.EXACT),
    MyType(key="blob", arrow_type=pa.binary(), fidelity=Fidelity.EXACT,
           note="TINYBLOB..LONGBLOB"),
    MyType(key="enum", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="enum", note="the label"),
    MyType(key="set", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="set", note="the members comma-joined, as the server writes them"),
    MyType(key="json", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="json", note="MySQL 8: the server's text, never re-serialized"),
    MyType(key="date", arrow_type=pa.date32(), fidelity=Fidelity.EXACT,
           note=_ZERO_DATE_NOTE),
    MyType(key="datetime", arrow_type=pa.timestamp("us"), fidelity=Fidelity.EXACT,
           note="wall-clock time, no zone; " + _ZERO_DATE_NOTE),
    MyType(key="timestamp", arrow_type=pa.timestamp("us", tz="UTC"), fidelity=Fidelity.EXACT,
           note="the instant, read with the session time zone at +00:00; " + _ZERO_DATE_NOTE),
    MyType(key="time", arrow_type=pa.string(), fidelity=Fidelity.EXACT,
           logical_type="mysql_time",
           note="the server's text [-]HHH:MM:SS[.ffffff] (-838:59:59..838:59:59 is a "
                "duration, not a time of day); override to time for time64 when every "
                "value is in 00:00:00..23:59:59.999999"),
    MyType(key="geometry", arrow_type=pa.binary(), fidelity=Fidelity.EXACT,
           logical_type="ewkb",
           note="WKB; a nonzero SRID is kept in the value as PostGIS EWKB"),
    MyType(key="null", arrow_type=pa.null(), fidelity=Fidelity.EXACT,
           note="a column that is always NULL (SELECT NULL)"),
]}
"""Every MySQL type Rivet maps, by the name the type report uses."""

_INTEGERS = {TINY: "tinyint", SHORT: "smallint", INT24: "mediumint", LONG: "int",
             LONGLONG: "bigint"}
_BLOBS = frozenset({TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB})


def _fsp(name: str, field: MyField) -> str:
    return f"{name}({field.decimals})" if field.decimals else name


def decimal_precision(field: MyField) -> int:
    """Digits of a DECIMAL column, from its display length (``my_decimal_length_to_precision``:
    the length counts a point when there are decimals and a sign unless unsigned)."""
    point = 1 if field.decimals > 0 else 0
    sign = 0 if field.unsigned or field.length == 0 else 1
    return max(field.length - point - sign, field.decimals, 1)


def classify(field: MyField) -> tuple[str | None, str]:
    """(key in :data:`TYPES` or None, source type as the type report shows it)."""
    code = field.type_code
    unsigned = " unsigned" if field.unsigned else ""
    if code in _INTEGERS:
        name = _INTEGERS[code]
        if code == TINY and field.length == 1:
            return "tinyint(1)", "tinyint(1)" + unsigned
        return name + unsigned, name + unsigned
    if code in (DECIMAL, NEWDECIMAL):
        return "decimal", f"decimal({decimal_precision(field)},{field.decimals}){unsigned}"
    if code in (FLOAT, DOUBLE):
        name = "float" if code == FLOAT else "double"
        if field.decimals >= NOT_FIXED_DEC:
            return name, name + unsigned
        return f"{name}(m,d)", f"{name}({field.length},{field.decimals}){unsigned}"
    if code == BIT:
        return ("bit(1)" if field.length == 1 else "bit(n)"), f"bit({field.length})"
    if code in (DATE, NEWDATE):
        return "date", "date"
    if code == DATETIME:
        return "datetime", _fsp("datetime", field)
    if code == TIMESTAMP:
        return "timestamp", _fsp("timestamp", field)
    if code == TIME:
        return "time", _fsp("time", field)
    if code == YEAR:
        return "year", "year"
    if code == JSON:
        return "json", "json"
    if code == GEOMETRY:
        return "geometry", "geometry"
    if code == NULL:
        return "null", "null"
    binary = field.charsetnr == BINARY_CHARSET
    if code in (STRING, ENUM, SET):
        if field.flags & ENUM_FLAG or code == ENUM:
            return "enum", "enum"
        if field.flags & SET_FLAG or code == SET:
            return "set", "set"
        return ("binary", "binary") if binary else ("char", "char")
    if code in (VAR_STRING, VARCHAR):
        return ("varbinary", "varbinary") if binary else ("varchar", "varchar")
    if code in _BLOBS:
        return ("blob", "blob") if binary else ("text", "text")
    return None, f"type {code}"


def map_field(field: MyField) -> tuple[str | None, ColumnInfo]:
    """The natural mapping of one result column (before overrides), with its table key."""
    key, source_type = classify(field)
    if key is None:
        return None, ColumnInfo(name=field.name, source_type=source_type, arrow_type=None,
                                fidelity=Fidelity.UNSUPPORTED,
                                note="no Arrow mapping for this column type")
    entry = TYPES[key]
    arrow_type = entry.arrow_type
    if key == "decimal":
        arrow_type = decimal_type(decimal_precision(field), field.decimals)
    return key, ColumnInfo(name=field.name, source_type=source_type, arrow_type=arrow_type,
                           fidelity=entry.fidelity, note=entry.note,
                           logical_type=entry.logical_type)


_ROUNDED = frozenset({"float", "float(m,d)", "double(m,d)"})


def rescue_for(key: str | None, target: pa.DataType) -> Rescue | None:
    """Overrides built straight from the server's text rather than by casting the mapped
    array: rounded floating-point text into a number or string (lossy, and marked so),
    ``tinyint(1)`` into an integer (exact: no 0/1 check), ``time`` into ``time64``."""
    if key in _ROUNDED and (pa.types.is_floating(target) or pa.types.is_decimal(target)
                            or target == pa.string()):
        return Rescue(Fidelity.LOSSY, f"[exports.columns] override to {target}: the "
                                      f"server's rounded text, not the stored value")
    if key == "tinyint(1)" and pa.types.is_integer(target):
        return Rescue(Fidelity.EXACT, f"[exports.columns] override to {target}; a value "
                                      f"that does not fit fails the export")
    if key == "time" and target == pa.time64("us"):
        return Rescue(Fidelity.EXACT, "[exports.columns] override to time64[us]; a negative "
                                      "value or one of 24 hours or more fails the export")
    return None


def override_column(column: ColumnInfo, key: str | None, target: pa.DataType) -> ColumnInfo:
    """The column as an ``[exports.columns]`` override makes it."""
    return apply_override(column, target, rescue_for(key, target))


def sql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def unsupported(columns: list[ColumnInfo], keys: list[str | None],
                label: str) -> UnsupportedTypeError | None:
    """One error naming every column without an Arrow type, or None if all are mapped."""
    bad = [(c, k) for c, k in zip(columns, keys, strict=True) if c.arrow_type is None]
    rounded = [c for c, k in bad if k in _ROUNDED]
    others = [c for c, k in bad if k not in _ROUNDED]
    fixes = []
    if rounded:
        ident = sql_ident(rounded[0].name)
        fixes.append(f"select CAST({ident} AS DOUBLE) AS {ident} (exact), or accept the "
                     f'rounded text with an override such as {rounded[0].name} = "float64" '
                     f"(reported as lossy)")
    if others:
        fixes.append(f"convert it in SQL, e.g. CAST({sql_ident(others[0].name)} AS CHAR)")
    return unsupported_error(columns, label, fixes)


DocRow = tuple[str, str, str, str]
"""(source type, Arrow type, fidelity, logical type) as the table in docs/types.md has it."""


def doc_rows() -> list[DocRow]:
    """The MySQL table of docs/types.md, from :data:`TYPES`."""
    return [("decimal(p,s)" if key == "decimal" else key,
             entry.arrow_text or (str(entry.arrow_type) if entry.arrow_type else "—"),
             entry.fidelity.value, entry.logical_type or "—")
            for key, entry in TYPES.items()]
