"""The ``sqlite`` source beyond the kit: every declared type read exactly, a value that is
not of its column's type failing the read by name, expression columns and the overrides
that type them, the runner's small statements, read-only access, and SQLite's failures."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from rivet_sqlite_jsonl import SQLITE
from rivet_sqlite_jsonl.config import SqliteConfig
from rivet_sqlite_jsonl.dialect import DIALECT
from rivet_sqlite_jsonl.probe import PROBE_VIEW

from rivet_core.api import (
    CursorSpec,
    Query,
    ReadOptions,
    SourceContext,
    SourceError,
    TransientSourceError,
    UnsupportedTypeError,
)

UTC = dt.UTC

ALL_TYPES = """
CREATE TABLE every_type (
    id INTEGER PRIMARY KEY, big BIGINT, label TEXT, code VARCHAR(8), data BLOB,
    ratio REAL, amount DECIMAL(12,2), precise DECIMAL(38,10), whole NUMERIC(20),
    long_decimal TEXT,
    flag BOOLEAN, day DATE, at DATETIME, stamp TIMESTAMP, seen TIMESTAMPTZ
)"""

ROWS = [
    # SQLite's NUMERIC affinity stores '12.50' as the REAL 12.5 and '0' as the INTEGER 0;
    # a decimal of more than 15 digits keeps them all only in a TEXT column.
    (1, -(2**63), "ünï ✓ 🚀", "a'b\"c", b"\x00\xff", 0.1, "12.50",
     "-12345.6789012345", "9223372036854775807",
     "-1234567890123456789012345678.0123456789", 1,
     "1970-01-01", "2024-05-01 13:45:00", "2024-05-01 13:45:00.25",
     "2024-05-01 11:45:00.000250+00:00"),
    (2, 2**63 - 1, "", "", b"", -2.5, "-0.01", "0.0000000001", "0", "0E-10", 0,
     "9999-12-31", "0001-01-01 00:00:00.000001", "2024-02-29 23:59:59.999999",
     "2024-05-01 11:45:00+00:00"),
    (3, *[None] * 14),
]

EXPECTED = [
    {"id": 1, "big": -(2**63), "label": "ünï ✓ 🚀", "code": "a'b\"c", "data": b"\x00\xff",
     "ratio": 0.1, "amount": Decimal("12.50"), "precise": Decimal("-12345.6789012345"),
     "whole": Decimal("9223372036854775807"),
     "long_decimal": "-1234567890123456789012345678.0123456789", "flag": True,
     "day": dt.date(1970, 1, 1),
     "at": dt.datetime(2024, 5, 1, 13, 45), "stamp": dt.datetime(2024, 5, 1, 13, 45, 0, 250000),
     "seen": dt.datetime(2024, 5, 1, 11, 45, 0, 250, tzinfo=UTC)},
    {"id": 2, "big": 2**63 - 1, "label": "", "code": "", "data": b"", "ratio": -2.5,
     "amount": Decimal("-0.01"), "precise": Decimal("0.0000000001"), "whole": Decimal(0),
     "long_decimal": "0E-10", "flag": False, "day": dt.date(9999, 12, 31),
     "at": dt.datetime(1, 1, 1, 0, 0, 0, 1),
     "stamp": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
     "seen": dt.datetime(2024, 5, 1, 11, 45, tzinfo=UTC)},
    {"id": 3, **dict.fromkeys(["big", "label", "code", "data", "ratio", "amount", "precise",
                              "whole", "long_decimal", "flag", "day", "at", "stamp",
                              "seen"])},
]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(ALL_TYPES)
        conn.executemany(f"INSERT INTO every_type VALUES ({', '.join('?' * 15)})", ROWS)
    conn.close()
    return path


@pytest.fixture
def source(database: Path):
    config = SqliteConfig(path=database.name)
    with SQLITE.factory(config, SourceContext(config_dir=database.parent)) as built:
        yield built


def read(source, sql: str, params: tuple = (), **options) -> tuple[pa.Schema, list[dict]]:
    with source.read(Query(sql=sql, params=params, label="test read"),
                     ReadOptions(**options)) as stream:
        schema = stream.schema
        return schema, [row for batch in stream for row in batch.to_pylist()]


def execute(database: Path, *statements: str) -> None:
    with sqlite3.connect(database) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


# ------------------------------------------------------------------------------ values


def test_every_declared_type_reads_back_exactly(source):
    schema, rows = read(source, "SELECT * FROM every_type ORDER BY id")
    assert [str(f.type) for f in schema] == [
        "int64", "int64", "string", "string", "binary", "double", "decimal128(12, 2)",
        "decimal128(38, 10)", "decimal128(20, 0)", "string", "bool", "date32[day]",
        "timestamp[us]",
        "timestamp[us]", "timestamp[us, tz=UTC]"]
    assert schema.field("amount").metadata[b"rivet.source_type"] == b"DECIMAL(12,2)"
    for got, want in zip(rows, EXPECTED, strict=True):
        for key, value in want.items():
            assert got[key] == value and type(got[key]) is type(value), (key, got[key])


@pytest.mark.parametrize(("column", "stored", "complaint"), [
    ("big", "'twelve'", "TEXT value 'twelve' is not an integer"),
    ("big", "1.5", "REAL value 1.5 is not an integer"),
    ("label", "x'00'", "BLOB value b'\\x00' is not text"),
    ("amount", "0.1 + 0.2", "REAL value 0.30000000000000004 has more than 15 significant"),
    ("amount", "'12.345'", "does not fit decimal128(12, 2) exactly"),
    ("amount", "'lots'", "TEXT value 'lots' is not a decimal number"),
    ("whole", "'NaN'", "TEXT value 'NaN' is not a finite decimal number"),
    ("whole", "'1e400'", "REAL value inf is not a finite decimal number"),
    ("precise", "'-1234567890123456789012345678.0123456789'",
     "REAL value -1.2345678901234569e+27 has more than 15 significant digits"),
    ("flag", "2", "INTEGER value 2 is not 0 or 1"),
    ("day", "'2024-1-5'", "is not a date (YYYY-MM-DD)"),
    ("day", "'2024-02-30'", "2024-02-30"),
    ("day", "2460000.5", "REAL value 2460000.5 is not a date"),
    ("at", "'2024-05-01T13:45:00'", "'2024-05-01T13:45:00' is not a timestamp"),
    ("at", "'2024-05-01 13:45:00+00:00'", "is not a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff])"),
    ("stamp", "'2024-05-01 13:45:00.1234567'", "is not a timestamp"),
    ("seen", "'2024-05-01 13:45:00'", "is not a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff]+00:00)"),
    ("seen", "'2024-05-01 13:45:00+02:00'", "is not a timestamp"),
])
def test_a_value_not_of_its_columns_type_fails_the_read_naming_the_column(
        source, database, column, stored, complaint):
    execute(database, f"UPDATE every_type SET {column} = {stored} WHERE id = 2")
    with pytest.raises(SourceError) as caught:
        read(source, "SELECT * FROM every_type")
    assert f"column {column!r}" in caught.value.message
    assert complaint in caught.value.message
    assert not isinstance(caught.value, TransientSourceError)


def test_a_long_decimal_kept_as_text_reads_exactly_through_an_override(source):
    schema, rows = read(source, "SELECT long_decimal FROM every_type ORDER BY id",
                        column_types={"long_decimal": pa.decimal128(38, 10)})
    assert schema.field("long_decimal").type == pa.decimal128(38, 10)
    assert [r["long_decimal"] for r in rows] == [
        Decimal("-1234567890123456789012345678.0123456789"), Decimal("0E-10"), None]


def test_a_failed_value_leaves_the_source_ready_for_the_next_read(source, database):
    execute(database, "UPDATE every_type SET big = 'x' WHERE id = 3")
    with pytest.raises(SourceError):
        read(source, "SELECT * FROM every_type", batch_size=1)
    _, rows = read(source, "SELECT id FROM every_type")
    assert [r["id"] for r in rows] == [1, 2, 3]


# ----------------------------------------------------------------------- expressions


def test_an_expression_column_is_unsupported_before_the_statement_runs(source):
    query = Query(sql="SELECT id, amount * 2 AS \"double amount\", COUNT(*) OVER () AS n "
                      "FROM every_type", label="export 'totals'")
    for attempt in (lambda: source.describe(query, ReadOptions()),
                    lambda: source.read(query, ReadOptions())):
        with pytest.raises(UnsupportedTypeError) as caught:
            attempt()
        error = caught.value
        assert "'double amount'" in error.message and "'n'" in error.message
        assert "'id'" not in error.message
        assert '[exports.columns]: "double amount" = "int64"' in error.hint
        assert [c.name for c in error.columns] == ["id", "double amount", "n"]
    # Nothing was left open: the next read goes ahead.
    assert read(source, "SELECT id FROM every_type")[1][0] == {"id": 1}


def test_an_override_types_an_expression_and_every_value_is_checked(source):
    _, rows = read(source, "SELECT id, amount * 2 AS doubled, COUNT(*) OVER () AS n, "
                           "label || '!' AS shout FROM every_type WHERE id < 3 ORDER BY id",
                   column_types={"doubled": pa.decimal128(14, 2), "n": pa.int32(),
                                 "shout": pa.string()})
    assert rows == [{"id": 1, "doubled": Decimal("25.00"), "n": 2, "shout": "ünï ✓ 🚀!"},
                    {"id": 2, "doubled": Decimal("-0.02"), "n": 2, "shout": "!"}]
    with pytest.raises(SourceError, match=r"column 'shout' \(untyped\): TEXT value"):
        read(source, "SELECT label || '!' AS shout FROM every_type",
             column_types={"shout": pa.int64()})


def test_an_override_of_a_declared_type_is_a_safe_cast(source):
    schema, rows = read(source, "SELECT id, big FROM every_type WHERE id = 3",
                        column_types={"id": pa.int8()})
    assert schema.field("id").type == pa.int8() and rows == [{"id": 3, "big": None}]
    with pytest.raises(SourceError, match="column 'big'"):
        read(source, "SELECT big FROM every_type", column_types={"big": pa.int32()})


def test_duplicate_result_names_reach_the_runner_as_written(source):
    # The probe's view renames the second "id" to "id:1"; the stream must not.
    schema, _ = read(source, "SELECT id, id FROM every_type")
    assert schema.names == ["id", "id"]


def test_question_marks_in_literals_do_not_disturb_the_probe(source):
    _, rows = read(source, "SELECT id, label FROM every_type WHERE code <> '?' AND id > ?",
                   params=(1,))
    assert [r["id"] for r in rows] == [2]


# ------------------------------------------------------------- the runner's statements


def test_small_statements_need_no_typed_expression_columns(source):
    """The bug a third-party author hit: the runner's statements are expressions
    (``SELECT 1 AS found``, ``COUNT(*)``), which a read could not type."""
    options = ReadOptions()
    base = "SELECT * FROM every_type"
    assert source.fetch_rows(DIALECT.null_cursor_probe(base, CursorSpec(column="day")),
                             options) == [{"found": 1}]
    assert source.fetch_rows(DIALECT.null_cursor_probe(base, CursorSpec(column="id")),
                             options) == []
    assert source.fetch_rows(DIALECT.row_count(base), options) == [{"n": 3}]
    (stats,) = source.fetch_rows(DIALECT.key_stats(base, "day"), options)
    assert stats == {"lo": dt.date(1970, 1, 1), "hi": dt.date(9999, 12, 31), "n": 2,
                     "nulls": 1}
    (stats,) = source.fetch_rows(DIALECT.key_stats(base, "seen"), options)
    assert stats["lo"] == dt.datetime(2024, 5, 1, 11, 45, tzinfo=UTC)
    assert source.fetch_rows(DIALECT.primary_key("every_type"), options) == [
        {"column_name": "id", "data_type": "INTEGER"}]


def test_catalog_lists_tables_and_views_with_nullability_as_bool(source, database):
    execute(database, "CREATE VIEW recent AS SELECT id FROM every_type",
            "CREATE TABLE keyed (code TEXT PRIMARY KEY, n INT NOT NULL)")
    tables = source.fetch_rows(DIALECT.tables(None), ReadOptions())
    assert [(t["table_name"], t["table_kind"]) for t in tables] == [
        ("every_type", "table"), ("keyed", "table"), ("recent", "view")]
    columns = source.fetch_rows(DIALECT.columns("keyed"), ReadOptions())
    # A TEXT primary key of a rowid table accepts NULL in SQLite.
    assert columns == [
        {"column_name": "code", "data_type": "TEXT", "is_nullable": True},
        {"column_name": "n", "data_type": "INT", "is_nullable": False}]


# --------------------------------------------------------------------------- read-only


def test_nothing_is_written_to_the_database_file(source, database):
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    source.describe(Query(sql="SELECT * FROM every_type"), ReadOptions())
    read(source, "SELECT * FROM every_type")
    source.fetch_rows(DIALECT.key_stats("SELECT * FROM every_type", "id"), ReadOptions())
    with pytest.raises(SourceError) as caught:
        source.fetch_rows(Query(sql="CREATE TABLE intruder (x)", label="write"),
                          ReadOptions())
    assert "(code SQLITE_READONLY)" in caught.value.message
    source.close()
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    with sqlite3.connect(database) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema")]
    conn.close()
    assert PROBE_VIEW not in names and "intruder" not in names


def test_a_locked_database_is_a_transient_error_with_a_hint(source, database):
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(TransientSourceError) as caught:
            read(source, "SELECT * FROM every_type", lock_timeout_s=0.1)
    finally:
        writer.close()
    assert "database is locked (code SQLITE_BUSY)" in caught.value.message
    assert "WAL" in caught.value.hint
    assert read(source, "SELECT id FROM every_type")[1][0] == {"id": 1}


def test_a_missing_or_foreign_file_is_a_permanent_error_naming_the_fix(tmp_path):
    missing = SQLITE.factory(SqliteConfig(path="nope.sqlite"),
                             SourceContext(config_dir=tmp_path))
    with pytest.raises(SourceError) as caught:
        missing.describe(Query(sql="SELECT 1"), ReadOptions())
    assert "SQLITE_CANTOPEN" in caught.value.message and "[source] path" in caught.value.hint
    assert not isinstance(caught.value, TransientSourceError)
    (tmp_path / "notes.txt").write_text("not a database, just a long enough text file " * 20)
    foreign = SQLITE.factory(SqliteConfig(path="notes.txt"), SourceContext(config_dir=tmp_path))
    with pytest.raises(SourceError) as caught:
        foreign.describe(Query(sql="SELECT 1"), ReadOptions())
    assert "SQLITE_NOTADB" in caught.value.message
    assert missing.display_name() == f"sqlite://{tmp_path}/nope.sqlite"


def test_config_path_is_relative_to_the_config_directory_and_must_be_a_file(tmp_path):
    config = SqliteConfig(path="data/shop.sqlite")
    assert config.database(tmp_path) == tmp_path / "data" / "shop.sqlite"
    assert config.reference_issues(tmp_path) == [
        ("path", f"no such file: {tmp_path / 'data' / 'shop.sqlite'}")]
    assert SqliteConfig(path=":memory:").config_issues(tmp_path)[0][0] == "path"
    assert SqliteConfig(path="file:x.db?mode=rw").config_issues(tmp_path)[0][0] == "path"
