"""The mysql source against the real MariaDB: values, batches, session safety, errors.

Tables live in the session database (``mysql_db``); the seeding cursor ``my`` runs with the
session time zone +05:30 and a permissive sql_mode, so a source that trusted the session's
zone, or choked on zero dates, would show it here.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from rivet_mysql import MysqlConfig, factory, rivet_sources
from rivet_mysql.dialect import DIALECT

from rivet_core.backends import Query, ReadOptions, SourceContext
from rivet_core.dialect import CursorSpec
from rivet_core.errors import SourceError, TransientSourceError, UnsupportedTypeError

UTC = dt.UTC


def make_source(url: str, **config):
    return factory(MysqlConfig(url=url, **config), SourceContext(config_dir=Path(".")))


@pytest.fixture
def source(mysql_db_url):
    with make_source(mysql_db_url) as src:
        yield src


def read_all(src, sql, params=(), **options):
    with src.read(Query(sql=sql, params=params), ReadOptions(**options)) as stream:
        batches = list(stream)
    return stream, batches


def rows_of(stream, batches):
    return pa.Table.from_batches(batches, schema=stream.schema).to_pylist()


def session_values(src):
    """The source's own session settings, read on its connection between reads."""
    with src.slot.current.cursor() as cursor:
        cursor.execute("SELECT @@session.time_zone, @@session.max_statement_time, "
                       "@@session.lock_wait_timeout, @@in_transaction")
        return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in cursor.fetchone())


def test_timestamp_is_the_correct_instant_whatever_the_session_zone(my, source):
    my.execute("DROP TABLE IF EXISTS zoned")
    my.execute("CREATE TABLE zoned (id INT, ts TIMESTAMP(6) NULL, naive DATETIME(6))")
    # Written in a +05:30 session: the stored instant is 2024-01-01 00:00:00.000001 UTC.
    my.execute("INSERT INTO zoned VALUES (1, '2024-01-01 05:30:00.000001', "
               "'2024-01-01 05:30:00.000001'), (2, FROM_UNIXTIME(1710054000), NULL)")
    stream, batches = read_all(source, "SELECT ts, naive FROM zoned ORDER BY id")
    rows = rows_of(stream, batches)
    assert stream.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert [r["ts"] for r in rows] == [dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                                       dt.datetime(2024, 3, 10, 7, 0, tzinfo=UTC)]
    assert rows[0]["naive"] == dt.datetime(2024, 1, 1, 5, 30, 0, 1)


def test_session_settings_apply_during_the_read_and_are_restored_after(source):
    stream, batches = read_all(
        source, "SELECT @@session.time_zone AS tz, CAST(@@session.max_statement_time AS "
                "DOUBLE) AS mst, @@session.lock_wait_timeout AS lwt, @@in_transaction AS tx",
        statement_timeout_s=2.5, lock_timeout_s=0.2)
    assert rows_of(stream, batches) == [{"tz": "+00:00", "mst": 2.5, "lwt": 1, "tx": 1}]
    before = session_values(source)
    assert before[0] == "SYSTEM" and float(before[1]) == 0 and before[3] == "0"
    assert int(before[2]) > 1


def test_session_settings_are_restored_after_a_server_error(source):
    with pytest.raises(SourceError):
        read_all(source, "SELECT * FROM no_such_table_here", statement_timeout_s=3)
    tz, mst, _, in_tx = session_values(source)
    assert (tz, float(mst), in_tx) == ("SYSTEM", 0.0, "0")


def test_statement_timeout_is_a_transient_error_and_the_session_recovers(source):
    started = time.monotonic()
    with pytest.raises(TransientSourceError, match="1969") as info:
        read_all(source, "SELECT SLEEP(5) AS s", statement_timeout_s=1)
    assert time.monotonic() - started < 4
    assert "statement_timeout_s" in (info.value.hint or "")
    assert info.value.reason == "timeout"  # retried only with tuning.retry_timeouts
    _, batches = read_all(source, "SELECT 1 AS x")
    assert batches[0].to_pylist() == [{"x": 1}]
    assert session_values(source)[0] == "SYSTEM"


