"""The built-in Parquet format (``rivet_parquet``): every type round-trips, row groups are cut
by rows and by bytes, every codec writes a readable file, and what Parquet cannot store is
refused before a byte is written. Files are read back with ``pyarrow.parquet``."""

from __future__ import annotations

import datetime as dt
import math
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rivet_parquet
from rivet_parquet import PARQUET, ParquetOptions

import rivet_core
from rivet_core.backends import Compression
from rivet_core.errors import FormatError

UTC = dt.UTC
I64 = 2**63
# Built from text: unary minus on a Decimal rounds to the context's 28 digits.
DEC38_MAX = Decimal("9" * 28 + "." + "9" * 10)
DEC38_MIN = Decimal("-" + "9" * 28 + "." + "9" * 10)
DEC76_MAX = Decimal("9" * 56 + "." + "9" * 20)
DEC76_MIN = Decimal("-" + "9" * 56 + "." + "9" * 20)

# name -> (type, values); 7 rows, so the table goes out as batches of 3, 3 and 1 (slices).
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
                           None]),
    "f64": (pa.float64(), [0.1, 1.7976931348623157e308, math.nan, math.inf, -math.inf, -0.0,
                           5e-324]),
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
    "ts": (pa.timestamp("us"), [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59,
                                                                   999999),
                                dt.datetime(1970, 1, 1), None, dt.datetime(2024, 5, 1, 13, 45,
                                                                           0, 250),
                                dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
                                dt.datetime(2000, 1, 1, 0, 0, 0, 1)]),
    "ts_utc": (pa.timestamp("us", tz="UTC"),
               [dt.datetime(1, 1, 1, tzinfo=UTC), None,
                dt.datetime(2024, 5, 1, 13, 45, 0, 250, tzinfo=UTC),
                dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, tzinfo=UTC),
                dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                dt.datetime(2000, 1, 1, tzinfo=UTC)]),
    "ints": (pa.list_(pa.int64()), [[1, 2, None], [], None, [None], [-I64, I64 - 1], [0], []]),
    "nested": (pa.list_(pa.list_(pa.string())),
               [[["a", None], []], [], None, [None], [["", '"', "😀"]], [[]], [["x"], ["y"]]]),
    "big_list": (pa.large_list(pa.decimal128(38, 10)),
                 [[DEC38_MAX, None], [], None, [Decimal("0E-10")], [], [None], []]),
    "nothing": (pa.null(), [None] * 7),
}


def every_type_table() -> pa.Table:
    fields = [
        pa.field(name, typ, metadata={b"rivet.source_type": f"src_{name}".encode()})
        for name, (typ, _) in COLUMNS.items()
    ]
    arrays = [pa.array(values, typ) for typ, values in COLUMNS.values()]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def same(left: Any, right: Any) -> bool:
    """Value equality that tells NaN, -0.0 and a Decimal's scale apart."""
    if isinstance(left, float) and isinstance(right, float):
        return struct.pack("<d", left) == struct.pack("<d", right)
    if isinstance(left, Decimal) and isinstance(right, Decimal):
        return left == right and left.as_tuple().exponent == right.as_tuple().exponent
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same, left, right))
    return type(left) is type(right) and left == right


def make_format(compression: Compression | None = None, **options: Any) -> Any:
    """Build the format the way the runner does: the spec's factory with a config instance."""
    return PARQUET.factory(PARQUET.config_cls(**options),
                           compression or Compression(codec=PARQUET.default_codec))


def write(table: pa.Table, *, chunk: int = 3, max_file_bytes: int | None = None,
          compression: Compression | None = None, **options: Any) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    writer = make_format(compression, **options).open(sink, table.schema,
                                                      max_file_bytes=max_file_bytes)
    for batch in table.to_batches(max_chunksize=chunk):
        writer.write_batch(batch)
    writer.close()
    return sink.getvalue()


def int_batches(count: int, rows: int) -> list[pa.RecordBatch]:
    return [
        pa.record_batch({"n": pa.array(range(i * rows, (i + 1) * rows), pa.int64())})
        for i in range(count)
    ]


