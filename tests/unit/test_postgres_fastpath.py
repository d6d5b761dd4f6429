"""The binary COPY path's pure logic: column carriage, the SQL it sends, ctid ranges,
connection strings, batch slicing and the checks on what the driver returns."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pyarrow as pa
import pytest
from rivet_postgres import connection, copyconvert, copyplan
from rivet_postgres.builders import ColumnPlan
from rivet_postgres.copyplan import Carry, FastColumn

from rivet_core.errors import SourceError


def plan(name: str, key: str, natural: pa.DataType, *, array: bool = False,
         target: pa.DataType | None = None, direct: bool = False) -> ColumnPlan:
    return ColumnPlan(name, key, array, natural, target or natural, direct)


def column(name: str, key: str, natural: pa.DataType, **kwargs: object) -> FastColumn:
    p = plan(name, key, natural, **kwargs)  # type: ignore[arg-type]
    carry, send = copyplan.carry_for(p)
    return FastColumn(p, carry, send)


@pytest.mark.parametrize(("key", "array", "direct", "expected"), [
    ("int8", False, False, (Carry.NATIVE, None)),
    ("timestamptz", False, False, (Carry.NATIVE, None)),
    ("uuid", False, False, (Carry.NATIVE, None)),
    ("money", False, False, (Carry.NATIVE, None)),
    ("numeric", False, False, (Carry.TEXT, None)),
    ("numeric", False, True, (Carry.TEXT, None)),
    ("enum", False, False, (Carry.TEXT, None)),
    ("xml", False, False, (Carry.TEXT, None)),
    ("interval", False, False, (Carry.WIRE, "interval_send")),
    ("timetz", False, False, (Carry.WIRE, "timetz_send")),
    ("cidr", False, False, (Carry.WIRE, "cidr_send")),
    ("int4", True, False, (Carry.WIRE, "array_send")),
])
def test_each_mapped_type_has_one_carriage(key, array, direct, expected):
    assert copyplan.carry_for(plan("c", key, pa.string(), array=array, direct=direct)) \
        == expected


def test_every_mapped_type_key_can_travel_over_copy():
    from rivet_postgres.typemap import TYPES

    for key in TYPES:
        copyplan.carry_for(plan("c", key, pa.string()))


def test_native_columns_are_selected_as_they_are_and_the_query_keeps_its_comment():
    sql = copyplan.select_sql("SELECT 1 AS a -- trailing comment;\n;", [
        column("a", "int4", pa.int32())])
    assert sql == "SELECT * FROM (\nSELECT 1 AS a -- trailing comment\n) AS _rivet_copy"


def test_converted_columns_are_cast_or_sent_in_a_wrapping_select():
    sql = copyplan.select_sql("SELECT * FROM t", [
        column("id", "int8", pa.int64()), column('Odd "name"', "citext", pa.string()),
        column("n", "numeric", pa.decimal128(9, 2)), column("iv", "interval", pa.string()),
        column("xs", "int4", pa.list_(pa.int32()), array=True)])
    # numeric into a decimal128 travels as itself: the C decoder reads its binary form.
    assert sql == ('SELECT _rivet_copy."id", (_rivet_copy."Odd ""name""")::text AS '
                   '"Odd ""name""", _rivet_copy."n", interval_send(_rivet_copy."iv") AS "iv", '
                   'array_send(_rivet_copy."xs") AS "xs" FROM (\nSELECT * FROM t\n) AS '
                   '_rivet_copy')


def test_duplicate_names_only_matter_when_a_column_is_converted():
    native = [column("a", "int4", pa.int32()), column("a", "text", pa.string())]
    assert copyplan.unwrappable(["a", "a"], native) is None
    mixed = [column("a", "int4", pa.int32()), column("a", "interval", pa.string())]
    assert copyplan.unwrappable(["a", "a"], mixed) == "the result has two columns named 'a'"


def test_range_sql_is_a_tid_range_scan():
    assert copyplan.range_sql('"s"."t"', (4, 8)) == (
        "SELECT * FROM \"s\".\"t\" WHERE ctid >= '(4,0)'::tid AND ctid < '(8,0)'::tid")
    assert copyplan.range_sql("t", (8, None)) == "SELECT * FROM t WHERE ctid >= '(8,0)'::tid"


