"""Reading a run's output back: which files it wrote, their size, their rows.

Every Parquet file is decoded in full with pyarrow (batch by batch, bounded memory), so a
file that is truncated or unreadable fails the run, and its rows are counted from the data,
not from a footer a tool may have got wrong. A CSV file is parsed with pyarrow's streaming
CSV reader, every column as text (a quoted newline is part of its value), minus the header
line. The harness compares the total with ``COUNT(*)`` of the source table.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

DATA_SUFFIXES = (".parquet", ".csv")


@dataclass
class Output:
    files: int
    bytes: int
    rows: int | None
    error: str | None = None
    by_table: dict[str, int] | None = None
    """With :func:`read_back` ``by_table=True``: rows per table, the table being the first
    path component under the directory (``<table>/...`` or ``<table>.<format>``)."""


def table_of(relative: Path) -> str:
    """The table an output file belongs to in a many-tables run: ``t1/part-0.parquet`` (one
    directory per export) and ``t1.parquet`` (one file per table) both give ``t1``."""
    first = relative.parts[0]
    return first if len(relative.parts) > 1 else Path(first).stem


def data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*")
                  if p.is_file() and p.suffix in DATA_SUFFIXES and not p.name.startswith("."))


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetFile(path) as reader:
        for batch in reader.iter_batches(batch_size=65_536):
            rows += batch.num_rows
    return rows


def _csv_rows(path: Path) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), None)
    if header is None:
        return 0
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=16 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=False),
    )
    return sum(batch.num_rows for batch in reader)


def read_back(directory: Path | None, *, by_table: bool = False) -> Output:
    """Files, bytes and rows under ``directory`` (all ``*.parquet`` / ``*.csv``); with
    ``by_table``, the rows of each table too (:func:`table_of`)."""
    if directory is None or not directory.exists():
        return Output(files=0, bytes=0, rows=0 if directory is not None else None,
                      by_table={} if by_table else None)
    files = data_files(directory)
    size = sum(p.stat().st_size for p in files)
    rows = 0
    per_table: dict[str, int] = {}
    try:
        for path in files:
            count = _parquet_rows(path) if path.suffix == ".parquet" else _csv_rows(path)
            rows += count
            table = table_of(path.relative_to(directory))
            per_table[table] = per_table.get(table, 0) + count
    except Exception as exc:
        return Output(files=len(files), bytes=size, rows=None,
                      error=f"reading {path.name} back failed: {exc}")
    return Output(files=len(files), bytes=size, rows=rows,
                  by_table=per_table if by_table else None)


def table_mismatches(expected: dict[str, int], found: dict[str, int]) -> list[str]:
    """``table: found N rows, expected M`` for every table whose files do not hold its rows
    (a table with no file found 0), and every file of a table that was not expected."""
    problems = [f"{name}: {found.get(name, 0):,} rows, expected {rows:,}"
                for name, rows in expected.items() if found.get(name, 0) != rows]
    problems += [f"{name}: {rows:,} rows of a table not exported"
                 for name, rows in found.items() if name not in expected]
    return problems
