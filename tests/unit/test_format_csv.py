"""The built-in CSV format (``rivet_csv``): every type is rendered losslessly by the documented
rules and parses back to the value that was written; NULL and "" stay distinct; gzip and zstd
output decompresses to the same text; bad delimiters and unrenderable types are refused.

Files are read back with Python's ``csv`` module, cross-checked by a strict RFC 4180 reader
below that also tells an unquoted empty field (NULL) from a quoted one ("")."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import math
import re
import struct
import subprocess
import sys
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import rivet_csv
from rivet_csv import CSV, CsvOptions
from rivet_csv.render import iso_duration

from rivet_core.backends import Compression
from rivet_core.errors import FormatError

UTC = dt.UTC
I64 = 2**63
NANOS_PER_HOUR = 3_600_000_000_000
# Built from text: unary minus on a Decimal rounds to the context's 28 digits.
DEC38_MAX = Decimal("9" * 28 + "." + "9" * 10)
DEC38_MIN = Decimal("-" + "9" * 28 + "." + "9" * 10)
DEC76_MAX = Decimal("9" * 56 + "." + "9" * 20)
DEC76_MIN = Decimal("-" + "9" * 56 + "." + "9" * 20)
MDN = pa.MonthDayNano

# name -> (type, values); 7 rows, written as batches of 3, 3 and 1 (slices of one table).
COLUMNS: dict[str, tuple[pa.DataType, list[Any]]] = {
    "i8": (pa.int8(), [-128, 127, 0, None, -1, 1, 5]),
    "i16": (pa.int16(), [-(2**15), 2**15 - 1, 0, None, -1, 1, 5]),
    "i32": (pa.int32(), [-(2**31), 2**31 - 1, 0, None, -1, 1, 5]),
    "i64": (pa.int64(), [-I64, I64 - 1, 0, None, -1, 1, 5]),
    "u8": (pa.uint8(), [0, 255, 1, None, 2, 3, 4]),
    "u16": (pa.uint16(), [0, 2**16 - 1, 1, None, 2, 3, 4]),
    "u32": (pa.uint32(), [0, 2**32 - 1, 1, None, 2, 3, 4]),
    "u64": (pa.uint64(), [0, 2**64 - 1, 1, None, 2, 3, 4]),
    "f32": (pa.float32(), [0.1, 3.4028234663852886e38, math.nan, math.inf, -math.inf, -0.0,
                           1.401298464324817e-45]),
    "f64": (pa.float64(), [0.1, 1.7976931348623157e308, math.nan, math.inf, -math.inf, -0.0,
                           5e-324]),
    "f64_more": (pa.float64(), [1e20, 1e-7, 123456789012345678.0, None, 1 / 3, 100.0, 2.5]),
    "dec": (pa.decimal128(12, 2), [Decimal("1.10"), Decimal("-0.01"), Decimal("0.00"), None,
                                   Decimal("9999999999.99"), Decimal("-9999999999.99"),
                                   Decimal("5.00")]),
    "dec38": (pa.decimal128(38, 10), [DEC38_MAX, DEC38_MIN, Decimal("-0.0000000001"),
                                      Decimal("0E-10"), None, Decimal("1.1000000000"),
                                      Decimal("-0.0100000000")]),
    "dec76": (pa.decimal256(76, 20), [DEC76_MAX, DEC76_MIN, Decimal("1E-20"), None,
                                      Decimal("0E-20"), Decimal("12.5" + "0" * 19),
                                      Decimal("-3." + "0" * 20)]),
    "flag": (pa.bool_(), [True, False, None, True, False, True, False]),
    "text": (pa.string(), ["", None, "a,b", 'say "hi"', "line\nbreak\r\n", "😀 ünï", "plain"]),
    "big_text": (pa.large_string(), ["x" * 1000, "", None, "😀", ",", '"', "\n"]),
    "bin": (pa.binary(), [b"\x00\xff", b"", None, b"\x00", b"\xff" * 3, b"abc", b"\x7f\x80"]),
    "big_bin": (pa.large_binary(), [b"", b"\x00\xff", None, b"z", b"\x01\x02", b"", b"\xfe"]),
    "uuid": (pa.binary(16), [bytes(range(16)), b"\xff" * 16, None, b"\x00" * 16,
                             bytes(range(16, 32)), b"a" * 16, b"b" * 16]),
    "day": (pa.date32(), [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1), None,
                          dt.date(2000, 2, 29), dt.date(1969, 12, 31), dt.date(2024, 5, 1)]),
    "clock": (pa.time64("us"), [dt.time(0), dt.time(23, 59, 59, 999999), None,
                                dt.time(12, 0, 0, 1), dt.time(1, 2, 3), dt.time(0, 0, 0, 1),
                                dt.time(13, 45)]),
    "ts": (pa.timestamp("us"),
           [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            dt.datetime(1970, 1, 1), None, dt.datetime(2024, 5, 1, 13, 45, 0, 250),
            dt.datetime(1969, 12, 31, 23, 59, 59, 999999), dt.datetime(2000, 1, 1, 0, 0, 0, 1)]),
    "ts_utc": (pa.timestamp("us", tz="UTC"),
               [dt.datetime(1, 1, 1, tzinfo=UTC), None,
                dt.datetime(2024, 5, 1, 13, 45, 0, 250, tzinfo=UTC),
                dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, tzinfo=UTC),
                dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                dt.datetime(2000, 1, 1, tzinfo=UTC)]),
    "wait": (pa.month_day_nano_interval(),
             [MDN([14, 3, 4 * NANOS_PER_HOUR + 306_000_001_000]), MDN([0, 0, 0]), None,
              MDN([-1, 3, -NANOS_PER_HOUR - 500_000_000]), MDN([12, 0, 0]), MDN([0, -7, 1]),
              MDN([-25, 0, 59_999_999_999])]),
    "ints": (pa.list_(pa.int64()), [[1, 2, None], [], None, [None], [-I64, I64 - 1], [0], []]),
    "floats": (pa.list_(pa.float32()),
               [[0.1, math.nan, None], [math.inf, -math.inf, -0.0], None, [], [1e20], [1.5],
                []]),
    "nested": (pa.list_(pa.list_(pa.string())),
               [[["a", None], []], [], None, [None], [["", '"\\', "😀\n\t"]], [[]],
                [["x"], ["y"]]]),
    "decs": (pa.large_list(pa.decimal128(38, 10)),
             [[DEC38_MAX, None], [], None, [Decimal("-0.0000000001")], [], [None], []]),
    "blobs": (pa.list_(pa.binary()), [[b"\x00\xff", b"", None], None, [], [b"a"], [], [], []]),
    "stamps": (pa.list_(pa.timestamp("us", tz="UTC")),
               [[dt.datetime(2024, 5, 1, 13, 45, 0, 250, tzinfo=UTC), None], [], None, [], [],
                [], []]),
    "days": (pa.list_(pa.date32()), [[dt.date(2024, 5, 1)], [None], None, [], [], [], []]),
    "flags": (pa.list_(pa.bool_()), [[True, False, None], [], None, [], [], [], []]),
    "waits": (pa.list_(pa.month_day_nano_interval()),
              [[MDN([1, 2, 3_000])], [], None, [None], [], [], []]),
    "nothing": (pa.null(), [None] * 7),
}


def every_type_table() -> pa.Table:
    fields = [pa.field(name, typ) for name, (typ, _) in COLUMNS.items()]
    arrays = [pa.array(values, typ) for typ, values in COLUMNS.values()]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def make_format(compression: Compression | None = None, **options: Any) -> Any:
    """Build the format the way the runner does: the spec's factory with a config instance."""
    return CSV.factory(CSV.config_cls(**options),
                       compression or Compression(codec=CSV.default_codec))