def test_conninfo_quotes_every_value_and_leaves_out_unset_ones():
    text = connection.conninfo({"host": "db", "password": "it's\\secret", "sslmode": None,
                              "options": "-c search_path=app"})
    assert text == ("host='db' password='it\\'s\\\\secret' "
                    "options='-c search_path=app'")


def test_slices_bound_rows_and_bytes_without_copying():
    batch = pa.record_batch({"t": ["x" * 100] * 10})
    assert [b.num_rows for b in copyconvert.slices(batch, 4, None)] == [4, 4, 2]
    pieces = list(copyconvert.slices(batch, 100, batch.nbytes // 3))
    assert sum(b.num_rows for b in pieces) == 10
    assert all(b.nbytes <= batch.nbytes // 3 + 200 for b in pieces)
    assert list(copyconvert.slices(batch, 100, None)) == [batch]


def convert(values: pa.Array, key: str, natural: pa.DataType, **kwargs: object) -> list:
    return copyconvert.convert_column(values, column("c", key, natural, **kwargs)).to_pylist()


def test_oid_arrives_signed_and_is_read_unsigned():
    assert convert(pa.array([-1, 1, None], pa.int32()), "oid", pa.int64()) == [
        4294967295, 1, None]


def test_numeric_text_becomes_the_exact_decimal_or_fails_naming_the_value():
    assert convert(pa.array(["1.50", "-0.01", None]), "numeric", pa.decimal128(12, 2)) == [
        Decimal("1.50"), Decimal("-0.01"), None]
    with pytest.raises(SourceError, match=r"'c': value 1\.005 does not fit") as info:
        convert(pa.array(["1.005"]), "numeric", pa.decimal128(12, 2))
    assert 'c = "decimal(38,3)"' in (info.value.hint or "")
    with pytest.raises(SourceError, match="'c': value NaN cannot be stored"):
        convert(pa.array(["NaN"]), "numeric", pa.decimal128(12, 2))


def test_numeric_override_to_text_keeps_the_servers_text():
    assert convert(pa.array(["NaN", "3.14159265358979323846264338327950288"]), "numeric",
                   pa.decimal128(38, 20), target=pa.string(), direct=True) == [
        "NaN", "3.14159265358979323846264338327950288"]


def test_money_amount_is_the_unscaled_decimal():
    assert convert(pa.array([1234, -1], pa.int64()), "money", pa.decimal128(19, 2)) == [
        Decimal("12.34"), Decimal("-0.01")]


def test_uuid_bytes_become_lowercase_hyphenated_text_even_in_a_slice():
    raw = pa.array([b"\x00" * 16, bytes(range(16)), None], pa.binary(16))
    assert convert(raw.slice(1), "uuid", pa.string()) == [
        "00010203-0405-0607-0809-0a0b0c0d0e0f", None]


# The driver adds the 2000→1970 shift without overflow checks: these are the values it
# returns for infinity, -infinity and a BC date (see the integration tests for the server
# side of the same values).
@pytest.mark.parametrize(("raw", "message"), [
    (-2147472692, "value infinity has no date32"),
    (-2147472691, r"value -infinity is before 0001-01-01"),
    (-735160, r"value 0044-03-15 BC is before 0001-01-01"),
])
def test_dates_the_mapping_refuses_fail_naming_the_value(raw, message):
    with pytest.raises(SourceError, match=message):
        convert(pa.array([0, raw], pa.int32()).view(pa.date32()), "date", pa.date32())


@pytest.mark.parametrize(("raw", "message"), [
    (-9222425352054775809, "value infinity has no timestamp"),
    (-9222425352054775808, "value -infinity is before 0001-01-01"),
    (-62167183200000000, r"value 0001-01-01 10:00:00 BC is before"),
    (-9222426057709551617, "is beyond the range of timestamp"),
])
def test_timestamps_the_mapping_refuses_fail_naming_the_value(raw, message):
    array = pa.array([0, raw], pa.int64()).view(pa.timestamp("us", tz="UTC"))
    with pytest.raises(SourceError, match=message):
        convert(array, "timestamptz", pa.timestamp("us", tz="UTC"))


def test_extreme_values_the_mapping_holds_pass_unchanged():
    days = pa.array([-719162, 2145042905], pa.int32()).view(pa.date32())
    converted = copyconvert.convert_column(days, column("c", "date", pa.date32()))
    assert converted.view(pa.int32()).to_pylist() == [-719162, 2145042905]
    stamps = pa.array([-62135596800000000, 253402300799999999], pa.int64())
    assert convert(stamps.view(pa.timestamp("us")), "timestamp", pa.timestamp("us")) == [
        dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)]


def test_time_2400_fails():
    with pytest.raises(SourceError, match="24:00:00"):
        convert(pa.array([86_400_000_000], pa.int64()).view(pa.time64("us")), "time",
                pa.time64("us"))


def test_wire_columns_are_decoded_by_the_given_loader():
    wire = FastColumn(plan("iv", "interval", pa.string()), Carry.WIRE, "interval_send",
                      lambda data: f"<{bytes(data).hex()}>")
    assert copyconvert.convert_column(pa.array([b"\x01", None]), wire).to_pylist() == [
        "<01>", None]


def test_an_unexpected_driver_type_is_reported_before_conversion():
    with pytest.raises(SourceError, match="'n' as int64"):
        copyconvert.check_schema(pa.schema([("n", pa.int64())]),
                              [column("n", "numeric", pa.decimal128(9, 2))])


def test_the_drivers_extension_types_are_accepted_and_unwrapped():
    uuid_type, json_type = pa.uuid(), pa.json_()
    copyconvert.check_schema(pa.schema([("u", uuid_type), ("j", json_type)]),
                          [column("u", "uuid", pa.string()), column("j", "jsonb", pa.string())])
    raw = pa.ExtensionArray.from_storage(uuid_type, pa.array([bytes(range(16))],
                                                              pa.binary(16)))
    assert convert(raw, "uuid", pa.string()) == ["00010203-0405-0607-0809-0a0b0c0d0e0f"]
    text = pa.ExtensionArray.from_storage(json_type, pa.array(['{"a": 1}']))
    assert convert(text, "jsonb", pa.string()) == ['{"a": 1}']


def test_only_the_whole_table_select_of_a_table_export_is_split_into_ranges():
    assert copyplan.reads_whole_table("SELECT * FROM public.t", "public.t")
    assert copyplan.reads_whole_table("select *  from Public.T;\n", "public.t")
    assert not copyplan.reads_whole_table("SELECT id FROM public.t", "public.t")
    assert not copyplan.reads_whole_table("SELECT * FROM public.t WHERE id > 1", "public.t")


def _cover(ranges, seconds_per_block):
    taken = []
    while (block_range := ranges.take()) is not None:
        taken.append(block_range)
        lo, hi = block_range
        ranges.took(block_range, (hi - lo) * seconds_per_block if hi is not None else 0)
    return taken


@pytest.mark.parametrize("seconds_per_block", [0.0, 1e-6, 1e-4, 1e-2])
def test_block_ranges_cover_every_block_once_whatever_the_speed(seconds_per_block):
    ranges = copyplan.BlockRanges(100_000, first=1024)
    taken = _cover(ranges, seconds_per_block)
    assert taken[0] == (0, 1024)
    assert taken[-1][1] is None
    for (_, hi), (lo, _) in itertools.pairwise(taken):
        assert hi == lo  # contiguous, no gap, no overlap
    assert taken[-1][0] < 100_000 <= taken[-1][0] + copyplan.MAX_BLOCKS_PER_RANGE


def test_block_ranges_grow_to_the_target_duration_at_most_doubling():
    ranges = copyplan.BlockRanges(1_000_000, first=1024, target_s=0.25)
    sizes = [hi - lo for lo, hi in _cover(ranges, 0.25 / 8192)[:-1]]
    assert sizes[:5] == [1024, 2048, 4096, 8192, 8192]  # 8192 blocks take the target


def test_block_ranges_shrink_at_once_on_a_slow_server_but_not_below_the_floor():
    ranges = copyplan.BlockRanges(1_000_000, first=1024, target_s=0.25)
    first = ranges.take()
    ranges.took(first, 2.5)  # ten times the target
    lo, hi = ranges.take()
    assert hi - lo == 102
    ranges.took((lo, hi), 100.0)
    lo, hi = ranges.take()
    assert hi - lo == copyplan.MIN_BLOCKS_PER_RANGE
    assert ranges.taken == 3


def test_block_ranges_of_a_small_table_are_one_open_range():
    ranges = copyplan.BlockRanges(1000, first=1024)
    assert not ranges.spans_several()
    assert ranges.take() == (0, None)
    assert ranges.take() is None