def test_the_transaction_is_read_only(my, source):
    my.execute("DROP TABLE IF EXISTS audit")
    my.execute("CREATE TABLE audit (x INT)")
    my.execute("CREATE OR REPLACE FUNCTION bump() RETURNS INT MODIFIES SQL DATA "
               "BEGIN INSERT INTO audit VALUES (1); RETURN 1; END")
    with pytest.raises(SourceError, match="READ ONLY") as info:
        read_all(source, "SELECT bump() AS x")
    assert not isinstance(info.value, TransientSourceError)
    assert "1792" in str(info.value)
    my.execute("SELECT COUNT(*) FROM audit")
    assert my.fetchone() == (0,)


@pytest.mark.parametrize(("rows", "sizes"), [(10, [3, 3, 3, 1]), (9, [3, 3, 3]), (1, [1])])
def test_batches_hold_batch_size_rows(source, rows, sizes):
    stream, batches = read_all(source, "SELECT seq AS g FROM seq_1_to_%s", (rows,),
                               batch_size=3)
    assert [b.num_rows for b in batches] == sizes
    assert rows_of(stream, batches) == [{"g": g} for g in range(1, rows + 1)]


def test_schema_is_known_before_any_row_is_read(source):
    # 100 000 rows are streamed, not buffered: only the first batch is read here.
    with source.read(Query(sql="SELECT seq AS g, 'x' AS t FROM seq_1_to_100000"),
                     ReadOptions(batch_size=10)) as stream:
        assert stream.schema.types == [pa.uint64(), pa.string()]
        first = next(iter(stream))
        assert first.num_rows == 10
    # Closing early dropped the connection rather than reading 99 990 rows; the next read
    # connects again.
    _, batches = read_all(source, "SELECT 2 AS two")
    assert batches[0].to_pylist() == [{"two": 2}]


def test_describe_maps_columns_without_running_the_query(source):
    started = time.monotonic()
    columns = source.describe(Query(sql="SELECT SLEEP(5) AS s, %s AS p, "
                                        "CAST(1.5 AS DECIMAL(9,3)) AS d", params=("x",)),
                              ReadOptions())
    assert time.monotonic() - started < 2
    assert [(c.name, c.source_type, c.arrow_type) for c in columns] == [
        ("s", "int", pa.int32()), ("p", "varchar", pa.string()),
        ("d", "decimal(9,3)", pa.decimal128(9, 3))]


def test_describe_reports_unsupported_columns_with_the_whole_mapping(my, source):
    my.execute("DROP TABLE IF EXISTS floats")
    my.execute("CREATE TABLE floats (id INT, f FLOAT, d DOUBLE)")
    with pytest.raises(UnsupportedTypeError) as info:
        source.describe(Query(sql="SELECT * FROM floats"), ReadOptions())
    assert [c.name for c in info.value.columns] == ["id", "f", "d"]
    assert "CAST(`f` AS DOUBLE)" in (info.value.hint or "")


def test_float_is_refused_before_any_row_and_cast_to_double_is_exact(my, source):
    my.execute("DROP TABLE IF EXISTS floats")
    my.execute("CREATE TABLE floats (id INT, f FLOAT)")
    my.execute("INSERT INTO floats VALUES (1, 16777216), (2, 1.2345678)")
    with pytest.raises(UnsupportedTypeError, match="'f' \\(float"):
        source.read(Query(sql="SELECT f FROM floats"), ReadOptions())
    stream, batches = read_all(source, "SELECT CAST(f AS DOUBLE) AS f FROM floats ORDER BY id")
    assert [r["f"] for r in rows_of(stream, batches)] == [16777216.0, 1.2345677614212036]
    # The rounded text on request, marked lossy.
    stream, batches = read_all(source, "SELECT f FROM floats ORDER BY id",
                               column_types={"f": pa.float64()})
    assert [r["f"] for r in rows_of(stream, batches)] == [16777200.0, 1.23457]
    assert stream.columns[0].fidelity.value == "lossy"