def row_group_sizes(data: pa.Buffer) -> list[int]:
    metadata = pq.ParquetFile(pa.BufferReader(data)).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


# ---------------------------------------------------------------------------- round trip


def test_every_supported_type_round_trips_value_by_value() -> None:
    table = every_type_table()
    back = pq.read_table(pa.BufferReader(write(table)))
    assert back.num_rows == table.num_rows
    for field in table.schema:
        got = back.schema.field(field.name)
        assert got.type == field.type, field.name
        expected_values = table.column(field.name).to_pylist()
        got_values = back.column(field.name).to_pylist()
        for row, (want, have) in enumerate(zip(expected_values, got_values, strict=True)):
            assert same(want, have), f"{field.name}[{row}]: {want!r} != {have!r}"


def test_source_types_survive_as_field_metadata() -> None:
    back = pq.read_table(pa.BufferReader(write(every_type_table())))
    for name in COLUMNS:
        assert back.schema.field(name).metadata[b"rivet.source_type"] == f"src_{name}".encode()


def test_file_metadata_names_the_rivet_version_and_format_2_6() -> None:
    metadata = pq.read_metadata(pa.BufferReader(write(every_type_table())))
    assert metadata.metadata[b"rivet.version"] == rivet_core.__version__.encode()
    assert metadata.format_version == "2.6"


def test_timestamps_are_stored_as_int64_microseconds_not_int96() -> None:
    schema = pq.ParquetFile(pa.BufferReader(write(every_type_table()))).schema
    for name, adjusted in (("ts", "false"), ("ts_utc", "true")):
        column = schema.column(list(COLUMNS).index(name))
        assert column.physical_type == "INT64"
        logical = str(column.logical_type)
        assert "timeUnit=microseconds" in logical
        assert f"isAdjustedToUTC={adjusted}" in logical


def test_an_empty_result_is_still_a_valid_parquet_file() -> None:
    table = every_type_table().slice(0, 0)
    data = write(table)
    back = pq.read_table(pa.BufferReader(data))
    assert back.num_rows == 0
    assert back.schema.equals(table.schema)
    assert row_group_sizes(data) == []


# ----------------------------------------------------------------------------- row groups


def test_row_groups_hold_row_group_rows_across_small_batches() -> None:
    table = pa.Table.from_batches(int_batches(10, 500))
    data = write(table, chunk=500, row_group_rows=1000)
    assert row_group_sizes(data) == [1000] * 5
    assert pq.read_table(pa.BufferReader(data)).column("n").to_pylist() == list(range(5000))


def test_rows_past_a_full_row_group_carry_over_to_the_next() -> None:
    table = pa.Table.from_batches(int_batches(10, 700))
    data = write(table, chunk=700, row_group_rows=1000)
    assert row_group_sizes(data) == [1000] * 7
    assert pq.read_table(pa.BufferReader(data)).column("n").to_pylist() == list(range(7000))


def test_a_batch_larger_than_a_row_group_is_split() -> None:
    table = pa.Table.from_batches(int_batches(1, 2500))
    assert row_group_sizes(write(table, chunk=2500, row_group_rows=1000)) == [1000, 1000, 500]


def test_row_group_mb_bounds_the_row_groups_filling_and_encoding_together() -> None:
    batches = int_batches(8, 32_768)  # 256 KiB of Arrow memory each
    data = write(pa.Table.from_batches(batches), chunk=32_768, row_group_mb=1)
    # Encoded in the background while the next fills: half of the 1 MiB budget each.
    assert row_group_sizes(data) == [2 * 32_768] * 4


def test_a_failing_background_encode_is_raised_by_the_next_call() -> None:
    sink = pa.BufferOutputStream()
    writer = make_format(row_group_mb=1).open(sink, pa.schema([("n", pa.int64())]))
    assert writer.background
    sink.close()  # every write to the sink now fails
    with pytest.raises((OSError, ValueError, pa.ArrowInvalid)):
        for batch in int_batches(8, 32_768):
            writer.write_batch(batch)
        writer.close()


