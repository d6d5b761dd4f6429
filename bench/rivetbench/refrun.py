"""The reference tools, one function each, run as a script inside ``bench/.venv-ref``.

    bench/.venv-ref/bin/python bench/rivetbench/refrun.py TOOL --db pg --host ... \\
        --table narrow_10m --format parquet --out DIR

(``duckdb-many`` takes ``--tables a,b,c`` instead: the many-small-tables shape.)

Each function exports ``SELECT * FROM <table>`` to files under ``--out`` the way a user of
that tool would, at the tool's defaults except where noted, and prints one JSON line
``{"rows": N}`` with the rows the tool says it wrote (the harness counts them again from the
files). The script imports only the standard library at module level: each tool's packages
are imported inside its function, so a tool that failed to install fails alone, with its
own import error. It does not import anything from the harness, whose dependencies live in
the product's virtualenv, not here.

Parquet output is zstd-compressed everywhere (the tool's default level); CSV output is
uncompressed with a header line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

NAIVE_BATCH_ROWS = 10_000


def _qualified(args: argparse.Namespace) -> str:
    schema = "public" if args.db == "pg" else args.database
    return f"{schema}.{args.table}"


def _query(args: argparse.Namespace) -> str:
    return f"SELECT * FROM {_qualified(args)}"


def _url(args: argparse.Namespace, scheme: str) -> str:
    auth = args.user if not args.password else f"{args.user}:{args.password}"
    return f"{scheme}://{auth}@{args.host}:{args.port}/{args.database}"


def _out_file(args: argparse.Namespace) -> Path:
    return Path(args.out) / f"{args.table}.{args.format}"


class _ArrowSink:
    """Writes Arrow batches to one Parquet (zstd) or CSV file, opened at the first batch."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.rows = 0
        self._writer: Any = None

    def write(self, batch: Any) -> None:
        if self._writer is None:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq
                self._writer = pq.ParquetWriter(self.path, batch.schema, compression="zstd")
            else:
                import pyarrow.csv as pacsv
                self._writer = pacsv.CSVWriter(self.path, batch.schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def write_table(self, table: Any) -> None:
        for batch in table.to_batches():
            self.write(batch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


# ---------------------------------------------------------------------------------- DuckDB

def _duckdb_extension(module_name: str) -> str:
    """Path of the extension binary shipped by a ``duckdb-extension-*`` wheel: DuckDB would
    otherwise download it from its extension repository, which this machine cannot reach."""
    import importlib

    module = importlib.import_module(module_name)
    found = sorted(Path(str(module.__file__)).parent.glob("extensions/*/*.duckdb_extension"))
    if not found:
        raise RuntimeError(f"{module_name} ships no .duckdb_extension file")
    return str(found[-1])


def _duckdb_attach(args: argparse.Namespace) -> tuple[Any, str]:
    """A DuckDB connection with the source attached as ``src`` (read-only), and the prefix
    that qualifies a table name in it."""
    import duckdb

    con = duckdb.connect()
    if args.db == "pg":
        con.execute(f"LOAD '{_duckdb_extension('duckdb_extension_postgres_scanner')}'")
        dsn = (f"host={args.host} port={args.port} user={args.user} dbname={args.database}"
               + (f" password={args.password}" if args.password else ""))
        con.execute(f"ATTACH '{dsn}' AS src (TYPE postgres, READ_ONLY)")
        return con, "src.public"
    con.execute(f"LOAD '{_duckdb_extension('duckdb_extension_mysql_scanner')}'")
    dsn = (f"host={args.host} port={args.port} user={args.user} database={args.database}"
           + (f" password={args.password}" if args.password else ""))
    con.execute(f"ATTACH '{dsn}' AS src (TYPE mysql, READ_ONLY)")
    return con, "src"


def _duckdb_options(fmt: str) -> str:
    return "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER true"


def run_duckdb(args: argparse.Namespace) -> int:
    con, prefix = _duckdb_attach(args)
    row = con.execute(f"COPY (SELECT * FROM {prefix}.{args.table}) TO '{_out_file(args)}' "
                      f"({_duckdb_options(args.format)})").fetchone()
    return int(row[0]) if row else -1


def run_duckdb_many(args: argparse.Namespace) -> int:
    """The many-small-tables shape: one process, the source attached once, then one
    ``COPY (SELECT * ...) TO '<out>/<table>.<format>'`` per table of ``--tables``, in order."""
    con, prefix = _duckdb_attach(args)
    total = 0
    for table in args.tables:
        target = Path(args.out) / f"{table}.{args.format}"
        row = con.execute(f"COPY (SELECT * FROM {prefix}.{table}) TO '{target}' "
                          f"({_duckdb_options(args.format)})").fetchone()
        total += int(row[0]) if row else 0
    return total


# ------------------------------------------------------------------------------ ConnectorX

def run_connectorx(args: argparse.Namespace) -> int:
    import connectorx as cx

    scheme = "postgresql" if args.db == "pg" else "mysql"
    kwargs: dict[str, Any] = {"return_type": "arrow"}
    if args.partitions > 1:
        kwargs.update(partition_on="id", partition_num=args.partitions)
    table = cx.read_sql(_url(args, scheme), _query(args), **kwargs)
    if args.format == "parquet":
        import pyarrow.parquet as pq
        pq.write_table(table, _out_file(args), compression="zstd")
    else:
        import pyarrow.csv as pacsv
        pacsv.write_csv(table, _out_file(args))
    return int(table.num_rows)


# ------------------------------------------------------------------------------------ ADBC

def run_adbc(args: argparse.Namespace) -> int:
    import adbc_driver_postgresql.dbapi as adbc

    sink = _ArrowSink(_out_file(args), args.format)
    with adbc.connect(_url(args, "postgresql")) as conn, conn.cursor() as cur:
        cur.execute(_query(args))
        reader = cur.fetch_record_batch()
        for batch in reader:
            sink.write(batch)
    sink.close()
    return sink.rows


# ------------------------------------------------------------------------------------- dlt

def run_dlt(args: argparse.Namespace) -> int:
    # Everything dlt keeps (pipeline state, staged load packages) stays in the run directory.
    work = Path(args.out).parent
    os.environ.setdefault("DLT_DATA_DIR", str(work / "dlt-data"))
    # CSV files of the filesystem destination are gzipped unless told otherwise.
    os.environ.setdefault("DATA_WRITER__DISABLE_COMPRESSION", "true")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.sql_database import sql_database

    scheme = "postgresql+psycopg2" if args.db == "pg" else "mysql+pymysql"
    source = sql_database(
        credentials=_url(args, scheme),
        schema="public" if args.db == "pg" else args.database,
        table_names=[args.table],
        backend="pyarrow",
    )
    pipeline = dlt.pipeline(
        pipeline_name="rivetbench",
        pipelines_dir=str(work / "dlt-pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=Path(args.out).resolve().as_uri()),
        dataset_name="bench",
    )
    info = pipeline.run(source, loader_file_format=args.format)
    info.raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return int(counts.get(args.table, -1))


# ----------------------------------------------------------------------- obvious approach

def _naive_batches(rows_of: Callable[[], Iterator[list[tuple[Any, ...]]]],
                   names: list[str]) -> Iterator[Any]:
    """Rows -> columns -> ``pa.array`` with inferred types; later batches reuse the first
    batch's types. What most hand-written exporters do."""
    import pyarrow as pa

    schema = None
    for rows in rows_of():
        columns = list(zip(*rows, strict=True))
        if schema is None:
            arrays = [pa.array(col) for col in columns]
            schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays, strict=True)])
        else:
            arrays = [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def run_naive(args: argparse.Namespace) -> int:
    sink = _ArrowSink(_out_file(args), args.format)
    if args.db == "pg":
        import psycopg

        with psycopg.connect(_url(args, "postgresql")) as conn, \
                conn.cursor(name="rivetbench_naive") as cur:
            cur.itersize = NAIVE_BATCH_ROWS
            cur.execute(_query(args))

            def fetch() -> Iterator[list[tuple[Any, ...]]]:
                while rows := cur.fetchmany(NAIVE_BATCH_ROWS):
                    yield rows

            first = cur.fetchmany(NAIVE_BATCH_ROWS)
            names = [d.name for d in cur.description or []]

            def with_first() -> Iterator[list[tuple[Any, ...]]]:
                if first:
                    yield first
                yield from fetch()

            for batch in _naive_batches(with_first, names):
                sink.write(batch)
    else:
        import pymysql
        import pymysql.cursors

        conn = pymysql.connect(host=args.host, port=args.port, user=args.user,
                               password=args.password, database=args.database,
                               charset="utf8mb4", cursorclass=pymysql.cursors.SSCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(_query(args))
                names = [d[0] for d in cur.description]

                def fetch_my() -> Iterator[list[tuple[Any, ...]]]:
                    while rows := cur.fetchmany(NAIVE_BATCH_ROWS):
                        yield list(rows)

                for batch in _naive_batches(fetch_my, names):
                    sink.write(batch)
        finally:
            conn.close()
    sink.close()
    return sink.rows


# ----------------------------------------------------------------------------------- Sling

def run_sling(args: argparse.Namespace) -> int:
    """Replaces this process with the sling binary of the ``sling-linux-amd64`` wheel, so the
    harness measures sling itself. Parquet output needs a DuckDB CLI that sling downloads at
    run time; without network it fails, and the failure is reported as it is."""
    import sling_linux_amd64

    binary = Path(sling_linux_amd64.__file__).parent / "bin" / "sling-linux-amd64"
    binary.chmod(0o755)
    work = Path(args.out).parent
    home = work / "sling-home"
    home.mkdir(exist_ok=True)
    conn = _url(args, "postgresql") + "?sslmode=disable" if args.db == "pg" else \
        _url(args, "mysql")
    env = dict(os.environ, HOME=str(home), SLING_HOME_DIR=str(home / ".sling"),
               SLING_DISABLE_TELEMETRY="true")
    target = Path(args.out).resolve() / f"{args.table}.{args.format}"
    argv = [str(binary), "run", "--src-conn", conn, "--src-stream", _query(args),
            "--tgt-object", target.as_uri()]
    if args.format == "parquet":
        argv += ["--tgt-options", '{"format": "parquet", "compression": "zstd"}']
    sys.stdout.flush()
    os.execve(str(binary), argv, env)
    return -1  # not reached


TOOLS: dict[str, Callable[[argparse.Namespace], int]] = {
    "duckdb": run_duckdb,
    "duckdb-many": run_duckdb_many,
    "connectorx": run_connectorx,
    "adbc": run_adbc,
    "dlt": run_dlt,
    "naive": run_naive,
    "sling": run_sling,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tool", choices=sorted(TOOLS))
    parser.add_argument("--db", choices=["pg", "mysql"], required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", default=os.environ.get("RIVETBENCH_DB_PASSWORD", ""))
    parser.add_argument("--database", required=True)
    parser.add_argument("--table", help="the table to export")
    parser.add_argument("--tables", type=lambda text: [t for t in text.split(",") if t],
                        help="duckdb-many: the tables to export, comma-separated")
    parser.add_argument("--format", choices=["parquet", "csv"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args(argv)
    if (args.tool == "duckdb-many") != bool(args.tables) or \
            (args.tool != "duckdb-many" and not args.table):
        parser.error("give --table, or --tables with duckdb-many")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows = TOOLS[args.tool](args)
    print(json.dumps({"rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