def test_zero_dates_fail_by_default_and_become_null_on_request(my, mysql_db_url):
    my.execute("DROP TABLE IF EXISTS zero")
    my.execute("CREATE TABLE zero (id INT, d DATE, t DATETIME)")
    my.execute("INSERT INTO zero VALUES (1, '0000-00-00', '2024-01-01 10:00:00'), "
               "(2, '2024-02-29', '0000-00-00 00:00:00')")
    with make_source(mysql_db_url) as src:
        with pytest.raises(SourceError, match=r"'d'.*0000-00-00") as info:
            read_all(src, "SELECT d, t FROM zero ORDER BY id")
        assert 'zero_dates = "null"' in (info.value.hint or "")
    with make_source(mysql_db_url, zero_dates="null") as src:
        stream, batches = read_all(src, "SELECT d, t FROM zero ORDER BY id")
    assert rows_of(stream, batches) == [
        {"d": None, "t": dt.datetime(2024, 1, 1, 10)},
        {"d": dt.date(2024, 2, 29), "t": None}]


def test_syntax_error_is_permanent_with_the_server_message(source):
    with pytest.raises(SourceError) as info:
        source.read(Query(sql="SELEC 1", label="export 'orders'"), ReadOptions())
    assert not isinstance(info.value, TransientSourceError)
    assert str(info.value).startswith("export 'orders': You have an error in your SQL")
    assert str(info.value).endswith("(MySQL error 1064)")


def test_missing_table_is_permanent(source):
    with pytest.raises(SourceError, match="1146") as info:
        source.read(Query(sql="SELECT * FROM no_such_table_here"), ReadOptions())
    assert not isinstance(info.value, TransientSourceError)


def test_override_naming_a_column_the_query_lacks_is_an_error(source):
    with pytest.raises(SourceError, match="'Amount'"):
        read_all(source, "SELECT 1 AS amount", column_types={"Amount": pa.int64()})


def test_override_cast_that_overflows_fails_naming_the_column(source):
    with pytest.raises(SourceError, match="'big'"):
        read_all(source, "SELECT 100000 AS big", column_types={"big": pa.int16()})


def test_connection_failure_is_transient_and_never_shows_the_password():
    src = make_source("mysql://rivet:Sup3rSecretPw@127.0.0.1:1/test", connect_timeout_s=2)
    with src, pytest.raises(TransientSourceError) as info:
        src.read(Query(sql="SELECT 1"), ReadOptions())
    text = f"{info.value} {info.value.hint} {info.value!r}"
    assert "Sup3rSecretPw" not in text
    assert "mysql://rivet:REDACTED@127.0.0.1:1/test" in str(info.value)
    assert "2003" in str(info.value)


def test_wrong_password_is_permanent(mysql_url):
    src = make_source(mysql_url.replace("://root@", "://root:wrong-pw@"))
    with src, pytest.raises(SourceError, match="1045") as info:
        src.read(Query(sql="SELECT 1"), ReadOptions())
    assert not isinstance(info.value, TransientSourceError)
    assert "wrong-pw" not in str(info.value)


def test_display_name_hides_the_password(mysql_db_url, mysql_db):
    src = make_source("mysql://rivet:Sup3rSecretPw@db.example:3307/sales")
    assert src.display_name() == "mysql://rivet:REDACTED@db.example:3307/sales"
    assert make_source(mysql_db_url).display_name() == f"mysql://root@127.0.0.1:3306/{mysql_db}"


def test_url_query_parameters_are_refused():
    src = make_source("mysql://root@127.0.0.1:3306/test?ssl-mode=REQUIRED")
    with src, pytest.raises(SourceError, match="ssl-mode"):
        src.read(Query(sql="SELECT 1"), ReadOptions())
    assert MysqlConfig(url="mysql://u@h/d?x=1").config_issues(Path("."))[0][0] == "url"


