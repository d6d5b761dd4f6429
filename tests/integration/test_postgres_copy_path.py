"""The postgres source's two read paths against the real server: binary COPY decoded in C
(the default), the server-side cursor (the fallback), the choice between them, and
table reads in ctid ranges over parallel connections sharing one snapshot.

Both paths must give the same values for every type; the types zoo compares them on every
supported type (tests/integration/test_types_zoo_pg.py), this module on the read mechanics.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from rivet_postgres import PostgresConfig, copyplan, factory

from rivet_core.backends import Query, ReadOptions, SourceContext
from rivet_core.errors import SourceError, TransientSourceError

APP = "rivet-copy-tests"


def make_source(url: str, **config):
    return factory(PostgresConfig(url=url, application_name=APP, **config),
                   SourceContext(config_dir=Path(".")))


def read(src, query: Query, **options):
    with src.read(query, ReadOptions(**options)) as stream:
        batches = list(stream)
    return stream, pa.Table.from_batches(batches, schema=stream.schema)


@pytest.fixture
def s(pg_schema):
    return lambda name: f'"{pg_schema}".{name}'


@pytest.fixture(scope="module")
def ranged_table(pg_url, pg_schema):
    """A table of 20 000 rows (about 130 heap blocks) with a few types worth converting."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute("DROP TABLE IF EXISTS ranged; CREATE TABLE ranged (id int8 PRIMARY KEY, "
                     "v int4, amount numeric(12,2), at timestamptz, u uuid, note text)")
        conn.execute("INSERT INTO ranged SELECT g, g % 1000, g / 100.0, "
                     "'2024-01-01'::timestamptz + g * interval '1 second', "
                     "md5(g::text)::uuid, repeat('n', g % 50) FROM generate_series(1, 20000) g")
        conn.execute("VACUUM ANALYZE ranged")
    return f"{pg_schema}.ranged"


