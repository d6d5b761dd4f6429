"""The pure logic of the SQLite side: bound text forms of dates and times, the probe's
parameter neutralising, the declared-type mapping and the dialect's statements. No file is
opened here, except where SQLite itself is the judge of a comparison (an in-memory
database)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rivet_sqlite_jsonl import timetext
from rivet_sqlite_jsonl.dialect import DIALECT, table_parts
from rivet_sqlite_jsonl.probe import without_parameters
from rivet_sqlite_jsonl.typemap import map_column

from rivet_core.api import (
    Fidelity,
    SupportsCatalog,
    SupportsDayArithmetic,
    SupportsExplain,
    SupportsPrimaryKey,
    SupportsServerTime,
)

# ------------------------------------------------------------------ text forms of times

instants = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))


@st.composite
def stored_text(draw: st.DrawFn, instant: bool) -> tuple[dt.datetime, str]:
    """A time and one of the stored texts that spell it: 0 to 6 fraction digits (any the
    value allows), and ``+00:00`` for an instant."""
    value = draw(instants)
    text = value.isoformat(" ", timespec="microseconds")
    fraction = text[20:]
    shortest = len(fraction.rstrip("0"))
    digits = draw(st.integers(min_value=shortest, max_value=6))
    text = text[:19] + ("." + fraction[:digits] if digits else "")
    return value, text + (timetext.UTC_SUFFIX if instant else "")


def compare_in_sqlite(stored: str, operator: str, bound: str) -> bool:
    """SQLite's own answer to ``stored <operator> bound``: TEXT against TEXT."""
    with sqlite3.connect(":memory:") as conn:
        (result,) = conn.execute(f"SELECT ? {operator} ?", (stored, bound)).fetchone()
    return bool(result)


