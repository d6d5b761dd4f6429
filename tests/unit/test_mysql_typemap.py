"""MySQL source, pure logic: field metadata → mapping, overrides, error classification, and
the decoding of the text protocol's values (zero dates, booleans, bits, geometry, TIME)."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

import pyarrow as pa
import pytest
from rivet_mysql import builders
from rivet_mysql import typemap as t
from rivet_mysql.columns import ColumnPlan, build_column, unsupported
from rivet_mysql.errors import ERRORS

from rivet_core.errors import SourceError, UnsupportedTypeError
from rivet_core.types import Fidelity, apply_override

UTF8MB4 = 45



def override(column, key, target):
    """The column as an [exports.columns] override makes it (what the source applies)."""
    return apply_override(column, target, t.rescue_for(key, target))

def field(type_code: int, *, length: int = 11, flags: int = 0, charset: int = t.BINARY_CHARSET,
          decimals: int = 0, name: str = "c") -> t.MyField:
    return t.MyField(name=name, type_code=type_code, flags=flags, charsetnr=charset,
                     length=length, decimals=decimals)


U = t.UNSIGNED_FLAG


@pytest.mark.parametrize(("meta", "key", "source_type", "arrow_type", "fidelity", "logical"), [
    (field(t.TINY, length=4), "tinyint", "tinyint", pa.int8(), Fidelity.EXACT, None),
    (field(t.TINY, length=3, flags=U), "tinyint unsigned", "tinyint unsigned", pa.int16(),
     Fidelity.WIDENED, None),
    (field(t.TINY, length=1), "tinyint(1)", "tinyint(1)", pa.bool_(), Fidelity.EXACT, None),
    (field(t.SHORT, length=6), "smallint", "smallint", pa.int16(), Fidelity.EXACT, None),
    (field(t.SHORT, length=5, flags=U), "smallint unsigned", "smallint unsigned", pa.int32(),
     Fidelity.WIDENED, None),
    (field(t.INT24, length=9), "mediumint", "mediumint", pa.int32(), Fidelity.WIDENED, None),
    (field(t.INT24, length=8, flags=U), "mediumint unsigned", "mediumint unsigned",
     pa.int32(), Fidelity.WIDENED, None),
    (field(t.LONG), "int", "int", pa.int32(), Fidelity.EXACT, None),
    (field(t.LONG, length=10, flags=U), "int unsigned", "int unsigned", pa.int64(),
     Fidelity.WIDENED, None),
    (field(t.LONGLONG, length=20), "bigint", "bigint", pa.int64(), Fidelity.EXACT, None),
    (field(t.LONGLONG, length=20, flags=U), "bigint unsigned", "bigint unsigned", pa.uint64(),
     Fidelity.EXACT, None),
    (field(t.NEWDECIMAL, length=12, decimals=2), "decimal", "decimal(10,2)",
     pa.decimal128(10, 2), Fidelity.EXACT, None),
    (field(t.NEWDECIMAL, length=66, decimals=30, flags=U), "decimal",
     "decimal(65,30) unsigned", pa.decimal256(65, 30), Fidelity.EXACT, None),
    (field(t.NEWDECIMAL, length=39), "decimal", "decimal(38,0)", pa.decimal128(38, 0),
     Fidelity.EXACT, None),
    (field(t.DOUBLE, length=22, decimals=31), "double", "double", pa.float64(),
     Fidelity.EXACT, None),
    (field(t.FLOAT, length=12, decimals=31), "float", "float", None, Fidelity.UNSUPPORTED,
     None),
    (field(t.FLOAT, length=10, decimals=4), "float(m,d)", "float(10,4)", None,
     Fidelity.UNSUPPORTED, None),
    (field(t.DOUBLE, length=21, decimals=4), "double(m,d)", "double(21,4)", None,
     Fidelity.UNSUPPORTED, None),
    (field(t.BIT, length=1), "bit(1)", "bit(1)", pa.bool_(), Fidelity.EXACT, None),
    (field(t.BIT, length=64), "bit(n)", "bit(64)", pa.uint64(), Fidelity.EXACT, None),
    (field(t.YEAR, length=4), "year", "year", pa.int16(), Fidelity.EXACT, None),
    (field(t.DATE, length=10), "date", "date", pa.date32(), Fidelity.EXACT, None),
    (field(t.DATETIME, length=26, decimals=6), "datetime", "datetime(6)", pa.timestamp("us"),
     Fidelity.EXACT, None),
    (field(t.DATETIME, length=19), "datetime", "datetime", pa.timestamp("us"),
     Fidelity.EXACT, None),
    (field(t.TIMESTAMP, length=23, decimals=3), "timestamp", "timestamp(3)",
     pa.timestamp("us", tz="UTC"), Fidelity.EXACT, None),
    (field(t.TIME, length=17, decimals=6), "time", "time(6)", pa.string(), Fidelity.EXACT,
     "mysql_time"),
    (field(t.STRING, charset=UTF8MB4), "char", "char", pa.string(), Fidelity.EXACT, None),
    (field(t.STRING), "binary", "binary", pa.binary(), Fidelity.EXACT, None),
    (field(t.VAR_STRING, charset=UTF8MB4), "varchar", "varchar", pa.string(), Fidelity.EXACT,
     None),
    (field(t.VAR_STRING), "varbinary", "varbinary", pa.binary(), Fidelity.EXACT, None),
    (field(t.BLOB, charset=UTF8MB4), "text", "text", pa.string(), Fidelity.EXACT, None),
    (field(t.BLOB), "blob", "blob", pa.binary(), Fidelity.EXACT, None),
    (field(t.STRING, charset=UTF8MB4, flags=t.ENUM_FLAG), "enum", "enum", pa.string(),
     Fidelity.EXACT, "enum"),
    (field(t.STRING, charset=UTF8MB4, flags=t.SET_FLAG), "set", "set", pa.string(),
     Fidelity.EXACT, "set"),
    (field(t.JSON), "json", "json", pa.string(), Fidelity.EXACT, "json"),
    (field(t.GEOMETRY), "geometry", "geometry", pa.binary(), Fidelity.EXACT, "ewkb"),
    (field(t.NULL), "null", "null", pa.null(), Fidelity.EXACT, None),
])
def test_fields_map_to_their_arrow_type(meta, key, source_type, arrow_type, fidelity,
                                        logical):
    got_key, column = t.map_field(meta)
    assert got_key == key
    assert (column.source_type, column.arrow_type, column.fidelity, column.logical_type) == (
        source_type, arrow_type, fidelity, logical)


def test_unknown_type_code_is_unsupported():
    key, column = t.map_field(field(242))  # MySQL 8.4 VECTOR
    assert key is None and column.fidelity is Fidelity.UNSUPPORTED


def test_every_key_map_field_returns_has_a_builder_and_a_table_row():
    keys = set(t.TYPES)
    assert set(builders.BUILDERS) | {"date", "datetime", "timestamp"} == keys - {
        "float", "float(m,d)", "double(m,d)"}


@pytest.mark.parametrize(("target", "fidelity"), [
    (pa.float64(), Fidelity.LOSSY),
    (pa.float32(), Fidelity.LOSSY),
    (pa.decimal128(20, 6), Fidelity.LOSSY),
    (pa.string(), Fidelity.LOSSY),
])
def test_rounded_floats_can_only_be_rescued_as_lossy(target, fidelity):
    key, column = t.map_field(field(t.FLOAT, length=12, decimals=31))
    rescued = override(column, key, target)
    assert (rescued.arrow_type, rescued.fidelity) == (target, fidelity)
    assert "rounded" in rescued.note and rescued.override == str(target)
    assert override(column, key, pa.date32()).arrow_type is None


def test_tinyint1_override_to_an_integer_is_built_from_the_text():
    key, column = t.map_field(field(t.TINY, length=1))
    assert t.rescue_for(key, pa.int8()) is not None
    assert override(column, key, pa.int16()).fidelity is Fidelity.EXACT


def test_time_override_to_time64_is_a_rescue_and_other_overrides_cast():
    key, column = t.map_field(field(t.TIME, length=10))
    assert override(column, key, pa.time64("us")).fidelity is Fidelity.EXACT
    assert t.rescue_for(key, pa.time64("us")) is not None
    cast = override(column, key, pa.large_string())
    assert cast.arrow_type == pa.large_string() and "cast" in cast.note


def test_unsupported_error_suggests_a_cast_to_double_for_rounded_floats():
    fields = [field(t.LONG, name="id"), field(t.FLOAT, length=12, decimals=31, name="f"),
              field(242, name="v")]
    mapped = [t.map_field(f) for f in fields]
    error = unsupported([c for _, c in mapped], [k for k, _ in mapped], "query")
    assert isinstance(error, UnsupportedTypeError)
    assert "2 columns" in error.message and "'f' (float" in error.message
    assert error.hint is not None
    assert "CAST(`f` AS DOUBLE)" in error.hint and 'f = "float64"' in error.hint
    assert "CAST(`v` AS CHAR)" in error.hint
    assert [c.name for c in error.columns] == ["id", "f", "v"]


@pytest.mark.parametrize(("code", "transient"), [
    (2013, True), (2006, True), (2003, True), (1205, True), (1213, True), (1040, True),
    (1053, True), (3024, True), (1969, True), (1317, True), (1927, True), (4031, True),
    (1045, False), (1044, False), (1064, False), (1146, False), (1142, False),
    (1049, False), (1054, False), (1792, False), (1366, False), (9999, False),
])
def test_error_numbers_are_classified(code, transient):
    assert ERRORS.transient(code, "lost connection, gone away (the text is ignored)") is transient


@pytest.mark.parametrize(("message", "lost", "transient"), [
    ("Lost connection to MySQL server during query", False, True),
    ("[Errno 104] Connection reset by peer", False, True),
    ("something odd on the socket", True, True),
    ("something odd in the driver", False, False),
])
def test_failures_without_a_number_are_classified_by_their_text(message, lost, transient):
    assert ERRORS.transient(None, message, connection_lost=lost) is transient


def test_error_text_and_hints():
    assert ERRORS.text("query", 1064, "You have an error\nin your SQL") == (
        "query: You have an error (MySQL error 1064)")
    assert "statement_timeout_s" in (ERRORS.hint(1969, "") or "")
    assert "statement_timeout_s" in (ERRORS.hint(3024, "") or "")
    assert ERRORS.hint(1064, "") is None and ERRORS.hint(None, "") is None


# ------------------------------------------------------------------------------ decoding


def build(key: str, values, zero_dates: builders.ZeroDates = "error", name: str = "c"):
    natural = t.TYPES[key].arrow_type
    return builders.builder_for(key, zero_dates)(values, natural, name)


def test_integers_parse_to_their_width_and_unsigned_bigint_does_not_wrap():
    assert build("bigint unsigned", [b"18446744073709551615", b"0", None]).to_pylist() == [
        2**64 - 1, 0, None]
    assert build("tinyint", [b"-128", b"127"]).type == pa.int8()
    assert build("int unsigned", [b"4294967295"]).to_pylist() == [4294967295]


def test_decimal_text_parses_exactly():
    values = [b"-0.50", b"99999999.99", None]
    array = builders.build_number(values, pa.decimal128(10, 2), "d")
    assert array.to_pylist() == [Decimal("-0.50"), Decimal("99999999.99"), None]


def test_a_value_that_does_not_fit_fails_naming_column_and_value():
    with pytest.raises(SourceError, match=r"column 'd': value '1.234'"):
        builders.build_number([b"1.5", b"1.234"], pa.decimal128(10, 2), "d")


def test_tinyint1_is_a_boolean_only_while_values_are_0_or_1():
    assert build("tinyint(1)", [b"1", b"0", None]).to_pylist() == [True, False, None]
    with pytest.raises(SourceError, match=r"'flag'.*value 2") as info:
        build("tinyint(1)", [b"1", b"2"], name="flag")
    assert 'flag = "int8"' in (info.value.hint or "")


def test_bits_become_booleans_and_unsigned_integers():
    assert build("bit(1)", [b"\x01", b"\x00", None]).to_pylist() == [True, False, None]
    assert build("bit(n)", [b"\x15", b"\xff" * 8, b"\x00\x01", None]).to_pylist() == [
        21, 2**64 - 1, 1, None]


def test_dates_and_timestamps_parse_and_timestamps_are_utc():
    assert build("date", [b"2024-02-29", b"1000-01-01", b"9999-12-31"]).to_pylist() == [
        dt.date(2024, 2, 29), dt.date(1000, 1, 1), dt.date(9999, 12, 31)]
    stamp = build("timestamp", [b"2024-01-01 00:00:00.500000"])
    assert stamp.type == pa.timestamp("us", tz="UTC")
    assert stamp.to_pylist() == [dt.datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=dt.UTC)]
    naive = build("datetime", [b"2024-01-01 10:00:00.123", b"2024-01-01 10:00:00"])
    assert naive.to_pylist() == [dt.datetime(2024, 1, 1, 10, 0, 0, 123000),
                                 dt.datetime(2024, 1, 1, 10)]


@pytest.mark.parametrize("bad", [b"0000-00-00", b"2024-00-15", b"2024-02-30", b"2023-02-29"])
def test_zero_and_invalid_dates_fail_by_default_naming_the_value(bad):
    with pytest.raises(SourceError, match=f"'when'.*{bad.decode()}") as info:
        build("date", [b"2024-01-01", bad], name="when")
    assert 'zero_dates = "null"' in (info.value.hint or "")


def test_zero_and_invalid_dates_become_null_when_asked():
    values = [b"2024-01-01 10:00:00", b"0000-00-00 00:00:00", b"2024-02-30 01:00:00", None]
    assert build("datetime", values, "null").to_pylist() == [
        dt.datetime(2024, 1, 1, 10), None, None, None]
    assert build("date", [b"0000-00-00", b"2024-02-29"], "null").to_pylist() == [
        None, dt.date(2024, 2, 29)]


def test_year_zero_with_a_real_month_and_day_is_a_date():
    array = build("date", [b"0000-01-01"])
    assert array.cast(pa.int32()).to_pylist() == [-719_528]


def test_time_is_kept_as_the_server_text():
    values = [b"-838:59:59.000000", b"838:59:59", b"00:00:00.5", None]
    assert build("time", values).to_pylist() == [
        "-838:59:59.000000", "838:59:59", "00:00:00.5", None]


def test_time_override_makes_times_of_day_and_refuses_durations():
    array = builders.build_time_of_day([b"23:59:59.999999", b"00:00:00", b"12:30:00.5", None],
                                     pa.time64("us"), "t")
    assert array.to_pylist() == [dt.time(23, 59, 59, 999999), dt.time(0), dt.time(12, 30, 0,
                                 500000), None]
    for bad in (b"24:00:00", b"-00:00:01", b"838:59:59"):
        with pytest.raises(SourceError, match="not a time of day"):
            builders.build_time_of_day([bad], pa.time64("us"), "t")


def test_strings_must_be_utf8():
    assert build("varchar", ["😀".encode(), b"", None]).to_pylist() == ["😀", "", None]
    with pytest.raises(SourceError, match="UTF-8"):
        build("varchar", [b"\xff"])


def wkb_point(x: float, y: float, order: str = "<") -> bytes:
    marker = b"\x01" if order == "<" else b"\x00"
    return marker + struct.pack(f"{order}Idd", 1, x, y)


def test_geometry_without_srid_is_plain_wkb():
    value = struct.pack("<I", 0) + wkb_point(1.0, 2.0)
    assert builders.to_ewkb(value) == wkb_point(1.0, 2.0)


@pytest.mark.parametrize("order", ["<", ">"])
def test_geometry_with_an_srid_becomes_ewkb_in_the_wkb_byte_order(order):
    value = struct.pack("<I", 4326) + wkb_point(1.0, 2.0, order)
    ewkb = builders.to_ewkb(value)
    (geometry_type, srid) = struct.unpack(f"{order}II", ewkb[1:9])
    assert geometry_type == 0x20000001 and srid == 4326
    assert ewkb[9:] == wkb_point(1.0, 2.0, order)[5:]


def test_override_casts_are_checked():
    plan = ColumnPlan("n", builders.build_number, pa.int64(), pa.int16(), False)
    assert build_column([b"7"], plan).to_pylist() == [7]
    with pytest.raises(SourceError, match="'n'"):
        build_column([b"100000"], plan)


# ------------------------------------------------------------------- session and TLS


def test_session_statements_set_and_restore_only_what_the_read_changes():
    from rivet_mysql.session import Session

    from rivet_core.backends import ReadOptions

    mariadb = Session(True, ReadOptions(statement_timeout_s=2.5, lock_timeout_s=0.2))
    assert mariadb.save_sql() == (
        "SELECT @@session.time_zone, @@session.max_statement_time, "
        "@@session.lock_wait_timeout, @@session.innodb_lock_wait_timeout")
    assert mariadb.set_sql(mariadb.values) == (
        "SET SESSION time_zone = %s, SESSION max_statement_time = %s, "
        "SESSION lock_wait_timeout = %s, SESSION innodb_lock_wait_timeout = %s",
        ("+00:00", 2.5, 1, 1))
    mariadb.remember((b"SYSTEM", b"0.000000", b"86400", b"50"))
    assert mariadb.saved == ["SYSTEM", 0.0, 86400, 50]
    mysql = Session(False, ReadOptions(statement_timeout_s=2.5))
    assert mysql.set_sql(mysql.values) == (
        "SET SESSION time_zone = %s, SESSION max_execution_time = %s", ("+00:00", 2500))
    bare = Session(False, ReadOptions())
    assert bare.save_sql() == "SELECT @@session.time_zone"
