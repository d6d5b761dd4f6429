"""Huge values: one row whose text value is far larger than the batch budget, exported by a
child ``rivet run`` on every read path (PostgreSQL binary COPY and cursor, MariaDB through
ConnectorX and pymysql) to Parquet and CSV, costs at most what docs/formats.md ("Huge
values") says on top of the same export of a small value, and reads back exactly.

The value is ``RIVET_HUGE_VALUE_MB`` megabytes: 64 by default, so the suite stays fast; the
documented figures are for 200 (``RIVET_HUGE_VALUE_MB=200 pytest
tests/integration/test_huge_values.py``). A peak is the child's own high-water mark of
resident memory, from ``wait4(2)``: the run summary's ``peak_rss_mb`` samples every 100 ms
and can miss a peak this short. The baseline is the same export (same path, format and
config) of a one-kilobyte value, measured in the same test.

The rest checks the pieces in-process with values of a few MiB: the COPY decoder hands a row
of the whole budget over as a batch of its own with the same values as the cursor path, the
CSV writer's streamed fields are the text it would have encoded whole, and the Parquet writer
gives a column with a large value neither dictionary nor statistics.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from rivet_csv import CSV
from rivet_parquet import PARQUET
from rivet_postgres import PostgresConfig
from rivet_postgres import factory as postgres_factory

from rivet_core.backends import Compression, Query, ReadOptions, SourceContext
from rivet_core.config.connection import ConnectionParams

MB = 1_000_000
VALUE_BYTES = int(os.environ.get("RIVET_HUGE_VALUE_MB", "64")) * MB // 32 * 32
"""The huge value's size, a whole number of md5 texts."""
SMALL_BYTES = 1024

COST = {
    ("postgres", "copy", "csv"): 2.0,
    ("postgres", "copy", "parquet"): 2.0,
    ("postgres", "cursor", "csv"): 4.0,
    ("postgres", "cursor", "parquet"): 4.0,
    ("mysql", "connectorx", "csv"): 2.5,
    ("mysql", "connectorx", "parquet"): 2.5,
    ("mysql", "pymysql", "csv"): 3.0,
    ("mysql", "pymysql", "parquet"): 3.0,
}
"""Resident copies of the value a path and format hold at their peak (docs/formats.md).
ConnectorX's share is larger for a smaller value: 2.1 at 200 MB, 2.45 at 64 MB."""
SLACK = 0.25
"""Allowance, in values, for the allocators' rounding and the baseline's noise."""


@attrs.frozen
class Source:
    kind: str
    read_path: str
    url: str
    namespace: str

    def table(self, name: str) -> str:
        """A table of the session's schema (PostgreSQL) or database (MariaDB, whose URL
        names it already)."""
        return f"{self.namespace}.{name}" if self.kind == "postgres" else name


def value_sql(size: int) -> str:
    """SQL for a text of ``size`` bytes (md5 texts repeated; both servers spell it so)."""
    return f"REPEAT(MD5('a'), {size // 32})"