def test_a_connection_killed_between_reads_is_replaced(my, mysql_db_url):
    # The pymysql path reads on the source's own connection, the one killed here.
    source = make_source(mysql_db_url, read_path="pymysql")
    _, batches = read_all(source, "SELECT CONNECTION_ID() AS id")
    first = batches[0].column("id")[0].as_py()
    my.execute(f"KILL {first}")
    time.sleep(0.1)
    _, batches = read_all(source, "SELECT CONNECTION_ID() AS id")
    assert batches[0].column("id")[0].as_py() != first


def test_oversized_batches_halve_the_fetch_size_on_the_pymysql_path(mysql_db_url):
    source = make_source(mysql_db_url, read_path="pymysql")
    _, batches = read_all(source, "SELECT REPEAT('x', 1000) AS t FROM seq_1_to_20",
                          batch_size=8, max_batch_bytes=2000)
    assert [b.num_rows for b in batches] == [8, 4, 2, 1, 1, 1, 1, 1, 1]


def test_throttle_pauses_between_batches(source):
    started = time.monotonic()
    _, batches = read_all(source, "SELECT seq FROM seq_1_to_3", batch_size=1, throttle_ms=100)
    assert len(batches) == 3 and time.monotonic() - started >= 0.2


def test_plugin_registers_the_mysql_source_spec():
    (spec,) = rivet_sources()
    assert (spec.name, spec.dialect.name, spec.config_cls) == ("mysql", "mysql", MysqlConfig)
    assert MysqlConfig(url="mysql://u@h/d").config_issues(Path(".")) == []


def test_decimal_and_unsigned_values_are_exact(source):
    stream, batches = read_all(
        source, "SELECT CAST(18446744073709551615 AS UNSIGNED) AS u, "
                "CAST('-12345678901234567890.123456789' AS DECIMAL(65,30)) AS d")
    (row,) = rows_of(stream, batches)
    assert row == {"u": 2**64 - 1, "d": Decimal("-12345678901234567890.123456789")}
    assert stream.schema.field("d").type == pa.decimal256(65, 30)


# ------------------------------------------------------------------ the runner's small statements


@pytest.fixture
def keyed(my):
    """Ten rows with a key of every kind the chunked mode splits on, and a nullable cursor;
    written in a +05:30 session, so a TIMESTAMP read in the session's zone would show."""
    my.execute("DROP TABLE IF EXISTS keyed")
    my.execute("CREATE TABLE keyed (id BIGINT PRIMARY KEY, d DATE, ts DATETIME(6), "
               "tz TIMESTAMP(6) NULL, n DECIMAL(12,2), c INT, s VARCHAR(20))")
    my.execute("INSERT INTO keyed SELECT seq, DATE('2024-01-01') + INTERVAL seq DAY, "
               "TIMESTAMP('2024-01-01 10:00:00') + INTERVAL seq HOUR, "
               "TIMESTAMP('2024-01-01 05:30:00') + INTERVAL seq MINUTE, seq * 1.25, "
               "IF(seq % 3 = 0, NULL, seq), CONCAT('é', seq) FROM seq_1_to_10")
    my.execute("ANALYZE TABLE keyed")
    my.fetchall()
    return "keyed"


@pytest.mark.parametrize(("column", "lo", "hi"), [
    ("id", 1, 10),
    ("d", dt.date(2024, 1, 2), dt.date(2024, 1, 11)),
    ("ts", dt.datetime(2024, 1, 1, 11), dt.datetime(2024, 1, 1, 20)),
    # TIMESTAMP: the UTC wall time (the session zone is +00:00), naive as pymysql gives it.
    ("tz", dt.datetime(2024, 1, 1, 0, 1), dt.datetime(2024, 1, 1, 0, 10)),
    ("n", Decimal("1.25"), Decimal("12.50")),
    ("s", "é1", "é9"),
])
def test_fetch_rows_gives_key_statistics_as_plain_python_values(source, keyed, column, lo, hi):
    (row,) = source.fetch_rows(DIALECT.key_stats(f"SELECT * FROM {keyed}", column),
                               ReadOptions())
    assert row == {"lo": lo, "hi": hi, "n": 10, "nulls": 0}
    assert type(row["lo"]) is type(lo) and type(row["n"]) is int


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


