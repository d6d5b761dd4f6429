"""Incremental cursor values: taken from Arrow batches, stored typed and at full precision.

A cursor is stored as JSON ``{"type": ..., "value": ...}`` where the value is the exact text
of the column's value (integers and decimals as digits, timestamps to the microsecond with
their zone). Reading it back gives the Python value the drivers bind with the same type, so
``cursor > %s`` compares like with like: no truncated timestamp re-exports rows every run,
no decimal turns into a float.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where batches are read, so the config loader does not load it
    import pyarrow as pa

_TYPES = ("int", "decimal", "float", "string", "date", "timestamp", "timestamptz")


def encode(value: Any) -> str:
    """The stored form of a cursor value."""
    if isinstance(value, bool):
        raise TypeError("a boolean column cannot be a cursor")
    if isinstance(value, int):
        kind, text = "int", str(value)
    elif isinstance(value, decimal.Decimal):
        kind, text = "decimal", str(value)
    elif isinstance(value, float):
        kind, text = "float", repr(value)
    elif isinstance(value, str):
        kind, text = "string", value
    elif isinstance(value, dt.datetime):
        if value.tzinfo is None:
            kind, text = "timestamp", value.isoformat(timespec="microseconds")
        else:
            kind = "timestamptz"
            text = value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    elif isinstance(value, dt.date):
        kind, text = "date", value.isoformat()
    else:
        raise TypeError(f"a {type(value).__name__} value cannot be a cursor")
    return json.dumps({"type": kind, "value": text})


def decode(stored: str) -> Any:
    """The Python value of a stored cursor, ready to bind."""
    data = json.loads(stored)
    kind, text = data["type"], data["value"]
    if kind == "int":
        return int(text)
    if kind == "decimal":
        return decimal.Decimal(text)
    if kind == "float":
        return float(text)
    if kind == "string":
        return text
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind in ("timestamp", "timestamptz"):
        return dt.datetime.fromisoformat(text)
    raise ValueError(f"unknown cursor type {kind!r} (known: {', '.join(_TYPES)})")


def display(stored: str | None) -> str:
    """A cursor for people: the value and its type."""
    if stored is None:
        return "-"
    data = json.loads(stored)
    return f"{data['value']} ({data['type']})"


def batch_max(batch: pa.RecordBatch, column: str, fallback: str | None) -> Any:
    """The largest non-NULL cursor value in a batch (``COALESCE(column, fallback)`` when a
    fallback column is given), as a Python value; None when every cursor is NULL."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = batch.column(column)
    if fallback is not None:
        values = pc.coalesce(values, batch.column(fallback))
    if pa.types.is_boolean(values.type):
        raise TypeError(f"cursor column {column!r} is boolean; it cannot order rows")
    result = pc.max(values).as_py()
    if isinstance(result, dt.datetime) and result.tzinfo is not None:
        result = result.astimezone(dt.UTC)
    return result


def null_count(batch: pa.RecordBatch, column: str, fallback: str | None) -> int:
    values = batch.column(column)
    if fallback is not None:
        import pyarrow.compute as pc

        values = pc.coalesce(values, batch.column(fallback))
    return values.null_count


def later(a: Any, b: Any) -> Any:
    """The larger of two cursor values, either of which may be None."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
