"""Reading back the types-zoo exports and comparing them value by value.

Shared by the PostgreSQL and MariaDB zoo tests. Every value is reduced to a canonical
Python form per column *kind* (``int``, ``dec``, ``f4``, ``tstz``, ``list:date``...): the
database's own answer on one side, the Parquet value or the CSV text on the other. The CSV
side is parsed here from the documented rendering rules (NULL is an empty *unquoted* field,
which Python's csv module cannot tell from ``""``, hence the small parser).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct
from decimal import Decimal
from typing import Any

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICRO = dt.timedelta(microseconds=1)


def f32(value: float) -> float:
    """The float32 nearest to ``value``, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def micros(value: dt.datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime."""
    return (value - EPOCH) // MICRO


_TIMETZ = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.(\d+))?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?$")


def timetz(text: str) -> tuple[int, int]:
    """(microseconds of the day, offset east in seconds) of a timetz text, in PostgreSQL's
    spelling (``12:00:00.5+05:30``) or Rivet's (``12:00:00.500000+05:30``)."""
    match = _TIMETZ.match(text)
    assert match, text
    hours, minutes, seconds, fraction, sign, oh, om, os_ = match.groups()
    day = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1_000_000
    day += int((fraction or "0").ljust(6, "0"))
    offset = int(oh) * 3600 + int(om or 0) * 60 + int(os_ or 0)
    return day, offset if sign == "+" else -offset


def canonical(kind: str, value: Any) -> Any:
    """A value as Arrow gave it (Parquet read back), reduced to the canonical form."""
    if value is None:
        return None
    if kind.startswith("list:"):
        return [canonical(kind[5:], item) for item in value]
    if kind == "tstz":
        return micros(value)
    if kind == "timetz":
        return timetz(value)
    if kind == "dec":
        return Decimal(value)
    return value


def csv_fields(line: str) -> list[tuple[str, bool]]:
    """One CSV record as (text, quoted) pairs (no embedded newlines expected here: the
    caller splits records with :func:`csv_records`)."""
    fields: list[tuple[str, bool]] = []
    i = 0
    while True:
        if i < len(line) and line[i] == '"':
            j = i + 1
            text = []
            while True:
                if line[j] == '"':
                    if j + 1 < len(line) and line[j + 1] == '"':
                        text.append('"')
                        j += 2
                        continue
                    break
                text.append(line[j])
                j += 1
            fields.append(("".join(text), True))
            i = j + 1
        else:
            j = line.find(",", i)
            j = len(line) if j == -1 else j
            fields.append((line[i:j], False))
            i = j
        if i >= len(line):
            return fields
        assert line[i] == ",", (line, i)
        i += 1
        if i == len(line):
            fields.append(("", False))
            return fields


def csv_records(text: str) -> list[list[tuple[str, bool]]]:
    """Split CSV text into records, honouring newlines inside quoted fields."""
    records, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "\n" and not quoted:
            line = "".join(current).removesuffix("\r")
            records.append(csv_fields(line))
            current = []
            continue
        current.append(char)
    if current:
        records.append(csv_fields("".join(current).removesuffix("\r")))
    return records


def _float(text: str) -> float:
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(text) or float(text)


def _csv_scalar(kind: str, text: str) -> Any:
    if kind == "int":
        return int(text)
    if kind == "dec":
        return Decimal(text)
    if kind == "f4":
        return f32(_float(text))
    if kind == "f8":
        return _float(text)
    if kind == "bool":
        return {"true": True, "false": False}[text]
    if kind == "bytes":
        return bytes.fromhex(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "time":
        return dt.time.fromisoformat(text)
    if kind == "ts":
        return dt.datetime.fromisoformat(text)
    if kind == "tstz":
        assert text.endswith("Z"), text
        return micros(dt.datetime.fromisoformat(text[:-1].replace("T", " "))
                      .replace(tzinfo=dt.UTC))
    if kind == "timetz":
        return timetz(text)
    return text


def _json_item(kind: str, item: Any) -> Any:
    if item is None:
        return None
    if kind == "dec":
        return Decimal(str(item))
    if kind in ("date", "ts", "tstz", "bytes", "time"):
        return _csv_scalar(kind, item)
    return item


def csv_value(kind: str, text: str, quoted: bool) -> Any:
    """A CSV field parsed back with the rendering rules of the csv format."""
    if not quoted and text == "":
        return None
    if kind.startswith("list:"):
        items = json.loads(text, parse_float=Decimal)
        return [_json_item(kind[5:], item) for item in items]
    return _csv_scalar(kind, text)


def same(a: Any, b: Any) -> bool:
    """Equality that tells -0.0 from 0.0 and holds NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    return type(a) is type(b) and a == b


def compare(expected: list[dict[str, Any]], actual: list[dict[str, Any]], label: str) -> None:
    """Every column of every row equal (``same``), with a message naming row and column."""
    assert len(actual) == len(expected), f"{label}: {len(actual)} rows, {len(expected)} expected"
    for want, got in zip(expected, actual, strict=True):
        for column, value in want.items():
            assert same(value, got[column]), (
                f"{label}: row id={want.get('id')} column {column}: expected {value!r}, "
                f"got {got[column]!r}")
