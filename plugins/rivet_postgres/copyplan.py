"""The binary COPY read, planned: how each result column travels over COPY, the wire format
the C decoder reads it in, and the statements COPY runs.

Pure logic, no connection (except :func:`render_params`, which asks psycopg, client-side,
for literals): how the decoded batches become the mapped Arrow types is
:mod:`rivet_postgres.copyconvert`, the connections and threads
:mod:`rivet_postgres.copyreader`, the choice between the two read paths
:mod:`rivet_postgres.source`.

Every mapped column travels one of three ways (:class:`Carry`):

- ``NATIVE``: as the column itself, in its binary wire format (:data:`NATIVE_WIRES`), which
  the C decoder turns into an Arrow array.
- ``TEXT``: as ``column::text``, computed by the server: a ``numeric`` not decoded into a
  decimal128 in C (wider, or exported as text; its text is exact and cheap to produce), enums,
  ``citext`` and ``xml`` (the text is the value).
- ``WIRE``: as ``<type>_send(column)``, the type's binary wire format in a ``bytea``, decoded
  by the very loaders the cursor path uses (:mod:`rivet_postgres.loaders`), one Python call
  per value. For ``interval``, ``timetz``, ``inet``/``cidr``, ``macaddr``/``macaddr8`` and
  every array: rare types whose exact value needs more than a fixed-width field.

So both paths produce the same values for every type, and a column the COPY path cannot
carry does not exist: only a query whose result has two columns of one name *and* needs a
``TEXT``/``WIRE`` column (the wrapping ``SELECT`` cannot name them apart) is left to the
cursor path (:func:`unwrappable`). A ``table`` export may be read as ctid ranges
(:class:`BlockRanges`, :func:`range_sql`) by one or several connections.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import psycopg
import pyarrow as pa

from rivet_postgres.builders import ColumnPlan
from rivet_postgres.copybin import Wire


class Carry(enum.Enum):
    """How one column travels over COPY (see the module docstring)."""

    NATIVE = "native"
    TEXT = "text"
    WIRE = "wire"


TEXT_KEYS = frozenset({"numeric", "enum", "citext", "xml"})
SEND_FUNCTIONS: dict[str, str] = {
    "interval": "interval_send", "timetz": "timetz_send", "inet": "inet_send",
    "cidr": "cidr_send", "macaddr": "macaddr_send", "macaddr8": "macaddr8_send",
}
"""Type key → the function giving its binary wire format as ``bytea``."""

NATIVE_WIRES: dict[str, Wire] = {
    "bool": Wire.BOOL, "int2": Wire.INT16, "int4": Wire.INT32, "oid": Wire.INT32,
    "int8": Wire.INT64, "money": Wire.INT64, "float4": Wire.FLOAT32, "float8": Wire.FLOAT64,
    "text": Wire.TEXT, "varchar": Wire.TEXT, "bpchar": Wire.TEXT, "name": Wire.TEXT,
    "json": Wire.TEXT, "jsonb": Wire.JSONB, "bytea": Wire.BYTES, "date": Wire.DATE,
    "time": Wire.TIME, "timestamp": Wire.TIMESTAMP, "timestamptz": Wire.TIMESTAMP,
    "uuid": Wire.UUID,
}
"""The binary format of each ``NATIVE`` type key (``oid`` and ``money`` as their bits)."""
NATIVE_KEYS = frozenset(NATIVE_WIRES)

ALIAS = "_rivet_copy"


@attrs.frozen
class FastColumn:
    """One result column on the COPY path: how it travels, and how it is decoded."""

    plan: ColumnPlan
    carry: Carry
    send_function: str | None = None
    loader: Callable[[Any], Any] | None = None
    """For ``WIRE``: the psycopg binary loader's ``load`` (the cursor path's own)."""


def numeric_decimal(plan: ColumnPlan) -> pa.Decimal128Type | None:
    """The ``decimal128`` a scalar numeric column is decoded into in C, or None (another
    target, or more than 38 digits: those travel as text)."""
    if plan.key != "numeric" or plan.array:
        return None
    typ = plan.target if plan.direct else plan.natural
    return typ if isinstance(typ, pa.Decimal128Type) else None


def carry_for(plan: ColumnPlan) -> tuple[Carry, str | None]:
    """How a mapped column travels, and the send function for ``WIRE``."""
    if plan.array:
        return Carry.WIRE, "array_send"
    if numeric_decimal(plan) is not None:
        return Carry.NATIVE, None
    key = plan.key or ""
    if plan.direct or key in TEXT_KEYS:
        return Carry.TEXT, None
    if key in NATIVE_KEYS:
        return Carry.NATIVE, None
    if key in SEND_FUNCTIONS:
        return Carry.WIRE, SEND_FUNCTIONS[key]
    raise ValueError(f"no COPY carriage for type key {key!r}")


def wire_of(column: FastColumn) -> Wire:
    """How the C decoder reads the column's COPY field."""
    if column.carry is Carry.WIRE:
        return Wire.BYTES
    if column.carry is Carry.TEXT:
        return Wire.TEXT
    if column.plan.key == "numeric":
        return Wire.NUMERIC
    return NATIVE_WIRES[column.plan.key or ""]