def write(table: pa.Table, *, chunk: int = 3, compression: Compression | None = None,
          **options: Any) -> bytes:
    sink = pa.BufferOutputStream()
    writer = make_format(compression, **options).open(sink, table.schema)
    for batch in table.to_batches(max_chunksize=chunk):
        writer.write_batch(batch)
    writer.close()
    return sink.getvalue().to_pybytes()


def read_rfc4180(text: str, delimiter: str = ",") -> list[list[str | None]]:
    """A strict RFC 4180 reader: quoted fields with doubled quotes, unquoted fields, and
    None for an unquoted empty field (NULL)."""
    rows: list[list[str | None]] = []
    row: list[str | None] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            end = i + 1
            parts = []
            while True:
                quote = text.index('"', end)
                parts.append(text[end:quote])
                if text.startswith('""', quote):
                    parts.append('"')
                    end = quote + 2
                    continue
                i = quote + 1
                break
            row.append("".join(parts))
        else:
            match = re.compile(f"[^{re.escape(delimiter)}\\n\"]*").match(text, i)
            assert match is not None
            row.append(match.group() or None)
            i = match.end()
        if i == n or text[i] == "\n":
            rows.append(row)
            row = []
        else:
            assert text[i] == delimiter, f"unexpected {text[i]!r} at {i}"
        i += 1
    return rows