def test_fetch_rows_reads_the_catalog_through_the_dialect(source, keyed, mysql_db):
    options = ReadOptions()
    for table in (keyed, f"{mysql_db}.{keyed}", f"`{mysql_db}`.`{keyed}`"):
        key = source.fetch_rows(DIALECT.primary_key(table), options)
        assert key == [{"column_name": "id", "data_type": "bigint"}]
    assert DIALECT.is_integer_type(key[0]["data_type"])
    (row,) = [r for r in source.fetch_rows(DIALECT.tables(None), options)
              if r["table_name"] == keyed]
    assert (row["table_schema"], row["table_kind"], row["estimated_rows"]) == (
        mysql_db, "table", 10)
    assert row["total_bytes"] > 0
    columns = source.fetch_rows(DIALECT.columns(keyed), options)
    assert [(c["column_name"], c["data_type"].split("(")[0], bool(c["is_nullable"]))
            for c in columns] == [
        ("id", "bigint", False), ("d", "date", True), ("ts", "datetime", True),
        ("tz", "timestamp", True), ("n", "decimal", True), ("c", "int", True),
        ("s", "varchar", True)]


def test_fetch_rows_runs_explain(source, keyed):
    base = f"SELECT * FROM {keyed}"
    plan = source.fetch_rows(DIALECT.explain(DIALECT.full(base)), ReadOptions())
    assert DIALECT.estimated_rows(plan) == 10
    after = DIALECT.incremental(base, CursorSpec(column="tz"), lag_seconds=None,
                                after=dt.datetime(2024, 1, 1, 0, 3, tzinfo=UTC),
                                include_nulls=False)
    estimate = DIALECT.estimated_rows(source.fetch_rows(DIALECT.explain(after),
                                                        ReadOptions()))
    assert isinstance(estimate, int) and 1 <= estimate <= 10


def test_fetch_rows_runs_in_the_reads_session_and_restores_it(source):
    (row,) = source.fetch_rows(
        Query(sql="SELECT @@session.time_zone AS tz, CAST(@@session.max_statement_time AS "
                  "DOUBLE) AS mst, @@in_transaction AS tx, CAST('10:00:01' AS TIME) AS t"),
        ReadOptions(statement_timeout_s=2.5))
    assert row == {"tz": "+00:00", "mst": 2.5, "tx": 1,
                   "t": dt.timedelta(hours=10, seconds=1)}
    tz, mst, _, in_tx = session_values(source)
    assert (tz, float(mst), in_tx) == ("SYSTEM", 0.0, "0")


def test_fetch_rows_wraps_server_errors_like_reads(source):
    with pytest.raises(SourceError) as info:
        source.fetch_rows(Query(sql="SELEC 1", label="chunk key range"), ReadOptions())
    assert not isinstance(info.value, TransientSourceError)
    assert str(info.value).startswith("chunk key range: You have an error in your SQL")
    assert str(info.value).endswith("(MySQL error 1064)")
    tz, _, _, in_tx = session_values(source)
    assert (tz, in_tx) == ("SYSTEM", "0")


def test_nothing_else_runs_while_a_read_is_open(mysql_db_url):
    with make_source(mysql_db_url, read_path="pymysql") as src:
        stream = src.read(Query(sql="SELECT seq FROM seq_1_to_100"), ReadOptions(batch_size=10))
        batches = iter(stream)
        assert next(batches).num_rows == 10
        for attempt in (lambda: src.describe(Query(sql="SELECT 1 AS x"), ReadOptions()),
                        lambda: src.fetch_rows(Query(sql="SELECT 1 AS x"), ReadOptions())):
            with pytest.raises(RuntimeError, match="still open"):
                attempt()
        assert sum(b.num_rows for b in batches) == 90
        assert src.fetch_rows(Query(sql="SELECT 1 AS x"), ReadOptions()) == [{"x": 1}]