def needs_wrapping(columns: Sequence[FastColumn]) -> bool:
    return any(column.carry is not Carry.NATIVE for column in columns)


def unwrappable(names: Sequence[str], columns: Sequence[FastColumn]) -> str | None:
    """Why the COPY path cannot read this result, or None. Only duplicate column names are
    a problem, and only when a column must be converted in SQL."""
    if not needs_wrapping(columns):
        return None
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return f"the result has two columns named {name!r}"
        seen.add(name)
    return None


def strip_statement(sql: str) -> str:
    """The query without trailing semicolons and blanks, so it can sit in parentheses."""
    sql = sql.rstrip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return sql


def select_sql(inner: str, columns: Sequence[FastColumn]) -> str:
    """The statement COPY runs: ``inner`` wrapped in a ``SELECT`` converting the ``TEXT``
    and ``WIRE`` columns. The line breaks keep a trailing ``--`` comment in ``inner`` from
    swallowing the closing parenthesis. PostgreSQL pulls such a projection up into the
    inner query, so the plan (and an ``ORDER BY`` inside) is the inner query's."""
    items = []
    for column in columns:
        ref = f"{ALIAS}.{quote_ident(column.plan.name)}"
        out = quote_ident(column.plan.name)
        if column.carry is Carry.NATIVE:
            items.append(ref)
        elif column.carry is Carry.TEXT:
            items.append(f"({ref})::text AS {out}")
        else:
            items.append(f"{column.send_function}({ref}) AS {out}")
    if not needs_wrapping(columns):
        return f"SELECT * FROM (\n{strip_statement(inner)}\n) AS {ALIAS}"
    return f"SELECT {', '.join(items)} FROM (\n{strip_statement(inner)}\n) AS {ALIAS}"


def quote_ident(name: str) -> str:
    """A column name quoted for SQL (always quoted: result names may be anything)."""
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------------------ table ranges

BLOCKS_PER_RANGE = 1024
"""Heap blocks (8 KiB each: 8 MiB) the first range statement reads: a fraction of a second
of server work even on a busy machine."""

MAX_BLOCKS_PER_RANGE = 16384
"""The most blocks (128 MiB) one range statement reads, however fast the server is."""

MIN_BLOCKS_PER_RANGE = 64
"""The fewest blocks a range shrinks to on a slow server (wide rows, a loaded machine)."""

RANGE_TARGET_S = 0.25
"""How long one range statement should run: long enough that the pause between two
statements on one connection (a round trip, planning, the scan's start) is a few percent of
the read, short enough that no statement holds the server for long."""


