"""The row hash and the meta columns.

Every hash is checked against an independent recomputation: the reference implementation
printed in docs/row-hash.md, run in a separate interpreter that imports neither rivet_core
nor pyarrow (only ``xxhash``, ``struct`` and ``decimal``). This test module turns Arrow
columns into the plain values that code takes, with pyarrow's own accessors.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import cattrs
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rivet_core.config.converter import make_converter
from rivet_core.meta import (
    EXPORTED_AT,
    ROW_HASH,
    ROW_HASH_ALGORITHM,
    RUN_ID,
    MetaAppender,
    MetaColumns,
    meta_fields,
    meta_problems,
)
from rivet_core.rowhash import hash_columns, unsupported_reason

DOC = Path(__file__).parents[2] / "docs" / "row-hash.md"

# Runs the doc's reference code on JSON requests, one a line: {"types": [...], "rows":
# [[cell, ...], ...]}, answering [[hash, encoding hex], ...]. Floats arrive as float.hex(),
# decimals as text, binaries as hex.
_DRIVER = r"""
import decimal, json, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
reference = {}
exec(re.search(r"```python\n(.*?)```", text, re.S).group(1), reference)

def typ(t):
    if isinstance(t, str):
        return t
    kind, detail = t
    return (kind, [typ(f) for f in detail] if kind == "struct" else typ(detail)
            if kind == "list" else detail)

def value(t, cell):
    if cell is None:
        return None
    if t == "float":
        return float.fromhex(cell)
    if t == "binary":
        return bytes.fromhex(cell)
    if isinstance(t, str):
        return cell
    kind, detail = t
    if kind == "decimal":
        return decimal.Decimal(cell)
    if kind == "list":
        return [value(detail, c) for c in cell]
    return [value(f, c) for f, c in zip(detail, cell)]

for line in sys.stdin:
    request = json.loads(line)
    types = [typ(t) for t in request["types"]]
    answer = []
    for row in request["rows"]:
        values = [value(t, c) for t, c in zip(types, row)]
        data = b"".join(reference["encode"](t, v) for t, v in zip(types, values))
        answer.append([reference["row_hash"](types, values), data.hex()])
    assert "rivet_core" not in sys.modules and "pyarrow" not in sys.modules
    print(json.dumps(answer), flush=True)
"""


class Reference:
    """The doc's reference implementation, in its own interpreter."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", _DRIVER, str(DOC)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, encoding="utf-8")

    def rows(self, types: list[Any], rows: list[list[Any]]) -> list[tuple[int, str]]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"types": types, "rows": rows}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the reference implementation failed (see its stderr above)"
        return [(h, encoding) for h, encoding in json.loads(line)]

    def hashes(self, table: pa.Table | pa.RecordBatch) -> list[int]:
        """Row hashes of ``table`` over all its columns, from pyarrow's values."""
        types = [json_type(field.type) for field in table.schema]
        columns = [cells(column) for column in table.columns]
        rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
        return [h for h, _ in self.rows(types, rows)]

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def reference() -> Iterator[Reference]:
    ref = Reference()
    yield ref
    ref.close()


# ------------------------------------------------- Arrow columns → the reference's values


def json_type(typ: pa.DataType) -> Any:
    """The reference implementation's type for Arrow type ``typ``."""
    if pa.types.is_dictionary(typ):
        return json_type(typ.value_type)
    if isinstance(typ, pa.BaseExtensionType):
        return json_type(typ.storage_type)
    if pa.types.is_boolean(typ):
        return "bool"
    if pa.types.is_integer(typ) or pa.types.is_null(typ):
        return "int"
    if pa.types.is_floating(typ):
        return "float"
    if pa.types.is_decimal(typ):
        return ["decimal", typ.scale]
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or (
            pa.types.is_string_view(typ)):
        return "string"
    if (pa.types.is_binary(typ) or pa.types.is_large_binary(typ)
            or pa.types.is_binary_view(typ) or pa.types.is_fixed_size_binary(typ)):
        return "binary"
    if pa.types.is_date(typ):
        return "date"
    if pa.types.is_timestamp(typ):
        return "timestamptz" if typ.tz else "timestamp"
    if pa.types.is_time(typ):
        return "time"
    if pa.types.is_duration(typ):
        return "duration"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or (
            pa.types.is_fixed_size_list(typ)):
        return ["list", json_type(typ.value_type)]
    if pa.types.is_struct(typ):
        return ["struct", [json_type(field.type) for field in typ]]
    raise AssertionError(typ)


