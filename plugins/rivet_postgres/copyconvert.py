"""What the C decoder returns for a binary COPY read → exactly the Arrow types of
:mod:`rivet_postgres.typemap`, batch by batch.

The decoder (:mod:`rivet_postgres.copybin`) gives each column as its carriage says
(:mod:`rivet_postgres.copyplan`): a ``NATIVE`` column as the Arrow array of its wire format,
which Arrow kernels then check for what the mapping refuses (``infinity``, BC dates,
``24:00:00``) and reinterpret (``oid`` as unsigned, ``money`` as a scaled decimal, uuid
bytes as text); a ``numeric`` straight into its decimal128, exactly, or as text parsed by a
checked cast; a ``TEXT`` column as a string array cast to its type; a ``WIRE`` column as the
bytes the cursor path's loaders decode. Errors name the column and the value as the cursor
path does. :func:`slices` cuts a decoded batch to the export's batch size and memory cap.

Not here: the statements and carriage (:mod:`.copyplan`), reading (:mod:`.copyreader`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from rivet_core.api import SourceError
from rivet_postgres import builders
from rivet_postgres.copybin import Layout, Wire
from rivet_postgres.copyplan import Carry, FastColumn, numeric_decimal, wire_of
from rivet_postgres.pgtext import pg_date_text, pg_timestamp_text

BATCH_HINT_BYTES = 8 << 20
"""The decoder's batch size target (bytes of rows) when the export sets no memory cap:
batches shrink by themselves as rows get wider."""


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
        return builders.column_error(name, f"value {text} could not be decoded as {target}")

    return Layout(wires=wires, decimals=decimals, misfit=misfit)


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
        raise builders.column_error(name, "value infinity has no date32 equivalent")
    raise builders.column_error(name, f"value {pg_date_text(min(raw))} is before 0001-01-01; "
                             f"BC dates and -infinity are not exported")


def _check_timestamps(array: pa.Array, name: str) -> None:
    micros = array.view(pa.int64())
    low = pc.min(micros)
    if not low.is_valid or low.as_py() >= _FIRST_US:
        return
    raw = [_wrap(v - _SHIFT_US, 64) for v in pc.filter(micros, pc.less(micros, _FIRST_US))
           .to_pylist()]
    if 2**63 - 1 in raw:
        raise builders.column_error(name, "value infinity has no timestamp equivalent")
    beyond = [v for v in raw if v > 0]
    if beyond:
        raise builders.column_error(name, f"value {pg_timestamp_text(max(beyond))} is beyond "
                                 f"the range of timestamp[us]")
    raise builders.column_error(name, f"value {pg_timestamp_text(min(raw))} is before "
                             f"0001-01-01; BC timestamps and -infinity are not exported")


def _check_times(array: pa.Array, name: str) -> None:
    high = pc.max(array.view(pa.int64()))
    if high.is_valid and high.as_py() >= _US_PER_DAY:
        raise builders.column_error(name, "value 24:00:00 is not a time of day in time64")


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
            raise builders.column_error(name, f"value {value!r} is not a decimal") from None
    return builders.build_decimal(values, target, name)


def _native(array: pa.Array, plan: builders.ColumnPlan) -> pa.Array:
    key, name, natural = plan.key, plan.name, plan.natural
    assert natural is not None
    if key == "oid":
        # The decoder gives oid as int32: the same 32 bits, read unsigned.
        unsigned = array.view(pa.uint32()) if pa.types.is_int32(array.type) else array
        return unsigned.cast(natural)
    if key == "money":
        return builders.money_decimal(array.cast(pa.int64()), natural)
    if key == "uuid":
        return builders.uuid_text(array.cast(pa.binary(16))).cast(natural)
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
        return builders.build_column(values, plan)
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
    return builders.cast_override(natural, plan)


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


__all__ = ["BATCH_HINT_BYTES", "check_schema", "convert_batch", "copy_layout", "slices"]