@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of 8 blocks, so a test table spans many of them."""
    monkeypatch.setattr(copyplan, "BLOCKS_PER_RANGE", 8)


def test_copy_is_the_default_path_and_the_stream_says_so(pg_url):
    with make_source(pg_url) as src:
        stream, table = read(src, Query(sql="SELECT 1::int8 AS one"))
    assert stream.read_path == "binary COPY"
    assert table.to_pylist() == [{"one": 1}]


def test_cursor_path_when_asked_and_the_stream_says_why(pg_url):
    with make_source(pg_url, read_path="cursor") as src:
        stream, _ = read(src, Query(sql="SELECT 1 AS one"))
    assert stream.read_path == 'server-side cursor (psycopg): read_path = "cursor" in [source]'


def test_a_result_copy_cannot_convert_falls_back_to_the_cursor_and_says_why(pg_url):
    sql = "SELECT '1 day'::interval AS a, 2 AS a"
    with make_source(pg_url) as src:
        stream, table = read(src, Query(sql=sql))
    assert stream.read_path == ("server-side cursor (psycopg): the result has two columns "
                                "named 'a'")
    assert table.column(0).to_pylist() == ["P1D"]
    with make_source(pg_url, read_path="copy") as src, \
            pytest.raises(SourceError, match="two columns named 'a'"):
        src.read(Query(sql=sql), ReadOptions())


PARAM_SQL = ("SELECT %s::numeric AS n, %s::timestamptz AS t, %s::text AS s, %s::date AS d, "
             "%s::int8 AS i, %s::bool AS b, %s::bytea AS raw, 'lit%%' AS pct")
PARAMS = (Decimal("-12.3400"), dt.datetime(2024, 3, 10, 1, 30, tzinfo=dt.timezone(
    dt.timedelta(hours=5, minutes=30))), "it's \\ \"q\" ✓", dt.date(1999, 12, 31), -2**63,
          True, b"\x00'\\")


def test_params_reach_copy_as_literals_with_the_values_the_cursor_binds(pg_url):
    with make_source(pg_url) as copy_src, make_source(pg_url, read_path="cursor") as cur_src:
        copy_stream, by_copy = read(copy_src, Query(sql=PARAM_SQL, params=PARAMS))
        _, by_cursor = read(cur_src, Query(sql=PARAM_SQL, params=PARAMS))
    assert copy_stream.read_path == "binary COPY"
    assert by_copy.equals(by_cursor)
    assert by_copy.to_pylist()[0]["s"] == "it's \\ \"q\" ✓"
    assert by_copy.to_pylist()[0]["pct"] == "lit%"


def test_a_table_read_in_ctid_ranges_over_parallel_connections_has_every_row_once(
        pg_url, ranged_table, small_ranges):
    query = Query(sql=f"SELECT * FROM {ranged_table}", table=ranged_table)
    with make_source(pg_url) as src:
        stream, ranged = read(src, query, parallel=3, batch_size=1000)
        single_stream, single = read(src, Query(sql=query.sql))
    assert stream.read_path.startswith("binary COPY, 3 connections over ")
    assert "ctid ranges of " in stream.read_path
    assert single_stream.read_path == "binary COPY"
    assert ranged.sort_by("id").equals(single.sort_by("id"))
    assert ranged.num_rows == 20000


def test_parallel_range_readers_share_one_snapshot(pg, pg_url, ranged_table, small_ranges):
    """An update committed while the ranges are being read is invisible to all of them."""
    query = Query(sql=f"SELECT * FROM {ranged_table}", table=ranged_table)
    with make_source(pg_url) as src:
        stream = src.read(query, ReadOptions(parallel=2, batch_size=50))
        batches = iter(stream)
        first = [next(batches)]  # the readers have started, and imported the snapshot
        pg.execute(f"UPDATE {ranged_table} SET v = v + 100000")
        try:
            rows = pa.Table.from_batches(first + list(batches))
        finally:
            pg.execute(f"UPDATE {ranged_table} SET v = v - 100000")
        assert rows.num_rows == 20000
        assert max(rows.column("v").to_pylist()) < 1000
        _, after = read(src, query)
    assert after.num_rows == 20000


def test_copy_transactions_are_read_only_and_in_utc(pg_url):
    with make_source(pg_url) as src:
        _, table = read(src, Query(sql="SELECT current_setting('transaction_read_only') AS ro,"
                                       " current_setting('TimeZone') AS tz,"
                                       " current_setting('statement_timeout') AS st"),
                        statement_timeout_s=1.5)
    assert table.to_pylist() == [{"ro": "on", "tz": "UTC", "st": "1500ms"}]


def test_batches_stay_within_max_batch_bytes_on_copy(pg_url):
    with make_source(pg_url) as src:
        _, table = read(src, Query(sql="SELECT g, repeat('x', 1000) AS t "
                                       "FROM generate_series(1, 200) g"),
                        max_batch_bytes=20_000)
        stream = src.read(Query(sql="SELECT g, repeat('x', 1000) AS t "
                                    "FROM generate_series(1, 200) g"),
                          ReadOptions(max_batch_bytes=20_000, batch_size=1000))
        with stream:
            sizes = [(b.num_rows, b.nbytes) for b in stream]
    assert table.num_rows == 200
    assert len(sizes) > 1 and all(nbytes <= 20_000 + 1100 for _, nbytes in sizes)


def idle_rivet_sessions(pg) -> list[str]:
    return [state for (state,) in pg.execute(
        "SELECT state FROM pg_stat_activity WHERE application_name = %s", (APP,)).fetchall()]


@pytest.mark.parametrize("ranged", [False, True])
def test_closing_a_copy_stream_early_stops_the_server_and_frees_the_source(
        pg, pg_url, ranged_table, small_ranges, ranged):
    query = Query(sql=f"SELECT * FROM {ranged_table}",
                  table=ranged_table if ranged else None)
    with make_source(pg_url) as src:
        stream = src.read(query, ReadOptions(parallel=2, batch_size=10))
        batches = iter(stream)
        # At most 10 rows; fewer when a range holds fewer live rows (an earlier test's
        # UPDATEs leave some ranges of the shared table sparse).
        assert 0 < next(batches).num_rows <= 10
        with pytest.raises(RuntimeError, match="still open"):
            src.read(Query(sql="SELECT 1"), ReadOptions())
        started = time.monotonic()
        stream.close()
        assert time.monotonic() - started < 5
        deadline = time.monotonic() + 5
        while "active" in idle_rivet_sessions(pg) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "active" not in idle_rivet_sessions(pg)
        assert "idle in transaction" not in idle_rivet_sessions(pg)
        _, table = read(src, Query(sql="SELECT 2 AS two"))
        assert table.to_pylist() == [{"two": 2}]


def test_an_error_in_one_range_reader_fails_the_read_naming_the_server_error(
        pg_url, ranged_table, small_ranges, monkeypatch):
    # The last range's statement (the table's end, where live rows always are) fails on the
    # server at its first row (a volatile expression, so at execution, not planning), while
    # the other worker reads: the whole read fails, with the server's own message.
    plain = copyplan.range_sql

    def failing_last_range(table, block_range):
        sql = plain(table, block_range)
        return sql + " AND 1 / (random() * 0)::int IS NOT NULL" if block_range[1] is None else sql

    monkeypatch.setattr(copyplan, "range_sql", failing_last_range)
    with make_source(pg_url) as src, pytest.raises(SourceError, match="division by zero") as info:
        read(src, Query(sql=f"SELECT * FROM {ranged_table}", table=ranged_table), parallel=2)
    assert "22012" in str(info.value) and not isinstance(info.value, TransientSourceError)


def test_without_the_driver_the_cursor_path_serves_the_read_and_says_why(pg_url,
                                                                        monkeypatch):
    from rivet_postgres import source as pg_source

    monkeypatch.setattr(pg_source, "_copy_driver_missing",
                        lambda: "the C decoder is not built (test)")
    with make_source(pg_url) as src:
        stream, table = read(src, Query(sql="SELECT 1 AS one"))
    assert stream.read_path == "server-side cursor (psycopg): the C decoder is not built (test)"
    assert table.to_pylist() == [{"one": 1}]
    with make_source(pg_url, read_path="copy") as src, \
            pytest.raises(SourceError, match="not built"):
        src.read(Query(sql="SELECT 1 AS one"), ReadOptions())


TABLE_EXPORT = """
[source]
type = "postgres"
url = "{url}"

