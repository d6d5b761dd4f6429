"""Overrides shared by every source (rivet_core.types): which casts are checked, which can
change values and are reported lossy, and how an unmapped column is (not) rescued."""

from __future__ import annotations

import pyarrow as pa
import pytest

from rivet_core.types import (
    ColumnInfo,
    Fidelity,
    Rescue,
    TypeRow,
    apply_override,
    lossy_cast,
    parse_override,
    type_table,
    unsupported_error,
    unsupported_with_fixes,
)

UTC_US = pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(("source", "target"), [
    (pa.decimal128(10, 2), pa.float64()),
    (pa.decimal256(50, 2), pa.float32()),
    (pa.float64(), pa.float32()),
    (pa.float32(), pa.decimal128(10, 2)),
    (pa.timestamp("us"), pa.date32()),
    (UTC_US, pa.time64("us")),
    (UTC_US, pa.timestamp("us")),
    (pa.timestamp("us"), UTC_US),
    (pa.int64(), pa.bool_()),
])
def test_casts_that_can_change_a_value_silently_are_lossy(source, target):
    assert lossy_cast(source, target)
    column = ColumnInfo(name="c", source_type="x", arrow_type=source, fidelity=Fidelity.EXACT)
    overridden = apply_override(column, target)
    assert overridden.fidelity is Fidelity.LOSSY and overridden.arrow_type == target


@pytest.mark.parametrize(("source", "target"), [
    (pa.int64(), pa.int16()),          # overflow fails the cast
    (pa.int64(), pa.float64()),        # pyarrow refuses integers a double cannot hold
    (pa.float32(), pa.float64()),
    (pa.decimal128(10, 2), pa.decimal128(38, 4)),
    (pa.decimal128(10, 2), pa.decimal128(10, 1)),  # lost scale fails the cast
    (pa.float64(), pa.string()),       # shortest text that reads back the same
    (pa.timestamp("us"), pa.timestamp("ms")),  # lost microseconds fail the cast
    (pa.string(), pa.large_string()),
    (pa.date32(), pa.timestamp("us")),
])
def test_checked_casts_keep_the_natural_fidelity(source, target):
    assert not lossy_cast(source, target)
    column = ColumnInfo(name="c", source_type="x", arrow_type=source, fidelity=Fidelity.WIDENED)
    assert apply_override(column, target).fidelity is Fidelity.WIDENED


def test_a_rescue_sets_type_fidelity_and_note_and_records_the_override():
    column = ColumnInfo(name="c", source_type="x", arrow_type=None,
                        fidelity=Fidelity.UNSUPPORTED, note="why")
    rescued = apply_override(column, pa.float64(), Rescue(Fidelity.LOSSY, "rounded text"))
    assert (rescued.arrow_type, rescued.fidelity, rescued.note, rescued.override) == (
        pa.float64(), Fidelity.LOSSY, "rounded text", "double")


def test_an_unmapped_column_without_rescue_stays_unsupported():
    column = ColumnInfo(name="c", source_type="x", arrow_type=None,
                        fidelity=Fidelity.UNSUPPORTED, note="why")
    kept = apply_override(column, pa.string())
    assert kept.arrow_type is None and "cannot apply: why" in kept.note


def test_unsupported_error_lists_bad_columns_and_joins_the_fixes():
    good = ColumnInfo(name="a", source_type="int", arrow_type=pa.int32(),
                      fidelity=Fidelity.EXACT)
    bad = ColumnInfo(name="b", source_type="odd", arrow_type=None,
                     fidelity=Fidelity.UNSUPPORTED, note="no mapping")
    error = unsupported_error([good, bad], "q", ["fix one", "fix two"])
    assert error is not None and error.hint == "fix one; or fix two"
    assert "1 column has" in error.message and "'b' (odd: no mapping)" in error.message
    assert unsupported_error([good], "q", []) is None


def test_unsupported_error_offers_the_override_and_the_sql_fix_for_the_first_of_each():
    columns = [ColumnInfo(name=name, source_type="t", arrow_type=arrow, fidelity=fidelity)
               for name, arrow, fidelity in (("ok", pa.int32(), Fidelity.EXACT),
                                             ("wide", None, Fidelity.UNSUPPORTED),
                                             ("odd", None, Fidelity.UNSUPPORTED),
                                             ("wider", None, Fidelity.UNSUPPORTED))]
    error = unsupported_with_fixes(columns, "q", overridable=[True, True, False, True],
                                   override_fix=lambda n: f"override {n}",
                                   sql_fix=lambda n: f"cast {n}")
    assert error is not None and error.hint == "override wide; or cast odd"
    only_sql = unsupported_with_fixes(columns, "q", overridable=[False] * 4,
                                      override_fix=lambda n: f"override {n}",
                                      sql_fix=lambda n: f"cast {n}")
    assert only_sql is not None and only_sql.hint == "cast wide"
    assert unsupported_with_fixes(columns[:1], "q", overridable=[True],
                                  override_fix=str, sql_fix=str) is None


def test_a_type_table_is_read_from_its_text():
    table = type_table("""
int2     | int16                 | exact
oid      | int64                 | widened |      | unsigned 32-bit,
    widened to int64
numeric  | decimal128(p, s)      | exact   |      | NaN fails
float    | —                     | unsupported
uuid     | string                | exact   | uuid | lowercase hyphenated text
tstz     | timestamp[us, tz=UTC] | exact
""")
    assert list(table) == ["int2", "oid", "numeric", "float", "uuid", "tstz"]
    assert table["int2"] == TypeRow(name="int2", arrow_type=pa.int16(), fidelity=Fidelity.EXACT)
    assert (table["oid"].fidelity, table["oid"].note) == (
        Fidelity.WIDENED, "unsigned 32-bit, widened to int64")
    assert (table["numeric"].arrow_type, table["numeric"].arrow_text) == (
        None, "decimal128(p, s)")
    assert (table["float"].arrow_type, table["float"].arrow_text) == (None, "")
    assert table["uuid"].logical_type == "uuid"
    assert table["tstz"].arrow_type == UTC_US
    assert [table[k].doc_row() for k in ("numeric", "float", "uuid")] == [
        ("numeric", "decimal128(p, s)", "exact", "—"), ("float", "—", "unsupported", "—"),
        ("uuid", "string", "exact", "uuid")]


@pytest.mark.parametrize(("text", "expected"), [
    ("decimal(18,4)", pa.decimal128(18, 4)),
    ("NUMERIC( 76 , 20 )", pa.decimal256(76, 20)),
    ("decimal(5)", pa.decimal128(5, 0)),
    ("timestamp_utc", UTC_US),
    ("String", pa.string()),
])
def test_override_strings_parse(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["decimal(77,2)", "decimal(5,6)", "decimal(0)", "float",
                                  "varchar(10)", ""])
def test_bad_override_strings_are_refused_with_the_accepted_spellings(text):
    with pytest.raises(ValueError, match=r"decimal|unknown type"):
        parse_override(text)
