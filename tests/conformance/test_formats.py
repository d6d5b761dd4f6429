"""The format conformance kit against the built-in ``parquet`` and ``csv`` formats.

The back doors never call the plugins' code: Parquet is read by ``pyarrow.parquet`` (the
plugin writes through pyarrow's writer, the reader is a separate code path; the codec of
every column chunk is checked in the footer), and by DuckDB as well when it happens to be
installed (it is not a dependency). CSV is decompressed with the standard library (gzip) or
the ``zstd`` command line tool (pyarrow's zstd stream when the tool is missing), split into
fields by ``pyarrow.csv`` with every column read as text, and each text is decoded by the
rules the CSV plugin documents (``rivet_csv.render``), written here with the standard
library.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import itertools
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from rivet_core.backends import Compression
from rivet_core.plugins import build_registry
from rivet_core.testing import FormatTests

# ------------------------------------------------------------------------------- parquet

PARQUET_CODECS = {"none": "UNCOMPRESSED", "zstd": "ZSTD", "snappy": "SNAPPY", "gzip": "GZIP",
                  "lz4": "LZ4", "brotli": "BROTLI"}


def read_parquet(data: bytes, compression: Compression) -> pa.Table:
    """pyarrow's Parquet reader, after checking that every column chunk uses the codec that
    was asked for (a writer ignoring it would otherwise read back fine)."""
    file = pq.ParquetFile(pa.BufferReader(data))
    want = PARQUET_CODECS[compression.codec]
    metadata = file.metadata
    for group in range(metadata.num_row_groups):
        for column in range(metadata.num_columns):
            used = metadata.row_group(group).column(column).compression
            if used != want:
                raise AssertionError(f"row group {group} column {column} is {used}, "
                                     f"{compression.codec!r} asked for {want}")
    return file.read()


def read_parquet_with_duckdb(tmp_path: Path) -> Any:
    import duckdb

    counter = itertools.count()

    def read(data: bytes, compression: Compression) -> pa.Table:
        path = tmp_path / f"kit-{next(counter)}.parquet"
        path.write_bytes(data)
        with duckdb.connect() as connection:
            return connection.execute("SELECT * FROM read_parquet(?)",
                                      [str(path)]).fetch_arrow_table()

    return read


class TestParquetFormat(FormatTests):
    @pytest.fixture
    def format_spec(self):
        return build_registry().formats["parquet"].spec

    @pytest.fixture
    def reader(self):
        return read_parquet

    @pytest.fixture
    def streaming_config(self):
        # Row groups of at most 1 MiB: with the default 64 MiB, the first bytes would only
        # reach the sink after 32 MiB (bounded, but too large to test quickly).
        return {"row_group_mb": 1}

    @pytest.fixture
    def invalid_configs(self):
        return [({"row_group_rows": 0}, "row_group_rows"), ({"row_group_mb": 0}, "row_group_mb")]



class TestParquetFormatReadByDuckDB(TestParquetFormat):
    """DuckDB's own Parquet decoder, when installed. Its Arrow types are its own (string
    views, its time zone), so every column is compared by value."""

    @pytest.fixture(autouse=True)
    def _needs_duckdb(self):
        pytest.importorskip("duckdb", reason="no second Parquet reader installed (DuckDB "
                            "is optional; TestParquetFormat reads with pyarrow)")

    @pytest.fixture
    def reader(self, tmp_path):
        return read_parquet_with_duckdb(tmp_path)

    @pytest.fixture
    def lossless_types(self):
        return lambda _type: False

    @pytest.fixture
    def decode_value(self):
        return lambda _type, value: value


# ----------------------------------------------------------------------------------- csv


def decompress(data: bytes, codec: str) -> bytes:
    if codec == "none":
        return data
    if codec == "gzip":
        return gzip.decompress(data)
    if codec == "zstd":
        tool = shutil.which("zstd")
        if tool is not None:
            return subprocess.run([tool, "-dcq"], input=data, capture_output=True,
                                  check=True).stdout
        return pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
    raise AssertionError(f"unknown codec {codec!r}")


def read_csv(data: bytes, compression: Compression) -> pa.Table:
    """The header by Python's csv module, the records by pyarrow's CSV reader with every
    column as text: an unquoted empty field is NULL, a quoted one the empty string."""
    raw = decompress(data, compression.codec)
    header = next(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")), None)
    if header is None:
        return pa.table({})
    return pa_csv.read_csv(
        io.BytesIO(raw),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=True,
            quoted_strings_can_be_null=False, null_values=[""]),
    )


def decode_csv_text(typ: pa.DataType, text: str) -> Any:
    """The value a CSV field stands for, by the rules of ``rivet_csv.render``."""
    if pa.types.is_integer(typ):
        return int(text)
    if pa.types.is_floating(typ):
        return float(text)  # also "nan", "inf", "-inf", "-0", "1e+20"
    if pa.types.is_decimal(typ):
        digits = text.lstrip("-").split(".")
        decimals = len(digits[1]) if len(digits) == 2 else 0
        if "e" in text.lower() or decimals != typ.scale:
            raise ValueError(f"not plain digits with {typ.scale} decimals")
        return Decimal(text)
    if pa.types.is_binary(typ):
        return bytes.fromhex(text)
    if pa.types.is_boolean(typ):
        return {"true": True, "false": False}[text]
    if pa.types.is_date32(typ):
        return dt.date.fromisoformat(text)
    if pa.types.is_timestamp(typ):
        if typ.tz is None:
            if text.endswith("Z"):
                raise ValueError("a timestamp without time zone is written without Z")
            return dt.datetime.fromisoformat(text)
        if not text.endswith("Z"):
            raise ValueError("an instant is written in UTC with Z")
        return dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)
    raise TypeError(f"no CSV rule for {typ}")


class TestCsvFormat(FormatTests):
    @pytest.fixture
    def format_spec(self):
        return build_registry().formats["csv"].spec

    @pytest.fixture
    def reader(self):
        return read_csv

    @pytest.fixture
    def lossless_types(self):
        # CSV is text: strings come back as they were; every other type is decoded.
        return pa.types.is_string

    @pytest.fixture
    def decode_value(self):
        return decode_csv_text

    @pytest.fixture
    def invalid_configs(self):
        return [({"delimiter": ";;"}, "delimiter"), ({"delimiter": "."}, "delimiter")]