[[exports]]
name = "ranged"
table = "{table}"
format = "{fmt}"
parallel = 2
[exports.destination]
type = "local"
path = "./out/{fmt}"
"""


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_rivet_run_of_a_table_export_reads_ranges_in_parallel_into_one_file(
        pg_url, ranged_table, small_ranges, tmp_path, fmt):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from rivet_core.testing import RivetProject

    project = RivetProject(tmp_path)
    project.write_config(TABLE_EXPORT.format(url=pg_url, table=ranged_table, fmt=fmt))
    # small_ranges patches this process; the CLI runs in-process, so it applies.
    outcome = project.run("run", "--json")
    outcome.assert_success()
    (export,) = outcome.json()["exports"]
    assert export["rows"] == 20000 and len(export["files"]) == 1
    assert export["read_paths"][0].startswith("binary COPY, 2 connections over ")
    (path,) = (project.path / "out" / fmt).glob(f"*.{fmt}")
    table = pq.read_table(path) if fmt == "parquet" else pacsv.read_csv(path)
    assert sorted(table.column("id").to_pylist()) == list(range(1, 20001))


def test_a_table_hint_on_another_query_is_read_with_one_copy(pg_url, ranged_table,
                                                              small_ranges):
    with make_source(pg_url) as src:
        stream, table = read(src, Query(sql=f"SELECT id FROM {ranged_table} WHERE id <= 10",
                                        table=ranged_table), parallel=2)
    assert stream.read_path == "binary COPY"
    assert table.num_rows == 10


def test_wide_rows_shrink_cursor_batches_without_a_memory_cap(pg_url, monkeypatch):
    from rivet_postgres.cursor import CursorBatchStream

    monkeypatch.setattr(CursorBatchStream, "default_max_batch_bytes", 4000)
    with make_source(pg_url, read_path="cursor") as src:
        stream = src.read(Query(sql="SELECT repeat('x', 1000) AS t FROM generate_series(1, 20)"),
                          ReadOptions(batch_size=8))
        with stream:
            sizes = [b.num_rows for b in stream]
    assert sizes[:3] == [8, 4, 2] and sum(sizes) == 20


NUMERICS = [
    ("numeric(12,2)", ["0", "-0.5", "1.01", "9999999999.99", "-9999999999.99", "10000", "0.10"]),
    ("numeric(38,20)", ["0.00000000000000000001", "-123456789012345678.12345678901234567891",
                        "100000000000000000", "1e-5", "0"]),
    ("numeric(38,0)", ["99999999999999999999999999999999999999",
                       "-99999999999999999999999999999999999999", "10000000000000000"]),
    ("numeric(5,-2)", ["12300", "-9999900", "0"]),
    ("numeric(4,4)", ["0.9999", "-0.0001", "0.1"]),
    ("numeric", ["1.5", "-0.00000000000000000001", "123456789012345678", "1e17"]),
]


@pytest.mark.parametrize(("typ", "values"), NUMERICS, ids=[t for t, _ in NUMERICS])
def test_numerics_decoded_in_c_equal_the_cursor_path(pg_url, typ, values):
    """Numeric is decoded from its binary form (base-10000 digits) straight into the
    decimal128: every value equals what the cursor path builds from the exact text."""
    sql = ("SELECT v::" + typ + " AS v FROM unnest(ARRAY["
           + ", ".join(f"'{v}'" for v in values) + "]::text[]) WITH ORDINALITY AS t(v, i) "
           "ORDER BY i")
    with make_source(pg_url, read_path="copy") as src:
        copy_stream, copied = read(src, Query(sql=sql))
    with make_source(pg_url, read_path="cursor") as src:
        _, fetched = read(src, Query(sql=sql))
    assert copy_stream.read_path == "binary COPY"
    assert copied.equals(fetched)
    assert [str(v) for v in copied.column("v").to_pylist()] == [
        str(v) for v in fetched.column("v").to_pylist()]


def test_a_numeric_that_would_round_fails_on_copy_as_on_the_cursor(pg_url):
    sql = "SELECT '1.005'::numeric AS v"
    messages = []
    for path in ("copy", "cursor"):
        with make_source(pg_url, read_path=path) as src, \
                pytest.raises(SourceError) as info:
            read(src, Query(sql=sql), column_types={"v": pa.decimal128(10, 2)})
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "1.005" in messages[0]
