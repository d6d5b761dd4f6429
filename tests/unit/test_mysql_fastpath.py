"""MySQL ConnectorX path, pure logic: which carrier each column type gets, the statements
it sends, key ranges of a parallel read, batch sizing, and errors read back from
ConnectorX's text."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest
from rivet_mysql import builders, carriers, cxread, errors, keyranges
from rivet_mysql.columns import ColumnPlan

from rivet_core.config.connection import ConnectionParams
from rivet_core.errors import SourceError, TransientSourceError


def plan(key: str, natural: pa.DataType | None, target: pa.DataType | None = None,
         direct: bool = False, name: str = "c") -> ColumnPlan:
    target = target or natural
    assert target is not None
    build = builders.builder_for(key, "error") if key in builders.BUILDERS or key in (
        "date", "datetime", "timestamp") else builders.build_text
    return ColumnPlan(name, build, natural, target, direct)


@pytest.mark.parametrize("key", ["decimal", "date", "datetime", "timestamp", "time", "json"])
def test_types_connectorx_reads_wrongly_travel_as_the_servers_text(key):
    natural = {"decimal": pa.decimal128(12, 2), "date": pa.date32(),
               "datetime": pa.timestamp("us"), "timestamp": pa.timestamp("us", tz="UTC"),
               "time": pa.string(), "json": pa.string()}[key]
    carrier = carriers.carrier_for(key, plan(key, natural))
    assert isinstance(carrier, carriers.Carrier)
    assert carrier.cast and carrier.expr == "CAST(`c` AS CHAR) AS `c`"
    assert carrier.accepts(pa.string()) and not carrier.accepts(pa.int64())


@pytest.mark.parametrize(("key", "natural", "wire"), [
    ("bigint unsigned", pa.uint64(), pa.uint64()),
    ("int unsigned", pa.int64(), pa.uint32()),
    ("tinyint", pa.int8(), pa.int8()),
    ("year", pa.int16(), pa.int16()),
    ("double", pa.float64(), pa.float64()),
    ("varchar", pa.string(), pa.string()),
    ("blob", pa.binary(), pa.large_binary()),
])
def test_exact_types_travel_as_they_are_and_are_cast_safely(key, natural, wire):
    carrier = carriers.carrier_for(key, plan(key, natural))
    assert isinstance(carrier, carriers.Carrier)
    assert not carrier.cast and carrier.expr == "`c`" and carrier.accepts(wire)


def test_unsigned_values_convert_without_wrapping():
    carrier = carriers.carrier_for("bigint unsigned", plan("bigint unsigned", pa.uint64()))
    assert isinstance(carrier, carriers.Carrier)
    assert carrier.convert(pa.array([2**64 - 1, None], pa.uint64())).to_pylist() == [
        2**64 - 1, None]
    widened = carriers.carrier_for("int unsigned", plan("int unsigned", pa.int64()))
    assert isinstance(widened, carriers.Carrier)
    out = widened.convert(pa.array([2**32 - 1], pa.uint32()))
    assert out.type == pa.int64() and out.to_pylist() == [2**32 - 1]


def test_decimal_text_is_parsed_exactly_at_any_precision():
    natural = pa.decimal256(65, 30)
    carrier = carriers.carrier_for("decimal", plan("decimal", natural))
    assert isinstance(carrier, carriers.Carrier)
    nines = "9" * 35 + "." + "9" * 30
    out = carrier.convert(pa.array([nines, None], pa.string()))
    assert out.type == natural and str(out[0].as_py()) == nines


def test_tinyint1_outside_0_and_1_fails_instead_of_becoming_true():
    carrier = carriers.carrier_for("tinyint(1)", plan("tinyint(1)", pa.bool_()))
    assert isinstance(carrier, carriers.Carrier)
    assert carrier.convert(pa.array([0, 1, None], pa.int8())).to_pylist() == [False, True, None]
    with pytest.raises(SourceError, match="not a boolean"):
        carrier.convert(pa.array([2], pa.int8()))


def test_bits_travel_as_unsigned_numbers_and_geometry_as_its_bytes():
    bits = carriers.carrier_for("bit(n)", plan("bit(n)", pa.uint64()))
    assert isinstance(bits, carriers.Carrier) and bits.expr == "CAST(`c` AS UNSIGNED) AS `c`"
    assert bits.accepts(pa.uint32()) and not bits.accepts(pa.int64())
    geometry = carriers.carrier_for("geometry", plan("geometry", pa.binary()))
    assert isinstance(geometry, carriers.Carrier) and geometry.expr == "CAST(`c` AS BINARY) AS `c`"
    point = bytes(4) + bytes.fromhex("0101000000") + bytes(16)
    assert geometry.convert(pa.array([point], pa.large_binary())).to_pylist() == [point[4:]]


def test_a_lossy_float_override_cannot_be_carried():
    reason = carriers.carrier_for("float", plan("float", None, pa.float64(), direct=True))
    assert isinstance(reason, str) and "rounded text" in reason


def test_an_override_is_applied_after_the_natural_conversion():
    carrier = carriers.carrier_for("int", plan("int", pa.int32(), pa.int16()))
    assert isinstance(carrier, carriers.Carrier)
    assert carrier.convert(pa.array([7], pa.int32())).type == pa.int16()
    with pytest.raises(SourceError, match="'c'"):
        carrier.convert(pa.array([100_000], pa.int32()))


def test_order_by_is_found_in_any_case_and_spacing():
    assert carriers.has_order_by("select * from t order\n  by id")
    assert not carriers.has_order_by("SELECT border, byline FROM t")


def test_select_sql_wraps_only_when_a_column_needs_a_cast():
    native = carriers.carrier_for("int", plan("int", pa.int32(), name="i"))
    text = carriers.carrier_for("date", plan("date", pa.date32(), name="d"))
    assert isinstance(native, carriers.Carrier) and isinstance(text, carriers.Carrier)
    assert carriers.select_sql([native], table=None, query="SELECT i FROM t") == "SELECT i FROM t"
    assert carriers.select_sql([native, text], table=None, query="SELECT i, d FROM t") == (
        "SELECT `i`, CAST(`d` AS CHAR) AS `d` FROM (SELECT i, d FROM t) AS _rivet_cx")
    assert carriers.select_sql([native, text], table="s.t", query="SELECT * FROM s.t") == (
        "SELECT `i`, CAST(`d` AS CHAR) AS `d` FROM s.t")
    assert carriers.range_select([native], "t", "id", 10, 20) == (
        "SELECT `i` FROM t WHERE `id` >= 10 AND `id` < 20")
    assert carriers.range_select([native], "t", "id", 10, None) == (
        "SELECT `i` FROM t WHERE `id` >= 10")


def test_key_ranges_cover_every_key_and_stay_open_at_both_ends():
    ranges = keyranges.key_ranges(1, 1000, estimated_rows=1000, parallel=2, rows_per_range=300)
    assert len(ranges) == 4
    assert ranges[0][0] == -(2**63) and ranges[-1][1] is None
    for (_, hi), (lo, _) in itertools.pairwise(ranges):
        assert hi == lo
    assert keyranges.key_ranges(5, 5, estimated_rows=1, parallel=4, rows_per_range=10) == [
        (-(2**63), None)]
    assert len(keyranges.key_ranges(1, 10**9, estimated_rows=10, parallel=3,
                                    rows_per_range=10)) == 3


def test_ranges_are_bounded_in_bytes_so_wide_tables_get_more_of_them():
    assert keyranges.range_rows(72) == keyranges.RANGE_BYTES // 72
    assert keyranges.range_rows(2_756) == max(keyranges.MIN_RANGE_ROWS,
                                              keyranges.RANGE_BYTES // 2_756)
    assert keyranges.range_rows(10**9) == keyranges.MIN_RANGE_ROWS
    assert keyranges.range_rows(None) == keyranges.RANGE_BYTES


def test_wide_rows_shrink_the_batch():
    assert keyranges.batch_rows(10_000, None, 72) == 10_000
    assert keyranges.batch_rows(10_000, None, 2_756) == (16 << 20) // 2_756
    assert keyranges.batch_rows(10_000, 1 << 20, 2_756) == (1 << 20) // 2_756
    assert keyranges.batch_rows(10_000, None, None) == 10_000
    assert keyranges.batch_rows(10, None, 10**9) == 1


@pytest.mark.parametrize(("text", "cls", "code"), [
    ("cx writer failed: Source(MySQLError(MySqlError { ERROR 1969 (70100): Query execution "
     "was interrupted (max_statement_time exceeded) }))", TransientSourceError, "1969"),
    ("MySqlError { ERROR 1146 (42S02): Table 'd.nope' doesn't exist }", SourceError, "1146"),
    ("timed out waiting for connection: DriverError { Could not connect to address "
     "`127.0.0.1:1': Connection refused (os error 111) }", TransientSourceError, None),
    ("Could not retrieve `Option<NaiveTime>`: Couldn't convert the value", SourceError, None),
])
def test_connectorx_errors_keep_the_server_error_number(text, cls, code):
    error = errors.connectorx_error(RuntimeError(text), "query")
    assert type(error) is cls
    assert str(error).startswith("query: ")
    if code:
        assert str(error).endswith(f"(MySQL error {code})")


def test_connection_url_encodes_credentials_and_never_prefers_a_socket():
    params = ConnectionParams(host="db", port=3307, user="r@t", password="p:w/x", database="d",
                              query={})
    assert cxread.connection_url(params, 5) == (
        "mysql://r%40t:p%3Aw%2Fx@db:3307/d?tcp_connect_timeout_ms=5000&prefer_socket=false")


def test_session_statements_set_utc_timeouts_then_a_read_only_transaction():
    assert cxread.session_statements([("time_zone", "+00:00"), ("max_statement_time", 2.5)]) == [
        "SET NAMES utf8mb4",
        "SET SESSION time_zone = '+00:00', SESSION max_statement_time = 2.5",
        "START TRANSACTION READ ONLY"]


def test_native_timestamps_are_the_utc_instant_and_datetimes_stay_naive():
    ts = carriers.carrier_for("timestamp", plan("timestamp", pa.timestamp("us", tz="UTC")),
                       native_dates=True)
    dt_ = carriers.carrier_for("datetime", plan("datetime", pa.timestamp("us")), native_dates=True)
    assert isinstance(ts, carriers.Carrier) and isinstance(dt_, carriers.Carrier)
    assert not ts.cast and ts.accepts(pa.timestamp("us")) and not ts.accepts(pa.string())
    wire = pa.array([1_000_000, None], pa.timestamp("us"))
    assert ts.convert(wire).type == pa.timestamp("us", tz="UTC")
    assert ts.convert(wire).cast(pa.int64()).to_pylist() == [1_000_000, None]
    assert dt_.convert(wire).type == pa.timestamp("us")


def test_a_refused_zero_date_names_the_date_columns_and_the_zero_dates_key():
    text = ("Could not retrieve `core::option::Option<chrono::naive::date::NaiveDate>`: "
            "Couldn't convert the value `Date(\"'0000-00-00'\")` to a desired type")
    error = errors.connectorx_error(RuntimeError(text), "query", ["d", "ts"])
    assert str(error) == ("query: column 'd', 'ts': value '0000-00-00' is a zero or invalid "
                          "date, which no date or timestamp can hold")
    assert 'zero_dates = "null"' in (error.hint or "")