def test_abort_waits_for_the_row_group_being_encoded() -> None:
    sink = pa.BufferOutputStream()
    writer = make_format(row_group_mb=1).open(sink, pa.schema([("n", pa.int64())]))
    for batch in int_batches(3, 32_768):
        writer.write_batch(batch)
    writer.abort()
    size = sink.tell()
    assert size > 4  # the first row group reached the sink before abort returned
    assert writer._encoding is None


def test_max_file_bytes_caps_the_buffer_at_a_quarter_of_the_part_size() -> None:
    sink = pa.BufferOutputStream()
    writer = make_format().open(sink, pa.schema([("n", pa.int64())]),
                                max_file_bytes=8 * 1024 * 1024)
    positions = []
    for batch in int_batches(16, 32_768):  # 256 KiB each; the cap is 2 MiB = 8 batches
        writer.write_batch(batch)
        positions.append(sink.tell())
    writer.close()
    # Only the magic number until the 8th batch fills the 2 MiB budget; then a row group
    # reaches the sink, where the runner sees it through sink.tell().
    assert positions[:7] == [4] * 7
    assert positions[7] > 4
    assert positions[8:15] == [positions[7]] * 7
    assert positions[15] > positions[7]
    assert row_group_sizes(sink.getvalue()) == [8 * 32_768] * 2


def test_max_file_bytes_budget_never_drops_below_one_mib() -> None:
    batches = int_batches(8, 32_768)
    data = write(pa.Table.from_batches(batches), chunk=32_768, max_file_bytes=1024)
    assert row_group_sizes(data) == [4 * 32_768] * 2


# ---------------------------------------------------------------------------- compression


PARQUET_CODEC_NAMES = {"zstd": {"ZSTD"}, "snappy": {"SNAPPY"}, "gzip": {"GZIP"},
                       "lz4": {"LZ4", "LZ4_RAW"}, "brotli": {"BROTLI"},
                       "none": {"UNCOMPRESSED"}}


def codec_levels() -> list[tuple[str, int | None]]:
    cases: list[tuple[str, int | None]] = []
    for codec in sorted(PARQUET.codecs):
        cases.append((codec, None))
        low, high = PARQUET.level_ranges.get(codec, (None, None))
        cases.extend((codec, level) for level in (low, high) if level is not None)
    return cases


@pytest.mark.parametrize(("codec", "level"), codec_levels())
def test_every_codec_and_level_writes_a_readable_file(codec: str, level: int | None) -> None:
    table = every_type_table()
    data = write(table, compression=Compression(codec=codec, level=level))
    back = pq.read_table(pa.BufferReader(data))
    assert back.column("text").to_pylist() == table.column("text").to_pylist()
    assert back.column("dec76").to_pylist() == table.column("dec76").to_pylist()
    chunk = pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(0).column(0)
    assert chunk.compression in PARQUET_CODEC_NAMES[codec]


def test_zstd_without_a_level_uses_level_3() -> None:
    properties = make_format(Compression(codec="zstd")).writer_properties()
    assert properties["compression_level"] == 3


def test_profiles_name_codecs_and_levels_the_spec_accepts() -> None:
    assert set(PARQUET.profiles) == {"none", "fast", "balanced", "compact"}
    for codec, level in PARQUET.profiles.values():
        assert codec in PARQUET.codecs
        if level is not None:
            low, high = PARQUET.level_ranges[codec]
            assert low <= level <= high


def test_extension_is_parquet_whatever_the_codec() -> None:
    for codec in PARQUET.codecs:
        assert make_format(Compression(codec=codec)).extension == "parquet"


# ------------------------------------------------------------------------- refused types


def test_a_type_parquet_cannot_store_is_refused_at_open_naming_the_column() -> None:
    schema = pa.schema([
        ("id", pa.int64()),
        ("wait", pa.month_day_nano_interval()),
        ("waits", pa.list_(pa.month_day_nano_interval())),
    ])
    sink = pa.BufferOutputStream()
    with pytest.raises(FormatError) as caught:
        make_format().open(sink, schema)
    assert "'wait'" in str(caught.value)
    assert "'waits'" in str(caught.value)
    assert "'id'" not in str(caught.value)
    assert caught.value.hint
    assert sink.tell() == 0