_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _micros(raw: int, unit: str) -> int:
    """A count in ``unit`` as microseconds, rounded down (the doc's rule)."""
    return raw // 1_000 if unit == "ns" else raw * _MICROS[unit]


def cells(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The values of ``column`` as the reference's JSON cells."""
    if isinstance(column, pa.ChunkedArray):
        return [cell for chunk in column.chunks for cell in cells(chunk)]
    typ = column.type
    if pa.types.is_dictionary(typ):
        return cells(column.dictionary_decode())
    if isinstance(typ, pa.BaseExtensionType):
        return cells(column.storage)
    if pa.types.is_floating(typ):
        return [None if v is None else float(v).hex() for v in column.to_pylist()]
    if pa.types.is_decimal(typ):
        return [None if v is None else str(v) for v in column.to_pylist()]
    if json_type(typ) == "binary":
        return [None if v is None else v.hex() for v in column.to_pylist()]
    if pa.types.is_date32(typ):
        return column.view(pa.int32()).to_pylist()
    if pa.types.is_date64(typ):
        return [None if v is None else v // 86_400_000
                for v in column.view(pa.int64()).to_pylist()]
    if pa.types.is_timestamp(typ) or pa.types.is_time(typ) or pa.types.is_duration(typ):
        raw = column.view(pa.int32() if pa.types.is_time32(typ) else pa.int64())
        return [None if v is None else _micros(v, typ.unit) for v in raw.to_pylist()]
    if json_type(typ)[0] == "list":
        return [cells(item.values) if item.is_valid else None for item in column]
    if pa.types.is_struct(typ):
        fields = [cells(column.field(i)) for i in range(typ.num_fields)]
        return [[f[row] for f in fields] if valid else None
                for row, valid in enumerate(column.is_valid().to_pylist())]
    return column.to_pylist()


# --------------------------------------------------------------------- columns of every kind


def _view(values: list[int | None], storage: pa.DataType, typ: pa.DataType) -> pa.Array:
    return pa.array(values, storage).view(typ)


def _decimals(texts: list[str | None], typ: pa.DataType) -> pa.Array:
    return pa.array([None if t is None else decimal.Decimal(t) for t in texts], typ)


_NAN_PAYLOAD = pa.array([0x7FF0000000000001, 0xFFF8000000000000], pa.uint64()).view(
    pa.float64())

COLUMNS: dict[str, pa.Array] = {
    "null": pa.nulls(5),
    "bool": pa.array([True, False, None, True, False]),
    "int8": pa.array([0, -1, 127, -128, None], pa.int8()),
    "int16": pa.array([0, -1, 32767, -32768, None], pa.int16()),
    "int32": pa.array([5, -1, 2**31 - 1, -(2**31), None], pa.int32()),
    "int64": pa.array([5, -1, 2**63 - 1, -(2**63), None], pa.int64()),
    "uint8": pa.array([5, 0, 255, None, 1], pa.uint8()),
    "uint16": pa.array([5, 0, 65535, None, 1], pa.uint16()),
    "uint32": pa.array([5, 0, 2**32 - 1, None, 1], pa.uint32()),
    "uint64": pa.array([5, 2**63 - 1, 2**63, 2**64 - 1, None], pa.uint64()),
    "float16": pa.array([1.5, -0.0, None, 65504.0, 0.0], pa.float32()).cast(pa.float16()),
    "float32": pa.array([0.1, -0.0, float("nan"), float("inf"), None], pa.float32()),
    "float64": pa.array([0.1, -0.0, float("nan"), float("-inf"), None], pa.float64()),
    "float64_nan_payloads": pa.concat_arrays(
        [_NAN_PAYLOAD, pa.array([1e308, 5e-324, None], pa.float64())]),
    "decimal32": _decimals(["1.10", "-0.01", None, "0", "99999.99"], pa.decimal32(7, 2)),
    "decimal64": _decimals(["1.10", "-0.01", None, "0", "1E+3"], pa.decimal64(12, 2)),
    "decimal128_s2": _decimals(["1.10", "-1.10", None, "0.00", "-0.01"],
                               pa.decimal128(10, 2)),
    "decimal128_s1": _decimals(["1.1", "-1.1", None, "0.0", "-99.9"], pa.decimal128(3, 1)),
    "decimal128_max": _decimals(["9" * 38, "-" + "9" * 38, None, "1", "-1"],
                                pa.decimal128(38, 0)),
    "decimal128_negative_scale": _decimals(["1.23E+4", "-1E+2", None, "0", "9.9E+3"],
                                           pa.decimal128(4, -2)),
    "decimal256": _decimals(
        ["1.10", "9" * 66 + ".1234567890", "-" + "9" * 66 + ".1234567890", None,
         str(2**127 - 1) + ".0000000000"], pa.decimal256(76, 10)),
    "decimal256_fits": _decimals(["1.10", "-1.10", None, "0.00", "-0.01"],
                                 pa.decimal256(50, 2)),
    "decimal256_boundaries": pa.array(
        [decimal.Decimal(v) for v in (2**127, -(2**127), -(2**127) - 1, 2**127 - 1, -1)],
        pa.decimal256(76, 0)),
    "string": pa.array(["", "café", None, "日本語 🎉", "a\x00b"]),
    "large_string": pa.array(["", "café", None, "x" * 300, "😀"], pa.large_string()),
    "string_view": pa.array(["", "café", None, "a longer string beyond twelve", "z"],
                            pa.string_view()),
    "binary": pa.array([b"", b"\x00\xff", None, b"ab", bytes(range(256))], pa.binary()),
    "large_binary": pa.array([b"", b"\x00", None, b"ab" * 40, b"c"], pa.large_binary()),
    "binary_view": pa.array([b"", b"\x01", None, b"y" * 40, b"c"], pa.binary_view()),
    "fixed_size_binary": pa.array([b"\x00" * 16, uuid.UUID(int=1).bytes, None,
                                   b"\xff" * 16, b"abcdefghijklmnop"], pa.binary(16)),
    "uuid_extension": pa.ExtensionArray.from_storage(
        pa.uuid(), pa.array([uuid.UUID(int=7).bytes, None, b"\x01" * 16, b"\x02" * 16,
                             b"\x03" * 16], pa.binary(16))),
    "date32": _view([0, -1, 19723, None, 2932896], pa.int32(), pa.date32()),
    "date64": _view([0, -86_400_000, 1_704_067_200_000, None, 86_400_000], pa.int64(),
                    pa.date64()),
    "timestamp_s": _view([0, -1, 1_700_000_000, None, 253402300799], pa.int64(),
                         pa.timestamp("s")),
    "timestamp_ms": _view([0, -1, 1_700_000_000_123, None, 1], pa.int64(),
                          pa.timestamp("ms")),
    "timestamp_us": _view([0, -1, 1_700_000_000_123_456, None, 1], pa.int64(),
                          pa.timestamp("us")),
    "timestamp_ns": _view([0, -1, 1_700_000_000_123_456_789, None, -1_001], pa.int64(),
                          pa.timestamp("ns")),
    "timestamp_us_utc": _view([0, -1, 1_700_000_000_123_456, None, 1], pa.int64(),
                              pa.timestamp("us", tz="UTC")),
    "timestamp_ns_paris": _view([0, -1_999, 1_700_000_000_123_456_789, None, 1], pa.int64(),
                                pa.timestamp("ns", tz="Europe/Paris")),
    "time32_s": _view([0, 86399, None, 3600, 1], pa.int32(), pa.time32("s")),
    "time32_ms": _view([0, 86_399_999, None, 3_600_000, 1], pa.int32(), pa.time32("ms")),
    "time64_us": _view([0, 86_399_999_999, None, 1, 43_200_000_000], pa.int64(),
                       pa.time64("us")),
    "time64_ns": _view([0, 86_399_999_999_999, None, 1_999, 43_200_000_000_000], pa.int64(),
                       pa.time64("ns")),
    "duration_s": _view([0, -5, None, 10**9, 1], pa.int64(), pa.duration("s")),
    "duration_ns": _view([0, -5, None, 10**15 + 999, 1_000], pa.int64(), pa.duration("ns")),
    "list_int32": pa.array([[1, 2, None], [], None, [5], [None]], pa.list_(pa.int32())),
    "list_string": pa.array([["", None], [], None, ["café", "x"], [""]],
                            pa.list_(pa.string())),
    "large_list_decimal": pa.array(
        [[decimal.Decimal("1.10")], [], None, [None, decimal.Decimal("-2.00")], []],
        pa.large_list(pa.decimal128(10, 2))),
    "fixed_size_list": pa.array([[1.0, -0.0], [None, 2.5], None, [0.0, 0.0], [1.0, 1.0]],
                                pa.list_(pa.float64(), 2)),
    "list_of_lists": pa.array([[[1], []], [], None, [None, [2, 3]], [[]]],
                              pa.list_(pa.list_(pa.int64()))),
    "list_of_timestamps": pa.array([[0, None], [], None, [1_700_000_000_000_000_123], [-1]],
                                   pa.list_(pa.int64())).cast(
                                       pa.list_(pa.timestamp("ns"))),
    "struct": pa.array([{"a": 1, "b": "x"}, {"a": None, "b": None}, None,
                        {"a": 2, "b": ""}, {"a": -1, "b": "é"}],
                       pa.struct([("a", pa.int64()), ("b", pa.string())])),
    "struct_nested": pa.array(
        [{"l": [1, 2], "s": {"t": 1.5}}, {"l": None, "s": None}, None,
         {"l": [], "s": {"t": None}}, {"l": [None], "s": {"t": -0.0}}],
        pa.struct([("l", pa.list_(pa.int16())), ("s", pa.struct([("t", pa.float32())]))])),
    "list_of_structs": pa.array([[{"k": "a"}, None], [], None, [{"k": None}], [{"k": ""}]],
                                pa.list_(pa.struct([("k", pa.string())]))),
    "dictionary": pa.array(["a", "b", None, "a", ""]).dictionary_encode(),
}


def _chunked(array: pa.Array, *cuts: int) -> pa.ChunkedArray:
    bounds = [0, *cuts, len(array)]
    return pa.chunked_array([array.slice(a, b - a) for a, b in itertools.pairwise(bounds)],
                            type=array.type)


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_every_type_family_hashes_as_the_documented_algorithm_says(name, reference):
    column = COLUMNS[name]
    ids = pa.array(range(len(column)), pa.int64())
    batch = pa.record_batch([ids, column, column], names=["id", name, "again"])
    assert hash_columns(batch).to_pylist() == reference.hashes(batch)
    # a slice: every buffer read at a non-zero offset
    sliced = batch.slice(1, 3)
    assert hash_columns(sliced).to_pylist() == reference.hashes(sliced)
    # a table whose columns are chunked at different rows
    table = pa.table([_chunked(ids, 2), _chunked(column, 1, 3, 4), _chunked(column.slice(0), 3)],
                     names=["id", name, "again"])
    assert hash_columns(table).to_pylist() == reference.hashes(table)


def test_one_column_of_each_kind_in_one_row_hash_as_documented(reference):
    batch = pa.record_batch(list(COLUMNS.values()), names=list(COLUMNS))
    assert hash_columns(batch).to_pylist() == reference.hashes(batch)
    assert hash_columns(batch.slice(2)).to_pylist() == reference.hashes(batch.slice(2))


def test_values_of_every_length_hash_as_documented(reference):
    """Encodings of 9..300 bytes: every path through XXH64's stripes and tail."""
    texts = ["é" * (n // 2) + "x" * (n % 2) for n in range(0, 292)]
    batch = pa.record_batch({"s": texts, "b": pa.array([t.encode() for t in texts])})
    assert hash_columns(batch).to_pylist() == reference.hashes(batch)
    assert hash_columns(batch, ["s"]).to_pylist() == reference.hashes(batch.select(["s"]))


def test_the_worked_example_of_the_doc_is_what_rivet_and_the_reference_compute(reference):
    text = DOC.read_text()
    example = text[text.index("## Worked example"):text.index("## Reference implementation")]
    block = re.search(r"```\n(.*?)```", example, re.S)
    assert block
    first = bytes.fromhex("".join(re.findall(r"^((?:[0-9a-f]{2} )+)", block.group(1), re.M)))
    after = example[block.end():]
    second = bytes.fromhex("".join(re.findall(r"`([0-9a-f]{2}(?: [0-9a-f]{2})*)`", after)))
    one = pa.record_batch({"id": pa.array([42], pa.int64()), "name": ["café"],
                           "amount": _decimals(["1.10"], pa.decimal128(10, 2))})
    two = pa.record_batch({"id": pa.array([42], pa.int32()),
                           "name": pa.array([None], pa.string()),
                           "amount": _decimals(["1.1"], pa.decimal128(10, 1))})
    for batch, encoding, unsigned, signed in [
        (one, first, 14539209435974779468, -3907534637734772148),
        (two, second, 5406920184772631332, 5406920184772631332),
    ]:
        types = [json_type(f.type) for f in batch.schema]
        row = [cells(column)[0] for column in batch.columns]
        assert reference.rows(types, [row]) == [(unsigned, encoding.hex())]
        assert hash_columns(batch).to_pylist() == [unsigned]
        assert f"`{unsigned}`" in example
        assert f"`{signed}`" in example
        appended = MetaAppender(MetaColumns(row_hash=True), "r", dt.datetime.now(dt.UTC))
        assert appended.apply(batch).column(ROW_HASH).to_pylist() == [signed]


# ------------------------------------------------------------------------ what is (un)equal


def _one(array: pa.Array) -> list[int]:
    return hash_columns(pa.record_batch([array], names=["c"])).to_pylist()


def test_null_empty_string_zero_false_and_empty_list_all_differ():
    hashes = [
        *_one(pa.array([None, ""], pa.string())),
        *_one(pa.array([0], pa.int64())), *_one(pa.array([0.0])),
        *_one(pa.array([False])), *_one(pa.array([[]], pa.list_(pa.int64()))),
        *_one(pa.array([b""], pa.binary())),
    ]
    assert len(set(hashes)) == len(hashes)


def test_a_null_hashes_the_same_whatever_the_column_type():
    types = [pa.int8(), pa.string(), pa.float64(), pa.decimal128(5, 2), pa.timestamp("us"),
             pa.list_(pa.int8()), pa.null()]
    assert len({_one(pa.nulls(1, t))[0] for t in types}) == 1


def test_decimals_of_different_scales_differ_and_widths_agree():
    s2 = _one(_decimals(["1.10"], pa.decimal128(10, 2)))
    assert s2 != _one(_decimals(["1.1"], pa.decimal128(10, 1)))
    assert s2 == _one(_decimals(["1.10"], pa.decimal256(50, 2)))
    assert s2 == _one(_decimals(["1.10"], pa.decimal32(5, 2)))
    assert _one(_decimals(["1.10"], pa.decimal128(10, 2)).slice(0)) == s2


def test_integers_hash_by_value_whatever_their_width_or_sign():
    five = {_one(pa.array([5], t))[0] for t in
            (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint64())}
    assert len(five) == 1
    assert _one(pa.array([2**63], pa.uint64())) != _one(pa.array([-(2**63)], pa.int64()))


def test_negative_zero_and_every_nan_hash_alike_and_float32_widens_exactly():
    assert _one(pa.array([-0.0])) == _one(pa.array([0.0]))
    nans = _one(_NAN_PAYLOAD) + _one(pa.array([float("nan")], pa.float32()))
    assert len(set(nans)) == 1
    assert _one(pa.array([1.5], pa.float32())) == _one(pa.array([1.5]))
    assert _one(pa.array([0.1], pa.float32())) != _one(pa.array([0.1]))


def test_the_same_instant_agrees_across_units_and_zones_and_not_without_a_zone():
    micros = 1_700_000_000_123_456
    utc = _one(_view([micros], pa.int64(), pa.timestamp("us", tz="UTC")))
    assert utc == _one(_view([micros * 1000 + 999], pa.int64(),
                             pa.timestamp("ns", tz="Asia/Tokyo")))
    assert utc != _one(_view([micros], pa.int64(), pa.timestamp("us")))
    assert _one(_view([1_700_000_000], pa.int64(), pa.timestamp("s"))) == _one(
        _view([1_700_000_000_000_000], pa.int64(), pa.timestamp("us")))


def test_nanoseconds_round_down_to_the_microsecond():
    before_epoch = _view([-1, -1000, -1001], pa.int64(), pa.timestamp("ns"))
    assert _one(before_epoch) == _one(_view([-1, -1, -2], pa.int64(), pa.timestamp("us")))


def test_a_time_beyond_int64_microseconds_is_refused_naming_the_column():
    batch = pa.record_batch({"far": _view([2**62], pa.int64(), pa.timestamp("ms"))})
    with pytest.raises(ValueError, match=r"row hash: column 'far': .*out of bounds"):
        hash_columns(batch)


def test_a_date64_that_is_not_whole_days_is_refused_naming_the_column():
    batch = pa.record_batch({"d": _view([86_400_001], pa.int64(), pa.date64())})
    with pytest.raises(ValueError, match=r"row hash: column 'd': .*lose data"):
        hash_columns(batch)


def test_a_string_and_the_same_bytes_as_binary_differ():
    assert _one(pa.array(["ab"])) != _one(pa.array([b"ab"]))


def test_a_dictionary_column_hashes_as_its_values():
    plain = pa.array(["a", None, "b", "a"])
    assert _one(plain.dictionary_encode()) == _one(plain)


def test_column_order_counts_and_column_names_do_not():
    batch = pa.record_batch({"a": [1, 2], "b": ["x", "y"]})
    renamed = batch.rename_columns(["c", "d"])
    assert hash_columns(batch).to_pylist() == hash_columns(renamed).to_pylist()
    assert hash_columns(batch).to_pylist() != hash_columns(batch, ["b", "a"]).to_pylist()
    assert hash_columns(batch, ["b"]).to_pylist() == _one(pa.array(["x", "y"]))


def test_a_row_without_columns_hashes_as_empty_input():
    empty_xxh64 = 0xEF46DB3751D8E999
    assert hash_columns(pa.record_batch({"a": [1, 2]}), []).to_pylist() == [empty_xxh64] * 2
    assert hash_columns(pa.table({"a": [1, 2, 3]}).select([])).to_pylist() == [empty_xxh64] * 3


def test_empty_inputs_give_empty_hashes():
    assert hash_columns(pa.record_batch({"a": pa.array([], pa.int64())})).to_pylist() == []
    assert hash_columns(pa.table({"a": pa.chunked_array([], pa.string())})).to_pylist() == []


def test_a_name_that_is_not_exactly_one_column_is_refused():
    batch = pa.RecordBatch.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(KeyError, match="'a' is not exactly one column"):
        hash_columns(batch, ["a"])
    with pytest.raises(KeyError, match="'b'"):
        hash_columns(pa.record_batch({"a": [1]}), ["b"])


@pytest.mark.parametrize("typ", [
    pa.map_(pa.string(), pa.int64()),
    pa.month_day_nano_interval(),
    pa.list_(pa.month_day_nano_interval()),
    pa.struct([("i", pa.month_day_nano_interval())]),
    pa.run_end_encoded(pa.int32(), pa.string()),
    pa.list_view(pa.int32()),
    pa.dense_union([pa.field("a", pa.int8())]),
    pa.decimal256(76, -200),
])
def test_types_without_an_encoding_are_refused_naming_the_column(typ):
    assert unsupported_reason(typ)
    batch = pa.record_batch([pa.nulls(1, typ)], names=["odd"])
    with pytest.raises(TypeError, match="cannot hash rows: column 'odd'"):
        hash_columns(batch)


def test_every_type_rivet_sources_produce_has_an_encoding():
    for typ in COLUMNS.values():
        assert unsupported_reason(typ.type) is None, typ.type


# ------------------------------------------------------------------------------- stability


GOLDEN_ROW = pa.record_batch({
    "b": pa.array([True]), "i": pa.array([-7], pa.int32()), "u": pa.array([2**64 - 1],
                                                                         pa.uint64()),
    "f": pa.array([3.25]), "d": _decimals(["-12.345"], pa.decimal128(12, 3)),
    "s": pa.array(["Grüße"]), "y": pa.array([b"\x00\x01"]),
    "dt": _view([19723], pa.int32(), pa.date32()),
    "ts": _view([1_700_000_000_123_456], pa.int64(), pa.timestamp("us")),
    "tz": _view([1_700_000_000_123_456], pa.int64(), pa.timestamp("us", tz="UTC")),
    "t": _view([45_296_000_001], pa.int64(), pa.time64("us")),
    "l": pa.array([[1, None]], pa.list_(pa.int64())),
    "st": pa.array([{"x": "é"}], pa.struct([("x", pa.string())])),
    "n": pa.array([None], pa.string()),
})


GOLDEN_HASH = 6998761467909918053
GOLDEN_COLUMN_HASHES = [
    5979733723107334522, 18087859796733962203, 14128460059661520464, 11303014065473809256,
    5269629034719237523, 10201813333085002711, 587687661159216455, 7941642648891183144,
    15748370508465744814, 18197622482514911845, 17737107075012703385, 3578158459911934416,
    6107286925046340347, 16804241149081757544,
]


def test_hashes_of_a_fixed_row_never_change():
    """Golden values: a failure here means the hash of every exported row changed. That
    needs a new algorithm name (ROW_HASH_ALGORITHM) and docs/row-hash.md updated."""
    assert ROW_HASH_ALGORITHM == "rivet-row-hash-1"
    assert hash_columns(GOLDEN_ROW).to_pylist() == [GOLDEN_HASH]
    columns = [_one(GOLDEN_ROW.column(i))[0] for i in range(GOLDEN_ROW.num_columns)]
    assert columns == GOLDEN_COLUMN_HASHES


def test_the_golden_values_are_the_reference_implementations(reference):
    assert reference.hashes(GOLDEN_ROW) == [GOLDEN_HASH]
    assert [reference.hashes(GOLDEN_ROW.select([i]))[0]
            for i in range(GOLDEN_ROW.num_columns)] == GOLDEN_COLUMN_HASHES


# --------------------------------------------------------------------------------- property


_LEAF_TYPES = [
    pa.bool_(), pa.int8(), pa.int32(), pa.int64(), pa.uint16(), pa.uint64(), pa.float32(),
    pa.float64(), pa.decimal128(9, 3), pa.decimal128(38, 0), pa.decimal256(60, 5),
    pa.string(), pa.large_string(), pa.binary(), pa.binary(3), pa.date32(),
    pa.timestamp("us"), pa.timestamp("ns", tz="UTC"), pa.timestamp("ms"), pa.time64("us"),
    pa.time32("ms"), pa.duration("us"),
]
_NESTED_TYPES = [pa.list_(pa.int16()), pa.large_list(pa.string()),
                 pa.struct([("a", pa.float64()), ("b", pa.list_(pa.decimal128(5, 2)))])]


def _values(typ: pa.DataType) -> st.SearchStrategy[Any]:
    """Python values pa.array() builds a ``typ`` column from (temporal ones as ints)."""
    if pa.types.is_boolean(typ):
        return st.booleans()
    if pa.types.is_integer(typ):
        bits = typ.bit_width
        if pa.types.is_signed_integer(typ):
            return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return st.integers(0, 2**bits - 1)
    if pa.types.is_float32(typ):
        return st.floats(width=32)
    if pa.types.is_floating(typ):
        return st.floats()
    if pa.types.is_decimal(typ):
        limit = 10**typ.precision - 1
        return st.integers(-limit, limit).map(
            lambda n: decimal.Decimal(n).scaleb(-typ.scale, decimal.Context(prec=100)))
    if pa.types.is_fixed_size_binary(typ):
        return st.binary(min_size=typ.byte_width, max_size=typ.byte_width)
    if pa.types.is_binary(typ):
        return st.binary(max_size=40)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return st.text(st.characters(codec="utf-8"), max_size=40)
    if pa.types.is_date32(typ):
        return st.integers(-(2**31), 2**31 - 1)
    if pa.types.is_time32(typ):
        return st.integers(0, 86_399_999)
    if pa.types.is_time64(typ):
        return st.integers(0, 86_399_999_999)
    if pa.types.is_timestamp(typ) or pa.types.is_duration(typ):
        limit = (2**63 - 1) // _MICROS.get(typ.unit, 1)
        return st.integers(-limit, limit)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return st.lists(st.none() | _values(typ.value_type), max_size=4)
    return st.fixed_dictionaries({f.name: st.none() | _values(f.type) for f in typ})


def _column(typ: pa.DataType, values: list[Any]) -> pa.Array:
    if pa.types.is_date32(typ) or pa.types.is_time32(typ):
        return pa.array(values, pa.int32()).view(typ)
    if pa.types.is_temporal(typ):
        return pa.array(values, pa.int64()).view(typ)
    return pa.array(values, typ)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    types = draw(st.lists(st.sampled_from(_LEAF_TYPES + _NESTED_TYPES), min_size=1,
                          max_size=5))
    rows = draw(st.integers(0, 12))
    columns = []
    for typ in types:
        values = draw(st.lists(st.none() | _values(typ), min_size=rows + 3,
                               max_size=rows + 3))
        array = _column(typ, values).slice(draw(st.integers(0, 3)), rows)
        cut = draw(st.integers(0, rows))
        columns.append(pa.chunked_array([array.slice(0, cut), array.slice(cut)], typ))
    return pa.table(columns, names=[f"c{i}" for i in range(len(columns))])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=tables())
def test_any_row_of_mixed_types_hashes_as_the_reference_recomputes(table, reference):
    assert hash_columns(table).to_pylist() == reference.hashes(table)


# ----------------------------------------------------------------------------- meta columns


STARTED = dt.datetime(2026, 11, 27, 13, 15, 30, 112233,
                      tzinfo=dt.timezone(dt.timedelta(hours=1)))
ALL = MetaColumns(exported_at=True, row_hash=True, run_id=True)


def test_meta_columns_are_off_by_default_and_read_from_their_toml_keys():
    assert MetaColumns() == MetaColumns(exported_at=False, row_hash=False, run_id=False)
    assert not MetaColumns().any()
    assert MetaColumns(run_id=True).any()
    converter = make_converter()
    assert converter.structure({"row_hash": True}, MetaColumns) == MetaColumns(row_hash=True)
    with pytest.raises(cattrs.ClassValidationError) as info:
        converter.structure({"rowhash": True}, MetaColumns)
    [error] = info.value.exceptions
    assert isinstance(error, cattrs.ForbiddenExtraKeysError)
    assert error.extra_fields == {"rowhash"}
    for field in attrs.fields(MetaColumns):
        assert field.metadata["doc"]


def test_the_meta_fields_come_in_order_with_their_types_and_never_null():
    fields = meta_fields(ALL)
    assert [(f.name, f.type, f.nullable) for f in fields] == [
        (EXPORTED_AT, pa.timestamp("us", tz="UTC"), False),
        (ROW_HASH, pa.int64(), False),
        (RUN_ID, pa.string(), False),
    ]
    assert fields[1].metadata[b"rivet.row_hash"] == ROW_HASH_ALGORITHM.encode()
    assert [f.name for f in meta_fields(MetaColumns(run_id=True, exported_at=True))] == [
        EXPORTED_AT, RUN_ID]
    assert meta_fields(MetaColumns()) == []


def test_the_appender_adds_the_run_start_the_row_hash_and_the_run_id():
    source = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())],
                       metadata={"k": "v"})
    batch = pa.record_batch([pa.array([1, 2, None]), pa.array(["a", None, ""])],
                            schema=source)
    appender = MetaAppender(ALL, "20261127T121530Z-a1b2c3", STARTED)
    out = appender.apply(batch)
    assert out.schema == appender.schema(source)
    assert out.schema.metadata == {b"k": b"v"}
    assert out.schema.names == ["id", "name", EXPORTED_AT, ROW_HASH, RUN_ID]
    assert out.column("id").equals(batch.column("id"))
    utc = dt.datetime(2026, 11, 27, 12, 15, 30, 112233, tzinfo=dt.UTC)
    assert out.column(EXPORTED_AT).to_pylist() == [utc] * 3
    assert out.column(RUN_ID).to_pylist() == ["20261127T121530Z-a1b2c3"] * 3
    unsigned = hash_columns(batch).to_pylist()
    assert out.column(ROW_HASH).to_pylist() == [h - 2**64 if h >= 2**63 else h
                                                for h in unsigned]


