"""The mysql source's two read paths against the real MariaDB: which path a read takes and
why, that both give equal batches, parallel key ranges, and that the ConnectorX path leaves
no session behind when a read stops early.

The types zoo (test_types_zoo_mysql) exports every type on each path; the session, timeout,
read-only and error tests of test_mysql_source run on the default (ConnectorX) path.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pyarrow as pa
import pytest
from rivet_mysql import MysqlConfig, cxplan, factory, keyranges

from rivet_core.backends import Query, ReadOptions, SourceContext
from rivet_core.errors import SourceError

FAST = "ConnectorX binary protocol"
COMPAT = "pymysql text protocol"


def make_source(url: str, **config):
    return factory(MysqlConfig(url=url, **config), SourceContext(config_dir=Path(".")))


def read(url, query: Query, read_path: str = "auto", **options):
    with make_source(url, read_path=read_path) as src, src.read(
            query, ReadOptions(**options)) as stream:
        batches = list(stream)
        return stream.read_path, pa.Table.from_batches(batches, schema=stream.schema)


@pytest.fixture
def events(my):
    my.execute("DROP TABLE IF EXISTS events")
    my.execute("CREATE TABLE events (id BIGINT PRIMARY KEY, at TIMESTAMP(6) NULL, "
               "amount DECIMAL(20,4), note VARCHAR(20))")
    my.execute("INSERT INTO events SELECT seq, FROM_UNIXTIME(1700000000 + seq), seq / 7, "
               "CONCAT('n', seq) FROM seq_1_to_1000")
    return "events"


def test_the_default_path_is_connectorx_and_the_summary_says_so(mysql_db_url, events):
    path, table = read(mysql_db_url, Query(sql="SELECT id, at FROM events"))
    assert path == f"{FAST}, 1 connection"
    assert table.num_rows == 1000 and table.schema.field("at").type == pa.timestamp("us", "UTC")


def test_both_paths_give_equal_tables_for_a_chunk_statement_with_parameters(
        mysql_db_url, events):
    query = Query(sql="SELECT * FROM (SELECT * FROM events) AS _rivet WHERE _rivet.id >= %s "
                      "AND _rivet.id < %s", params=(10, 500))
    fast_path, fast = read(mysql_db_url, query, "connectorx")
    compat_path, compat = read(mysql_db_url, query, "pymysql")
    assert fast_path.startswith(FAST) and compat_path.startswith(COMPAT)
    assert fast.num_rows == 490 and fast.sort_by("id").equals(compat.sort_by("id"))


def test_order_by_with_a_cast_column_goes_to_pymysql_with_the_reason(mysql_db_url, events):
    path, table = read(mysql_db_url, Query(sql="SELECT id, amount FROM events ORDER BY id DESC"))
    assert path.startswith(f"{COMPAT}: the query has ORDER BY, and column amount needs")
    assert table.column("id").to_pylist()[:2] == [1000, 999]


def test_order_by_without_a_cast_stays_on_connectorx_and_keeps_the_order(mysql_db_url, events):
    path, table = read(mysql_db_url, Query(sql="SELECT id, note FROM events ORDER BY id DESC"))
    assert path.startswith(FAST)
    assert table.column("id").to_pylist()[:2] == [1000, 999]


def test_a_query_the_wrapper_would_materialise_goes_to_pymysql(mysql_db_url, events):
    path, table = read(mysql_db_url, Query(
        sql="SELECT amount FROM events UNION ALL SELECT amount FROM events"))
    assert path.startswith(f"{COMPAT}: the query cannot be merged")
    assert table.num_rows == 2000


@pytest.fixture
def dates(my):
    # Written from a +05:30 session (the `my` fixture), so a zone mix-up would show.
    my.execute("DROP TABLE IF EXISTS dates")
    my.execute("CREATE TABLE dates (id INT PRIMARY KEY, d DATE, dt DATETIME(6), dt0 DATETIME, "
               "ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL)")
    my.execute("INSERT INTO dates VALUES "
               "(1, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00', "
               "FROM_UNIXTIME(1), FROM_UNIXTIME(1)), "
               "(2, '9999-12-31', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59', "
               "FROM_UNIXTIME(2147483647.999999), FROM_UNIXTIME(2147483647)), "
               "(3, '2024-02-29', '2024-03-10 02:30:00.000001', '2024-11-03 01:30:00', "
               "'2024-01-01 05:30:00.000001', '2024-01-01 05:30:00'), "
               "(4, NULL, NULL, NULL, NULL, NULL)")
    return "dates"


def test_dates_travel_natively_and_equal_the_text_path(mysql_db_url, dates):
    query = Query(sql="SELECT * FROM dates ORDER BY id")
    fast_path, fast = read(mysql_db_url, query, "connectorx")
    _, compat = read(mysql_db_url, query, "pymysql")
    assert fast_path == f"{FAST}, 1 connection"
    assert fast.schema == compat.schema and fast.equals(compat)
    assert fast.column("ts").to_pylist()[2].isoformat() == "2024-01-01T00:00:00.000001+00:00"


def test_a_zero_date_fails_the_connectorx_read_naming_the_date_columns(my, mysql_db_url, dates):
    my.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
    my.execute("INSERT INTO dates (id, d) VALUES (5, '0000-00-00')")
    src = make_source(mysql_db_url, read_path="connectorx")
    expected = r"column 'd', 'dt'.*'0000-00-00' is a zero or invalid date"
    with src, pytest.raises(SourceError, match=expected) as info, src.read(
            Query(sql="SELECT id, d, dt FROM dates"), ReadOptions()) as stream:
        list(stream)
    assert 'zero_dates = "null"' in (info.value.hint or "")


def test_with_zero_dates_null_dates_travel_as_text(mysql_db_url, dates):
    with make_source(mysql_db_url, zero_dates="null") as src, src.read(
            Query(sql="SELECT id, d FROM dates ORDER BY id"), ReadOptions()) as stream:
        list(stream)
    assert stream.read_path.startswith(f"{COMPAT}: the query has ORDER BY, and column d")


def test_forcing_connectorx_fails_on_what_it_cannot_carry(my, mysql_db_url):
    my.execute("DROP TABLE IF EXISTS floats")
    my.execute("CREATE TABLE floats (f FLOAT)")
    with make_source(mysql_db_url, read_path="connectorx") as src, pytest.raises(
            SourceError, match='read_path = "connectorx", but column f'):
        src.read(Query(sql="SELECT f FROM floats"), ReadOptions(column_types={"f": pa.float64()}))


def test_a_small_table_is_read_on_the_sources_own_connection(mysql_db_url, events):
    """ConnectorX's own connections and key statistics cost ~60 ms before its first row: a
    table of a thousand rows is read over pymysql, with the reason, and the same data."""
    path, table = read(mysql_db_url, Query(sql="SELECT * FROM events", table="events"))
    assert re.fullmatch(f"{COMPAT}: a small table \\(about 1,0\\d\\d rows\\): one statement "
                        "on the source's own connection costs less than ConnectorX's "
                        "connections", path), path  # the server's estimate
    forced, fast = read(mysql_db_url, Query(sql="SELECT * FROM events", table="events"),
                        "connectorx")
    assert forced.startswith(FAST)
    assert table.equals(fast)


def test_a_table_export_is_read_in_bounded_key_ranges_one_after_the_other(
        mysql_db_url, events, monkeypatch):
    monkeypatch.setattr(keyranges, "range_rows", lambda row_bytes: 150)
    monkeypatch.setattr(cxplan, "SMALL_TABLE_ROWS", 0)
    path, table = read(mysql_db_url, Query(sql="SELECT * FROM events", table="events"))
    assert re.fullmatch(f"{FAST}, 1 connection over \\d+ ranges of id", path), path
    assert sorted(table.column("id").to_pylist()) == list(range(1, 1001))


def test_parallel_table_read_splits_into_key_ranges_read_at_once(
        mysql_db_url, events, monkeypatch):
    monkeypatch.setattr(keyranges, "range_rows", lambda row_bytes: 150)
    path, table = read(mysql_db_url, Query(sql="SELECT * FROM events", table="events"),
                       parallel=2)
    assert re.fullmatch(f"{FAST}, 2 connections over \\d+ ranges of id", path), path
    assert sorted(table.column("id").to_pylist()) == list(range(1, 1001))
    _, single = read(mysql_db_url, Query(sql="SELECT * FROM events", table="events"),
                     "pymysql")
    assert table.sort_by("id").equals(single.sort_by("id"))


def test_parallel_read_of_a_table_without_an_integer_key_uses_one_connection(
        my, mysql_db_url):
    my.execute("DROP TABLE IF EXISTS tagged")
    my.execute("CREATE TABLE tagged (tag VARCHAR(10) PRIMARY KEY)")
    my.execute("INSERT INTO tagged VALUES ('a'), ('b')")
    path, table = read(mysql_db_url, Query(sql="SELECT * FROM tagged", table="tagged"),
                       parallel=2)
    assert path == (f"{FAST}, 1 connection (parallel = 2 not used: table tagged has no "
                    "single-column integer primary key (tag varchar))")
    assert table.num_rows == 2


def test_a_big_query_that_cannot_be_split_goes_to_pymysql(mysql_db_url, events, monkeypatch):
    # ConnectorX reads ahead without back-pressure: only small results may take it.
    monkeypatch.setattr(keyranges, "QUERY_ROWS", 100)
    path, table = read(mysql_db_url, Query(sql="SELECT id, note FROM events"))
    assert path.startswith(f"{COMPAT}: not a table export, and the server estimates")
    assert table.num_rows == 1000


def test_closing_a_connectorx_stream_early_ends_its_server_sessions(my, mysql_db_url):
    with make_source(mysql_db_url) as src:
        stream = src.read(Query(sql="SELECT seq, CAST(seq AS DATE) AS d FROM seq_1_to_900000"),
                          ReadOptions(batch_size=100))
        assert stream.read_path.startswith(FAST)
        first = next(iter(stream))
        assert first.num_rows == 100
        stream.close()
        # The source is usable again at once.
        with src.read(Query(sql="SELECT 1 AS one"), ReadOptions()) as again:
            assert [b.to_pylist() for b in again] == [[{"one": 1}]]
    time.sleep(0.2)
    my.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE "
               "'/* rivet-cx %%' AND DB = DATABASE()")
    assert my.fetchone() == (0,)


def test_connectorx_batches_fit_max_batch_bytes(mysql_db_url):
    path, table = read(mysql_db_url,
                       Query(sql="SELECT REPEAT('x', 1000) AS t FROM seq_1_to_20"),
                       batch_size=8, max_batch_bytes=2500)
    assert path.startswith(FAST)
    assert all(b.nbytes <= 2500 for b in table.to_batches()) and table.num_rows == 20