def read_back(data: bytes, delimiter: str = ",") -> list[list[str | None]]:
    """Rows of cells (None for NULL), after checking Python's csv module reads the same."""
    text = data.decode("utf-8")
    strict = read_rfc4180(text, delimiter)
    stdlib = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    assert stdlib == [["" if cell is None else cell for cell in row] for row in strict]
    return strict


# ------------------------------------------------------------- parsing the documented rules

ISO_DURATION = re.compile(
    r"P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?)(\d+)(?:\.(\d{1,9}))?S)?)?"
)


def parse_duration(text: str) -> pa.MonthDayNano:
    match = ISO_DURATION.fullmatch(text)
    assert match, text
    years, months, days, hours, minutes, minus, seconds, fraction = match.groups()
    nanos = int(seconds or 0) * 10**9 + int((fraction or "").ljust(9, "0"))
    nanos = -nanos if minus else nanos
    nanos += int(hours or 0) * NANOS_PER_HOUR + int(minutes or 0) * 60 * 10**9
    return MDN([int(years or 0) * 12 + int(months or 0), int(days or 0), nanos])


def parse_scalar(text: str, typ: pa.DataType) -> Any:
    """A cell's value according to the rendering rules in rivet_csv.render."""
    if pa.types.is_integer(typ):
        assert re.fullmatch(r"-?\d+", text)
        return int(text)
    if pa.types.is_boolean(typ):
        return {"true": True, "false": False}[text]
    if pa.types.is_float32(typ):
        return struct.unpack("<f", struct.pack("<f", float(text)))[0]
    if pa.types.is_floating(typ):
        return float(text)
    if pa.types.is_decimal(typ):
        assert "e" not in text.lower(), text
        fraction = text.partition(".")[2]
        assert len(fraction) == typ.scale, f"{text} has not {typ.scale} decimals"
        return Decimal(text)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return text
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ) \
            or pa.types.is_fixed_size_binary(typ):
        assert text == text.lower()
        return bytes.fromhex(text)
    if pa.types.is_date32(typ):
        return dt.date.fromisoformat(text)
    if pa.types.is_time64(typ):
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6}", text)
        return dt.time.fromisoformat(text)
    if pa.types.is_timestamp(typ):
        if typ.tz is None:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", text)
            return dt.datetime.fromisoformat(text)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\.\d{6}Z", text)
        return dt.datetime.fromisoformat(text)
    if typ == pa.month_day_nano_interval():
        return parse_duration(text)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return from_json(json.loads(text, parse_float=JsonNumber, parse_int=JsonNumber), typ)
    raise AssertionError(f"no rule for {typ}")