def test_the_row_hash_covers_the_source_columns_only():
    batch = pa.record_batch({"id": [1, 2]})
    once = MetaAppender(ALL, "run-1", STARTED).apply(batch)
    other_run = MetaAppender(ALL, "run-2", STARTED + dt.timedelta(days=1)).apply(batch)
    assert once.column(ROW_HASH).equals(other_run.column(ROW_HASH))
    assert once.column(ROW_HASH).equals(hash_columns(batch).view(pa.int64()))


def test_batches_of_any_length_get_constant_columns_of_their_length():
    appender = MetaAppender(MetaColumns(exported_at=True, run_id=True), "r", STARTED)
    for rows in (3, 1, 0, 10, 7):
        out = appender.apply(pa.record_batch({"a": pa.array(range(rows), pa.int64())}))
        out.validate(full=True)
        assert out.num_rows == rows
        assert out.column(RUN_ID).to_pylist() == ["r"] * rows
        assert out.column(EXPORTED_AT).to_pylist() == [STARTED] * rows


def test_without_meta_columns_batches_pass_unchanged():
    batch = pa.record_batch({"a": [1]})
    appender = MetaAppender(MetaColumns(), "r", STARTED)
    assert appender.schema(batch.schema) == batch.schema
    assert appender.apply(batch).equals(batch)


