"""How each Arrow type becomes JSON, and the encoding of a batch into JSON Lines. Pure Arrow
in, bytes out; the file writing and compression live in :mod:`rivet_sqlite_jsonl.jsonl`.

One line per row: a JSON object whose keys are the column names in column order, each line
ending in ``\\n``, UTF-8, no byte order mark. Every value is written so that it reads back
as exactly the value that was read:

==========================  ================================================================
Arrow type                  JSON
==========================  ================================================================
NULL (any type)             ``null``
int8..int64, uint8..uint64  a number (``-9223372036854775808``); no rounding in the file,
                            though readers that hold numbers as doubles (JavaScript) round
                            beyond 2^53
bool                        ``true`` / ``false``
float32, float64            a number: the shortest text that reads back as the same double,
                            always with a ``.`` or an exponent (``0.0``, ``-0.0``, ``1e+20``,
                            ``0.1``), so no reader takes it for an integer; a float32 is
                            written as the double holding it (``0.10000000149011612``)
                            NaN and infinities, which JSON numbers cannot spell, are the
                            strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (as protobuf's
                            JSON mapping and BigQuery write them): kept, and told apart from
                            every number
decimal128, decimal256      a string of plain digits with exactly the column's scale
                            (``"12.50"``, ``"-0.0000000001"``; a negative scale appends
                            zeros): exact, where a JSON number would be read as a double
string, large_string        a string; ``"`` ``\\`` and control characters escaped, the rest
                            (non-ASCII included) as it is
binary, large_binary,       a string: standard base64 with padding (``"AP8="``)
fixed_size_binary
date32                      ``"YYYY-MM-DD"``
timestamp (no zone)         ``"YYYY-MM-DDTHH:MM:SS"`` and the unit's fraction digits (``us``:
                            ``"2024-05-01T13:45:00.000250"``)
timestamp (with a zone)     the instant in UTC, as above, then ``Z``
                            (``"2024-05-01T11:45:00.000000Z"``)
time32, time64              ``"HH:MM:SS"`` and the unit's fraction digits
list, large_list            an array of the elements, by these rules (``[1,null,3]``)
==========================  ================================================================

Years outside 0001..9999 are written as pyarrow writes them. Any other type (struct, map,
dictionary, duration, interval...) is refused when the file is opened, naming the columns,
before a byte is written.

Encoding works a batch at a time with Arrow kernels: each column becomes an array of JSON
texts, and one element-wise join puts the keys, texts and braces together. Only two things
take a pass in Python: base64 (Arrow has no kernel for it) and the rare string holding a
control character (escaped by the ``json`` module).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from rivet_core.api import FormatError

Encoder = Callable[[pa.Array], pa.Array]
"""An array → the JSON text of each value (null where the value is NULL)."""

# pyarrow prints a float as "nan", "inf" or "-inf" when it is one of those.
_NON_FINITE = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}


def _quoted(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', text, '"', "")


def _plain(array: pa.Array) -> pa.Array:
    """Arrow's own text of the value is its JSON (integers, booleans)."""
    return array.cast(pa.string())


def _null(array: pa.Array) -> pa.Array:
    return pa.nulls(len(array), pa.string())


def _float(array: pa.Array) -> pa.Array:
    text = array.cast(pa.float64()).cast(pa.string())
    integral = pc.match_substring_regex(text, r"^-?\d+$")
    text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    for arrow_text, json_text in _NON_FINITE.items():
        text = pc.if_else(pc.equal(text, arrow_text), json_text, text)
    return text


def _decimal(array: pa.Array) -> pa.Array:
    """Plain digits with the column's scale (pyarrow writes ``1E-10`` past 6 digits).

    The same buffers read with scale 0 are the unscaled integers, which pyarrow prints as
    plain digits; the point is then placed with string kernels."""
    typ = array.type
    unscaled_type = (pa.decimal128 if pa.types.is_decimal128(typ) else pa.decimal256)(
        typ.precision, 0)
    unscaled = pa.Array.from_buffers(unscaled_type, len(array), array.buffers(),
                                     array.null_count, array.offset)
    digits = unscaled.cast(pa.string())
    scale = typ.scale
    if scale < 0:
        zeros = pc.binary_join_element_wise(digits, "0" * -scale, "")
        return _quoted(pc.if_else(pc.equal(digits, "0"), digits, zeros))
    if scale == 0:
        return _quoted(digits)
    negative = pc.starts_with(digits, "-")
    magnitude = pc.utf8_lpad(pc.utf8_ltrim(digits, characters="-"), width=scale + 1,
                             padding="0")
    text = pc.binary_join_element_wise(pc.utf8_slice_codeunits(magnitude, 0, -scale),
                                       pc.utf8_slice_codeunits(magnitude, -scale), ".")
    return _quoted(pc.if_else(negative, pc.binary_join_element_wise("-", text, ""), text))


