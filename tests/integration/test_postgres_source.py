"""The postgres source against the real server: values, batches, safety, errors, redaction.

Each test creates its tables in the session schema and reads them through the source, which
connects on its own (no search_path), so table names are schema-qualified.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from rivet_postgres import PostgresConfig, factory, rivet_sources
from rivet_postgres.dialect import DIALECT

from rivet_core.backends import Query, ReadOptions, SourceContext
from rivet_core.dialect import CursorSpec
from rivet_core.errors import SourceError, TransientSourceError, UnsupportedTypeError

UTC = dt.UTC
KOLKATA = "options=-c%20timezone%3DAsia/Kolkata"  # the session zone, set at connect


def make_source(url: str, **config):
    return factory(PostgresConfig(url=url, **config), SourceContext(config_dir=Path(".")))


@pytest.fixture
def source(pg_url):
    with make_source(pg_url) as src:
        yield src


@pytest.fixture
def s(pg_schema):
    """Schema-qualify a table name."""
    return lambda name: f'"{pg_schema}".{name}'


def read_all(src, sql, params=(), **options):
    with src.read(Query(sql=sql, params=params), ReadOptions(**options)) as stream:
        batches = list(stream)
    return stream, batches


def rows_of(stream, batches):
    return pa.Table.from_batches(batches, schema=stream.schema).to_pylist()


ALL_TYPES = """
CREATE TABLE all_types (
    id int4, i2 int2, i8 int8, o oid, f4 float4, f8 float8, n numeric(12,4),
    nbig numeric(50,10), b bool, t text, vc varchar(10), c char(5), nm name, d date,
    tm time, ts timestamp, tstz timestamptz, u uuid, j json, jb jsonb, by bytea
);
INSERT INTO all_types VALUES
  (1, -32768, -9223372036854775808, 4294967295, 'NaN', '-Infinity', -99999999.9999,
   1234567890123456789012345678901234567890.0123456789, true, 'héllo ✓ "q"', 'abc', 'ab',
   'pg_name', '5000-01-01', '23:59:59.999999', '2024-02-29 12:34:56.789012',
   '2024-03-10 01:30:00.000001+05:30', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
   '{"b":1,  "a":[1, 2]}', '{"b":1,  "a":[1, 2]}', '\\x00ff10'),
  (2, 32767, 9223372036854775807, 0, 'Infinity', 1e-300, 0.0001, 0, false, '', '', '',
   '', '0001-01-01', '00:00:00', '0001-01-01 00:00:00', '1970-01-01 00:00:00+00',
   '00000000-0000-0000-0000-000000000000', 'null', 'null', '\\x'),
  (3, 1, 2, 3, 1.5, -0.25, 0, 0.0000000001, NULL, 'x', 'y', 'z', 'n', '2024-02-29',
   '12:00:01', '1999-12-31 23:59:59', '2000-01-01 00:00:00-08', gen_random_uuid(),
   '[]', '{}', '\\xdeadbeef'),
  (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL);
"""
# What psycopg's own (text) loaders return, with JSON and uuid as PostgreSQL's text.
EXPECTED = """SELECT id, i2, i8, o, f4, f8, n, nbig, b, t, vc, c, nm, d, tm, ts, tstz,
                     u::text AS u, j::text AS j, jb::text AS jb, by
              FROM all_types ORDER BY id"""


@pytest.fixture(scope="module")
def all_types(pg_url, pg_schema):
    """The all_types table, created once for the module."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute(ALL_TYPES)
    return f'"{pg_schema}".all_types'


def same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and type(a) is type(b)


def test_every_mapped_type_round_trips_with_equal_values(pg, source, all_types):
    cur = pg.execute(EXPECTED)
    names = [d.name for d in cur.description]
    expected = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    stream, batches = read_all(source, f"SELECT * FROM {all_types} ORDER BY id")
    actual = rows_of(stream, batches)

    assert len(actual) == len(expected) == 4
    for want, got in zip(expected, actual, strict=True):
        for name in names:
            assert same(want[name], got[name]), (want["id"], name, want[name], got[name])