class BlockRanges:
    """The ctid ranges of a table of ``blocks`` blocks, handed to the range readers one at a
    time (thread-safe), each sized from how fast the ones before it were read.

    The first range has :data:`BLOCKS_PER_RANGE` blocks. After each, :meth:`took` learns
    the blocks per second the server delivered (and the reader consumed) and sizes the next
    ranges to take :data:`RANGE_TARGET_S`: at most twice the size before (a first range
    read from cache must not make the next one huge), at least :data:`MIN_BLOCKS_PER_RANGE`
    (never below the first size when that is smaller) and at most
    :data:`MAX_BLOCKS_PER_RANGE`. A statement slowed down by a loaded server or a slow
    consumer makes the next ones smaller at once. The last range is open (``hi`` None), so
    rows in blocks added after the size was read are not missed.
    """

    def __init__(self, blocks: int, *, first: int | None = None,
                 target_s: float = RANGE_TARGET_S) -> None:
        self.blocks = max(0, blocks)
        self.first = max(1, BLOCKS_PER_RANGE if first is None else first)
        self.least = min(self.first, MIN_BLOCKS_PER_RANGE)
        self.most = max(self.first, MAX_BLOCKS_PER_RANGE)
        self.target_s = target_s
        self.size = self.first
        self.taken = 0
        self._next = 0
        self._done = False
        self._lock = threading.Lock()

    def spans_several(self) -> bool:
        """Whether the table is larger than one first range (else one statement reads it)."""
        return self.blocks > self.first

    def take(self) -> tuple[int, int | None] | None:
        """The next range, or None when the table is covered."""
        with self._lock:
            if self._done:
                return None
            lo = self._next
            self.taken += 1
            if lo + self.size >= self.blocks:
                self._done = True
                return lo, None
            self._next = lo + self.size
            return lo, self._next

    def took(self, block_range: tuple[int, int | None], seconds: float) -> None:
        """Learn that reading ``block_range`` took ``seconds`` (its statement's start to its
        last row consumed)."""
        lo, hi = block_range
        if hi is None or hi <= lo:
            return
        blocks = hi - lo
        wanted = self.size * 2 if seconds <= 0 else int(blocks * self.target_s / seconds)
        with self._lock:
            self.size = max(self.least, min(self.most, wanted, blocks * 2))


def reads_whole_table(sql: str, table: str) -> bool:
    """Whether ``sql`` is the ``SELECT * FROM <table>`` a ``table`` export runs: only then
    can a range statement replace it (``Query.table`` is a hint; anything else is read with
    one COPY)."""
    return " ".join(strip_statement(sql).split()).lower() == f"select * from {table}".lower()


def range_sql(table: str, block_range: tuple[int, int | None]) -> str:
    """``SELECT *`` of the rows stored in a block range (a TID range scan). ``table`` is
    already quoted by the server (``format('%I.%I')``); the bounds are integers."""
    lo, hi = block_range
    where = f"ctid >= '({int(lo)},0)'::tid"
    if hi is not None:
        where += f" AND ctid < '({int(hi)},0)'::tid"
    return f"SELECT * FROM {table} WHERE {where}"


# ---------------------------------------------------------------------------- parameters


class _Literal:
    """A parameter already rendered as an SQL literal by psycopg."""

    def __init__(self, text: bytes) -> None:
        self.text = text


class _ParenthesizedDumper(psycopg.adapt.Dumper):
    def dump(self, obj: _Literal) -> bytes:
        return obj.text

    def quote(self, obj: _Literal) -> bytes:
        return b"(" + obj.text + b")"


def render_params(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> str:
    """``sql`` with its ``%s`` parameters as literals, for COPY, which takes no bind
    parameters. psycopg's client-side binding writes each literal with the server's quoting
    rules (never formatted by Rivet); each is then parenthesized, because a cast in the
    query binds tighter than a minus sign (``-9223372036854775808::int8`` overflows where
    ``(-9223372036854775808)::int8`` does not)."""
    cursor = psycopg.ClientCursor(conn)
    literals = [_Literal(cursor.mogrify("%s", (value,)).strip().encode()) for value in params]
    cursor.adapters.register_dumper(_Literal, _ParenthesizedDumper)
    return cursor.mogrify(sql, literals)


__all__ = ["BlockRanges", "Carry", "FastColumn", "carry_for", "range_sql",
           "reads_whole_table", "render_params", "select_sql", "unwrappable", "wire_of"]
