"""The ``jsonl`` format: Rivet's format conformance kit, then the rules it documents.

The kit round-trips every declared codec, level and profile through an independent back
door (``jsonl_backdoor``: the standard library's ``json`` and ``gzip``), and proves
streaming and abort. The tests below pin what the kit leaves to the format: the text of
each type, the choice made for NaN and infinities, zero rows, refused types.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
import math
from decimal import Decimal

import pyarrow as pa
import pytest
from jsonl_backdoor import decode_value, read_jsonl, read_objects
from rivet_sqlite_jsonl import JSONL

from rivet_core.api import Compression, FormatError
from rivet_core.testing import FormatTests, round_trip_table

KIT_COLUMNS = round_trip_table(rows=1).column_names


def read_kit_file(data: bytes, compression: Compression) -> pa.Table:
    # JSON Lines has no header, so an empty file names no column: the only empty file the
    # kit writes is one of its round-trip table.
    return read_jsonl(data, compression.codec, empty_columns=KIT_COLUMNS)


class TestJsonlFormat(FormatTests):
    @pytest.fixture
    def format_spec(self):
        return JSONL

    @pytest.fixture
    def reader(self):
        return read_kit_file

    @pytest.fixture
    def lossless_types(self):
        # The back door returns JSON texts: every column goes through decode_value.
        return lambda _type: False

    @pytest.fixture
    def decode_value(self):
        return decode_value


# ------------------------------------------------------------------------------ helpers


def write(table: pa.Table, codec: str = "none", level: int | None = None) -> bytes:
    fmt = JSONL.factory(JSONL.config_cls(), Compression(codec=codec, level=level))
    sink = pa.BufferOutputStream()
    writer = fmt.open(sink, table.schema)
    for batch in table.to_batches():
        writer.write_batch(batch)
    writer.close()
    return sink.getvalue().to_pybytes()


def lines(table: pa.Table) -> list[str]:
    return write(table).decode().splitlines()


def one_column(values: list, typ: pa.DataType) -> list[str]:
    """The JSON text written for each value of a one-column table."""
    rows = lines(pa.table({"v": pa.array(values, typ)}))
    prefix, suffix = '{"v":', "}"
    assert all(r.startswith(prefix) and r.endswith(suffix) for r in rows), rows
    return [r[len(prefix):-len(suffix)] for r in rows]


# ----------------------------------------------------------------------------- the rules


def test_each_row_is_one_object_with_keys_in_column_order():
    table = pa.table({"zeta": [1, 2], "alpha": ["a", None], "mid": [None, 1.5]})
    assert lines(table) == ['{"zeta":1,"alpha":"a","mid":null}',
                            '{"zeta":2,"alpha":null,"mid":1.5}']


def test_column_names_are_json_escaped_keys():
    table = pa.table({'say "hi"\n': [1], "ünï ✓": [2]})
    assert lines(table) == ['{"say \\"hi\\"\\n":1,"ünï ✓":2}']


def test_integers_are_exact_numbers_at_both_ends_of_int64_and_uint64():
    assert one_column([-(2**63), 2**63 - 1, 0, None], pa.int64()) == [
        "-9223372036854775808", "9223372036854775807", "0", "null"]
    assert one_column([2**64 - 1], pa.uint64()) == ["18446744073709551615"]


def test_floats_always_read_back_as_floats_and_keep_negative_zero():
    texts = one_column([0.0, -0.0, 100.0, 0.1, 1e20, 5e-324, 1 / 3], pa.float64())
    assert texts == ["0.0", "-0.0", "100.0", "0.1", "1e+20", "5e-324", "0.3333333333333333"]
    parsed = [json.loads(t) for t in texts]
    assert all(type(v) is float for v in parsed)
    assert math.copysign(1, parsed[1]) == -1


def test_nan_and_infinities_are_the_protobuf_json_strings_not_invalid_json():
    texts = one_column([math.nan, math.inf, -math.inf], pa.float64())
    assert texts == ['"NaN"', '"Infinity"', '"-Infinity"']


def test_float32_is_written_as_the_double_that_holds_it():
    (text,) = one_column([0.1], pa.float32())
    assert float(text) == pa.scalar(0.1, pa.float32()).as_py()


def test_decimals_are_strings_of_plain_digits_with_the_scale():
    assert one_column([Decimal("12.50"), Decimal("-0.01"), Decimal("0.00"), None],
                      pa.decimal128(12, 2)) == ['"12.50"', '"-0.01"', '"0.00"', "null"]
    assert one_column([Decimal("0.0000000001"), Decimal("-1234567890123456789.0123456789")],
                      pa.decimal128(38, 10)) == ['"0.0000000001"',
                                                 '"-1234567890123456789.0123456789"']
    assert one_column([Decimal("1.5")], pa.decimal256(60, 30)) == [
        '"1.500000000000000000000000000000"']
    assert one_column([Decimal("1200"), Decimal("0")], pa.decimal128(5, -2)) == [
        '"1200"', '"0"']


def test_strings_escape_quotes_backslashes_and_control_characters_only():
    values = ['say "hi"', "back\\slash", "line\nbreak\ttab\x00nul\x1f", "ünï ✓ 🚀", ""]
    texts = one_column(values, pa.string())
    assert [json.loads(t) for t in texts] == values
    assert texts[3] == '"ünï ✓ 🚀"'
    assert texts[2] == '"line\\nbreak\\ttab\\u0000nul\\u001f"'


def test_binary_is_standard_base64():
    assert one_column([b"\x00\xff", b"", None], pa.binary()) == ['"AP8="', '""', "null"]


def test_dates_and_times_are_iso_8601_and_instants_end_in_z():
    assert one_column([dt.date(1, 1, 1), dt.date(9999, 12, 31)], pa.date32()) == [
        '"0001-01-01"', '"9999-12-31"']
    assert one_column([dt.datetime(2024, 5, 1, 13, 45, 0, 250)], pa.timestamp("us")) == [
        '"2024-05-01T13:45:00.000250"']
    aware = dt.datetime(2024, 5, 1, 13, 45, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert one_column([aware], pa.timestamp("us", tz="Europe/Paris")) == [
        '"2024-05-01T11:45:00.000000Z"']
    assert one_column([dt.time(7, 5, 3)], pa.time64("us")) == ['"07:05:03.000000"']


def test_lists_are_arrays_of_elements_by_the_same_rules():
    typ = pa.list_(pa.list_(pa.decimal128(5, 2)))
    values = [[[Decimal("1.10"), None], []], None, [], [None]]
    assert one_column(values, typ) == ['[["1.10",null],[]]', "null", "[]", "[null]"]
    sliced = pa.table({"v": pa.array([[1], [2, 3], [4]], pa.large_list(pa.int64()))}).slice(1)
    assert lines(sliced) == ['{"v":[2,3]}', '{"v":[4]}']


def test_zero_rows_make_an_empty_file_and_an_empty_gzip_member():
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert write(empty) == b""
    assert gzip.decompress(write(empty, "gzip")) == b""


def test_gzip_level_is_applied():
    table = pa.table({"v": [f"row {i} " * 20 for i in range(2000)]})
    fast, small = write(table, "gzip", 1), write(table, "gzip", 9)
    assert len(small) < len(fast)
    assert read_objects(fast, "gzip") == read_objects(small, "gzip")


def test_unsupported_types_are_refused_at_open_naming_every_column():
    schema = pa.schema([("ok", pa.int64()), ("s", pa.struct([("x", pa.int64())])),
                        ("m", pa.map_(pa.string(), pa.int64())),
                        ("ls", pa.list_(pa.duration("s")))])
    sink = pa.BufferOutputStream()
    fmt = JSONL.factory(JSONL.config_cls(), Compression(codec="none"))
    with pytest.raises(FormatError) as caught:
        fmt.open(sink, schema)
    assert all(f"'{name}'" in caught.value.message for name in ("s", "m", "ls"))
    assert "'ok'" not in caught.value.message
    assert sink.getvalue().size == 0


def test_extension_follows_the_codec():
    build = functools.partial(JSONL.factory, JSONL.config_cls())
    assert build(Compression(codec="none")).extension == "jsonl"
    assert build(Compression(codec="gzip", level=3)).extension == "jsonl.gz"
