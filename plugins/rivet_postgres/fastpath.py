"""The binary COPY read path: which columns it can carry, the SQL it sends, and how the Arrow
arrays the C decoder returns become exactly the Arrow types of :mod:`rivet_postgres.typemap`.

Pure logic, no connection: the connections and threads live in
:mod:`rivet_postgres.copyreader`, the C decoder in :mod:`rivet_postgres.copybin`, the
choice between the two read paths in :mod:`rivet_postgres.source`.

Every mapped column travels one of four ways (:class:`Carry`):

- ``NATIVE``: as the column itself, in its binary wire format, which the C decoder turns
  into an Arrow array (:func:`wire_of`); Arrow kernels then check what the mapping refuses
  (``infinity``, BC dates, ``24:00:00``), reinterpret ``oid`` as unsigned and ``money`` as
  a scaled decimal, and turn uuid bytes into text.
- ``TEXT``: as ``column::text``, computed by the server: ``numeric`` (its text is exact and
  cheap to produce, and pyarrow's checked cast to the decimal refuses rounding and
  overflow), enums, ``citext`` and ``xml`` (the text is the value).
- ``WIRE``: as ``<type>_send(column)``, the type's binary wire format in a ``bytea``, decoded
  by the very loaders the cursor path uses (:mod:`rivet_postgres.decode`), one Python call
  per value. For ``interval``, ``timetz``, ``inet``/``cidr``, ``macaddr``/``macaddr8`` and
  every array: rare types whose exact value needs more than a fixed-width field.

So both paths produce the same values for every type, and a column the COPY path cannot
carry does not exist: only a query whose result has two columns of one name *and* needs a
``TEXT``/``WIRE`` column (the wrapping ``SELECT`` cannot name them apart) is left to the
cursor path.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from rivet_core.errors import SourceError
from rivet_postgres import decode
from rivet_postgres.copybin import Layout, Wire


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
BATCH_HINT_BYTES = 8 << 20
"""The decoder's batch size target (bytes of rows) when the export sets no memory cap:
batches shrink by themselves as rows get wider."""


@attrs.frozen
class FastColumn:
    """One result column on the COPY path: how it travels, and how it is decoded."""

    plan: decode.ColumnPlan
    carry: Carry
    send_function: str | None = None
    loader: Callable[[Any], Any] | None = None
    """For ``WIRE``: the psycopg binary loader's ``load`` (the cursor path's own)."""


def numeric_decimal(plan: decode.ColumnPlan) -> pa.Decimal128Type | None:
    """The ``decimal128`` a scalar numeric column is decoded into in C, or None (another
    target, or more than 38 digits: those travel as text)."""
    if plan.key != "numeric" or plan.array:
        return None
    typ = plan.target if plan.direct else plan.natural
    return typ if isinstance(typ, pa.Decimal128Type) else None


def carry_for(plan: decode.ColumnPlan) -> tuple[Carry, str | None]:
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


def copy_layout(columns: Sequence[FastColumn]) -> Layout:
    """What the C decoder needs to know of the columns. A numeric value that does not fit
    its decimal fails with the same words as on the cursor path."""
    wires = [wire_of(column) for column in columns]
    decimals = [numeric_decimal(c.plan) if w is Wire.NUMERIC else None
                for c, w in zip(columns, wires, strict=True)]

    def misfit(index: int, text: str) -> Exception:
        name, target = columns[index].plan.name, decimals[index]
        assert target is not None
        try:
            _decimal_from_text(pa.array([text]), target, name)
        except SourceError as exc:
            return exc
        return decode.column_error(name, f"value {text} could not be decoded as {target}")

    return Layout(wires=wires, decimals=decimals, misfit=misfit)


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
"""Heap blocks (8 KiB each: 8 MiB) one range statement reads: a fraction of a second of
server work even on a busy machine, so no statement runs long."""


def block_ranges(blocks: int, per_range: int | None = None) -> list[tuple[int, int | None]]:
    """``[lo, hi)`` block ranges of ``per_range`` blocks (default :data:`BLOCKS_PER_RANGE`)
    covering a table of ``blocks`` blocks; the last is open (``hi`` None) so rows in blocks
    added after the size was read are not missed."""
    per_range = max(1, BLOCKS_PER_RANGE if per_range is None else per_range)
    ranges: list[tuple[int, int | None]] = []
    lo = 0
    while lo + per_range < blocks:
        ranges.append((lo, lo + per_range))
        lo += per_range
    ranges.append((lo, None))
    return ranges


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


# --------------------------------------------------------------------------- conninfo


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(keywords: Mapping[str, str | int | None]) -> str:
    """A libpq ``key=value`` connection string (values quoted, None left out)."""
    return " ".join(f"{key}={_conninfo_value(str(value))}" for key, value in keywords.items()
                    if value is not None)


# ------------------------------------------------------------------------- conversion

# Arrow-epoch bounds of what the mapped types hold; the decoder adds the 2000→1970 shift
# without overflow checks, so infinities and out-of-range values land below these.
_FIRST_DAY = -719_162
"""0001-01-01 in days since 1970-01-01."""
_FIRST_US = _FIRST_DAY * 86_400_000_000
_SHIFT_DAYS = 10_957
_SHIFT_US = _SHIFT_DAYS * 86_400_000_000
_US_PER_DAY = 86_400_000_000


def _wrap(value: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return (value + half) % (1 << bits) - half


def _check_dates(array: pa.Array, name: str) -> None:
    low = pc.min(array.view(pa.int32()))
    if not low.is_valid or low.as_py() >= _FIRST_DAY:
        return
    bad = pc.filter(array.view(pa.int32()), pc.less(array.view(pa.int32()), _FIRST_DAY))
    raw = [_wrap(v - _SHIFT_DAYS, 32) for v in bad.to_pylist()]
    if 2**31 - 1 in raw:
        raise decode.column_error(name, "value infinity has no date32 equivalent")
    raise decode.column_error(name, f"value {decode.pg_date_text(min(raw))} is before 0001-01-01; "
                             f"BC dates and -infinity are not exported")


def _check_timestamps(array: pa.Array, name: str) -> None:
    micros = array.view(pa.int64())
    low = pc.min(micros)
    if not low.is_valid or low.as_py() >= _FIRST_US:
        return
    raw = [_wrap(v - _SHIFT_US, 64) for v in pc.filter(micros, pc.less(micros, _FIRST_US))
           .to_pylist()]
    if 2**63 - 1 in raw:
        raise decode.column_error(name, "value infinity has no timestamp equivalent")
    beyond = [v for v in raw if v > 0]
    if beyond:
        raise decode.column_error(name, f"value {decode.pg_timestamp_text(max(beyond))} is beyond "
                                 f"the range of timestamp[us]")
    raise decode.column_error(name, f"value {decode.pg_timestamp_text(min(raw))} is before "
                             f"0001-01-01; BC timestamps and -infinity are not exported")


def _check_times(array: pa.Array, name: str) -> None:
    high = pc.max(array.view(pa.int64()))
    if high.is_valid and high.as_py() >= _US_PER_DAY:
        raise decode.column_error(name, "value 24:00:00 is not a time of day in time64")


def _storage(array: pa.Array) -> pa.Array:
    """The plain array under an extension type (``arrow.uuid``, ``arrow.json``), for a
    batch from another decoder than :mod:`rivet_postgres.copybin`, which gives plain ones."""
    return array.storage if isinstance(array.type, pa.BaseExtensionType) else array


def _decimal_from_text(text: pa.Array, target: pa.DataType, name: str) -> pa.Array:
    try:
        return pc.cast(text, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # The slow search for the culprit runs only to word the error as the cursor path does.
    values: list[Decimal | None] = []
    for value in text.to_pylist():
        try:
            values.append(None if value is None else Decimal(value))
        except InvalidOperation:
            raise decode.column_error(name, f"value {value!r} is not a decimal") from None
    return decode.build_decimal(values, target, name)


def _native(array: pa.Array, plan: decode.ColumnPlan) -> pa.Array:
    key, name, natural = plan.key, plan.name, plan.natural
    assert natural is not None
    if key == "oid":
        # The decoder gives oid as int32: the same 32 bits, read unsigned.
        unsigned = array.view(pa.uint32()) if pa.types.is_int32(array.type) else array
        return unsigned.cast(natural)
    if key == "money":
        return decode.money_decimal(array.cast(pa.int64()), natural)
    if key == "uuid":
        return decode.uuid_text(array.cast(pa.binary(16))).cast(natural)
    if key == "date":
        _check_dates(array, name)
    elif key in ("timestamp", "timestamptz"):
        _check_timestamps(array, name)
        # Same instant or wall time: microseconds since 1970 (UTC for timestamptz).
        return array.view(natural)
    elif key == "time":
        _check_times(array, name)
    if array.type == natural:
        return array
    return array.cast(natural, safe=True)


def convert_column(array: pa.Array, column: FastColumn) -> pa.Array:
    """One column as the decoder returned it → an array of ``column.plan.target``."""
    plan = column.plan
    array = _storage(array)
    if column.carry is Carry.WIRE:
        assert column.loader is not None
        load = column.loader
        values = [None if v is None else load(v) for v in array.to_pylist()]
        return decode.build_column(values, plan)
    decoded = pa.types.is_decimal(array.type)  # a numeric the C decoder already built
    if plan.direct:
        if pa.types.is_decimal(plan.target):
            return array if decoded else _decimal_from_text(array, plan.target, plan.name)
        return array.cast(plan.target)  # the exact numeric text
    assert plan.natural is not None
    if plan.key == "numeric":
        natural = array if decoded else _decimal_from_text(array, plan.natural, plan.name)
    elif column.carry is Carry.TEXT:
        natural = array.cast(plan.natural)
    else:
        natural = _native(array, plan)
    return decode.cast_override(natural, plan)


def convert_batch(batch: pa.RecordBatch, columns: Sequence[FastColumn],
                  schema: pa.Schema) -> pa.RecordBatch:
    arrays = [convert_column(batch.column(i), column) for i, column in enumerate(columns)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def slices(batch: pa.RecordBatch, max_rows: int, max_bytes: int | None
           ) -> Iterator[pa.RecordBatch]:
    """``batch`` cut (zero-copy) into pieces of at most ``max_rows`` rows and, when given,
    about ``max_bytes`` Arrow bytes (never fewer than one row)."""
    rows = batch.num_rows
    step = max(1, max_rows)
    if max_bytes is not None and rows and batch.nbytes > max_bytes:
        step = min(step, max(1, rows * max_bytes // batch.nbytes))
    if step >= rows:
        yield batch
        return
    for offset in range(0, rows, step):
        yield batch.slice(offset, step)


def check_schema(schema: pa.Schema, columns: Sequence[FastColumn]) -> None:
    """The decoder's result must have the planned columns; anything else is a bug,
    reported before a row is converted."""
    if len(schema) != len(columns):
        raise SourceError(f"binary COPY returned {len(schema)} columns where the query "
                          f"describes {len(columns)}",
                          hint="set read_path = \"cursor\" in [source] and report this")
    for field, column in zip(schema, columns, strict=True):
        storage = (field.type.storage_type if isinstance(field.type, pa.BaseExtensionType)
                   else field.type)
        expect_decimal = column.carry is Carry.NATIVE and column.plan.key == "numeric"
        expect_binary = column.carry is Carry.WIRE or column.plan.key in ("bytea", "uuid")
        expect_text = column.carry is Carry.TEXT or column.plan.key in (
            "text", "varchar", "bpchar", "name", "json", "jsonb")
        ok = True
        if expect_decimal:
            ok = pa.types.is_decimal(storage)
        elif expect_binary:
            ok = (pa.types.is_binary(storage) or pa.types.is_large_binary(storage)
                  or pa.types.is_fixed_size_binary(storage))
        elif expect_text:
            ok = pa.types.is_string(storage) or pa.types.is_large_string(storage)
        if not ok:
            raise SourceError(
                f"binary COPY returned column {column.plan.name!r} as {field.type}, which "
                f"Rivet does not expect for {column.plan.key}",
                hint="set read_path = \"cursor\" in [source] and report this")


__all__ = ["Carry", "FastColumn", "block_ranges", "carry_for", "check_schema", "conninfo",
           "convert_batch", "range_sql", "reads_whole_table", "select_sql", "slices"]