# --------------------------------------------------------------------------------- config


def test_default_options_have_no_issues() -> None:
    assert ParquetOptions().config_issues(Path(".")) == []


@pytest.mark.parametrize(("options", "key"), [
    ({"row_group_rows": 0}, "row_group_rows"),
    ({"row_group_rows": 64 * 1024 * 1024 + 1}, "row_group_rows"),
    ({"row_group_mb": 0}, "row_group_mb"),
    ({"row_group_mb": 5000}, "row_group_mb"),
])
def test_config_issues_reject_out_of_range_sizes(options: dict[str, int], key: str) -> None:
    issues = ParquetOptions(**options).config_issues(Path("."))
    assert [issue_key for issue_key, _ in issues] == [key]
    assert "must be between" in issues[0][1]


def test_write_statistics_false_leaves_column_chunks_without_statistics() -> None:
    table = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
    with_stats = pq.ParquetFile(pa.BufferReader(write(table))).metadata
    without = pq.ParquetFile(pa.BufferReader(write(table, write_statistics=False))).metadata
    assert with_stats.row_group(0).column(0).is_stats_set
    assert not without.row_group(0).column(0).is_stats_set


# ----------------------------------------------------------------------------- the plugin


def test_the_hook_registers_the_parquet_spec() -> None:
    assert rivet_parquet.rivet_formats() == [PARQUET]
    assert PARQUET.name == "parquet"
    assert PARQUET.default_codec == "zstd"
    assert not PARQUET.needs_seekable


def test_importing_the_plugin_does_not_import_pyarrow_parquet() -> None:
    code = ("import sys, rivet_parquet; rivet_parquet.rivet_formats(); "
            "sys.exit('pyarrow.parquet' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_only_text_columns_whose_values_repeat_get_a_dictionary() -> None:
    rows = 20_000
    table = pa.table({
        "status": pa.array(["open", "closed", "held"] * (rows // 3) + ["open"] * (rows % 3)),
        "comment": pa.array([f"note {i:08d} about nothing in particular" for i in range(rows)]),
        "n": pa.array(range(rows), pa.int64()),
    })
    data = write(table, chunk=5_000)
    metadata = pq.ParquetFile(pa.BufferReader(data)).metadata
    encodings = {metadata.schema.column(i).name: metadata.row_group(0).column(i).encodings
                 for i in range(metadata.num_columns)}
    assert any("DICTIONARY" in e for e in encodings["status"])
    assert not any("DICTIONARY" in e for e in encodings["comment"])
    assert not any("DICTIONARY" in e for e in encodings["n"])  # numbers never had one
    assert pq.read_table(pa.BufferReader(data)).equals(table)


def test_the_dictionary_choice_counts_a_distinct_column_on_its_first_values_only(
        monkeypatch) -> None:
    from rivet_parquet import writer

    rows = 50_000
    counted: list[int] = []
    real = writer.pc.count_distinct

    def count_distinct(values, **kwargs):
        counted.append(len(values))
        return real(values, **kwargs)

    monkeypatch.setattr(writer.pc, "count_distinct", count_distinct)
    table = pa.table({
        "comment": pa.array([f"note {i:08d}" for i in range(rows)]),
        "status": pa.array(["open", "closed", "held", "new"] * (rows // 4)),
        # Distinct at first, repeating after: decided on its first values (no dictionary).
        "late": pa.array([f"v{i}" if i < 10_000 else "same" for i in range(rows)]),
    })
    assert writer.repetitive_columns(table, ["comment", "status", "late"]) == ["status"]
    assert counted == [writer.DICTIONARY_PROBE_ROWS,  # comment: distinct from the start
                       writer.DICTIONARY_PROBE_ROWS, rows,  # status: counted on the sample
                       writer.DICTIONARY_PROBE_ROWS]  # late