class JsonNumber(str):
    """A JSON number's exact text, kept by json.loads(parse_int=..., parse_float=...)."""


def from_json(value: Any, typ: pa.DataType) -> Any:
    """A JSON element of a list cell back to its value."""
    if value is None:
        return None
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return [from_json(item, typ.value_type) for item in value]
    if pa.types.is_integer(typ) or pa.types.is_decimal(typ):
        assert type(value) is JsonNumber, value  # a JSON number, never a string
    if pa.types.is_floating(typ):
        # A JSON number, or one of the strings "nan", "inf", "-inf".
        assert type(value) is JsonNumber or value in ("nan", "inf", "-inf"), value
    if pa.types.is_timestamp(typ):
        assert "T" in value
    if isinstance(value, str):
        return parse_scalar(value, typ)
    return value


def same(left: Any, right: Any) -> bool:
    """Value equality that tells NaN, -0.0 and a Decimal's scale apart."""
    if isinstance(left, float) and isinstance(right, float):
        return struct.pack("<d", left) == struct.pack("<d", right)
    if isinstance(left, Decimal) and isinstance(right, Decimal):
        return left == right and left.as_tuple().exponent == right.as_tuple().exponent
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same, left, right))
    return type(left) is type(right) and left == right


# ---------------------------------------------------------------------------- round trip


def test_every_type_parses_back_to_the_written_value() -> None:
    table = every_type_table()
    header, *rows = read_back(write(table))
    assert header == table.column_names
    assert len(rows) == table.num_rows
    for index, field in enumerate(table.schema):
        for row, want in zip(rows, table.column(field.name).to_pylist(), strict=True):
            cell = row[index]
            have = None if cell is None else parse_scalar(cell, field.type)
            assert same(want, have), f"{field.name}: {cell!r} -> {have!r}, wrote {want!r}"


def test_null_and_empty_string_stay_distinct_in_csv() -> None:
    table = pa.table({"a": pa.array(["x", "x"]), "s": pa.array([None, ""]),
                      "b": pa.array([None, b""]), "z": pa.array(["y", "y"])})
    assert write(table).decode().splitlines() == ['"a","s","b","z"', '"x",,,"y"',
                                                   '"x","","","y"']


def test_strings_with_delimiters_quotes_newlines_and_emoji_are_quoted_and_escaped() -> None:
    table = pa.table({"s": pa.array(["a,b", 'say "hi"', "l1\nl2", "😀"])})
    assert write(table).decode() == '"s"\n"a,b"\n"say ""hi"""\n"l1\nl2"\n"😀"\n'


def test_numbers_booleans_and_times_are_written_unquoted() -> None:
    table = pa.table({"n": pa.array([2**64 - 1], pa.uint64()), "f": [-0.0], "b": [True],
                      "d": pa.array([Decimal("-0.01")], pa.decimal128(5, 2)),
                      "t": pa.array([1], pa.timestamp("us", tz="UTC"))})
    line = write(table).decode().splitlines()[1]
    assert line == "18446744073709551615,-0,true,-0.01,1970-01-01 00:00:00.000001Z"


def test_floats_are_the_shortest_text_that_round_trips() -> None:
    values = [0.1, 1 / 3, 1e20, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 2.5]
    cells = [row[0] for row in read_back(write(pa.table({"f": values})))[1:]]
    assert cells == ["0.1", "0.3333333333333333", "1e+20", "1e-7", "5e-324",
                     "1.7976931348623157e+308", "-0", "2.5"]
    assert [float(cell) for cell in cells] == values


def test_non_finite_floats_are_nan_inf_and_minus_inf() -> None:
    cells = read_back(write(pa.table({"f": [math.nan, math.inf, -math.inf]})))[1:]
    assert cells == [["nan"], ["inf"], ["-inf"]]


