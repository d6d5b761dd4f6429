"""An independent reader of JSON Lines files: the standard library's ``json`` and ``gzip``,
and the rendering rules of ``rivet_sqlite_jsonl.jsontext`` written again here from its
documentation (never imported), strictly: a value in any other form is an error.

:func:`read_jsonl` checks the file's shape (UTF-8, one object per line, every line ending
in ``\\n``, the same keys in the same order on every line, standard JSON only) and returns
each column as the JSON text of its values; :func:`decode_value` turns one such text into
the Python value it stands for, given the column's Arrow type.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import math
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

GZIP_MAGIC = b"\x1f\x8b"
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON")


def loads(text: str) -> Any:
    """Standard JSON only: the module's NaN and Infinity extensions are refused."""
    return json.loads(text, parse_constant=_refuse_constant)


def decompress(data: bytes, codec: str) -> bytes:
    if codec == "gzip":
        if not data.startswith(GZIP_MAGIC):
            raise ValueError("compression gzip, but the file is not gzip")
        return gzip.decompress(data)
    if codec == "none":
        if data.startswith(GZIP_MAGIC):
            raise ValueError("compression none, but the file is gzip")
        return data
    raise ValueError(f"unknown codec {codec!r}")


def read_objects(data: bytes, codec: str) -> list[list[tuple[str, Any]]]:
    """Each line's object as its (key, value) pairs, in the file's order."""
    text = decompress(data, codec).decode("utf-8")
    if text.startswith("\ufeff"):
        raise ValueError("the file starts with a byte order mark")
    if not text:
        return []
    if not text.endswith("\n"):
        raise ValueError("the last line does not end with a newline")
    objects = []
    for number, line in enumerate(text[:-1].split("\n"), 1):
        pairs = json.loads(line, object_pairs_hook=list, parse_constant=_refuse_constant)
        if not isinstance(pairs, list):
            raise ValueError(f"line {number} is not a JSON object: {line[:80]!r}")
        objects.append(pairs)
    return objects


def read_jsonl(data: bytes, codec: str, empty_columns: Sequence[str] = ()) -> pa.Table:
    """The file as a table of JSON texts (one string column per key; NULL for ``null``).
    A JSON Lines file has no header: the columns of an empty file are ``empty_columns``."""
    objects = read_objects(data, codec)
    if not objects:
        return pa.table({name: pa.array([], pa.string()) for name in empty_columns})
    keys = [key for key, _ in objects[0]]
    if len(set(keys)) != len(keys):
        raise ValueError(f"line 1 repeats a key: {keys}")
    columns: list[list[str | None]] = [[] for _ in keys]
    for number, pairs in enumerate(objects, 1):
        if [key for key, _ in pairs] != keys:
            raise ValueError(f"line {number} has keys {[k for k, _ in pairs]}, line 1 {keys}")
        for column, (_, value) in zip(columns, pairs, strict=True):
            column.append(None if value is None else json.dumps(value, ensure_ascii=False))
    return pa.table({key: pa.array(column, pa.string())
                     for key, column in zip(keys, columns, strict=True)})


_DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?$")
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?$")


def decode_json(typ: pa.DataType, value: Any) -> Any:
    """The Python value a parsed JSON ``value`` stands for in a column of ``typ``."""
    t = pa.types
    if t.is_boolean(typ):
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false")
        return value
    if t.is_integer(typ):
        if type(value) is not int:
            raise ValueError(f"{value!r} is not an integer number")
        return value
    if t.is_floating(typ):
        if isinstance(value, str) and value in NON_FINITE:
            return NON_FINITE[value]
        if type(value) is not float:
            raise ValueError(f"{value!r} is not a number with a point or an exponent")
        return value
    if t.is_decimal(typ):
        if not (isinstance(value, str) and _DECIMAL_TEXT.match(value)):
            raise ValueError(f"{value!r} is not a string of plain digits")
        decimals = len(value.partition(".")[2])
        if decimals != max(typ.scale, 0):
            raise ValueError(f"{value!r} has {decimals} decimals, the scale is {typ.scale}")
        return Decimal(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    if t.is_string(typ) or t.is_large_string(typ):
        return value
    if t.is_binary(typ) or t.is_large_binary(typ):
        return base64.b64decode(value, validate=True)
    if t.is_date32(typ):
        if not _DATE_TEXT.match(value):
            raise ValueError(f"{value!r} is not YYYY-MM-DD")
        return dt.date.fromisoformat(value)
    if t.is_timestamp(typ):
        if not _TIMESTAMP_TEXT.match(value):
            raise ValueError(f"{value!r} is not an ISO 8601 date and time with T")
        if typ.tz is None:
            if value.endswith("Z"):
                raise ValueError(f"{value!r}: a time without zone is written without Z")
            return dt.datetime.fromisoformat(value)
        if not value.endswith("Z"):
            raise ValueError(f"{value!r}: an instant is written in UTC with Z")
        return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=dt.UTC)
    raise TypeError(f"no rule for {typ}")


def decode_value(typ: pa.DataType, text: str) -> Any:
    """The Python value one JSON text of :func:`read_jsonl` stands for (FormatTests'
    ``decode_value``)."""
    return decode_json(typ, loads(text))
