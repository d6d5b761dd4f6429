"""PostgreSQL source, pure logic: the type table, numeric modifiers, overrides, SQLSTATE
classification and the spelling of values Rivet refuses."""

from __future__ import annotations

import pyarrow as pa
import pytest
from rivet_postgres import typemap as t
from rivet_postgres.decode import pg_date_text, pg_timestamp_text
from rivet_postgres.sqlstate import classify, error_text, hint_for

from rivet_core.errors import UnsupportedTypeError
from rivet_core.types import Fidelity


def numeric_typmod(precision: int, scale: int) -> int:
    """What PostgreSQL puts in the column description for numeric(precision, scale)."""
    return ((precision << 16) | (scale & 0x7FF)) + 4


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
])
def test_builtin_types_map_to_their_arrow_type(oid, arrow_type, fidelity, logical):
    column = t.map_column("c", oid, -1, "whatever")
    assert (column.arrow_type, column.fidelity, column.logical_type) == (
        arrow_type, fidelity, logical)
    assert column.source_type == "whatever"


def test_builtin_oids_are_the_catalog_values():
    # Spot-check against pg_type.dat: a wrong constant would silently mis-map a column.
    assert (t.BOOL, t.INT8, t.TEXT, t.NUMERIC, t.TIMESTAMPTZ, t.UUID, t.JSONB) == (
        16, 20, 25, 1700, 1184, 2950, 3802)


@pytest.mark.parametrize("oid", [600, 1186, 869, 1266, 790, 1007, 0, 99999])
def test_types_without_a_mapping_are_unsupported(oid):
    # point, interval, inet, timetz, money, int4[], and OIDs of user-defined types
    column = t.map_column("c", oid, -1, "point")
    assert column.arrow_type is None and column.fidelity is Fidelity.UNSUPPORTED


@pytest.mark.parametrize(("precision", "scale"), [(10, 2), (38, 0), (1, 1), (1000, 500),
                                                 (5, -2), (3, 5), (12, -1000), (1, 1000)])
def test_numeric_typmod_round_trips(precision, scale):
    assert t.decode_numeric_typmod(numeric_typmod(precision, scale)) == (precision, scale)


def test_numeric_typmod_of_the_wire_example():
    assert t.decode_numeric_typmod(655366) == (10, 2)  # numeric(10,2) as psycopg sees it


def test_unconstrained_numeric_is_unsupported_never_float():
    column = t.map_column("n", t.NUMERIC, -1, "numeric")
    assert column.arrow_type is None and column.fidelity is Fidelity.UNSUPPORTED
    assert "unconstrained" in column.note


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
    column = t.map_column("n", t.NUMERIC, numeric_typmod(precision, scale), "numeric")
    assert (column.arrow_type, column.fidelity) == (expected, fidelity)


@pytest.mark.parametrize(("precision", "scale"), [(77, 0), (1000, 2), (75, -2)])
def test_numeric_wider_than_decimal256_is_unsupported(precision, scale):
    column = t.map_column("n", t.NUMERIC, numeric_typmod(precision, scale), "numeric")
    assert column.arrow_type is None and "76" in column.note


def test_decimal_override_rescues_unconstrained_numeric():
    column = t.apply_override(t.map_column("n", t.NUMERIC, -1, "numeric"), t.NUMERIC,
                              pa.decimal128(38, 10))
    assert column.arrow_type == pa.decimal128(38, 10) and column.fidelity is Fidelity.EXACT
    assert "override" in column.note


def test_non_decimal_override_cannot_rescue_unconstrained_numeric():
    column = t.apply_override(t.map_column("n", t.NUMERIC, -1, "numeric"), t.NUMERIC,
                              pa.float64())
    assert column.arrow_type is None and "cannot apply" in column.note


def test_override_cannot_rescue_a_type_without_a_loader():
    column = t.apply_override(t.map_column("p", 600, -1, "point"), 600, pa.string())
    assert column.arrow_type is None


def test_override_of_a_mapped_column_keeps_its_fidelity_and_drops_logical_type():
    column = t.apply_override(t.map_column("u", t.UUID, -1, "uuid"), t.UUID, pa.large_string())
    assert column.arrow_type == pa.large_string() and column.logical_type is None
    assert t.apply_override(t.map_column("i", t.INT4, -1, "integer"), t.INT4,
                            pa.int32()).note == ""


def test_override_without_an_arrow_cast_makes_the_column_unsupported():
    column = t.apply_override(t.map_column("b", t.BOOL, -1, "boolean"), t.BOOL, pa.date32())
    assert column.arrow_type is None and "no cast" in column.note


def test_unsupported_error_names_every_bad_column_with_its_type_and_a_fix():
    columns = [t.map_column("id", t.INT4, -1, "integer"),
               t.map_column("Where", 600, -1, "point"),
               t.map_column("amount", t.NUMERIC, -1, "numeric")]
    error = t.unsupported_error(columns, [t.INT4, 600, t.NUMERIC], "query")
    assert isinstance(error, UnsupportedTypeError)
    assert "2 columns" in error.message
    assert "'Where' (point" in error.message and "'amount' (numeric" in error.message
    assert "'id'" not in error.message
    assert error.hint is not None
    assert 'amount = "decimal(38,10)"' in error.hint and '"Where"::text' in error.hint


def test_no_unsupported_error_when_every_column_maps():
    columns = [t.map_column("id", t.INT4, -1, "integer")]
    assert t.unsupported_error(columns, [t.INT4], "query") is None


def test_overrides_naming_absent_columns_are_reported():
    assert t.unmatched_overrides(["id", "amount"], {"Amount": 1, "id": 2}) == ["Amount"]


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
    assert classify(sqlstate, "whatever the text says: connection refused") is transient


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
    assert classify(None, message, connection_lost=connection_lost) is transient


def test_error_text_keeps_the_first_line_and_the_sqlstate():
    message = 'syntax error at or near "SELEC"\nLINE 1: SELEC 1\n        ^'
    assert error_text("query", message, "42601") == (
        'query: syntax error at or near "SELEC" (SQLSTATE 42601)')
    assert error_text("q", "connection refused\n\tIs the server running?", None) == (
        "q: connection refused")


def test_hints_point_at_the_setting_that_helps():
    assert "statement_timeout_s" in (hint_for("57014", "") or "")
    assert "password" in (hint_for("28P01", "") or "")
    assert "port" in (hint_for(None, "Connection refused") or "")
    assert hint_for("42601", "syntax error") is None


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