def test_float32_text_is_shortest_at_single_precision() -> None:
    table = pa.table({"f": pa.array([0.1, 3.4028234663852886e38], pa.float32())})
    assert [row[0] for row in read_back(write(table))[1:]] == ["0.1", "3.4028235e+38"]


@pytest.mark.parametrize("scale", [0, 1, 2, 6, 7, 10, 20])
def test_decimals_render_plain_digits_at_the_column_scale(scale: int) -> None:
    typ = pa.decimal128(38, scale)
    with localcontext() as context:
        context.prec = 100  # the default 28 digits would round 38-digit values
        unit = Decimal(1).scaleb(-scale)
        largest = Decimal("9" * 38).scaleb(-scale)
        values = [unit, -unit, Decimal(0).quantize(unit), largest, -largest,
                  Decimal(12).quantize(unit)]
    cells = [row[0] for row in read_back(write(pa.table({"d": pa.array(values, typ)})))[1:]]
    assert all(cell is not None and "E" not in cell for cell in cells)
    assert [Decimal(cell) for cell in cells] == values
    if scale:
        assert cells[0] == "0." + "0" * (scale - 1) + "1"
        assert cells[1] == "-0." + "0" * (scale - 1) + "1"
        assert cells[2] == "0." + "0" * scale
    else:
        assert cells[:3] == ["1", "-1", "0"]


def test_a_negative_decimal_scale_appends_zeros() -> None:
    array = pa.array([Decimal("1.2E+3"), Decimal("0"), Decimal("-5E+2")], pa.decimal128(5, -2))
    cells = [row[0] for row in read_back(write(pa.table({"d": array})))[1:]]
    assert cells == ["1200", "0", "-500"]


def test_binary_is_lowercase_hex_computed_for_sliced_and_large_columns() -> None:
    values = [bytes([i % 256, 255 - i % 256]) * (i % 5) for i in range(10_000)]
    values[3] = None
    table = pa.table({"b": pa.array(values, pa.binary()), "i": range(10_000)})
    cells = [row[0] for row in read_back(write(table, chunk=777))[1:]]
    assert cells == [None if v is None else v.hex() for v in values]


def test_lists_become_json_arrays() -> None:
    table = pa.table({
        "ints": pa.array([[1, 2, None], [], None], pa.list_(pa.int64())),
        "nested": pa.array([[["a", None], []], [[]], [None]], pa.list_(pa.list_(pa.string()))),
        "floats": pa.array([[math.nan, -0.0], [1e20], []], pa.list_(pa.float64())),
    })
    assert read_back(write(table))[1:] == [
        ["[1,2,null]", '[["a",null],[]]', '["nan",-0.0]'],
        ["[]", "[[]]", "[1e+20]"],
        [None, "[null]", "[]"],
    ]


def test_list_elements_use_json_escapes_and_iso_timestamps() -> None:
    table = pa.table({
        "s": pa.array([['q"\\', "\n😀"]], pa.list_(pa.string())),
        "t": pa.array([[dt.datetime(2024, 5, 1, 13, 45, 0, 250)]], pa.list_(pa.timestamp("us"))),
        "d": pa.array([[Decimal("1.10")]], pa.list_(pa.decimal128(5, 2))),
        "b": pa.array([[b"\x00\xff"]], pa.list_(pa.binary())),
    })
    assert read_back(write(table))[1] == [
        '["q\\"\\\\","\\n😀"]', '["2024-05-01T13:45:00.000250"]', "[1.10]", '["00ff"]'
    ]


@pytest.mark.parametrize(("interval", "text"), [
    ((14, 3, 4 * NANOS_PER_HOUR + 306_000_001_000), "P1Y2M3DT4H5M6.000001S"),
    ((0, 0, 0), "PT0S"),
    ((12, 0, 0), "P1Y"),
    ((-1, 3, -NANOS_PER_HOUR - 500_000_000), "P-1M3DT-1H-0.5S"),
    ((0, 0, 1), "PT0.000000001S"),
    ((-25, -1, 0), "P-2Y-1M-1D"),
])
def test_intervals_become_iso_8601_durations(interval: tuple[int, int, int], text: str) -> None:
    assert iso_duration(*interval) == text
    assert parse_duration(text) == MDN(list(interval))