def test_a_query_column_named_like_a_meta_column_is_a_problem_naming_it():
    schema = pa.schema([("id", pa.int64()), (ROW_HASH, pa.int64()), (RUN_ID, pa.string())])
    problems = meta_problems(MetaColumns(row_hash=True, exported_at=True), schema)
    assert problems == [
        "meta_columns.row_hash: the query already has a column named '_rivet_row_hash'; "
        "rename it in the query (AS ...) or set meta_columns.row_hash = false"]
    assert meta_problems(MetaColumns(exported_at=True), schema) == []
    appender = MetaAppender(ALL, "r", STARTED)
    assert appender.clashes(schema) == [ROW_HASH, RUN_ID]
    with pytest.raises(ValueError, match="_rivet_row_hash"):
        appender.schema(schema)


def test_a_column_the_row_hash_cannot_encode_is_a_problem_only_with_row_hash_on():
    schema = pa.schema([("m", pa.map_(pa.string(), pa.int64()))])
    [problem] = meta_problems(MetaColumns(row_hash=True), schema)
    assert problem.startswith("meta_columns.row_hash: column 'm' cannot be hashed: map<")
    assert meta_problems(MetaColumns(exported_at=True, run_id=True), schema) == []


def test_the_run_start_must_carry_a_time_zone():
    with pytest.raises(ValueError, match="timezone-aware"):
        MetaAppender(ALL, "r", dt.datetime(2026, 1, 1))
