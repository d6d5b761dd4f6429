"""The psycopg binary loaders Rivet installs on its connections, so rows load into what the
column builders (:mod:`.builders`) turn into Arrow with vectorised kernels.

Rows arrive in PostgreSQL's binary format. Rivet replaces some of psycopg's loaders so the
expensive or unfaithful conversions never happen in Python:

- ``date``, ``time``, ``timestamp`` and ``timestamptz`` load as the raw integers of the wire
  format (days / microseconds since 2000-01-01, microseconds since midnight) through psycopg's
  C integer loaders; no ``datetime`` objects are built, and ``±infinity`` and BC values reach
  the builders, which report them instead of crashing the loader.
- ``json`` and ``jsonb`` load as text, never parsed (the jsonb version byte is stripped by
  the builder); ``uuid`` loads as its 16 raw bytes; ``money`` as its int64 amount (C
  loaders).
- ``xml``, enums and ``citext`` load as text (C loader).
- ``interval``, ``timetz``, ``inet``, ``cidr``, ``macaddr`` and ``macaddr8`` have no faithful
  psycopg loader (psycopg folds an interval's months into 30-day ``timedelta`` s, and gives
  objects whose text differs from PostgreSQL's). Small Python loaders here turn their wire
  bytes into the exact text of :mod:`.pgtext`. These types are rare, so one Python call per
  value is accepted.
- Arrays load through psycopg's C array loader, behind a Python check of the header that
  refuses multi-dimensional values and lower bounds other than 1 (psycopg would silently drop
  the bounds).

Every loader is registered for the binary format only: a text-format cursor (the source's
small statements) still gets psycopg's own Python values. Not here: building Arrow arrays
(:mod:`.builders`), the type mapping (:mod:`.typemap`).
"""

from __future__ import annotations

import struct
from typing import Any

from psycopg import adapt, pq
from psycopg.abc import AdaptContext
from psycopg.types.array import ArrayBinaryLoader
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

from rivet_postgres import typemap as t
from rivet_postgres.pgtext import inet_text, interval_iso, mac_text, timetz_text

try:  # psycopg's C array loader, when the binary package is installed
    from psycopg._cmodule import _psycopg

    _ArrayLoader: type[adapt.Loader] = getattr(_psycopg, "ArrayBinaryLoader",
                                               ArrayBinaryLoader)
except ImportError:  # pragma: no cover - pure-Python psycopg
    _ArrayLoader = ArrayBinaryLoader


class ArrayShapeError(ValueError):
    """An array value Rivet does not export: more than one dimension, or a lower bound
    other than 1. Raised by the array loader, turned into a SourceError naming the column
    by the source (the loader does not know the column)."""


_INTERVAL = struct.Struct("!qii")
_TIMETZ = struct.Struct("!qi")
_BINARY = pq.Format.BINARY


class IntervalTextLoader(adapt.Loader):
    """``interval`` → ISO 8601 text (:func:`interval_iso`)."""

    format = _BINARY

    def load(self, data: Any) -> str:
        micros, days, months = _INTERVAL.unpack(data)
        return interval_iso(months, days, micros)


class TimetzTextLoader(adapt.Loader):
    """``timetz`` → ``HH:MM:SS.ffffff+HH:MM`` (:func:`timetz_text`)."""

    format = _BINARY

    def load(self, data: Any) -> str:
        micros, zone = _TIMETZ.unpack(data)
        return timetz_text(micros, zone)


class InetTextLoader(adapt.Loader):
    """``inet`` / ``cidr`` → PostgreSQL's text (:func:`inet_text`)."""

    format = _BINARY

    def load(self, data: Any) -> str:
        return inet_text(bytes(data))


class MacTextLoader(adapt.Loader):
    """``macaddr`` / ``macaddr8`` → ``08:00:2b:01:02:03``."""

    format = _BINARY

    def load(self, data: Any) -> str:
        return mac_text(data)


_ONE = b"\x00\x00\x00\x01"
_ZERO = b"\x00\x00\x00\x00"


class CheckedArrayLoader(adapt.Loader):
    """psycopg's array loader, after a look at the header: ``ndim`` (first 4 bytes) must be
    0 (empty array) or 1, and the lower bound (bytes 16-19) must be 1."""

    format = _BINARY

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        self._inner = _ArrayLoader(oid, context)

    def load(self, data: Any) -> Any:
        head = bytes(data[:4])
        if head != _ONE:
            if head == _ZERO:
                return []
            raise ArrayShapeError(f"a {struct.unpack('!i', head)[0]}-dimensional array value")
        if bytes(data[16:20]) != _ONE:
            lower = struct.unpack("!i", bytes(data[16:20]))[0]
            raise ArrayShapeError(f"an array value with lower bound {lower}")
        return self._inner.load(data)


LOADERS_BY_KEY: dict[str, type[adapt.Loader]] = {
    "bool": BoolBinaryLoader,
    "int2": Int2BinaryLoader,
    "int4": Int4BinaryLoader,
    "int8": Int8BinaryLoader,
    "oid": OidBinaryLoader,
    "float4": Float4BinaryLoader,
    "float8": Float8BinaryLoader,
    "numeric": NumericBinaryLoader,
    "money": Int8BinaryLoader,
    "text": TextBinaryLoader,
    "varchar": TextBinaryLoader,
    "bpchar": TextBinaryLoader,
    "name": TextBinaryLoader,
    "citext": TextBinaryLoader,
    "enum": TextBinaryLoader,
    "xml": TextBinaryLoader,
    "json": TextBinaryLoader,
    "jsonb": TextBinaryLoader,
    "bytea": ByteaBinaryLoader,
    "uuid": ByteaBinaryLoader,
    "date": Int4BinaryLoader,
    "time": Int8BinaryLoader,
    "timestamp": Int8BinaryLoader,
    "timestamptz": Int8BinaryLoader,
    "interval": IntervalTextLoader,
    "timetz": TimetzTextLoader,
    "inet": InetTextLoader,
    "cidr": InetTextLoader,
    "macaddr": MacTextLoader,
    "macaddr8": MacTextLoader,
}
"""The loader each mapped type's values go through (C classes are swapped in by psycopg)."""


def register_loaders(adapters: adapt.AdaptersMap) -> None:
    """Install the loaders of every built-in mapped type and array on a connection."""
    for oid, key in t.BUILTIN.items():
        adapters.register_loader(oid, LOADERS_BY_KEY[key])
    for array_oid in t.BUILTIN_ARRAYS:
        adapters.register_loader(array_oid, CheckedArrayLoader)


def dynamic_loaders(oid: int, resolved: t.Resolved) -> dict[int, type[adapt.Loader]]:
    """Loaders a column of a non-built-in type needs (enum, citext, arrays of those and of
    domains): its own OID, and for arrays the element OID found inside the wire data."""
    if resolved.key is None or oid in t.BUILTIN:
        return {}
    loader = LOADERS_BY_KEY[resolved.key]
    if not resolved.array:
        return {oid: loader}
    loaders: dict[int, type[adapt.Loader]] = {}
    if oid not in t.BUILTIN_ARRAYS:
        loaders[oid] = CheckedArrayLoader
    if resolved.element_oid not in t.BUILTIN:
        loaders[resolved.element_oid] = loader
    return loaders
