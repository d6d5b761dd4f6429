"""Loaded values → Arrow arrays, one column of a batch at a time: the column builders of the
cursor path, and of the few columns the COPY path decodes through the same loaders.

A :class:`ColumnPlan` says how one result column is built: its mapped type key, whether it
is an array, its natural Arrow type and the written one. Each builder takes what the loaders
of :mod:`.loaders` produce and makes the Arrow array with pyarrow kernels:

- dates and timestamps from the wire integers by one vectorised add (``timestamptz`` is the
  UTC instant whatever the session zone), refusing ``±infinity``, BC values and ``24:00:00``
  with an error naming the column and the value;
- ``jsonb`` by stripping the wire format's version byte; ``uuid`` by one ``bytes.hex()`` over
  the whole column and Arrow string kernels; ``money`` by reinterpreting the int64 amounts as
  a decimal with the scale of ``lc_monetary``;
- ``numeric`` from ``Decimal`` values, refusing (never rounding) a value its decimal cannot
  hold, and suggesting the override that can;
- arrays as lists, their elements built by the element type's builder.

Every other mapped type is one ``pa.array`` call. An ``[exports.columns]`` override is a
checked cast of the natural array (:func:`cast_override`), or, for numeric, built directly.
Not here: the loaders, the mapping (:mod:`.typemap`, :mod:`.columns`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import accumulate
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rivet_core.api import MAX_DECIMAL_PRECISION, SourceError
from rivet_postgres.pgtext import (
    DATE_INFINITY,
    EPOCH_SHIFT_DAYS,
    TS_INFINITY,
    US_PER_DAY,
    pg_date_text,
    pg_timestamp_text,
)

_EPOCH_SHIFT_US = EPOCH_SHIFT_DAYS * US_PER_DAY
# 0001-01-01, in days since 2000-01-01: anything earlier is a BC value.
_FIRST_AD_DAY = -730_119
_MAX_VALUE_TEXT = 60


def column_error(name: str, detail: str, hint: str | None = None) -> SourceError:
    """A value of column ``name`` that its Arrow type cannot hold."""
    return SourceError(f"column {name!r}: {detail}",
                       hint=hint or f"filter or convert these values in SQL, or cast {name} "
                                    f"to text")


def _build_date(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    days = pa.array(values, type=pa.int32())
    bounds = pc.min_max(days)
    low, high = bounds["min"], bounds["max"]
    if high.is_valid and high.as_py() == DATE_INFINITY:
        raise column_error(name, "value infinity has no date32 equivalent")
    if low.is_valid and low.as_py() < _FIRST_AD_DAY:
        raise column_error(name, f"value {pg_date_text(low.as_py())} is before 0001-01-01; "
                          f"BC dates and -infinity are not exported")
    return pc.add_checked(days, pa.scalar(EPOCH_SHIFT_DAYS, pa.int32())).cast(arrow_type)


def _build_timestamp(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    micros = pa.array(values, type=pa.int64())
    bounds = pc.min_max(micros)
    low, high = bounds["min"], bounds["max"]
    if high.is_valid and high.as_py() == TS_INFINITY:
        raise column_error(name, "value infinity has no timestamp equivalent")
    if low.is_valid and low.as_py() < _FIRST_AD_DAY * US_PER_DAY:
        raise column_error(name, f"value {pg_timestamp_text(low.as_py())} is before 0001-01-01; "
                          f"BC timestamps and -infinity are not exported")
    try:
        shifted = pc.add_checked(micros, _EPOCH_SHIFT_US)
    except pa.ArrowInvalid:
        raise column_error(name, f"value {pg_timestamp_text(high.as_py())} is beyond the range of "
                          f"timestamp[us]") from None
    return shifted.view(arrow_type)


def _build_time(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    micros = pa.array(values, type=pa.int64())
    high = pc.max(micros)
    if high.is_valid and high.as_py() >= US_PER_DAY:
        raise column_error(name, "value 24:00:00 is not a time of day in time64")
    return micros.view(arrow_type)


def _build_jsonb(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    text = pa.array(values, type=pa.string())
    # jsonb's binary format is a version byte (1 since PostgreSQL 9.4) and then the text.
    if pc.all(pc.starts_with(text, "\x01")).as_py() is False:
        raise column_error(name, "unknown jsonb binary format version")
    return pc.utf8_slice_codeunits(text, 1).cast(arrow_type)


_UUID_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


def _build_uuid(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    return uuid_text(pa.array(values, type=pa.binary(16))).cast(arrow_type)


def uuid_text(raw: pa.Array) -> pa.Array:
    """Lowercase hyphenated text of 16-byte uuids, with one ``bytes.hex()`` over the whole
    data buffer and Arrow string kernels."""
    if raw.offset:
        raw = pa.concat_arrays([raw])  # a slice: rebase its buffers at zero
    count = len(raw)
    validity, data = raw.buffers()
    # Null slots hold zero bytes; the validity bitmap carries over and masks them.
    hexed = pa.py_buffer(data.to_pybytes()[: 16 * count].hex().encode("ascii"))
    offsets = pa.array(range(0, 32 * count + 1, 32), type=pa.int32()).buffers()[1]
    flat = pa.StringArray.from_buffers(count, offsets, hexed, validity, raw.null_count)
    groups = [pc.utf8_slice_codeunits(flat, start, stop) for start, stop in _UUID_GROUPS]
    return pc.binary_join_element_wise(*groups, "-")


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_VALUE_TEXT else text[:_MAX_VALUE_TEXT] + "…"


def _build_money(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    return money_decimal(pa.array(values, type=pa.int64()), arrow_type)


def money_decimal(amounts: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    """int64 money amounts as the decimal ``arrow_type`` (scale = ``lc_monetary``'s)."""
    # The wire amount is the unscaled integer of the decimal: same buffer, new scale.
    unscaled = amounts.cast(pa.decimal128(arrow_type.precision, 0))
    return pa.Array.from_buffers(arrow_type, len(unscaled), unscaled.buffers(),
                                 unscaled.null_count)


def decimal_needs(value: Decimal) -> tuple[int, int]:
    """(integer digits, decimals) a decimal type needs to hold ``value`` exactly."""
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    return max(len(digits) + exponent, 0), max(-exponent, 0)


def suggest_decimal(value: Decimal, current: pa.DataType) -> str | None:
    """The override that holds ``value`` and everything ``current`` holds: ``decimal(38,s)``
    when 38 digits suffice, else the digits needed, or None beyond 76 digits."""
    integer_digits, scale = decimal_needs(value)
    scale = max(scale, current.scale)
    integer_digits = max(integer_digits, min(current.precision - current.scale, 38 - scale))
    precision = max(integer_digits + scale, 38)
    if precision > MAX_DECIMAL_PRECISION:
        return None
    return f"decimal({precision},{scale})"


def build_decimal(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    """Decimals into ``arrow_type``, refusing (naming the value and the override that holds
    it) any value that would need rounding or more digits."""
    # pa.array refuses (rather than rounds) a Decimal that needs more scale or digits than the
    # type holds; the slow search for the culprit only runs to write the error.
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    for value in values:
        if value is None:
            continue
        if isinstance(value, Decimal) and not value.is_finite():
            raise column_error(name, f"value {value} cannot be stored in {arrow_type}",
                        hint=f'filter it out, or export the column as text with the '
                             f'[exports.columns] override {name} = "string"')
        try:
            pa.array([value], type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            suggestion = suggest_decimal(value, arrow_type)
            fix = (f'set the [exports.columns] override {name} = "{suggestion}"'
                   if suggestion else f'export it as text: {name} = "string"')
            raise column_error(name, f"value {_short(value)} does not fit {arrow_type} without "
                              f"rounding or overflow",
                        hint=f"{fix} (Rivet never rounds a decimal)") from None
    raise column_error(name, f"values cannot be stored in {arrow_type}")


def _decimal_text(values: Sequence[Any]) -> pa.Array:
    """Exact plain text of each decimal (``format(d, "f")`` never uses an exponent)."""
    return pa.array([None if v is None else format(v, "f") for v in values], pa.string())


def _build_plain(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise column_error(name, f"values cannot be stored in {arrow_type}: {exc}") from None


Builder = Callable[[Sequence[Any], pa.DataType, str], pa.Array]

BUILDERS: dict[str, Builder] = {
    "date": _build_date,
    "time": _build_time,
    "timestamp": _build_timestamp,
    "timestamptz": _build_timestamp,
    "jsonb": _build_jsonb,
    "uuid": _build_uuid,
    "numeric": build_decimal,
    "money": _build_money,
}
"""Column builders by type key; any other mapped type is one ``pa.array`` call."""


def _build_list(values: Sequence[Any], arrow_type: pa.DataType, name: str,
                element: Builder) -> pa.Array:
    if element is _build_plain:
        return _build_plain(values, arrow_type, name)
    # Elements that need a builder of their own (raw integers of dates, uuid bytes...) are
    # flattened, built as one column, and put back behind the same offsets.
    flat = [item for value in values if value is not None for item in value]
    items = element(flat, arrow_type.value_type, name)
    offsets = pa.array(list(accumulate((0 if v is None else len(v) for v in values),
                                       initial=0)), pa.int32())
    nulls = pa.array([v is None for v in values], pa.bool_())
    return pa.ListArray.from_arrays(offsets, items, type=arrow_type, mask=nulls)


class ColumnPlan:
    """How one result column is decoded: its mapped type key, whether it is an array, the
    natural Arrow type and the written one, and whether an override is built directly from
    the loaded values (numeric → decimal or text) instead of by casting."""

    __slots__ = ("array", "direct", "key", "name", "natural", "target")

    def __init__(self, name: str, key: str | None, array: bool, natural: pa.DataType | None,
                 target: pa.DataType, direct: bool) -> None:
        self.name = name
        self.key = key
        self.array = array
        self.natural = natural
        self.target = target
        self.direct = direct


def build_column(values: Sequence[Any], plan: ColumnPlan) -> pa.Array:
    """One column of a batch as an Arrow array of type ``plan.target``.

    An override that is not built directly is applied with pyarrow's safe cast: overflow,
    truncation or lost scale raise :class:`SourceError` naming the column."""
    name, target = plan.name, plan.target
    if plan.direct:
        if pa.types.is_decimal(target):
            return build_decimal(values, target, name)
        return _decimal_text(values)
    builder = BUILDERS.get(plan.key or "", _build_plain)
    natural = plan.natural
    assert natural is not None
    if plan.array:
        array = _build_list(values, natural, name, builder)
    else:
        array = builder(values, natural, name)
    return cast_override(array, plan)


def cast_override(array: pa.Array, plan: ColumnPlan) -> pa.Array:
    """A column built as its natural type, cast to an override's type with pyarrow's safe
    cast (overflow, truncation or lost scale fail naming the column)."""
    name, natural, target = plan.name, plan.natural, plan.target
    if natural == target:
        return array
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise column_error(name, f"cannot convert {natural} to the override {target} without "
                          f"loss: {exc}") from None