def test_arrow_types_follow_the_mapping_table(source, all_types):
    stream, _ = read_all(source, f"SELECT * FROM {all_types}")
    types = {f.name: f.type for f in stream.schema}
    assert types == {
        "id": pa.int32(), "i2": pa.int16(), "i8": pa.int64(), "o": pa.int64(),
        "f4": pa.float32(), "f8": pa.float64(), "n": pa.decimal128(12, 4),
        "nbig": pa.decimal256(50, 10), "b": pa.bool_(), "t": pa.string(), "vc": pa.string(),
        "c": pa.string(), "nm": pa.string(), "d": pa.date32(), "tm": pa.time64("us"),
        "ts": pa.timestamp("us"), "tstz": pa.timestamp("us", tz="UTC"), "u": pa.string(),
        "j": pa.string(), "jb": pa.string(), "by": pa.binary(),
    }
    assert all(f.nullable for f in stream.schema)
    meta = stream.schema.field("jb").metadata
    assert meta[b"rivet.logical_type"] == b"json" and meta[b"rivet.source_type"] == b"jsonb"
    assert stream.schema.field("n").metadata[b"rivet.source_type"] == b"numeric(12,4)"


def test_json_text_is_kept_verbatim_and_json_null_is_not_sql_null(source, all_types):
    stream, batches = read_all(source, f"SELECT j, jb, u FROM {all_types} ORDER BY id")
    rows = rows_of(stream, batches)
    assert rows[0]["j"] == '{"b":1,  "a":[1, 2]}'  # json: exactly as inserted
    assert rows[0]["jb"] == '{"a": [1, 2], "b": 1}'  # jsonb: as PostgreSQL prints it
    assert rows[1]["j"] == "null" and rows[1]["jb"] == "null"
    assert rows[3]["j"] is None and rows[3]["jb"] is None
    assert rows[0]["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert str(uuid.UUID(rows[2]["u"])) == rows[2]["u"]


def test_null_in_every_column_is_null_in_arrow(source, all_types):
    stream, batches = read_all(source, f"SELECT * FROM {all_types} WHERE id = 4")
    (row,) = rows_of(stream, batches)
    assert {k: v for k, v in row.items() if k != "id"} == dict.fromkeys(
        [f.name for f in stream.schema if f.name != "id"])


def test_empty_result_has_a_schema_and_no_batches(source, all_types):
    stream, batches = read_all(source, f"SELECT id, n, tstz FROM {all_types} WHERE false")
    assert batches == []
    assert stream.schema.types == [pa.int32(), pa.decimal128(12, 4),
                                   pa.timestamp("us", tz="UTC")]


@pytest.mark.parametrize(("rows", "sizes"), [(10, [3, 3, 3, 1]), (9, [3, 3, 3]), (1, [1])])
def test_batches_hold_batch_size_rows(source, rows, sizes):
    stream, batches = read_all(source, "SELECT g FROM generate_series(1, %s) AS g",
                               (rows,), batch_size=3)
    assert [b.num_rows for b in batches] == sizes
    assert rows_of(stream, batches) == [{"g": g} for g in range(1, rows + 1)]


def test_schema_is_known_before_any_row_is_computed(source):
    # The division by zero happens when the first row is produced, i.e. at the first FETCH:
    # read() has the schema without having run the query.
    query = Query(sql="SELECT 10 / (g - g) AS v FROM generate_series(1, 3) AS g")
    with source.read(query, ReadOptions()) as stream:
        assert stream.schema.field("v").type == pa.int32()
        with pytest.raises(SourceError, match="division by zero") as info:
            list(stream)
    assert not isinstance(info.value, TransientSourceError)
    assert "22012" in str(info.value)


def test_describe_maps_columns_without_running_the_query_and_binds_params(source):
    query = Query(sql="SELECT 10 / (g - g) AS v, %s::numeric(9,3) AS p "
                      "FROM generate_series(1, 3) AS g", params=(Decimal("1.5"),))
    columns = source.describe(query, ReadOptions())
    assert [(c.name, c.arrow_type, c.source_type) for c in columns] == [
        ("v", pa.int32(), "integer"), ("p", pa.decimal128(9, 3), "numeric(9,3)")]


def test_params_bind_and_a_literal_percent_needs_no_escaping_without_params(source):
    stream, batches = read_all(source, "SELECT %s::text AS a, %s::int AS b", ("x%", 7))
    assert rows_of(stream, batches) == [{"a": "x%", "b": 7}]
    stream, batches = read_all(source, "SELECT 'a%b' AS a")
    assert rows_of(stream, batches) == [{"a": "a%b"}]


def test_statement_timeout_fails_the_read_as_a_transient_error(source):
    query = Query(sql="SELECT 1 AS x FROM pg_sleep(5)")
    started = time.monotonic()
    with (pytest.raises(TransientSourceError, match="statement timeout") as info,
          source.read(query, ReadOptions(statement_timeout_s=1)) as stream):
        list(stream)
    assert time.monotonic() - started < 4
    assert "57014" in str(info.value) and info.value.hint
    assert info.value.reason == "timeout"  # retried only with tuning.retry_timeouts
    # The connection is usable afterwards: the failed transaction was rolled back.
    _, batches = read_all(source, "SELECT 1 AS x")
    assert batches[0].num_rows == 1


def test_timeouts_are_set_for_the_transaction_only(source):
    stream, batches = read_all(
        source, "SELECT current_setting('statement_timeout') AS st, "
                "current_setting('lock_timeout') AS lt, current_setting('TimeZone') AS tz, "
                "current_setting('transaction_read_only') AS ro",
        statement_timeout_s=2.5, lock_timeout_s=0.25)
    assert rows_of(stream, batches) == [{"st": "2500ms", "lt": "250ms", "tz": "UTC", "ro": "on"}]
    stream, batches = read_all(source, "SELECT current_setting('statement_timeout') AS st")
    assert rows_of(stream, batches) == [{"st": "0"}]


def test_the_transaction_is_read_only(pg, source, s):
    pg.execute("DROP TABLE IF EXISTS audit; CREATE TABLE audit (x int)")
    pg.execute(f"CREATE OR REPLACE FUNCTION {s('bump')}() RETURNS int LANGUAGE sql VOLATILE "
               f"AS 'INSERT INTO {s('audit')} VALUES (1) RETURNING x'")
    with pytest.raises(SourceError, match="read-only transaction") as info:
        read_all(source, f"SELECT {s('bump')}() AS x")
    assert not isinstance(info.value, TransientSourceError)
    assert pg.execute("SELECT count(*) FROM audit").fetchone() == (0,)


def test_unsupported_types_fail_before_any_batch_naming_each_column(pg, source, s):
    pg.execute("DROP TABLE IF EXISTS odd; "
               "CREATE TABLE odd (id int, p point, r int4range, amount numeric(100,2))")
    pg.execute("INSERT INTO odd VALUES (1, '(1,2)', '[1,5)', 1.5)")
    with pytest.raises(UnsupportedTypeError) as info:
        source.read(Query(sql=f"SELECT * FROM {s('odd')}"), ReadOptions())
    message = str(info.value)
    assert "3 columns" in message
    for column, pg_type in (("p", "point"), ("r", "int4range"), ("amount", "numeric(100,2)")):
        assert f"'{column}' ({pg_type}" in message
    assert "'id'" not in message
    assert "decimal(76,20)" in info.value.hint and "p::text" in info.value.hint
    assert [c.name for c in info.value.columns] == ["id", "p", "r", "amount"]
    with pytest.raises(UnsupportedTypeError):
        source.describe(Query(sql=f"SELECT p FROM {s('odd')}"), ReadOptions())
    # The refused read left no transaction behind.
    _, batches = read_all(source, f"SELECT id, p::text AS p FROM {s('odd')}")
    assert batches[0].to_pylist() == [{"id": 1, "p": "(1,2)"}]


PI = "3.141592653589793238462643383279"


def test_decimal_override_holds_unconstrained_numeric_exactly(pg, source, s):
    pg.execute(f"DROP TABLE IF EXISTS nums; CREATE TABLE nums (v numeric); "
               f"INSERT INTO nums VALUES ({PI}), (-1), (NULL)")
    stream, batches = read_all(source, f"SELECT v FROM {s('nums')}",
                               column_types={"v": pa.decimal128(38, 30)})
    assert stream.schema.field("v").type == pa.decimal128(38, 30)
    assert [r["v"] for r in rows_of(stream, batches)] == [Decimal(PI), Decimal(-1), None]


def test_unconstrained_numeric_beyond_the_default_fails_naming_the_override(pg, source, s):
    pg.execute(f"DROP TABLE IF EXISTS nums; CREATE TABLE nums (v numeric); "
               f"INSERT INTO nums VALUES (1.5), ({PI})")
    with pytest.raises(SourceError, match=r"'v'.*3\.14159.*decimal128\(38, 20\)") as info:
        read_all(source, f"SELECT v FROM {s('nums')}")
    assert not isinstance(info.value, TransientSourceError)
    assert 'v = "decimal(38,30)"' in info.value.hint


def test_override_with_too_little_scale_fails_instead_of_rounding(pg, source, s):
    pg.execute(f"DROP TABLE IF EXISTS nums; CREATE TABLE nums (v numeric); "
               f"INSERT INTO nums VALUES (1.5), ({PI})")
    with pytest.raises(SourceError, match=r"'v'.*3\.14159.*decimal128\(38, 10\)") as info:
        read_all(source, f"SELECT v FROM {s('nums')}", column_types={"v": pa.decimal128(38, 10)})
    assert not isinstance(info.value, TransientSourceError)


def test_override_cast_that_overflows_fails_naming_the_column(source):
    with pytest.raises(SourceError, match="'big'"):
        read_all(source, "SELECT 100000 AS big", column_types={"big": pa.int16()})
    stream, batches = read_all(source, "SELECT 7 AS small", column_types={"small": pa.int16()})
    assert stream.schema.field("small").type == pa.int16() and rows_of(stream, batches) == [
        {"small": 7}]


def test_override_naming_a_column_the_query_lacks_is_an_error(source):
    with pytest.raises(SourceError, match="'Amount'"):
        read_all(source, "SELECT 1 AS amount", column_types={"Amount": pa.int64()})


def test_nan_in_a_constrained_numeric_fails_naming_the_value(source):
    with pytest.raises(SourceError, match=r"'n'.*NaN"):
        read_all(source, "SELECT 'NaN'::numeric(10,2) AS n")


@pytest.mark.parametrize(("literal", "shown"), [
    ("'infinity'::date", "infinity"),
    ("'-infinity'::date", "-infinity"),
    ("'0044-03-15 BC'::date", "0044-03-15 BC"),
    ("'infinity'::timestamp", "infinity"),
    ("'-infinity'::timestamptz", "-infinity"),
    ("'0001-01-01 10:00:00 BC'::timestamp", "0001-01-01 10:00:00 BC"),
    ("'24:00:00'::time", "24:00:00"),
])
def test_values_arrow_cannot_hold_fail_naming_column_and_value(source, literal, shown):
    with pytest.raises(SourceError, match="'when'") as info:
        read_all(source, f"SELECT {literal} AS when")
    assert shown in str(info.value)


def test_extreme_dates_arrow_can_hold_are_exported(pg, source):
    _, batches = read_all(source, "SELECT '0001-01-01'::date AS lo, "
                                  "'5874897-12-31'::date AS hi")
    (days,) = pg.execute("SELECT '5874897-12-31'::date - '1970-01-01'::date").fetchone()
    assert batches[0].column("lo").to_pylist() == [dt.date(1, 1, 1)]
    assert batches[0].column("hi").cast(pa.int32()).to_pylist() == [days]


def test_timestamptz_is_the_correct_instant_in_a_non_utc_session(pg, pg_url, s):
    pg.execute("DROP TABLE IF EXISTS zoned; "
               "CREATE TABLE zoned (id int, tz timestamptz, naive timestamp)")
    pg.execute("SET TimeZone = 'America/St_Johns'")  # the writer's zone must not matter either
    pg.execute("INSERT INTO zoned VALUES (1, '2024-01-01 05:30:00.000001+05:30', "
               "'2024-01-01 05:30:00'), (2, '2024-07-01 12:00:00 America/New_York', "
               "'2024-07-01 12:00:00')")
    with make_source(pg_url + ("&" if "?" in pg_url else "?") + KOLKATA) as src:
        stream, batches = read_all(
            src, f"SELECT tz, naive, current_setting('TimeZone') AS zone, "
                 f"(SELECT reset_val FROM pg_settings WHERE name = 'TimeZone') AS session_zone "
                 f"FROM {s('zoned')} ORDER BY id")
        rows = rows_of(stream, batches)
    assert rows[0]["session_zone"] == "Asia/Kolkata"
    assert stream.schema.field("tz").type == pa.timestamp("us", tz="UTC")
    assert [r["tz"] for r in rows] == [dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                                       dt.datetime(2024, 7, 1, 16, 0, tzinfo=UTC)]
    assert [r["naive"] for r in rows] == [dt.datetime(2024, 1, 1, 5, 30),
                                          dt.datetime(2024, 7, 1, 12, 0)]
    assert rows[0]["zone"] == "UTC"  # SET LOCAL inside the read's transaction


def test_syntax_error_is_permanent_with_the_server_message(source):
    with pytest.raises(SourceError) as info:
        source.read(Query(sql="SELEC 1", label="export 'orders'"), ReadOptions())
    assert not isinstance(info.value, TransientSourceError)
    assert str(info.value) == ("export 'orders': syntax error at or near \"SELEC\" "
                               "(SQLSTATE 42601)")


def test_undefined_table_is_permanent(source):
    with pytest.raises(SourceError, match="42P01") as info:
        source.read(Query(sql="SELECT * FROM no_such_table_here"), ReadOptions())
    assert not isinstance(info.value, TransientSourceError)


def test_connection_failure_is_transient_and_never_shows_the_password():
    src = make_source("postgresql://rivet:Sup3rSecretPw@127.0.0.1:1/test", connect_timeout_s=2)
    with src, pytest.raises(TransientSourceError) as info:
        src.read(Query(sql="SELECT 1"), ReadOptions())
    text = f"{info.value} {info.value.hint} {info.value!r}"
    assert "Sup3rSecretPw" not in text
    assert "Connection refused" in str(info.value)
    assert "postgresql://rivet:REDACTED@127.0.0.1:1/test" in str(info.value)


def test_display_name_hides_the_password(pg_url):
    src = make_source("postgresql://rivet:Sup3rSecretPw@db.example:6432/sales?sslmode=require")
    assert src.display_name() == "postgresql://rivet:REDACTED@db.example:6432/sales"
    assert make_source(pg_url).display_name() == "postgresql://postgres@127.0.0.1:5432/test"


def test_a_connection_killed_between_reads_is_replaced(pg, source):
    _, batches = read_all(source, "SELECT pg_backend_pid() AS pid")
    first_pid = batches[0].column("pid")[0].as_py()
    pg.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
    time.sleep(0.1)
    _, batches = read_all(source, "SELECT pg_backend_pid() AS pid")
    assert batches[0].column("pid")[0].as_py() != first_pid


def test_closing_a_stream_early_rolls_back_and_frees_the_source(pg, pg_url):
    with make_source(pg_url, application_name="rivet-early-close") as src:
        stream = src.read(Query(sql="SELECT g FROM generate_series(1, 100) AS g"),
                          ReadOptions(batch_size=10))
        batches = iter(stream)
        assert next(batches).num_rows == 10
        with pytest.raises(RuntimeError, match="still open"):
            src.read(Query(sql="SELECT 1"), ReadOptions())
        stream.close()
        (state,) = pg.execute("SELECT state FROM pg_stat_activity "
                              "WHERE application_name = 'rivet-early-close'").fetchone()
        assert state == "idle"
        _, batches = read_all(src, "SELECT 2 AS two")
        assert batches[0].to_pylist() == [{"two": 2}]


def test_abandoning_iteration_rolls_back(source):
    stream = source.read(Query(sql="SELECT g FROM generate_series(1, 100) AS g"),
                         ReadOptions(batch_size=10))
    for _ in stream:
        break
    # The next read needs no close(): leaving the loop ended the transaction.
    _, batches = read_all(source, "SELECT 2 AS two")
    assert batches[0].to_pylist() == [{"two": 2}]


def test_oversized_batches_halve_the_fetch_size_on_the_cursor_path(pg_url):
    with make_source(pg_url, read_path="cursor") as src:
        _, batches = read_all(src, "SELECT repeat('x', 1000) AS t FROM generate_series(1, 20)",
                              batch_size=8, max_batch_bytes=2000)
    assert [b.num_rows for b in batches] == [8, 4, 2, 1, 1, 1, 1, 1, 1]


def test_throttle_pauses_between_fetches(source):
    started = time.monotonic()
    _, batches = read_all(source, "SELECT g FROM generate_series(1, 3) AS g",
                          batch_size=1, throttle_ms=100)
    assert len(batches) == 3 and time.monotonic() - started >= 0.2


def test_plugin_registers_the_postgres_source_spec():
    (spec,) = rivet_sources()
    assert (spec.name, spec.dialect.name, spec.config_cls) == (
        "postgres", "postgres", PostgresConfig)
    assert PostgresConfig(url="postgresql://u@h/d").config_issues(Path(".")) == []


def test_builtin_type_constants_are_the_live_catalog(pg):
    from rivet_postgres import typemap

    rows = dict(pg.execute("SELECT oid::int8, typname::text FROM pg_type "
                           "WHERE oid = ANY(%s::oid[])", (list(typemap.BUILTIN),)).fetchall())
    assert rows == typemap.BUILTIN
    arrays = dict(pg.execute("SELECT typarray::int8, oid::int8 FROM pg_type "
                             "WHERE oid = ANY(%s::oid[])",
                             (list(typemap.BUILTIN_ARRAYS.values()),)).fetchall())
    assert arrays == typemap.BUILTIN_ARRAYS


@pytest.mark.parametrize(("literal", "shown"), [
    ("'{{1,2},{3,4}}'::int4[]", "2-dimensional array"),
    ("'[0:1]={1,2}'::int4[]", "lower bound 0"),
])
def test_array_values_a_list_cannot_hold_fail_naming_the_column(source, literal, shown):
    with pytest.raises(SourceError, match=f"'arr' holds .*{shown}") as info:
        read_all(source, f"SELECT 1 AS id, {literal} AS arr")
    assert "arr::text" in (info.value.hint or "")


def test_user_types_and_their_arrays_read_the_same_on_a_reused_connection(pg, source, s):
    pg.execute("DROP TABLE IF EXISTS moods; DROP TYPE IF EXISTS feeling; "
               "CREATE TYPE feeling AS ENUM ('meh', 'yay'); "
               "CREATE TABLE moods (f feeling, fs feeling[])")
    pg.execute("INSERT INTO moods VALUES ('yay', '{meh,NULL,yay}'), (NULL, '{}')")
    for _ in range(2):  # the first read installs the loaders, the second reuses them
        stream, batches = read_all(source, f"SELECT f, fs FROM {s('moods')} ORDER BY f")
        assert rows_of(stream, batches) == [{"f": "yay", "fs": ["meh", None, "yay"]},
                                            {"f": None, "fs": []}]
    assert stream.schema.field("fs").type == pa.list_(pa.string())


WIDE = "1" * 50
HUGE = "1" * 80 + ".5"


def test_unconstrained_numeric_beyond_38_digits_fails_then_fits_its_override(pg, source, s):
    pg.execute(f"DROP TABLE IF EXISTS wide; CREATE TABLE wide (v numeric); "
               f"INSERT INTO wide VALUES ({WIDE}), (-0.5)")
    with pytest.raises(SourceError, match="'v'") as info:
        read_all(source, f"SELECT v FROM {s('wide')}")
    assert 'v = "decimal(70,20)"' in (info.value.hint or "")
    stream, batches = read_all(source, f"SELECT v FROM {s('wide')}",
                               column_types={"v": pa.decimal256(70, 20)})
    assert [r["v"] for r in rows_of(stream, batches)] == [Decimal(WIDE), Decimal("-0.5")]


def test_numeric_no_decimal_holds_is_exported_as_exact_text_on_request(pg, source, s):
    pg.execute(f"DROP TABLE IF EXISTS huge; CREATE TABLE huge (v numeric); "
               f"INSERT INTO huge VALUES ({HUGE}), ('NaN'), (0.0000001)")
    with pytest.raises(SourceError, match="'v'") as info:
        read_all(source, f"SELECT v FROM {s('huge')} WHERE v > 1")
    assert 'v = "string"' in (info.value.hint or "")
    with pytest.raises(SourceError, match="'v': value NaN") as info:
        read_all(source, f"SELECT v FROM {s('huge')} WHERE v = 'NaN'")
    assert 'v = "string"' in (info.value.hint or "")
    stream, batches = read_all(source, f"SELECT v FROM {s('huge')}",
                               column_types={"v": pa.string()})
    assert [r["v"] for r in rows_of(stream, batches)] == [HUGE, "NaN", "0.0000001"]


# ------------------------------------------------------------------ the runner's small statements

KEYS = """
CREATE TABLE keyed (id int8 PRIMARY KEY, d date, ts timestamp, tz timestamptz,
                    n numeric(12,2), c int4);
INSERT INTO keyed SELECT g, date '2024-01-01' + g,
    timestamp '2024-01-01 10:00' + g * interval '1 hour',
    timestamptz '2024-01-01 00:00+05:30' + g * interval '1 minute', g * 1.25,
    CASE WHEN g % 3 = 0 THEN NULL ELSE g END
  FROM generate_series(1, 10) AS g;
ANALYZE keyed;
"""


@pytest.fixture(scope="module")
def keyed(pg_url, pg_schema):
    """Ten rows with a key of every kind the chunked mode splits on, and a nullable cursor."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute(KEYS)
    return f'"{pg_schema}".keyed'


@pytest.mark.parametrize(("column", "lo", "hi"), [
    ("id", 1, 10),
    ("d", dt.date(2024, 1, 2), dt.date(2024, 1, 11)),
    ("ts", dt.datetime(2024, 1, 1, 11), dt.datetime(2024, 1, 1, 20)),
    ("tz", dt.datetime(2023, 12, 31, 18, 31, tzinfo=UTC),
     dt.datetime(2023, 12, 31, 18, 40, tzinfo=UTC)),
    ("n", Decimal("1.25"), Decimal("12.50")),
])
def test_fetch_rows_gives_key_statistics_as_plain_python_values(source, keyed, column, lo, hi):
    (row,) = source.fetch_rows(DIALECT.key_stats(f"SELECT * FROM {keyed}", column),
                               ReadOptions())
    assert row == {"lo": lo, "hi": hi, "n": 10, "nulls": 0}
    assert type(row["lo"]) is type(lo) and type(row["n"]) is int
    if column == "tz":
        assert row["lo"].utcoffset() == dt.timedelta(0)  # an aware instant, in UTC
    if column == "ts":
        assert row["lo"].tzinfo is None


def test_fetch_rows_runs_the_null_cursor_probe_and_the_key_histograms(source, keyed):
    base = f"SELECT * FROM {keyed}"
    options = ReadOptions()
    assert source.fetch_rows(DIALECT.null_cursor_probe(base, CursorSpec(column="c")),
                             options) == [{"found": 1}]
    assert source.fetch_rows(DIALECT.null_cursor_probe(base, CursorSpec(column="id")),
                             options) == []
    rows = source.fetch_rows(DIALECT.key_histogram(base, "id", origin=1, width=4), options)
    assert [(int(r["bucket"]), r["n"], r["lo"], r["hi"]) for r in rows] == [
        (0, 4, 1, 4), (1, 4, 5, 8), (2, 2, 9, 10)]
    rows = source.fetch_rows(DIALECT.key_histogram(base, "d", origin=dt.date(2024, 1, 1),
                                                   width=4, by_days=True), options)
    assert [(int(r["bucket"]), r["n"], r["lo"]) for r in rows] == [
        (0, 3, dt.date(2024, 1, 2)), (1, 4, dt.date(2024, 1, 5)), (2, 3, dt.date(2024, 1, 9))]


def test_fetch_rows_reads_the_catalog_through_the_dialect(source, keyed, pg_schema):
    options = ReadOptions()
    key = source.fetch_rows(DIALECT.primary_key(keyed), options)
    assert key == [{"column_name": "id", "data_type": "bigint"}]
    assert DIALECT.is_integer_type(key[0]["data_type"])
    tables = source.fetch_rows(DIALECT.tables(pg_schema), options)
    keyed_row = next(row for row in tables if row["table_name"] == "keyed")
    assert keyed_row["table_schema"] == pg_schema and keyed_row["table_kind"] == "table"
    assert keyed_row["estimated_rows"] == 10 and keyed_row["total_bytes"] > 0
    columns = source.fetch_rows(DIALECT.columns(keyed), options)
    assert [(c["column_name"], c["data_type"], c["is_nullable"]) for c in columns] == [
        ("id", "bigint", False), ("d", "date", True),
        ("ts", "timestamp without time zone", True), ("tz", "timestamp with time zone", True),
        ("n", "numeric(12,2)", True), ("c", "integer", True)]


def test_fetch_rows_runs_explain_which_neither_copy_nor_a_cursor_can(source, keyed):
    base = f"SELECT * FROM {keyed}"
    plan = source.fetch_rows(DIALECT.explain(DIALECT.full(base)), ReadOptions())
    assert DIALECT.estimated_rows(plan) == 10
    after = DIALECT.incremental(base, CursorSpec(column="tz"), lag_seconds=None,
                                after=dt.datetime(2023, 12, 31, 18, 35, tzinfo=UTC),
                                include_nulls=False)
    estimate = DIALECT.estimated_rows(source.fetch_rows(DIALECT.explain(after),
                                                        ReadOptions()))
    assert isinstance(estimate, int) and 1 <= estimate <= 10


def test_fetch_rows_runs_in_a_read_only_utc_transaction_with_the_reads_timeouts(source):
    (row,) = source.fetch_rows(
        Query(sql="SELECT current_setting('transaction_read_only') AS ro, "
                  "current_setting('TimeZone') AS tz, "
                  "current_setting('statement_timeout') AS st, '{\"a\": [1]}'::jsonb AS j"),
        ReadOptions(statement_timeout_s=2.5))
    assert row == {"ro": "on", "tz": "UTC", "st": "2500ms", "j": {"a": [1]}}
    assert source.fetch_rows(Query(sql="SELECT current_setting('statement_timeout') AS st"),
                             ReadOptions()) == [{"st": "0"}]


def test_fetch_rows_wraps_server_errors_like_reads(source):
    with pytest.raises(SourceError) as info:
        source.fetch_rows(Query(sql="SELEC 1", label="chunk key range"), ReadOptions())
    assert not isinstance(info.value, TransientSourceError)
    assert str(info.value) == ('chunk key range: syntax error at or near "SELEC" '
                               "(SQLSTATE 42601)")
    assert source.fetch_rows(Query(sql="SELECT 2 AS two"), ReadOptions()) == [{"two": 2}]


def test_nothing_else_runs_while_a_read_is_open(pg_url):
    with make_source(pg_url, read_path="cursor") as src:
        stream = src.read(Query(sql="SELECT g FROM generate_series(1, 100) AS g"),
                          ReadOptions(batch_size=10))
        batches = iter(stream)
        assert next(batches).num_rows == 10
        for attempt in (lambda: src.describe(Query(sql="SELECT 1 AS x"), ReadOptions()),
                        lambda: src.fetch_rows(Query(sql="SELECT 1 AS x"), ReadOptions())):
            with pytest.raises(RuntimeError, match="still open"):
                attempt()
        # The open read's transaction was left alone: it reads on to its end.
        assert sum(b.num_rows for b in batches) == 90
        assert src.fetch_rows(Query(sql="SELECT 1 AS x"), ReadOptions()) == [{"x": 1}]
