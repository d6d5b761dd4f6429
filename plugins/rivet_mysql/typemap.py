"""MySQL / MariaDB column type → Arrow type: the mapping table and the rules around it.

Pure logic, no database. A result column is known by the metadata of its column definition
packet (:class:`MyField`: type code, flags, character set, length, decimals), which the
source copies from pymysql's field objects before the first row. This module holds the
table of mapped types (:data:`TYPES`, keyed by the names the type report and the docs use),
the reduction of a field to one of them (:func:`map_field`) and the override rules. How the
text protocol's bytes become Arrow arrays lives in :mod:`rivet_mysql.builders`; mapping a
result's columns with the export's ``[exports.columns]`` overrides, and the error naming
every column that cannot be written faithfully, in :mod:`rivet_mysql.columns`.

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

from rivet_core.api import ColumnInfo, DocRow, Fidelity, Rescue, TypeRow, decimal_type, type_table

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


_ZERO_DATE_NOTE = ("zero and invalid dates ('0000-00-00', '2024-02-30') fail the export, or "
                   "become NULL with zero_dates = \"null\"")
_ROUNDED_NOTE = ("the server sends this column's text rounded ({}), so no value can be "
                 "exported exactly; CAST(col AS DOUBLE) in the query is exact")

_ROUNDED_6 = _ROUNDED_NOTE.format("6 significant digits")
_ROUNDED_D = _ROUNDED_NOTE.format("to d decimals")

# name | Arrow type | fidelity | logical type | note (see rivet_core.types.type_table)
TYPES: dict[str, TypeRow] = type_table(f"""
tinyint            | int8                  | exact
tinyint unsigned   | int16                 | widened
tinyint(1)         | bool                  | exact       |            | BOOL/BOOLEAN; a value other
    than 0 or 1 fails the export (override the column to int8 to keep such values)
smallint           | int16                 | exact
smallint unsigned  | int32                 | widened
mediumint          | int32                 | widened
mediumint unsigned | int32                 | widened
int                | int32                 | exact
int unsigned       | int64                 | widened
bigint             | int64                 | exact
bigint unsigned    | uint64                | exact       |            | up to 18446744073709551615,
    never wrapped
decimal            | decimal128(p, s); decimal256(p, s) when p > 38 | exact
double             | double                | exact       |            | the server sends the
    shortest text that reads back as the same double
float              | —                     | unsupported |            | {_ROUNDED_6}
float(m,d)         | —                     | unsupported |            | {_ROUNDED_D}
double(m,d)        | —                     | unsupported |            | {_ROUNDED_D}
bit(1)             | bool                  | exact
bit(n)             | uint64                | exact       |            | the bits as an unsigned
    integer (b'101' → 5)
year               | int16                 | exact       |            | 0000 is 0
char               | string                | exact       |            | received as utf8mb4
    whatever the column's character set
varchar            | string                | exact       |            | received as utf8mb4
    whatever the column's character set
text               | string                | exact       |            | TINYTEXT..LONGTEXT,
    received as utf8mb4; MariaDB's JSON arrives as this
binary             | binary                | exact
varbinary          | binary                | exact
blob               | binary                | exact       |            | TINYBLOB..LONGBLOB
enum               | string                | exact       | enum       | the label
set                | string                | exact       | set        | the members comma-joined,
    as the server writes them
json               | string                | exact       | json       | MySQL 8: the server's text,
    never re-serialized
date               | date32[day]           | exact       |            | {_ZERO_DATE_NOTE}
datetime           | timestamp[us]         | exact       |            | wall-clock time, no zone;
    {_ZERO_DATE_NOTE}
timestamp          | timestamp[us, tz=UTC] | exact       |            | the instant, read with the
    session time zone at +00:00; {_ZERO_DATE_NOTE}
time               | string                | exact       | mysql_time | the server's text
    [-]HHH:MM:SS[.ffffff] (-838:59:59..838:59:59 is a duration, not a time of day); override to
    time for time64 when every value is in 00:00:00..23:59:59.999999
geometry           | binary                | exact       | ewkb       | WKB; a nonzero SRID is kept
    in the value as PostGIS EWKB
null               | null                  | exact       |            | a column that is always
    NULL (SELECT NULL)
""")
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


ROUNDED = frozenset({"float", "float(m,d)", "double(m,d)"})


def rescue_for(key: str | None, target: pa.DataType) -> Rescue | None:
    """Overrides built straight from the server's text rather than by casting the mapped
    array: rounded floating-point text into a number or string (lossy, and marked so),
    ``tinyint(1)`` into an integer (exact: no 0/1 check), ``time`` into ``time64``."""
    if key in ROUNDED and (pa.types.is_floating(target) or pa.types.is_decimal(target)
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


def sql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def doc_rows() -> list[DocRow]:
    """The MySQL table of docs/types.md, from :data:`TYPES`."""
    return [entry.doc_row("decimal(p,s)" if key == "decimal" else None)
            for key, entry in TYPES.items()]