def test_dates_outside_years_1_to_9999_use_astronomical_years() -> None:
    days = pa.array([-719_162, -719_528, 2_932_897], pa.date32())  # 0001-01-01, 1 BC, 10000
    cells = [row[0] for row in read_back(write(pa.table({"d": days})))[1:]]
    assert cells == ["0001-01-01", "0000-01-01", "10000-01-01"]


def test_a_zoned_timestamp_is_written_as_utc_with_z() -> None:
    array = pa.array([0], pa.timestamp("us", tz="+02:00"))
    assert read_back(write(pa.table({"t": array})))[1] == ["1970-01-01 00:00:00.000000Z"]


def test_an_empty_result_is_the_header_line_only() -> None:
    assert write(every_type_table().slice(0, 0)).decode().count("\n") == 1
    assert write(pa.table({"a": pa.array([], pa.int64())}), header=False) == b""


def test_with_a_part_size_each_batch_reaches_the_sink_as_it_is_written() -> None:
    sink = pa.BufferOutputStream()
    writer = make_format().open(sink, pa.schema([("n", pa.int64())]), max_file_bytes=1 << 20)
    positions = []
    for start in range(0, 30, 10):
        writer.write_batch(pa.record_batch({"n": list(range(start, start + 10))}))
        positions.append(sink.tell())
    writer.close()
    assert positions[0] < positions[1] < positions[2] == sink.tell()


def test_background_encoding_keeps_batch_order_and_few_batches_in_flight() -> None:
    from rivet_csv.writer import ENCODER_THREADS

    sink = pa.BufferOutputStream()
    writer = make_format(header=False).open(sink, pa.schema([("n", pa.int64())]))
    positions = []
    for start in range(0, 1000, 10):
        writer.write_batch(pa.record_batch({"n": list(range(start, start + 10))}))
        positions.append(sink.tell())
    writer.close()
    lines = sink.getvalue().to_pybytes().decode().splitlines()
    assert lines == [str(n) for n in range(1000)]
    # Batch k is written by the time batch k + 2 * ENCODER_THREADS + 1 is handed over.
    lag = 2 * ENCODER_THREADS + 1
    assert all(positions[k] > 0 for k in range(lag, len(positions)))


def test_abort_drops_the_batches_being_encoded() -> None:
    sink = pa.BufferOutputStream()
    writer = make_format(header=False).open(sink, pa.schema([("n", pa.int64())]))
    writer.write_batch(pa.record_batch({"n": [1, 2]}))
    writer.abort()
    assert sink.tell() == 0


# ------------------------------------------------------------------------ options


def test_delimiter_and_header_options_shape_the_output() -> None:
    table = pa.table({"a": [1, None], "s": ["x;y", "\t"]})
    assert write(table, delimiter=";").decode() == '"a";"s"\n1;"x;y"\n;"\t"\n'
    data = write(table, delimiter="\t", header=False)
    assert read_back(data, "\t") == [["1", "x;y"], [None, "\t"]]


@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t", "#", "'"])
def test_config_accepts_common_delimiters(delimiter: str) -> None:
    assert CsvOptions(delimiter=delimiter).config_issues(Path(".")) == []


@pytest.mark.parametrize("delimiter", ["", ",,", '"', "\n", "\r", "-", "+", ".", ":", " ", "a",
                                       "Z", "7", "é", "\x00"])
def test_config_rejects_delimiters_that_would_make_the_file_ambiguous(delimiter: str) -> None:
    issues = CsvOptions(delimiter=delimiter).config_issues(Path("."))
    assert len(issues) == 1
    assert issues[0][0] == "delimiter"


# ------------------------------------------------------------------------ compression