def _string(array: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(pc.replace_substring(array, "\\", "\\\\"), '"', '\\"')
    text = _quoted(escaped)
    controls = pc.match_substring_regex(array, r"[\x00-\x1f]").fill_null(False)
    if pc.any(controls).as_py():
        exact = [json.dumps(value, ensure_ascii=False)
                 for value in array.filter(controls).to_pylist()]
        text = pc.replace_with_mask(text, controls, pa.array(exact, text.type))
    return text


def _binary(array: pa.Array) -> pa.Array:
    return pa.array([None if value is None else f'"{base64.b64encode(value).decode()}"'
                     for value in array.to_pylist()], pa.string())


def _temporal(array: pa.Array) -> pa.Array:
    """Dates and times: Arrow's ISO text, quoted."""
    return _quoted(array.cast(pa.string()))


def _timestamp(array: pa.Array) -> pa.Array:
    typ = array.type
    if typ.tz is None:
        text = array.cast(pa.string())
        return _quoted(pc.replace_substring(text, " ", "T", max_replacements=1))
    # Arrow holds an instant as UTC: read the same values without the zone, they are its
    # UTC wall time.
    wall = array.view(pa.timestamp(typ.unit)).cast(pa.string())
    text = pc.replace_substring(wall, " ", "T", max_replacements=1)
    return pc.binary_join_element_wise('"', text, 'Z"', "")


def _list(encode_elements: Encoder) -> Encoder:
    def encode(array: pa.Array) -> pa.Array:
        large = pa.types.is_large_list(array.type)
        elements = encode_elements(array.flatten()).fill_null("null")
        lengths = pc.list_value_length(array).fill_null(0)
        offsets = pa.concat_arrays([pa.array([0], lengths.type),
                                    pc.cumulative_sum(lengths)])
        lists = (pa.LargeListArray if large else pa.ListArray).from_arrays(
            offsets, elements, mask=array.is_null())
        return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")

    return encode


def encoder_for(typ: pa.DataType) -> Encoder | None:
    """How a column of ``typ`` is written, or None when it has no rule."""
    t = pa.types
    if t.is_null(typ):
        return _null
    if t.is_integer(typ) or t.is_boolean(typ):
        return _plain
    if t.is_floating(typ):
        return _float
    if t.is_decimal(typ):
        return _decimal
    if t.is_string(typ) or t.is_large_string(typ):
        return _string
    if t.is_binary(typ) or t.is_large_binary(typ) or t.is_fixed_size_binary(typ):
        return _binary
    if t.is_date(typ) or t.is_time(typ):
        return _temporal
    if t.is_timestamp(typ):
        return _timestamp
    if t.is_list(typ) or t.is_large_list(typ):
        elements = encoder_for(typ.value_type)
        return None if elements is None else _list(elements)
    return None


def plan_columns(schema: pa.Schema) -> list[tuple[str, Encoder]]:
    """``(key, encoder)`` per column, where ``key`` is the JSON of the column name plus the
    colon; a :class:`~rivet_core.api.FormatError` naming every column without a rule."""
    plan = []
    unsupported = []
    for field in schema:
        encoder = encoder_for(field.type)
        if encoder is None:
            unsupported.append(f"{field.name!r} ({field.type})")
        else:
            plan.append((json.dumps(field.name, ensure_ascii=False) + ":", encoder))
    if unsupported:
        raise FormatError("jsonl cannot write column " + ", ".join(unsupported),
                          hint="convert the column in the query to a supported type (text, "
                               "number, date, timestamp, binary, array)")
    return plan


def encode_batch(batch: pa.RecordBatch, plan: list[tuple[str, Encoder]]) -> pa.Buffer:
    """The JSON Lines of a batch, as one buffer."""
    if not plan:
        return pa.py_buffer(b"{}\n" * batch.num_rows)
    parts: list[pa.Array | str] = []
    for index, ((key, encoder), column) in enumerate(zip(plan, batch.columns, strict=True)):
        parts.append(("{" if index == 0 else ",") + key)
        parts.append(encoder(column).fill_null("null"))
    parts.append("}\n")
    large = any(isinstance(p, pa.Array) and pa.types.is_large_string(p.type) for p in parts)
    typ = pa.large_string() if large else pa.string()
    operands = [pa.scalar(p, typ) if isinstance(p, str) else p.cast(typ) for p in parts]
    lines = pc.binary_join_element_wise(*operands, pa.scalar("", typ))
    # The lines are contiguous in the data buffer: hand it over without a copy.
    _validity, offsets, data = lines.buffers()
    bounds = pa.Array.from_buffers(pa.int64() if large else pa.int32(), len(lines) + 1,
                                   [None, offsets], offset=lines.offset)
    first, last = bounds[0].as_py(), bounds[len(lines)].as_py()
    return data.slice(first, last - first) if data is not None else pa.py_buffer(b"")
