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

Huge values. A batch of at least the row-group budget is a row group of its own, written at
once (what was buffered before it goes first, as its own row group). pyarrow's encoder copies
a text or binary value several times over when its column keeps a dictionary (the value
enters the dictionary, then its page) and min/max statistics (Arrow copies the page's and the
chunk's min and max, then their encoded forms: about six copies of a value that is both), and
a version 1 data page is assembled in one more buffer. So the pyarrow writer is only created
when the first row group is written, and a text or binary column whose largest value in that
row group is :data:`LARGE_VALUE_BYTES` or more gets neither dictionary nor statistics, and
the file gets version 2 data pages: such a value then costs its compressed page (small when
it compresses well) and that page once more on its way through ``pa.PythonFile``. Arrow
keeps no statistics for a page whose min or max passes 4 KiB anyway, and a dictionary page
holds 1 MiB. A huge value first met in a later row group is written with the file's
settings, and costs those copies. The file's magic number is written at open, as pyarrow
would, so the sink is never empty.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rivet_core import __version__
from rivet_core.api import Compression, Format, FormatError, FormatWriter, SinkGate

if TYPE_CHECKING:
    from rivet_parquet import ParquetOptions

MIB = 1024 * 1024
ZSTD_DEFAULT_LEVEL = 3
"""zstd level when none is configured: Arrow's own default is 1, which trades size for a speed
the export rarely needs."""

LARGE_VALUE_BYTES = 1 << 20
"""A text or binary value this large, in a file's first row group, takes its column's
dictionary and statistics away (module docstring)."""
MAGIC = b"PAR1"
"""What a Parquet file starts with."""

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
            # shrink a lot. The writer keeps only those whose values repeat in the file's
            # first row group (repetitive_columns): a high-cardinality one would fill its
            # dictionary page, fall back to plain encoding, and waste the work. Numbers and
            # timestamps are rarely repetitive, and building their dictionaries doubled the
            # encoding time for a file barely smaller after zstd (measured: 10M rows of ids,
            # amounts and timestamps).
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


def large_columns(table: pa.Table, names: Sequence[str]) -> list[str]:
    """The columns among ``names`` (text or binary) holding a value of at least
    :data:`LARGE_VALUE_BYTES` in ``table``."""
    found = []
    for name in names:
        longest = pc.max(pc.binary_length(table.column(name)))
        if longest.is_valid and longest.as_py() >= LARGE_VALUE_BYTES:
            found.append(name)
    return found


DICTIONARY_SAMPLE_ROWS = 65_536
"""Rows of the first row group whose distinct values decide a column's dictionary."""
DICTIONARY_PROBE_ROWS = 8_192
"""Rows counted first: a column whose first 8,192 values are 95 % distinct is taken as
distinct without counting the whole sample (values drawn from a pool that large would still
be more than half distinct over 65,536 rows). Counting distinct text values is the costly
part of the choice (~90 ns a value: 5 % of the CPU of a run of small tables)."""


def repetitive_columns(table: pa.Table, names: Sequence[str]) -> list[str]:
    """The columns among ``names`` whose values repeat in ``table``: at most half of the
    first :data:`DICTIONARY_SAMPLE_ROWS` values distinct. A dictionary pays off only there:
    for a column of mostly distinct values (comments, ids as text) pyarrow fills its
    dictionary page, falls back to plain encoding, and the work was for nothing (measured
    on the benchmark's order lines: 7 % of the encoding CPU, for a file 0.3 % smaller).
    A column distinct in its first :data:`DICTIONARY_PROBE_ROWS` values is decided on
    those alone (so one whose values start repeating only after them gets none)."""
    rows = min(table.num_rows, DICTIONARY_SAMPLE_ROWS)
    if rows < 1024:  # too few to judge, and too few for the choice to cost anything
        return list(names)
    found = []
    for name in names:
        column = table.column(name)
        if rows >= 2 * DICTIONARY_PROBE_ROWS:
            head = pc.count_distinct(column.slice(0, DICTIONARY_PROBE_ROWS), mode="all")
            if head.as_py() * 20 >= DICTIONARY_PROBE_ROWS * 19:
                continue
        if pc.count_distinct(column.slice(0, rows), mode="all").as_py() * 2 <= rows:
            found.append(name)
    return found


def for_large_values(schema: pa.Schema, properties: dict[str, Any],
                     large: Sequence[str]) -> dict[str, Any]:
    """``properties`` with neither dictionary nor statistics for the top-level columns
    ``large``, and version 2 data pages."""
    adjusted = dict(properties, data_page_version="2.0")
    dictionary = properties["use_dictionary"]
    if dictionary is True:
        dictionary = dictionary_columns(schema)
    adjusted["use_dictionary"] = [name for name in dictionary if name not in large]
    if properties["write_statistics"] is True:
        adjusted["write_statistics"] = [path for path in column_paths(schema, properties)
                                        if path not in large]
    return adjusted


def column_paths(schema: pa.Schema, properties: dict[str, Any]) -> list[str]:
    """The dotted path of every Parquet leaf column ``schema`` becomes (what per-column
    properties name), read from an empty file written to a scratch buffer."""
    scratch = pa.BufferOutputStream()
    pq.ParquetWriter(scratch, schema, **properties).close()
    layout = pq.ParquetFile(pa.BufferReader(scratch.getvalue())).schema
    return [layout.column(i).path for i in range(len(layout))]


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
        self.properties = properties
        """The writer properties, as adjusted for large values once the file's first row
        group is written."""
        self.row_group_rows = row_group_rows
        self.flush_bytes = flush_bytes
        self.background = background
        # pyarrow writes the footer when an unclosed writer is collected: after abort the
        # gate drops it, so a discarded file never ends with a valid trailer.
        self._gate = SinkGate(sink)
        self._gate.write(MAGIC)
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._closed = False
        self._encoding: threading.Thread | None = None
        self._error: BaseException | None = None

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        # In the background, a row group is encoded while the next fills: each gets half
        # the budget, so together they stay within row_group_mb.
        budget = self.flush_bytes // 2 if self.background else self.flush_bytes
        if batch.nbytes >= budget and self._pending_rows:
            # A batch of the whole budget is a row group of its own.
            self._write_row_group(self._pending_rows)
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        while self._pending_rows >= self.row_group_rows:
            self._write_row_group(self.row_group_rows)
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
        self._open_writer(None).close()

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

    def _open_writer(self, first: pa.Table | None) -> pq.ParquetWriter:
        """The pyarrow writer, created for the file's ``first`` row group (None: the file
        has no rows) with the properties its large values call for."""
        if self._writer is None:
            large = [] if first is None else large_columns(
                first, dictionary_columns(self.schema))
            if large:
                self.properties = for_large_values(self.schema, self.properties, large)
            dictionary = self.properties["use_dictionary"]
            if first is not None and isinstance(dictionary, list):
                self.properties = dict(self.properties,
                                       use_dictionary=repetitive_columns(first, dictionary))
            self._writer = pq.ParquetWriter(pa.PythonFile(_AfterMagic(self._gate), mode="w"),
                                            self.schema, **self.properties)
        return self._writer

    def _encode(self, table: pa.Table) -> None:
        try:
            assert self._writer is not None
            self._writer.write_table(table, row_group_size=table.num_rows)
        except _ENCODING_ERRORS as exc:
            self._error = FormatError(f"parquet could not encode a row group: {exc}")
            self._error.__cause__ = exc
        except BaseException as exc:  # a failing sink: raised in the caller's thread
            self._error = exc

    def _write_row_group(self, rows: int, *, background: bool | None = None) -> None:
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._wait()
        self._open_writer(table.slice(0, rows))
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


class _AfterMagic(SinkGate):
    """What the pyarrow writer writes to: its gate, less the magic number the file already
    starts with (written at open). pyarrow counts those bytes itself, so the offsets it
    records stay those of the file."""

    def __init__(self, gate: SinkGate) -> None:
        super().__init__(gate)
        self._expected = MAGIC

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._expected:
            head = bytes(view[:len(self._expected)])
            if not self._expected.startswith(head):
                raise FormatError("pyarrow's parquet writer did not start with PAR1")
            self._expected = self._expected[len(head):]
            view = view[len(head):]
        if view.nbytes:
            super().write(view)
        return memoryview(data).nbytes
