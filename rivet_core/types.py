"""Source type → Arrow type helpers shared by source plugins.

Holds the vocabulary of a type mapping (:class:`Fidelity`, :class:`ColumnInfo`) and the
parsing of ``[exports.columns]`` override strings. The per-database catalogs live in their
plugins; nothing here talks to a database.
"""

from __future__ import annotations

import enum
import re

import attrs
import pyarrow as pa


class Fidelity(enum.Enum):
    """How faithfully a column's values survive the trip into Arrow."""

    EXACT = "exact"
    """Every value arrives unchanged, in an Arrow type of the same meaning."""
    WIDENED = "widened"
    """Every value arrives unchanged, in a wider Arrow type (oid → int64, uint64 → decimal)."""
    LOSSY = "lossy"
    """Some values may change (rounding, dropped zone). Never a default mapping."""
    UNSUPPORTED = "unsupported"
    """No faithful mapping; the export fails before writing unless an override is given."""


@attrs.frozen(kw_only=True)
class ColumnInfo:
    """One result column: what the database calls it and where it lands in Arrow."""

    name: str
    source_type: str
    arrow_type: pa.DataType | None
    fidelity: Fidelity
    note: str = ""
    logical_type: str | None = None
    """Meaning carried in a plain Arrow type (``json``, ``uuid``, ``interval``, ``enum``)."""

    def field(self) -> pa.Field:
        if self.arrow_type is None:
            raise ValueError(f"column {self.name!r} has no Arrow type")
        metadata = {b"rivet.source_type": self.source_type.encode()}
        if self.logical_type:
            metadata[b"rivet.logical_type"] = self.logical_type.encode()
        return pa.field(self.name, self.arrow_type, nullable=True, metadata=metadata)


def schema_of(columns: list[ColumnInfo]) -> pa.Schema:
    """The Arrow schema for a list of mapped columns (all nullable, source types as metadata)."""
    return pa.schema([column.field() for column in columns])


_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?\)$")

OVERRIDE_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "smallint": pa.int16(),
    "int32": pa.int32(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "int64": pa.int64(),
    "bigint": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "real": pa.float32(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "text": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "bytes": pa.binary(),
    "large_binary": pa.large_binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamp_utc": pa.timestamp("us", tz="UTC"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
    "uuid": pa.string(),
}


def parse_override(text: str) -> pa.DataType:
    """Parse an ``[exports.columns]`` value such as ``decimal(18,4)`` or ``string``.

    Raises ``ValueError`` with the accepted spellings when the text is not understood.
    """
    key = text.strip().lower()
    match = _DECIMAL.match(key)
    if match:
        precision = int(match.group(1))
        scale = int(match.group(2) or 0)
        if not 1 <= precision <= 76:
            raise ValueError(f"decimal precision must be 1..76, got {precision}")
        if scale > precision:
            raise ValueError(f"decimal scale {scale} exceeds precision {precision}")
        if precision <= 38:
            return pa.decimal128(precision, scale)
        return pa.decimal256(precision, scale)
    if key in OVERRIDE_TYPES:
        return OVERRIDE_TYPES[key]
    accepted = ", ".join(sorted(OVERRIDE_TYPES)) + ", decimal(p,s)"
    raise ValueError(f"unknown type {text!r}; accepted: {accepted}")
