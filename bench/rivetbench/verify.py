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


def read_back(directory: Path | None) -> Output:
    """Files, bytes and rows under ``directory`` (all ``*.parquet`` / ``*.csv``)."""
    if directory is None or not directory.exists():
        return Output(files=0, bytes=0, rows=0 if directory is not None else None)
    files = data_files(directory)
    size = sum(p.stat().st_size for p in files)
    rows = 0
    try:
        for path in files:
            rows += _parquet_rows(path) if path.suffix == ".parquet" else _csv_rows(path)
    except Exception as exc:
        return Output(files=len(files), bytes=size, rows=None,
                      error=f"reading {path.name} back failed: {exc}")
    return Output(files=len(files), bytes=size, rows=rows)
