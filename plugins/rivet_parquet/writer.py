"""Parquet encoding: :class:`ParquetFormat` and the streaming row-group writer it opens.

Imported by the spec's factory only, because it imports ``pyarrow.parquet``. The spec and the
config keys live in the package ``__init__``.

pyarrow's ``ParquetWriter.write_batch`` turns every call into its own row group, and source
batches are small (10 000 rows by default), so :class:`ParquetFormatWriter` buffers batches
and writes one row group per ``write_table`` call once the buffer holds ``row_group_rows``
rows or its byte budget. Memory is bounded by that buffer, whatever the size of the result.

Encoding a row group takes long (about a second per million narrow rows), and while the
caller's thread does it the source's readers stall once their small queues are full. So a
full row group is encoded in a background thread while the next one fills: reading and
encoding overlap, at the cost of a second row group in memory. With ``max_file_size`` the
writer encodes in the caller's thread, so the part size the runner sees is never behind.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from rivet_core import __version__
from rivet_core.api import Compression, Format, FormatError, FormatWriter, SinkGate

if TYPE_CHECKING:
    from rivet_parquet import ParquetOptions

MIB = 1024 * 1024
ZSTD_DEFAULT_LEVEL = 3
"""zstd level when none is configured: Arrow's own default is 1, which trades size for a speed
the export rarely needs."""

# Errors pyarrow raises for data it cannot encode; anything else (a failing sink) passes
# through unchanged so the runner can classify it.
_ENCODING_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


class ParquetFormat(Format):
    """Parquet with the configured row-group sizing and codec."""

    def __init__(self, options: ParquetOptions, compression: Compression) -> None:
        self.options = options
        self.compression = compression

    @property
    def extension(self) -> str:
        return "parquet"

    def count_rows(self, data: bytes) -> int:
        """The row count a reader sees: the footer's, after the footer is read whole."""
        try:
            return int(pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise FormatError(f"not a readable Parquet file: {exc}") from exc

    def writer_properties(self, schema: pa.Schema | None = None) -> dict[str, Any]:
        """Keyword arguments for ``pyarrow.parquet.ParquetWriter`` (for files of
        ``schema``, which decides the dictionary-encoded columns)."""
        codec = self.compression.codec
        level = self.compression.level
        if codec == "zstd" and level is None:
            level = ZSTD_DEFAULT_LEVEL
        return {
            "version": "2.6",
            "compression": "NONE" if codec == "none" else codec,
            "compression_level": level,
            # Text and binary columns only: repetitive ones (statuses, languages, labels)
            # shrink a lot, and a high-cardinality one falls back to plain encoding once its
            # dictionary page passes 1 MiB. Numbers and timestamps are rarely repetitive,
            # and building their dictionaries doubled the encoding time for a file barely
            # smaller after zstd (measured: 10M rows of ids, amounts and timestamps).
            "use_dictionary": True if schema is None else dictionary_columns(schema),
            "write_statistics": self.options.write_statistics,
            # Timestamps keep their own unit (microseconds from every built-in source) as
            # TIMESTAMP logical types; INT96 is deprecated and coercing could truncate.
            "use_deprecated_int96_timestamps": False,
            "coerce_timestamps": None,
            # The Arrow schema in the footer restores types Parquet lacks (large_string,
            # uint widths, decimal256) and keeps the `rivet.source_type` field metadata.
            "store_schema": True,
        }

    def open(
        self, sink: pa.NativeFile, schema: pa.Schema, *, max_file_bytes: int | None = None
    ) -> ParquetFormatWriter:
        properties = self.writer_properties(schema)
        check_storable(schema, properties)
        flush_bytes = self.options.row_group_mb * MIB
        if max_file_bytes is not None:
            flush_bytes = min(flush_bytes, max(MIB, max_file_bytes // 4))
        metadata = dict(schema.metadata or {})
        metadata[b"rivet.version"] = __version__.encode()
        return ParquetFormatWriter(
            sink,
            schema.with_metadata(metadata),
            properties,
            row_group_rows=self.options.row_group_rows,
            flush_bytes=flush_bytes,
            background=max_file_bytes is None,
        )


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The top-level text and binary columns, which get dictionary encoding."""
    return [field.name for field in schema
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
            or pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)]


def check_storable(schema: pa.Schema, properties: dict[str, Any]) -> None:
    """Raise :class:`FormatError` naming every column Parquet cannot store.

    Asks pyarrow itself, on a scratch buffer with the real writer properties, so the answer
    matches what the file writer would do; nothing is written to the real sink.
    """
    try:
        pq.ParquetWriter(pa.BufferOutputStream(), schema, **properties).close()
        return
    except _ENCODING_ERRORS:
        pass
    problems = []
    for field in schema:
        try:
            pq.ParquetWriter(pa.BufferOutputStream(), pa.schema([field]), **properties).close()
        except _ENCODING_ERRORS:
            problems.append(f"{field.name!r} ({field.type})")
    raise FormatError(
        "parquet cannot store column " + ", ".join(problems),
        hint="cast the column in the query to a type Parquet can store (intervals: to text), "
        "or export it as csv",
    )


class ParquetFormatWriter(FormatWriter):
    """One Parquet file: batches are buffered and written as whole row groups."""

    def __init__(
        self,
        sink: pa.NativeFile,
        schema: pa.Schema,
        properties: dict[str, Any],
        *,
        row_group_rows: int,
        flush_bytes: int,
        background: bool = False,
    ) -> None:
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.flush_bytes = flush_bytes
        self.background = background
        # pyarrow writes the footer when an unclosed writer is collected: after abort the
        # gate drops it, so a discarded file never ends with a valid trailer.
        self._gate = SinkGate(sink)
        self._writer = pq.ParquetWriter(pa.PythonFile(self._gate, mode="w"), schema,
                                        **properties)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._closed = False
        self._encoding: threading.Thread | None = None
        self._error: BaseException | None = None

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        while self._pending_rows >= self.row_group_rows:
            self._write_row_group(self.row_group_rows)
        # In the background, a row group is encoded while the next fills: each gets half
        # the budget, so together they stay within row_group_mb.
        budget = self.flush_bytes // 2 if self.background else self.flush_bytes
        if self._pending_bytes >= budget:
            self._write_row_group(self._pending_rows)

    def close(self) -> None:
        """Write the last row group and the footer. The sink is left open."""
        if self._closed:
            return
        self._closed = True
        if self._pending_rows:
            self._write_row_group(self._pending_rows, background=False)
        self._wait()
        self._writer.close()

    def abort(self) -> None:
        """Wait for a row group being encoded, so nothing writes to the sink afterwards."""
        self._closed = True
        self._pending = []
        if self._encoding is not None:
            self._encoding.join()
            self._encoding = None
        self._gate.shut()

    def _wait(self) -> None:
        """Wait for the row group being encoded; raise its failure, if any."""
        if self._encoding is not None:
            self._encoding.join()
            self._encoding = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _encode(self, table: pa.Table) -> None:
        try:
            self._writer.write_table(table, row_group_size=table.num_rows)
        except _ENCODING_ERRORS as exc:
            self._error = FormatError(f"parquet could not encode a row group: {exc}")
            self._error.__cause__ = exc
        except BaseException as exc:  # a failing sink: raised in the caller's thread
            self._error = exc

    def _write_row_group(self, rows: int, *, background: bool | None = None) -> None:
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._wait()
        if self.background if background is None else background:
            self._encoding = threading.Thread(target=self._encode, args=(table.slice(0, rows),),
                                              name="rivet-parquet-encode", daemon=True)
            self._encoding.start()
        else:
            self._encode(table.slice(0, rows))
            self._wait()
        # The remainder stays as zero-copy views of the batches already held.
        rest = table.slice(rows)
        self._pending = [batch for batch in rest.to_batches() if batch.num_rows]
        self._pending_rows = rest.num_rows
        self._pending_bytes = sum(batch.nbytes for batch in self._pending)
