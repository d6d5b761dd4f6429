"""How each Arrow type becomes CSV text: the rendering rules, and the column plan that applies
them batch by batch. Pure Arrow in, Arrow out; the file writing and compression live in
:mod:`rivet_csv.writer`.

Every value is rendered losslessly: the text parses back to exactly the value that was read.

==========================  ==================================================================
Arrow type                  CSV text
==========================  ==================================================================
NULL (any type)             empty, unquoted field: ``a,,b``
string, large_string        the text, always quoted (``""`` doubles a quote), so an empty
                            string is ``""`` and stays distinct from NULL
int8..int64, uint8..uint64  decimal digits, ``-`` for negatives (``18446744073709551615``)
bool                        ``true`` / ``false``
float32, float64            shortest text that parses back to the same float at that width
                            (``0.1``, ``1e+20``, ``1e-7``, ``-0``, ``nan``, ``inf``, ``-inf``)
decimal128, decimal256      plain digits with exactly the column's scale, never an exponent
                            (``1.10``, ``-0.01``, ``0.0000000001``); a negative scale appends
                            zeros (``1200``)
date32                      ``YYYY-MM-DD``
time32, time64              ``HH:MM:SS`` plus the unit's fraction digits (``us``: ``.ffffff``)
timestamp (no zone)         ``YYYY-MM-DD HH:MM:SS`` plus the unit's fraction digits
                            (``us``: ``2024-05-01 13:45:00.000250``)
timestamp (with a zone)     the instant in UTC as above, then ``Z``; a zone other than UTC is
                            converted to UTC first (the instant is kept, the zone name is not)
binary, large_binary,       lowercase hex, two digits per byte, no prefix (``00ff``; empty
fixed_size_binary           value: ``""``)
month_day_nano_interval     ISO 8601 duration: ``P1Y2M3DT4H5M6.000001S``; ``PT0S`` for zero.
                            Years are whole multiples of 12 months; hours, minutes and
                            seconds split the nanoseconds; each nonzero part carries its own
                            sign (``P-1M3DT-1H-0.5S``), as PostgreSQL's ``iso_8601`` style
                            writes it; the fraction has no trailing zeros (up to 9 digits)
list, large_list            a JSON array (``[1,2,null]``, ``[]``, ``[[1],[]]``); elements
                            follow the rules above as JSON: numbers, decimals and booleans
                            bare, ``null`` for NULL, strings JSON-escaped, binary as hex
                            strings, dates/times/intervals as strings, timestamps as ISO
                            strings with ``T`` (``"2024-05-01T13:45:00.000250Z"``);
                            ``"nan"``, ``"inf"``, ``"-inf"`` are strings (JSON has no such
                            numbers) and negative zero is ``-0.0`` (``-0`` would read back as
                            the integer 0 in many JSON parsers)
==========================  ==================================================================

Years outside 0001..9999 are written as pyarrow writes them: astronomical numbering with at
least four digits, so 1 BC is ``0000``, 2 BC is ``-0001`` and the year 10000 is ``10000``.

Quoting only delimits a field; it never changes its value, except that an unquoted empty
field is NULL. Strings and every text Rivet renders itself (binary, lists, intervals, and
decimals whose scale is above 6 or negative) are quoted; numbers, booleans, dates, times and
timestamps are not, so the delimiter must not be a character they can contain. In a file
with a single column a NULL is therefore an empty line, which some readers skip (pandas does
by default, Python's ``csv`` module returns an empty row).

Any other Arrow type (struct, map, dictionary, duration, ...) is refused when the file is
opened, before a byte is written.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from rivet_core.api import FormatError

Converter = Callable[[pa.Array], pa.Array]

# pyarrow prints decimals in plain notation only while the exponent stays >= -6, i.e. for
# scales 0..6; other scales are rendered here.
_NATIVE_DECIMAL_SCALES = range(7)
_NANOS_PER_SECOND = 1_000_000_000
_NANOS_PER_MINUTE = 60 * _NANOS_PER_SECOND
_NANOS_PER_HOUR = 60 * _NANOS_PER_MINUTE


@attrs.frozen
class ColumnPlan:
    """How the columns of one schema are rendered: the schema of the text batches handed to
    the CSV writer, and one converter per column (None when pyarrow's own text is the rule)."""

    schema: pa.Schema
    converters: tuple[Converter | None, ...]

    def render(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = [
            column if convert is None else convert(column)
            for column, convert in zip(batch.columns, self.converters, strict=True)
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def plan_columns(schema: pa.Schema) -> ColumnPlan:
    """The rendering of every column of ``schema``; raises :class:`FormatError` naming each
    column whose type has no rule."""
    fields = []
    converters: list[Converter | None] = []
    unsupported = []
    for field in schema:
        rule = _rule_for(field.type)
        if rule is None:
            unsupported.append(f"{field.name!r} ({field.type})")
            continue
        text_type, convert = rule
        fields.append(pa.field(field.name, text_type, nullable=True))
        converters.append(convert)
    if unsupported:
        raise FormatError(
            "csv cannot render column " + ", ".join(unsupported),
            hint="cast the column in the query to a supported type (text, numeric, timestamp, "
            "array, ...)",
        )
    return ColumnPlan(pa.schema(fields), tuple(converters))


def _rule_for(typ: pa.DataType) -> tuple[pa.DataType, Converter | None] | None:
    """(type handed to the CSV writer, converter) for a column type, or None if unsupported."""
    if pa.types.is_timestamp(typ):
        if typ.tz is None or typ.tz == "UTC":
            return typ, None
        utc = pa.timestamp(typ.unit, tz="UTC")
        return utc, lambda array: array.cast(utc)
    if _is_decimal(typ):
        if typ.scale in _NATIVE_DECIMAL_SCALES:
            return typ, None
        return pa.string(), decimal_text
    if _is_native(typ):
        return typ, None
    if _is_binary(typ):
        return pa.large_string(), hex_text
    if _is_interval(typ):
        return pa.string(), interval_text
    if _is_list(typ):
        if _list_leaf_supported(typ.value_type):
            return pa.large_string(), json_text
        return None
    return None


def _is_native(typ: pa.DataType) -> bool:
    """Types whose pyarrow CSV text already follows the rules."""
    return (
        pa.types.is_null(typ)
        or pa.types.is_boolean(typ)
        or pa.types.is_integer(typ)
        or pa.types.is_float32(typ)
        or pa.types.is_float64(typ)
        or pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
        or pa.types.is_date32(typ)
        or pa.types.is_time32(typ)
        or pa.types.is_time64(typ)
    )


def _is_decimal(typ: pa.DataType) -> bool:
    return pa.types.is_decimal128(typ) or pa.types.is_decimal256(typ)


def _is_binary(typ: pa.DataType) -> bool:
    return (
        pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
        or pa.types.is_fixed_size_binary(typ)
    )


def _is_interval(typ: pa.DataType) -> bool:
    return typ == pa.month_day_nano_interval()


def _is_list(typ: pa.DataType) -> bool:
    return pa.types.is_list(typ) or pa.types.is_large_list(typ)


def _list_leaf_supported(typ: pa.DataType) -> bool:
    if _is_list(typ):
        return _list_leaf_supported(typ.value_type)
    return (
        _is_native(typ)
        or _is_decimal(typ)
        or _is_binary(typ)
        or _is_interval(typ)
        or pa.types.is_timestamp(typ)
    )


# ------------------------------------------------------------------------------- decimals


def decimal_text(array: pa.Array) -> pa.Array:
    """Plain digits with exactly the column's scale (pyarrow would switch to ``1E-10``)."""
    typ = array.type
    scale = typ.scale
    # The same buffers read with scale 0 are the unscaled integers, which pyarrow prints as
    # plain digits; the point is then placed by string kernels, so no value goes through
    # Python.
    unscaled_type = (pa.decimal128 if pa.types.is_decimal128(typ) else pa.decimal256)(
        typ.precision, 0
    )
    unscaled = pa.Array.from_buffers(
        unscaled_type, len(array), array.buffers(), array.null_count, array.offset
    )
    digits = unscaled.cast(pa.string())
    if scale == 0:
        return digits
    if scale < 0:
        zeros = pa.scalar("0" * -scale)
        padded = pc.binary_join_element_wise(digits, zeros, "")
        return pc.if_else(pc.equal(digits, "0"), digits, padded)
    negative = pc.starts_with(digits, "-")
    magnitude = pc.utf8_lpad(pc.utf8_ltrim(digits, characters="-"), width=scale + 1,
                             padding="0")
    text = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(magnitude, 0, -scale),
        pc.utf8_slice_codeunits(magnitude, -scale),
        ".",
    )
    return pc.if_else(negative, pc.binary_join_element_wise("-", text, ""), text)


# --------------------------------------------------------------------------------- binary


def hex_text(array: pa.Array) -> pa.Array:
    """Lowercase hex of every value, computed over the whole data buffer at once: the hex of
    the concatenated values is the concatenation of their hex, at doubled offsets."""
    if len(array) == 0:
        return pa.array([], pa.large_string())
    if pa.types.is_fixed_size_binary(array.type):
        array = array.cast(pa.binary())
    offset_type = pa.int64() if pa.types.is_large_binary(array.type) else pa.int32()
    length = len(array)
    _validity, offsets_buffer, data = array.buffers()
    offsets = pa.Array.from_buffers(
        offset_type, length + 1, [None, offsets_buffer], 0, array.offset
    ).cast(pa.int64())
    first = offsets[0].as_py()
    last = offsets[length].as_py()
    hexed = binascii.hexlify(memoryview(data)[first:last]) if data is not None else b""
    text_offsets = pc.multiply(pc.subtract(offsets, first), 2)
    text = pa.Array.from_buffers(
        pa.large_string(), length, [None, text_offsets.buffers()[1], pa.py_buffer(hexed)]
    )
    if array.null_count:
        text = pc.if_else(array.is_valid(), text, pa.scalar(None, pa.large_string()))
    return text


# ------------------------------------------------------------------------------ intervals


def interval_text(array: pa.Array) -> pa.Array:
    """ISO 8601 durations; one Python call per value (interval columns are rare and small)."""
    values = [
        None if value is None else iso_duration(value.months, value.days, value.nanoseconds)
        for value in array.to_pylist()
    ]
    return pa.array(values, pa.string())


def iso_duration(months: int, days: int, nanoseconds: int) -> str:
    """``P1Y2M3DT4H5M6.000001S``; every nonzero part signed on its own; ``PT0S`` for zero."""
    date_part = ""
    if months:
        sign = -1 if months < 0 else 1
        years, rest = divmod(abs(months), 12)
        if years:
            date_part += f"{sign * years}Y"
        if rest:
            date_part += f"{sign * rest}M"
    if days:
        date_part += f"{days}D"
    time_part = ""
    if nanoseconds:
        minus = "-" if nanoseconds < 0 else ""
        hours, rest = divmod(abs(nanoseconds), _NANOS_PER_HOUR)
        minutes, rest = divmod(rest, _NANOS_PER_MINUTE)
        seconds, fraction = divmod(rest, _NANOS_PER_SECOND)
        if hours:
            time_part += f"{minus}{hours}H"
        if minutes:
            time_part += f"{minus}{minutes}M"
        if seconds or fraction:
            digits = f".{fraction:09d}".rstrip("0") if fraction else ""
            time_part += f"{minus}{seconds}{digits}S"
    if not date_part and not time_part:
        return "PT0S"
    return "P" + date_part + ("T" + time_part if time_part else "")


# ---------------------------------------------------------------------------------- lists


def json_text(array: pa.Array) -> pa.Array:
    """JSON array text per list value. Element texts are built column-wise; joining them
    into arrays is one Python step per list value."""
    text = pa.array(_json_lists(array), pa.large_string())
    if array.null_count:
        text = pc.if_else(array.is_valid(), text, pa.scalar(None, pa.large_string()))
    return text


def _json_lists(array: pa.Array) -> list[str]:
    """One JSON text per list value, ``null`` for a NULL list."""
    offsets = array.offsets.to_pylist()
    first, last = offsets[0], offsets[-1]
    items = _json_items(array.values.slice(first, last - first))
    valid = array.is_valid().to_pylist()
    return [
        "[" + ",".join(items[start - first:end - first]) + "]" if is_valid else "null"
        for start, end, is_valid in zip(offsets, offsets[1:], valid, strict=False)
    ]


def _json_items(array: pa.Array) -> list[str]:
    """One JSON value per element of a list's values, ``null`` for NULL."""
    typ = array.type
    if _is_list(typ):
        return _json_lists(array)
    if pa.types.is_null(typ):
        return ["null"] * len(array)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return [
            "null" if value is None else json.dumps(value, ensure_ascii=False)
            for value in array.to_pylist()
        ]
    if pa.types.is_boolean(typ) or pa.types.is_integer(typ):
        text = array.cast(pa.string())
    elif pa.types.is_floating(typ):
        text = array.cast(pa.string())
        # "-0" reads back as the integer 0 in JSON parsers that split ints from floats.
        text = pc.if_else(pc.equal(text, "-0"), "-0.0", text)
        text = pc.if_else(pc.is_finite(array), text, _json_string(text))
    elif _is_decimal(typ):
        text = decimal_text(array)
    elif _is_binary(typ):
        text = _json_string(hex_text(array))
    elif _is_interval(typ):
        text = _json_string(interval_text(array))
    elif pa.types.is_timestamp(typ):
        if typ.tz is not None and typ.tz != "UTC":
            array = array.cast(pa.timestamp(typ.unit, tz="UTC"))
        text = pc.replace_substring(array.cast(pa.string()), " ", "T", max_replacements=1)
        text = _json_string(text)
    else:
        text = _json_string(array.cast(pa.string()))
    return pc.fill_null(text, "null").to_pylist()


def _json_string(text: pa.Array) -> pa.Array:
    """Quote texts that need no JSON escaping (hex, dates, times, ``nan``)."""
    quote = pa.scalar('"', text.type)
    return pc.binary_join_element_wise(quote, text, quote, pa.scalar("", text.type))
