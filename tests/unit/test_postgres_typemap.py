"""PostgreSQL source, pure logic: the type table, catalog resolution, numeric modifiers,
overrides, SQLSTATE classification, and the text Rivet writes for types without an Arrow
equivalent (checked against PostgreSQL's own output in the integration tests)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
from rivet_postgres import typemap as t
from rivet_postgres.builders import suggest_decimal
from rivet_postgres.columns import unsupported
from rivet_postgres.errors import ERRORS
from rivet_postgres.pgtext import (
    inet_text,
    interval_iso,
    pg_date_text,
    pg_timestamp_text,
    timetz_text,
)

from rivet_core.errors import UnsupportedTypeError
from rivet_core.types import Fidelity, apply_override, unmatched_overrides

CITEXT, MOOD, MOOD_ARRAY, POSINT, POSINT_ARRAY, RANGE = 90001, 90002, 90003, 90004, 90005, 90006
CATALOG = {
    CITEXT: t.CatalogType(oid=CITEXT, typname="citext", typtype="b"),
    MOOD: t.CatalogType(oid=MOOD, typname="mood", typtype="e"),
    MOOD_ARRAY: t.CatalogType(oid=MOOD_ARRAY, typname="_mood", typtype="b", element_oid=MOOD),
    POSINT: t.CatalogType(oid=POSINT, typname="posint", typtype="d", base_oid=t.NUMERIC,
                          base_typmod=((12 << 16) | 2) + 4),
    POSINT_ARRAY: t.CatalogType(oid=POSINT_ARRAY, typname="_posint", typtype="b",
                                element_oid=POSINT),
    RANGE: t.CatalogType(oid=RANGE, typname="int4range", typtype="r"),
    1017: t.CatalogType(oid=1017, typname="_point", typtype="b", element_oid=600),
}


def numeric_typmod(precision: int, scale: int) -> int:
    """What PostgreSQL puts in the column description for numeric(precision, scale)."""
    return ((precision << 16) | (scale & 0x7FF)) + 4


def mapped(oid: int, typmod: int = -1, name: str = "c", source_type: str = "whatever",
           money_scale: int | None = None):
    return t.map_column(name, t.resolve(oid, typmod, CATALOG), source_type, money_scale)


@pytest.mark.parametrize(("oid", "arrow_type", "fidelity", "logical"), [
    (t.BOOL, pa.bool_(), Fidelity.EXACT, None),
    (t.INT2, pa.int16(), Fidelity.EXACT, None),
    (t.INT4, pa.int32(), Fidelity.EXACT, None),
    (t.INT8, pa.int64(), Fidelity.EXACT, None),
    (t.OID, pa.int64(), Fidelity.WIDENED, None),
    (t.FLOAT4, pa.float32(), Fidelity.EXACT, None),
    (t.FLOAT8, pa.float64(), Fidelity.EXACT, None),
    (t.TEXT, pa.string(), Fidelity.EXACT, None),
    (t.VARCHAR, pa.string(), Fidelity.EXACT, None),
    (t.BPCHAR, pa.string(), Fidelity.EXACT, None),
    (t.NAME, pa.string(), Fidelity.EXACT, None),
    (t.BYTEA, pa.binary(), Fidelity.EXACT, None),
    (t.DATE, pa.date32(), Fidelity.EXACT, None),
    (t.TIME, pa.time64("us"), Fidelity.EXACT, None),
    (t.TIMESTAMP, pa.timestamp("us"), Fidelity.EXACT, None),
    (t.TIMESTAMPTZ, pa.timestamp("us", tz="UTC"), Fidelity.EXACT, None),
    (t.UUID, pa.string(), Fidelity.EXACT, "uuid"),
    (t.JSON, pa.string(), Fidelity.EXACT, "json"),
    (t.JSONB, pa.string(), Fidelity.EXACT, "json"),
    (t.XML, pa.string(), Fidelity.EXACT, "xml"),
    (t.INTERVAL, pa.string(), Fidelity.EXACT, "interval"),
    (t.TIMETZ, pa.string(), Fidelity.EXACT, "timetz"),
    (t.INET, pa.string(), Fidelity.EXACT, "inet"),
    (t.CIDR, pa.string(), Fidelity.EXACT, "cidr"),
    (t.MACADDR, pa.string(), Fidelity.EXACT, "macaddr"),
    (t.MACADDR8, pa.string(), Fidelity.EXACT, "macaddr8"),
    (t.MONEY, pa.decimal128(19, 2), Fidelity.EXACT, None),
    (CITEXT, pa.string(), Fidelity.EXACT, None),
    (MOOD, pa.string(), Fidelity.EXACT, "enum"),
])
def test_types_map_to_their_arrow_type(oid, arrow_type, fidelity, logical):
    column = mapped(oid)
    assert (column.arrow_type, column.fidelity, column.logical_type) == (
        arrow_type, fidelity, logical)
    assert column.source_type == "whatever"


def test_money_takes_the_scale_of_lc_monetary():
    assert mapped(t.MONEY, money_scale=3).arrow_type == pa.decimal128(19, 3)
    assert mapped(t.MONEY, money_scale=0).arrow_type == pa.decimal128(19, 0)


def test_builtin_oids_are_the_catalog_values():
    # Spot-check against pg_type.dat: a wrong constant would silently mis-map a column.
    # (Every constant is checked against the live catalog in the integration tests.)
    assert (t.BOOL, t.INT8, t.TEXT, t.NUMERIC, t.TIMESTAMPTZ, t.UUID, t.JSONB) == (
        16, 20, 25, 1700, 1184, 2950, 3802)


def test_every_builtin_type_has_an_array_and_a_table_row():
    assert set(t.BUILTIN_ARRAYS.values()) == set(t.BUILTIN)
    assert set(t.BUILTIN.values()) | {"enum", "citext"} == set(t.TYPES)


@pytest.mark.parametrize("oid", [600, 1560, 18, 0, 99999, RANGE])
def test_types_without_a_mapping_are_unsupported(oid):
    # point, bit, "char", no type, an OID the catalog does not know, a range type
    column = mapped(oid)
    assert column.arrow_type is None and column.fidelity is Fidelity.UNSUPPORTED


def test_arrays_map_to_lists_of_the_element_mapping():
    column = mapped(1007)
    assert column.arrow_type == pa.list_(pa.int32()) and column.fidelity is Fidelity.EXACT
    assert "one-dimensional" in column.note
    assert mapped(3807).logical_type == "json[]"
    assert mapped(1182).arrow_type == pa.list_(pa.date32())
    assert mapped(MOOD_ARRAY).arrow_type == pa.list_(pa.string())
    assert mapped(1231, numeric_typmod(10, 2)).arrow_type == pa.list_(pa.decimal128(10, 2))


def test_arrays_of_a_domain_follow_the_domain_to_its_base_type_and_modifier():
    resolved = t.resolve(POSINT_ARRAY, -1, CATALOG)
    assert (resolved.key, resolved.array, resolved.element_oid) == ("numeric", True, POSINT)
    assert mapped(POSINT_ARRAY).arrow_type == pa.list_(pa.decimal128(12, 2))


def test_catalog_rows_needed_are_listed_until_everything_resolves():
    assert t.unknown_oids([t.INT4, 1007, 424242], {}) == {424242}
    partial = {POSINT_ARRAY: CATALOG[POSINT_ARRAY]}
    assert t.unknown_oids([POSINT_ARRAY], partial) == {POSINT}
    assert t.unknown_oids([POSINT_ARRAY, POSINT], CATALOG) == set()


def test_array_of_an_unmapped_type_is_unsupported():
    column = mapped(1017)  # point[]
    assert column.arrow_type is None and "array" in column.note


@pytest.mark.parametrize(("precision", "scale"), [(10, 2), (38, 0), (1, 1), (1000, 500),
                                                 (5, -2), (3, 5), (12, -1000), (1, 1000)])
def test_numeric_typmod_round_trips(precision, scale):
    assert t.decode_numeric_typmod(numeric_typmod(precision, scale)) == (precision, scale)


def test_numeric_typmod_of_the_wire_example():
    assert t.decode_numeric_typmod(655366) == (10, 2)  # numeric(10,2) as psycopg sees it


def test_unconstrained_numeric_is_an_exact_default_decimal_never_float():
    column = mapped(t.NUMERIC)
    assert column.arrow_type == pa.decimal128(38, 20) and column.fidelity is Fidelity.EXACT
    assert "unconstrained" in column.note and "never rounded" in column.note


@pytest.mark.parametrize(("precision", "scale", "expected", "fidelity"), [
    (10, 2, pa.decimal128(10, 2), Fidelity.EXACT),
    (38, 10, pa.decimal128(38, 10), Fidelity.EXACT),
    (39, 0, pa.decimal256(39, 0), Fidelity.EXACT),
    (76, 76, pa.decimal256(76, 76), Fidelity.EXACT),
    (5, -2, pa.decimal128(7, 0), Fidelity.WIDENED),
    (3, 5, pa.decimal128(5, 5), Fidelity.WIDENED),
    (37, -2, pa.decimal256(39, 0), Fidelity.WIDENED),
])
def test_constrained_numeric_maps_to_an_exact_decimal(precision, scale, expected, fidelity):
    column = mapped(t.NUMERIC, numeric_typmod(precision, scale))
    assert (column.arrow_type, column.fidelity) == (expected, fidelity)


@pytest.mark.parametrize(("precision", "scale"), [(77, 0), (1000, 2), (75, -2)])
def test_numeric_wider_than_decimal256_is_unsupported(precision, scale):
    column = mapped(t.NUMERIC, numeric_typmod(precision, scale))
    assert column.arrow_type is None and "76" in column.note


def override(oid: int, target: pa.DataType, typmod: int = -1):
    resolved = t.resolve(oid, typmod, CATALOG)
    return apply_override(t.map_column("c", resolved, "x"), target,
                          t.rescue_for(resolved, target))


def test_decimal_and_string_overrides_of_numeric_are_built_from_the_exact_values():
    column = override(t.NUMERIC, pa.decimal128(38, 30))
    assert column.arrow_type == pa.decimal128(38, 30) and column.fidelity is Fidelity.EXACT
    assert column.override == "decimal128(38, 30)"
    wide = override(t.NUMERIC, pa.decimal256(76, 20), numeric_typmod(1000, 0))
    assert wide.arrow_type == pa.decimal256(76, 20) and wide.fidelity is Fidelity.EXACT
    assert override(t.NUMERIC, pa.string()).arrow_type == pa.string()
    for target in (pa.decimal128(38, 30), pa.string()):
        assert t.rescue_for(t.resolve(t.NUMERIC, -1, {}), target) is not None
    assert t.rescue_for(t.resolve(t.NUMERIC, -1, {}), pa.float64()) is None


def test_float_override_of_numeric_is_a_cast_reported_as_lossy():
    column = override(t.NUMERIC, pa.float64())
    assert column.arrow_type == pa.float64() and column.fidelity is Fidelity.LOSSY


def test_override_cannot_rescue_a_type_without_a_loader():
    assert override(600, pa.string()).arrow_type is None


def test_override_of_a_mapped_column_keeps_its_fidelity_and_drops_logical_type():
    column = override(t.UUID, pa.large_string())
    assert column.arrow_type == pa.large_string() and column.logical_type is None
    same = override(t.INT4, pa.int32())
    assert same.note == "" and same.override == "int32"


def test_override_without_an_arrow_cast_makes_the_column_unsupported():
    column = override(t.BOOL, pa.date32())
    assert column.arrow_type is None and "no cast" in column.note


def test_unsupported_error_names_every_bad_column_with_its_type_and_a_fix():
    resolved = [t.resolve(oid, typmod, CATALOG) for oid, typmod in
                [(t.INT4, -1), (600, -1), (t.NUMERIC, numeric_typmod(100, 2))]]
    columns = [t.map_column(name, r, source) for name, r, source in
               zip(["id", "Where", "amount"], resolved, ["integer", "point", "numeric(100,2)"],
                   strict=True)]
    error = unsupported(columns, resolved, "query")
    assert isinstance(error, UnsupportedTypeError)
    assert "2 columns" in error.message
    assert "'Where' (point" in error.message and "'amount' (numeric(100,2)" in error.message
    assert "'id'" not in error.message
    assert error.hint is not None
    assert 'amount = "decimal(76,20)"' in error.hint and '"Where"::text' in error.hint
    assert error.columns == columns


def test_no_unsupported_error_when_every_column_maps():
    resolved = [t.resolve(t.INT4, -1, {})]
    assert unsupported([t.map_column("id", resolved[0], "integer")], resolved, "q") is None


def test_overrides_naming_absent_columns_are_reported():
    assert unmatched_overrides(["id", "amount"], {"Amount": 1, "id": 2}) == ["Amount"]


@pytest.mark.parametrize(("value", "current", "suggestion"), [
    ("3.141592653589793238462643383279", pa.decimal128(38, 20), "decimal(38,30)"),
    ("1" * 20, pa.decimal128(38, 20), "decimal(40,20)"),
    ("1" * 50, pa.decimal128(38, 20), "decimal(70,20)"),
    ("1" * 60 + ".5", pa.decimal128(38, 20), None),
    ("0.5", pa.decimal128(10, 2), "decimal(38,2)"),
])
def test_a_decimal_that_does_not_fit_suggests_the_override_that_holds_it(value, current,
                                                                        suggestion):
    assert suggest_decimal(Decimal(value), current) == suggestion


@pytest.mark.parametrize(("months", "days", "micros", "text"), [
    (0, 0, 0, "PT0S"),
    (14, -3, 4 * 3_600_000_000 + 5 * 60_000_000 + 6_000_007, "P1Y2M-3DT4H5M6.000007S"),
    (-14, 0, 0, "P-1Y-2M"),
    (0, 1, 0, "P1D"),
    (0, 0, -500_000, "PT-0.5S"),
    (0, 0, -(3_600_000_000 + 1), "PT-1H-0.000001S"),
    (0, 0, 90_000_000, "PT1M30S"),
    (12, 0, 100 * 3_600_000_000, "P1YT100H"),
])
def test_intervals_are_written_as_postgresql_iso_8601_style(months, days, micros, text):
    assert interval_iso(months, days, micros) == text


@pytest.mark.parametrize(("micros", "west", "text"), [
    (0, 0, "00:00:00.000000+00:00"),
    (43_200_500_000, -19_800, "12:00:00.500000+05:30"),
    (86_400_000_000, 3600, "24:00:00.000000-01:00"),
    (1, -(5 * 3600 + 53 * 60 + 28), "00:00:00.000001+05:53:28"),
])
def test_timetz_text_has_microseconds_and_the_offset_east(micros, west, text):
    assert timetz_text(micros, west) == text


def inet_wire(family: int, bits: int, cidr: bool, address: bytes) -> bytes:
    return bytes([family, bits, int(cidr), len(address)]) + address


@pytest.mark.parametrize(("wire", "text"), [
    (inet_wire(2, 32, False, bytes([192, 168, 0, 1])), "192.168.0.1"),
    (inet_wire(2, 24, False, bytes([192, 168, 0, 1])), "192.168.0.1/24"),
    (inet_wire(2, 32, True, bytes([10, 0, 0, 1])), "10.0.0.1/32"),
    (inet_wire(3, 128, False, bytes(16)), "::"),
    (inet_wire(3, 128, False, bytes(15) + b"\x01"), "::1"),
    (inet_wire(3, 128, False, bytes(10) + b"\xff\xff\x01\x02\x03\x04"), "::ffff:1.2.3.4"),
    (inet_wire(3, 128, False, bytes(12) + b"\x01\x02\x03\x04"), "::1.2.3.4"),
    (inet_wire(3, 64, True, bytes.fromhex("20010db8000000000000000000000000")),
     "2001:db8::/64"),
    (inet_wire(3, 128, False, bytes.fromhex("20010db8000000010000000000000001")),
     "2001:db8:0:1::1"),
    (inet_wire(3, 128, False, bytes.fromhex("20010db8000100000001000000000001")),
     "2001:db8:1:0:1::1"),
])
def test_inet_text_is_written_as_postgresql_prints_it(wire, text):
    assert inet_text(wire) == text


@pytest.mark.parametrize(("sqlstate", "transient"), [
    ("08006", True),  # connection_failure
    ("08001", True),
    ("57P01", True),  # admin_shutdown
    ("57P02", True),
    ("57P03", True),
    ("53300", True),  # too_many_connections
    ("40001", True),  # serialization_failure
    ("40P01", True),  # deadlock_detected
    ("57014", True),  # statement timeout
    ("55P03", True),  # lock timeout
    ("42601", False),  # syntax error
    ("42501", False),  # insufficient privilege
    ("42P01", False),  # undefined table
    ("28P01", False),  # invalid password
    ("28000", False),
    ("22012", False),  # division by zero
    ("25006", False),  # read-only transaction
    ("53100", False),  # disk full: not in the retry list
    ("XX000", False),  # internal error: unknown, so permanent
])
def test_sqlstate_classification(sqlstate, transient):
    assert ERRORS.transient(sqlstate, "whatever the text says: connection refused") is transient


@pytest.mark.parametrize(("message", "connection_lost", "transient"), [
    ('connection failed: connection to server at "127.0.0.1", port 1 failed: '
     "Connection refused", True, True),
    ("consuming input failed: server closed the connection unexpectedly", True, True),
    ("connection failed: FATAL:  sorry, too many clients already", True, True),
    ("connection failed: FATAL:  the database system is starting up", True, True),
    ("connection failed: timeout expired", True, True),
    ("something odd happened on the socket", True, True),
    ('connection failed: FATAL:  password authentication failed for user "x"', True, False),
    ('connection failed: FATAL:  database "nope" does not exist', True, False),
    ('connection failed: FATAL:  role "nouser" does not exist', True, False),
    ("connection failed: FATAL:  no pg_hba.conf entry for host", True, False),
    ("the cursor is closed", False, False),
])
def test_failures_without_sqlstate_are_classified_by_their_text(message, connection_lost,
                                                                 transient):
    assert ERRORS.transient(None, message, connection_lost=connection_lost) is transient


def test_error_text_keeps_the_first_line_and_the_sqlstate():
    message = 'syntax error at or near "SELEC"\nLINE 1: SELEC 1\n        ^'
    assert ERRORS.text("query", "42601", message) == (
        'query: syntax error at or near "SELEC" (SQLSTATE 42601)')
    assert ERRORS.text("q", None, "connection refused\n\tIs the server running?") == (
        "q: connection refused")


def test_hints_point_at_the_setting_that_helps():
    assert "statement_timeout_s" in (ERRORS.hint("57014", "") or "")
    assert "password" in (ERRORS.hint("28P01", "") or "")
    assert "port" in (ERRORS.hint(None, "Connection refused") or "")
    assert ERRORS.hint("42601", "syntax error") is None


@pytest.mark.parametrize(("days", "text"), [
    (0, "2000-01-01"),
    (-730_119, "0001-01-01"),
    (-730_120, "0001-12-31 BC"),
    (-746_117, "0044-03-15 BC"),
    (1_095_728, "5000-01-01"),
    (2**31 - 1, "infinity"),
    (-(2**31), "-infinity"),
])
def test_refused_dates_are_spelt_as_postgresql_prints_them(days, text):
    assert pg_date_text(days) == text


def test_refused_timestamps_are_spelt_as_postgresql_prints_them():
    day = 86_400_000_000
    assert pg_timestamp_text(2**63 - 1) == "infinity"
    assert pg_timestamp_text(-(2**63)) == "-infinity"
    assert pg_timestamp_text(-730_120 * day + 3_723_000_500) == "0001-12-31 01:02:03.0005 BC"
    assert pg_timestamp_text(0) == "2000-01-01 00:00:00"