@pytest.mark.parametrize("instant", [False, True], ids=["datetime", "timestamptz"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_text_comparisons_with_bound_values_order_like_the_times(instant, data):
    (stored_at, stored), bound_at = data.draw(stored_text(instant)), data.draw(instants)
    # The value the runner binds for such a column: naive, or an aware UTC instant.
    bound_value = bound_at.replace(tzinfo=dt.UTC) if instant else bound_at
    assert compare_in_sqlite(stored, ">", DIALECT.bind(bound_value)) == (stored_at > bound_at)
    # A time window's start is always an aware instant, whatever the column holds.
    window = DIALECT.time_window("SELECT 1", "c", start=bound_at.replace(tzinfo=dt.UTC),
                                 unix=False)
    assert compare_in_sqlite(stored, ">=", window.params[0]) == (stored_at >= bound_at)
    # A chunk by days binds dates.
    day = bound_at.date()
    assert compare_in_sqlite(stored, ">=", DIALECT.bind(day)) == (stored_at.date() >= day)
    assert compare_in_sqlite(stored, "<", DIALECT.bind(day)) == (stored_at.date() < day)


def test_equal_times_with_trailing_zeros_are_neither_reread_nor_lost():
    value = dt.datetime(2024, 1, 1, 10, 0, 0, 500000)
    for stored in ("2024-01-01 10:00:00.5", "2024-01-01 10:00:00.500",
                   "2024-01-01 10:00:00.500000"):
        assert not compare_in_sqlite(stored, ">", DIALECT.bind(value)), stored
    midnight = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    bound = DIALECT.time_window("SELECT 1", "c", start=midnight, unix=False).params[0]
    assert bound == "2024-01-01 00:00:00"
    for stored in ("2024-01-01 00:00:00", "2024-01-01 00:00:00.000",
                   "2024-01-01 00:00:00+00:00", "2024-01-01 00:00:00.000000+00:00"):
        assert compare_in_sqlite(stored, ">=", bound), stored


def test_bind_turns_values_into_what_sqlite_compares_them_with():
    assert DIALECT.bind(dt.date(2024, 2, 29)) == "2024-02-29"
    assert DIALECT.bind(dt.datetime(2024, 2, 29, 1, 2, 3)) == "2024-02-29 01:02:03.000000"
    paris = dt.timezone(dt.timedelta(hours=1))
    assert (DIALECT.bind(dt.datetime(2024, 2, 29, 1, 2, 3, 7, tzinfo=paris))
            == "2024-02-29 00:02:03.000007+00:00")
    assert DIALECT.bind(Decimal("12.50")) == "12.50"
    assert DIALECT.bind(7) == 7 and DIALECT.bind("x") == "x"


def test_a_unix_time_window_binds_epoch_seconds():
    start = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    query = DIALECT.time_window("SELECT 1", "c", start=start, unix=True)
    assert query.params == (1704153600,)


# ------------------------------------------------------------------------------- probe


@pytest.mark.parametrize(("sql", "want"), [
    ("SELECT * FROM t WHERE a > ? AND b < ?", "SELECT * FROM t WHERE a > NULL AND b < NULL"),
    ("SELECT ?1, ?23", "SELECT NULL, NULL"),
    ("SELECT 'why?', 'it''s ?' FROM t WHERE c = ?",
     "SELECT 'why?', 'it''s ?' FROM t WHERE c = NULL"),
    ('SELECT "odd?name", [x?], `y?` FROM t', 'SELECT "odd?name", [x?], `y?` FROM t'),
    ("SELECT 1 -- a comment?\n, ? /* another? */", "SELECT 1 -- a comment?\n, NULL /* another? */"),
    ("SELECT x'3f' , ?", "SELECT x'3f' , NULL"),
])
def test_probe_replaces_parameters_but_not_question_marks_in_text(sql, want):
    assert without_parameters(sql) == want


# ---------------------------------------------------------------------------- typemap


@pytest.mark.parametrize(("declared", "arrow"), [
    ("INTEGER", pa.int64()), ("BIGINT", pa.int64()), ("unsigned big int", pa.int64()),
    ("POINT", pa.int64()),  # SQLite's own rule: it contains INT
    ("TEXT", pa.string()), ("VARCHAR(20)", pa.string()), ("CLOB", pa.string()),
    ("BLOB", pa.binary()),
    ("REAL", pa.float64()), ("DOUBLE PRECISION", pa.float64()), ("FLOAT", pa.float64()),
    ("DECIMAL(12,2)", pa.decimal128(12, 2)), ("numeric(38, 10)", pa.decimal128(38, 10)),
    ("NUMERIC(50,4)", pa.decimal256(50, 4)), ("DECIMAL(7)", pa.decimal128(7, 0)),
    ("DATE", pa.date32()), ("datetime", pa.timestamp("us")), ("TIMESTAMP", pa.timestamp("us")),
    ("TIMESTAMPTZ", pa.timestamp("us", tz="UTC")),
    ("timestamp with time zone", pa.timestamp("us", tz="UTC")),
    ("BOOLEAN", pa.bool_()),
])
def test_declared_types_map_by_sqlite_affinity_rules(declared, arrow):
    column = map_column("c", declared)
    assert (column.arrow_type, column.fidelity) == (arrow, Fidelity.EXACT)


@pytest.mark.parametrize("declared", ["", "NUMERIC", "DECIMAL", "MONEY", "DECIMAL(80,2)",
                                      "DECIMAL(4,6)"])
def test_types_without_a_faithful_mapping_are_unsupported(declared):
    column = map_column("c", declared)
    assert column.arrow_type is None and column.fidelity is Fidelity.UNSUPPORTED


# ---------------------------------------------------------------------------- dialect


def test_dialect_has_the_pieces_sqlite_can_honour_and_not_server_time():
    for piece in (SupportsPrimaryKey, SupportsCatalog, SupportsExplain,
                  SupportsDayArithmetic):
        assert isinstance(DIALECT, piece), piece.__name__
    assert not isinstance(DIALECT, SupportsServerTime)
    assert (DIALECT.name, DIALECT.placeholder, DIALECT.quote('a"b')) == (
        "sqlite", "?", '"a""b"')


def test_histogram_needs_no_math_functions():
    for by_days in (False, True):
        query = DIALECT.key_histogram("SELECT * FROM t", "k", origin=1, width=10,
                                      by_days=by_days)
        assert "FLOOR" not in query.sql.upper()
        assert query.sql.count("?") == len(query.params)


def test_table_parts_default_to_the_main_schema():
    assert table_parts("orders") == ("main", "orders")
    assert table_parts('aux."my table"') == ("aux", "my table")
    assert DIALECT.is_integer_type("INTEGER") and DIALECT.is_integer_type("bigint")
    assert not DIALECT.is_integer_type("TEXT")