def sha256_of(size: int) -> str:
    return hashlib.sha256(hashlib.md5(b"a").hexdigest().encode() * (size // 32)).hexdigest()


@pytest.fixture(scope="module")
def pg_tables(pg_url: str, pg_schema: str) -> str:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        for name, size in (("huge", VALUE_BYTES), ("small", SMALL_BYTES)):
            conn.execute(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int4, v text)")
            conn.execute(f"INSERT INTO {name} VALUES (1, {value_sql(size)}), (2, 'small')")
    return pg_schema


def _mysql(url: str, database: str | None = None) -> Any:
    import pymysql

    params = ConnectionParams.from_url(url, default_port=3306)
    return pymysql.connect(host=params.host, port=params.port, user=params.user,
                           password=params.password or "", database=database,
                           autocommit=True, charset="utf8mb4")


@pytest.fixture(scope="module")
def mysql_tables(mysql_url: str, mysql_db: str) -> str:
    """The tables in the session database. The server must send a packet as large as the
    value (``max_allowed_packet``; it is raised on a test server that allows it)."""
    import pymysql

    needed = VALUE_BYTES + MB
    with _mysql(mysql_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT @@global.max_allowed_packet")
        (current,) = cursor.fetchone()
        if int(current) < needed:
            try:
                cursor.execute("SET GLOBAL max_allowed_packet = %s",
                               (min(1 << 30, 1 << needed.bit_length()),))
            except pymysql.err.MySQLError as exc:
                pytest.skip(f"max_allowed_packet is {current} and cannot be raised: {exc}")
    # A new session: it takes the global max_allowed_packet when it connects.
    with _mysql(mysql_url, mysql_db) as conn, conn.cursor() as cursor:
        for name, size in (("huge", VALUE_BYTES), ("small", SMALL_BYTES)):
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v LONGTEXT)")
            cursor.execute(f"INSERT INTO {name} SELECT 1, {value_sql(size)}")
            cursor.execute(f"INSERT INTO {name} VALUES (2, 'small')")
    return mysql_db


@pytest.fixture(params=[("postgres", "copy"), ("postgres", "cursor"),
                        ("mysql", "connectorx"), ("mysql", "pymysql")],
                ids=lambda p: "-".join(p))
def source(request: pytest.FixtureRequest) -> Source:
    kind, read_path = request.param
    if kind == "postgres":
        return Source(kind, read_path, request.getfixturevalue("pg_url"),
                      request.getfixturevalue("pg_tables"))
    return Source(kind, read_path, request.getfixturevalue("mysql_db_url"),
                  request.getfixturevalue("mysql_tables"))


def run_rivet(directory: Path, source: Source, table: str, fmt: str) -> int:
    """``rivet run`` of ``table`` in a child process: its peak resident memory, in bytes."""
    directory.mkdir()
    (directory / "rivet.toml").write_text(f"""
[source]
type = "{"postgres" if source.kind == "postgres" else "mysql"}"
url_env = "RIVET_T_HUGE_URL"
read_path = "{source.read_path}"

[[exports]]
name = "huge"
table = "{source.table(table)}"
format = "{fmt}"
tuning = {{ max_batch_memory_mb = 64 }}
[exports.destination]
type = "local"
path = "out"
""")
    env = {**os.environ, "RIVET_T_HUGE_URL": source.url}
    with (directory / "err.txt").open("wb") as err:
        child = subprocess.Popen([sys.executable, "-m", "rivet_core.cli.main", "run", "-c",
                                  "rivet.toml"], cwd=directory, stdout=subprocess.DEVNULL,
                                 stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, (directory / "err.txt").read_text()
    return usage.ru_maxrss * 1024


def read_back(directory: Path, fmt: str) -> list[tuple[int, str]]:
    """(id, sha256 of v) of every row of the one file the run wrote."""
    (path,) = (directory / "out").glob(f"*.{fmt}")
    if fmt == "parquet":
        table = pq.read_table(path)
    else:
        table = pcsv.read_csv(path, read_options=pcsv.ReadOptions(block_size=VALUE_BYTES + MB),
                              convert_options=pcsv.ConvertOptions(
                                  column_types={"id": pa.int32(), "v": pa.string()}))
    return [(row["id"], hashlib.sha256(row["v"].encode()).hexdigest())
            for row in table.to_pylist()]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_huge_value_costs_its_documented_copies_and_reads_back_exactly(
        tmp_path: Path, source: Source, fmt: str) -> None:
    baseline = run_rivet(tmp_path / "small", source, "small", fmt)
    peak = run_rivet(tmp_path / "huge", source, "huge", fmt)
    cost = COST[(source.kind, source.read_path, fmt)]
    copies = (peak - baseline) / VALUE_BYTES
    assert copies <= cost + SLACK, (
        f"{source.kind} {source.read_path} → {fmt}: peak {peak / 2**20:.0f} MiB, baseline "
        f"{baseline / 2**20:.0f} MiB: {copies:.2f} copies of the value, documented {cost}")
    assert read_back(tmp_path / "huge", fmt) == [
        (1, sha256_of(VALUE_BYTES)), (2, hashlib.sha256(b"small").hexdigest())]


# ------------------------------------------------------------------------ the COPY decoder


@pytest.fixture
def wide_rows(pg: Any, pg_schema: str) -> str:
    """Rows of a few hundred KiB to a few MiB among small ones, with every kind of value the
    COPY decoder can lend (text, bytea, jsonb) and the cursor path can take in place (text,
    bytea), and NULLs."""
    pg.execute("DROP TABLE IF EXISTS wide_rows")
    pg.execute("CREATE TABLE wide_rows (id int4, t text, b bytea, j jsonb, n int8)")
    pg.execute(
        "INSERT INTO wide_rows VALUES "
        "(1, 'a', NULL, '{}', 1), "
        "(2, repeat('x\"y', 100000), decode(repeat('00ff', 50000), 'hex'), "
        " jsonb_build_object('k', repeat('z', 60000)), NULL), "
        "(3, NULL, '\\x01', NULL, 3), "
        "(4, 'b', decode(repeat('ab', 400000), 'hex'), '[1, 2]', 4), "
        "(5, repeat('é', 200000), NULL, NULL, 5), "
        "(6, 'c', NULL, jsonb_build_object('k', repeat('w', 300000)), 6), "
        "(7, repeat('ü', 1100000), decode(repeat('cd', 1100000), 'hex'), NULL, 7)")
    return f'"{pg_schema}".wide_rows'


def read_table(pg_url: str, query: Query, read_path: str, **options: Any
               ) -> tuple[list[pa.RecordBatch], pa.Table]:
    config = PostgresConfig(url=pg_url, read_path=read_path)
    with postgres_factory(config, SourceContext(config_dir=Path("."))) as src, src.read(
            query, ReadOptions(**options)) as stream:
        batches = list(stream)
    return batches, pa.Table.from_batches(batches, schema=stream.schema)


def test_copy_hands_a_row_of_the_whole_budget_over_alone_with_the_cursors_values(
        pg_url: str, wide_rows: str) -> None:
    query = Query(sql=f"SELECT * FROM {wide_rows} ORDER BY id")
    batches, copied = read_table(pg_url, query, "copy", max_batch_bytes=64 * 1024)
    sizes = {batch.column(0)[0].as_py(): batch.num_rows for batch in batches}
    assert sizes[2] == sizes[4] == sizes[5] == sizes[6] == sizes[7] == 1
    # The cursor takes large values from its result: in place in a batch of one row, else
    # assembled with the column's other values.
    for batch_size in (1, 100):
        _, fetched = read_table(pg_url, query, "cursor", batch_size=batch_size)
        assert fetched.equals(copied)


# ------------------------------------------------------------------------ the CSV writer


def csv_batch() -> pa.RecordBatch:
    """Small rows around rows with large text (quotes, line breaks, multi-byte characters
    across piece boundaries) and large binary values."""
    from rivet_csv.writer import LARGE_FIELD_BYTES

    large = LARGE_FIELD_BYTES + 3
    unit = 'ab"c\né€😀'  # 14 bytes: pieces end inside multi-byte characters
    text = unit * (large // 14 + 1)
    return pa.record_batch({
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "t": pa.array(["s", text, None, "q", '"' * large], pa.string()),
        "b": pa.array([b"\x00", None, bytes(range(256)) * (large // 256 + 1), b"", None],
                      pa.large_binary()),
        "at": pa.array([0, None, 1, 2, 3], pa.timestamp("us", tz="UTC")),
    })


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_csv_streams_large_values_as_the_text_it_would_encode_whole(codec: str) -> None:
    from rivet_csv.writer import encode_batch, large_rows

    batch = csv_batch()
    assert large_rows(batch) == [1, 2, 4]
    fmt = CSV.factory(CSV.config_cls(), Compression(codec=codec))
    sink = pa.BufferOutputStream()
    writer = fmt.open(sink, batch.schema)
    writer.write_batch(batch.slice(0, 1))
    writer.write_batch(batch.slice(1))
    writer.close()
    data = sink.getvalue().to_pybytes()
    if codec == "gzip":
        data = gzip.decompress(data)
    elif codec == "zstd":
        data = pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
    whole = encode_batch(writer.plan.render(batch), ",").to_pybytes()
    assert data == b'"id","t","b","at"\n' + whole


# --------------------------------------------------------------------- the Parquet writer


def test_a_large_value_in_the_first_row_group_takes_dictionary_and_statistics_away() -> None:
    from rivet_parquet.writer import LARGE_VALUE_BYTES

    table = pa.table({"id": pa.array([1, 2, 3], pa.int32()),
                      "v": ["x" * LARGE_VALUE_BYTES, "a", None],
                      "s": ["p", "q", "p"],
                      "l": pa.array([["a"], [], None], pa.list_(pa.string()))})
    sink = pa.BufferOutputStream()
    writer = PARQUET.factory(PARQUET.config_cls(), Compression(codec="zstd")).open(
        sink, table.schema)
    for batch in table.to_batches(max_chunksize=1):
        writer.write_batch(batch)
    writer.close()
    assert writer.properties["data_page_version"] == "2.0"
    file = pq.ParquetFile(pa.BufferReader(sink.getvalue()))
    chunks = {file.metadata.row_group(0).column(i).path_in_schema:
              file.metadata.row_group(0).column(i) for i in range(4)}
    assert not chunks["v"].is_stats_set and not chunks["v"].has_dictionary_page
    assert chunks["s"].is_stats_set and chunks["s"].has_dictionary_page
    assert chunks["id"].is_stats_set and chunks["l.list.element"].is_stats_set
    assert file.read().equals(table)


def test_small_values_keep_version_1_pages_dictionary_and_statistics() -> None:
    table = pa.table({"v": ["a", "b", "a"]})
    sink = pa.BufferOutputStream()
    writer = PARQUET.factory(PARQUET.config_cls(), Compression(codec="zstd")).open(
        sink, table.schema)
    writer.write_batch(table.to_batches()[0])
    writer.close()
    assert "data_page_version" not in writer.properties
    chunk = pq.ParquetFile(pa.BufferReader(sink.getvalue())).metadata.row_group(0).column(0)
    assert chunk.is_stats_set and chunk.has_dictionary_page


def test_a_batch_of_the_whole_row_group_budget_is_a_row_group_of_its_own() -> None:
    schema = pa.schema([("v", pa.string())])
    sink = pa.BufferOutputStream()
    writer = PARQUET.factory(PARQUET.config_cls(row_group_mb=1),
                             Compression(codec="zstd")).open(sink, schema)
    for values in (["a"] * 10, ["x" * (600 * 1024)], ["b"] * 5):
        writer.write_batch(pa.record_batch([pa.array(values)], schema=schema))
    writer.close()
    metadata = pq.ParquetFile(pa.BufferReader(sink.getvalue())).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        10, 1, 5]