def test_extension_follows_the_codec() -> None:
    extensions = {codec: make_format(Compression(codec=codec)).extension for codec in CSV.codecs}
    assert extensions == {"none": "csv", "gzip": "csv.gz", "zstd": "csv.zst"}


@pytest.mark.parametrize("level", [None, 1, 9])
def test_gzip_output_decompresses_to_the_plain_text(level: int | None) -> None:
    table = every_type_table()
    plain = write(table)
    data = write(table, compression=Compression(codec="gzip", level=level))
    assert data[:2] == b"\x1f\x8b"
    assert gzip.decompress(data) == plain


def test_gzip_level_reaches_the_compressor() -> None:
    table = pa.table({"n": list(range(1000))})
    fast = write(table, compression=Compression(codec="gzip", level=1))
    best = write(table, compression=Compression(codec="gzip", level=9))
    # The gzip header's XFL byte records the compressor's choice: 4 fastest, 2 best.
    assert (fast[8], best[8]) == (4, 2)
    assert gzip.decompress(fast) == gzip.decompress(best)


def test_zstd_output_is_one_frame_that_decompresses_to_the_plain_text() -> None:
    table = pa.table({"n": list(range(20_000)), "s": [f"row {i}" for i in range(20_000)]})
    plain = write(table, chunk=1000)
    data = write(table, chunk=1000, compression=Compression(codec="zstd"))
    # One frame for the whole file: readers that stop after the first frame still get all.
    assert data.count(b"\x28\xb5\x2f\xfd") == 1
    assert pa.input_stream(pa.BufferReader(data), compression="zstd").read() == plain


class IgnoresClose:
    """Like the runner's hashing sink: close() is ignored, bytes are kept."""

    def __init__(self) -> None:
        self.data = io.BytesIO()

    def write(self, data: Any) -> int:
        return self.data.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_close_puts_every_byte_in_a_sink_that_ignores_close(codec: str) -> None:
    table = every_type_table()
    target = IgnoresClose()
    writer = make_format(Compression(codec=codec)).open(pa.PythonFile(target, mode="w"),
                                                        table.schema)
    for batch in table.to_batches(max_chunksize=2):
        writer.write_batch(batch)
    writer.close()
    data = target.data.getvalue()
    if codec == "gzip":
        data = gzip.decompress(data)
    elif codec == "zstd":
        data = pa.input_stream(pa.BufferReader(data), compression="zstd").read()
    assert data == write(table)


def test_profiles_name_codecs_and_levels_the_spec_accepts() -> None:
    assert set(CSV.profiles) == {"none", "fast", "balanced", "compact"}
    for codec, level in CSV.profiles.values():
        assert codec in CSV.codecs
        if level is not None:
            low, high = CSV.level_ranges[codec]
            assert low <= level <= high


# ------------------------------------------------------------------------- refused types


def test_an_unrenderable_type_is_refused_at_open_naming_the_column() -> None:
    schema = pa.schema([
        ("id", pa.int64()),
        ("point", pa.struct([("x", pa.int64())])),
        ("tags", pa.list_(pa.dictionary(pa.int32(), pa.string()))),
        ("took", pa.duration("us")),
    ])
    sink = pa.BufferOutputStream()
    with pytest.raises(FormatError) as caught:
        make_format().open(sink, schema)
    message = str(caught.value)
    assert "'point'" in message and "'tags'" in message and "'took'" in message
    assert "'id'" not in message
    assert sink.tell() == 0


# ----------------------------------------------------------------------------- the plugin


def test_the_hook_registers_the_csv_spec() -> None:
    assert rivet_csv.rivet_formats() == [CSV]
    assert CSV.name == "csv"
    assert CSV.extension == "csv"
    assert CSV.default_codec == "none"


def test_importing_the_plugin_does_not_import_pyarrow_csv() -> None:
    code = ("import sys, rivet_csv; rivet_csv.rivet_formats(); "
            "sys.exit('pyarrow.csv' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
