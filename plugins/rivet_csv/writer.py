"""CSV encoding: :class:`CsvFormat`, the writer it opens, and the compressed output streams.

Imported by the spec's factory only. What each type becomes as text is decided in
:mod:`rivet_csv.render`; this module only writes the rendered batches, one at a time, into
the sink (directly, or through a gzip or zstd stream).

The records are assembled with Arrow kernels (:func:`encode_batch`) rather than pyarrow's
CSV writer, with the writer's own output: every column is cast to text exactly as the
writer casts it, strings are quoted with inner quotes doubled, NULL is an empty unquoted
field. Doing it here lets a UTC timestamp be cast as a wall-clock time plus ``Z``, which is
the same text as the writer's but avoids its per-value time zone lookup (the writer spends
more time on one timestamptz column than on all the others together).

A row holding a text or binary value of :data:`LARGE_FIELD_BYTES` or more is written field by
field instead, the large value in pieces of :data:`PIECE_BYTES` (quotes doubled, or hex, a
piece at a time; a text piece without quotes goes to the sink as a view of the batch's own
buffer): whatever its size, the value is not copied whole once more, let alone twice (the
quoting and the record join each copy a batch's text).
"""

from __future__ import annotations

import binascii
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from rivet_core.api import Compression, Format, FormatError, FormatWriter, SinkGate
from rivet_csv.render import ColumnPlan, plan_columns

if TYPE_CHECKING:
    from rivet_csv import CsvOptions

GZIP_DEFAULT_LEVEL = 6
"""zlib's own default: most of level 9's ratio at a fraction of its time."""

EXTENSIONS = {"none": "csv", "gzip": "csv.gz", "zstd": "csv.zst"}


class CsvFormat(Format):
    """RFC 4180 CSV with the configured delimiter and header, optionally compressed."""

    def __init__(self, options: CsvOptions, compression: Compression) -> None:
        self.options = options
        self.compression = compression

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.compression.codec]

    def count_rows(self, data: bytes) -> int:
        """The records a CSV reader finds (quoted line breaks kept inside their field),
        after decompression, the header not counted."""
        # Arrow's reader needs each record inside one block: start at its default block
        # and grow it until the largest record (a value may be far larger) fits.
        block = 1 << 20
        while True:
            try:
                records = self._count_records(data, block)
                break
            except _RecordTooLarge as exc:
                if block >= _MAX_BLOCK:
                    raise FormatError(f"not a readable CSV file: {exc.__cause__}") from exc
                block = min(block * 8, _MAX_BLOCK)
        # The header is counted as a record rather than skipped: skip_rows skips a line,
        # not a record, so a column name holding a line break would shift every count.
        return max(records - 1, 0) if self.options.header else records

    def _count_records(self, data: bytes, block_size: int) -> int:
        import pyarrow.csv as pcsv

        codec = {"none": None, "gzip": "gzip", "zstd": "zstd"}[self.compression.codec]
        raw: pa.NativeFile = pa.BufferReader(data)
        if codec is not None:
            raw = pa.CompressedInputStream(raw, codec)
        try:
            reader = pcsv.open_csv(
                raw,
                read_options=pcsv.ReadOptions(autogenerate_column_names=True,
                                              block_size=block_size),
                parse_options=pcsv.ParseOptions(delimiter=self.options.delimiter,
                                                newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(include_columns=["f0"],
                                                    column_types={"f0": pa.string()}))
            return sum(batch.num_rows for batch in reader)
        except pa.ArrowInvalid as exc:
            text = str(exc)
            # A first block without a whole record reads as "empty ... or block"; a later
            # record past a block boundary as "straddling".
            if "straddling object" in text or "Empty CSV file or block" in text:
                raise _RecordTooLarge from exc
            if "Empty CSV file" in text:
                return 0
            raise FormatError(f"not a readable CSV file: {exc}") from exc
        except (pa.ArrowException, OSError) as exc:
            raise FormatError(f"not a readable CSV file: {exc}") from exc

    def open(
        self, sink: pa.NativeFile, schema: pa.Schema, *, max_file_bytes: int | None = None
    ) -> CsvFormatWriter:
        # Decided (and refused) before the first byte, header included, reaches the sink.
        plan = plan_columns(schema)
        # A compressed stream ends its frame when it is collected: after abort the gate
        # drops that, so a discarded file is never a complete-looking one.
        gate = SinkGate(sink)
        gated = pa.PythonFile(gate, mode="w")
        stream = _output_stream(gated, self.compression)
        # With max_file_size the runner reads the part size after every batch, so batches
        # are then encoded in the caller's thread, never behind.
        return CsvFormatWriter(stream, plan, delimiter=self.options.delimiter,
                               header=self.options.header, ends_stream=stream is not gated,
                               encoders=ENCODER_THREADS if max_file_bytes is None else 0,
                               gate=gate)


ENCODER_THREADS = 2
"""Threads encoding batches into CSV text at once (the Arrow kernels release the GIL)."""

LARGE_FIELD_BYTES = 4 << 20
"""A text or binary value of this many bytes or more is streamed, its row written field by
field."""
PIECE_BYTES = 4 << 20
"""The bytes of a large value rendered and written at a time."""

_MAX_BLOCK = 2**31 - 1
"""The largest block Arrow's CSV reader takes (an int32)."""


class _RecordTooLarge(Exception):
    """A record did not fit in one block of Arrow's CSV reader."""


class CsvFormatWriter(FormatWriter):
    """One CSV file. Each batch is rendered and encoded when it arrives, by ``encoders``
    background threads (or the caller's thread with 0), and written in arrival order; at
    most ``2 * encoders`` batches are in flight."""

    def __init__(
        self,
        stream: pa.NativeFile,
        plan: ColumnPlan,
        *,
        delimiter: str,
        header: bool,
        ends_stream: bool,
        encoders: int = 0,
        gate: SinkGate | None = None,
    ) -> None:
        self.plan = plan
        self._gate = gate
        self._stream = stream
        self._ends_stream = ends_stream
        self._delimiter = delimiter
        self._closed = False
        self._pool = (ThreadPoolExecutor(max_workers=encoders, thread_name_prefix="rivet-csv")
                      if encoders else None)
        self._in_flight: deque[Future[pa.Buffer]] = deque()
        self._max_in_flight = 2 * encoders
        if header:
            names = [_quote_text(name) for name in plan.schema.names]
            stream.write((delimiter.join(names) + "\n").encode())

    def _encode(self, batch: pa.RecordBatch) -> pa.Buffer:
        return encode_batch(self.plan.render(batch), self._delimiter)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        large = large_rows(batch) if batch.nbytes >= LARGE_FIELD_BYTES else []
        if large:
            self._write_around(batch, large)
            return
        if self._pool is None:
            self._stream.write(self._encode(batch))
            return
        self._in_flight.append(self._pool.submit(self._encode, batch))
        while len(self._in_flight) > self._max_in_flight:
            self._stream.write(self._in_flight.popleft().result())

    def _write_around(self, batch: pa.RecordBatch, large: list[int]) -> None:
        """``batch`` with its rows ``large`` (ascending) streamed field by field, in the
        caller's thread once the batches in flight are written; the rows between them are
        encoded as usual."""
        while self._in_flight:
            self._stream.write(self._in_flight.popleft().result())
        start = 0
        for row in [*large, batch.num_rows]:
            if row > start:
                self._stream.write(self._encode(batch.slice(start, row - start)))
            if row < batch.num_rows:
                self._write_fields(batch.slice(row, 1))
            start = row + 1

    def _write_fields(self, row: pa.RecordBatch) -> None:
        """One record, field by field: each large value in pieces, the others encoded
        alone."""
        write = self._stream.write
        for index, column in enumerate(row.columns):
            if index:
                write(self._delimiter.encode())
            if _large_value(column):
                for piece in _quoted_pieces(column):
                    write(piece)
                continue
            convert = self.plan.converters[index]
            field = pa.RecordBatch.from_arrays(
                [column if convert is None else convert(column)], names=["f"])
            text = encode_batch(field, self._delimiter)
            write(text.slice(0, text.size - 1))  # without its newline
        write(b"\n")

    def close(self) -> None:
        """Write what is buffered and end the compressed stream, if any.

        Ending the zstd stream makes pyarrow close the sink as well (the runner's sink
        ignores that), after the last byte is in it; the other codecs leave the sink open.
        """
        if self._closed:
            return
        self._closed = True
        try:
            while self._in_flight:
                self._stream.write(self._in_flight.popleft().result())
        finally:
            self._shutdown()
        if self._ends_stream:
            self._stream.close()
        else:
            self._stream.flush()


    def abort(self) -> None:
        """Drop the batches being encoded; nothing more reaches the sink."""
        self._closed = True
        self._in_flight.clear()
        self._shutdown()
        if self._gate is not None:
            self._gate.shut()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _quote_text(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _is_variable(typ: pa.DataType) -> bool:
    return (pa.types.is_string(typ) or pa.types.is_large_string(typ)
            or pa.types.is_binary(typ) or pa.types.is_large_binary(typ))


def large_rows(batch: pa.RecordBatch) -> list[int]:
    """The rows of ``batch`` holding a text or binary value of at least
    :data:`LARGE_FIELD_BYTES`, ascending."""
    found: pa.Array | None = None
    for column in batch.columns:
        if not _is_variable(column.type):
            continue
        large = pc.fill_null(pc.greater_equal(pc.binary_length(column), LARGE_FIELD_BYTES),
                             False)
        found = large if found is None else pc.or_(found, large)
    if found is None or not pc.any(found).as_py():
        return []
    return [int(i) for i in pc.indices_nonzero(found).to_pylist()]


def _large_value(column: pa.Array) -> bool:
    """Whether the one value of ``column`` is a text or binary value to stream."""
    if not _is_variable(column.type) or not column.is_valid()[0].as_py():
        return False
    return int(pc.binary_length(column)[0].as_py()) >= LARGE_FIELD_BYTES


def _quoted_pieces(column: pa.Array) -> Iterator[pa.Buffer | bytes]:
    """The CSV field of the one value of a text or binary ``column``, quoted, in pieces:
    text with its quotes doubled (a piece without quotes is a view of the value), binary as
    hex."""
    wide = pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type)
    offsets = pa.Array.from_buffers(pa.int64() if wide else pa.int32(), 2,
                                    [None, column.buffers()[1]], offset=column.offset)
    first, last = offsets[0].as_py(), offsets[1].as_py()
    data = column.buffers()[2]
    assert data is not None
    value = data.slice(first, last - first)
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    yield b'"'
    for start in range(0, value.size, PIECE_BYTES):
        piece = value.slice(start, min(PIECE_BYTES, value.size - start))
        if not text:
            yield binascii.hexlify(memoryview(piece))
            continue
        raw = piece.to_pybytes()
        yield piece if raw.find(b'"') < 0 else raw.replace(b'"', b'""')
    yield b'"'


Part: TypeAlias = "pa.Array | str"
"""An operand of the record join: a column's text, or a constant (quote, delimiter)."""


def _field_parts(column: pa.Array) -> list[Part]:
    """One rendered column as operands of the record join (NULL stays null, and becomes an
    empty field). Strings are quoted by the join itself, so their text is copied once."""
    typ = column.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        # Always replaced: pyarrow's substring search alone costs three times the rewrite.
        escaped = pc.replace_substring(column, '"', '""')
        if not column.null_count:
            return ['"', escaped, '"']
        # No quotes around a NULL: an empty unquoted field.
        quote = pc.if_else(column.is_valid(), pa.scalar('"', typ), pa.scalar("", typ))
        return [quote, escaped, quote]
    if pa.types.is_timestamp(typ) and typ.tz is not None:
        # The render step made the zone UTC: the instant's UTC wall time, then "Z".
        naive = column.view(pa.timestamp(typ.unit)).cast(pa.string())
        return [pc.binary_join_element_wise(naive, "Z", "")]
    return [column.cast(pa.string())]


def encode_batch(batch: pa.RecordBatch, delimiter: str) -> pa.Buffer:
    """The newline-terminated CSV records of a rendered batch, as one buffer, built by one
    join over every field, quote, delimiter and newline."""
    parts: list[Part] = []
    for index, column in enumerate(batch.columns):
        if index:
            parts.append(delimiter)
        parts.extend(_field_parts(column))
    parts.append("\n")
    large = any(isinstance(p, pa.Array) and pa.types.is_large_string(p.type) for p in parts)
    typ = pa.large_string() if large else pa.string()
    operands = [pa.scalar(p, typ) if isinstance(p, str) else p.cast(typ) for p in parts]
    lines = pc.binary_join_element_wise(*operands, pa.scalar("", typ),
                                        null_handling="replace", null_replacement="")
    _validity, offsets_buffer, data = lines.buffers()
    offset_type = pa.int64() if large else pa.int32()
    offsets = pa.Array.from_buffers(offset_type, len(lines) + 1, [None, offsets_buffer],
                                    offset=lines.offset)
    first, last = offsets[0].as_py(), offsets[len(lines)].as_py()
    return data.slice(first, last - first) if data is not None else pa.py_buffer(b"")


def _output_stream(sink: pa.NativeFile, compression: Compression) -> pa.NativeFile:
    if compression.codec == "gzip":
        level = GZIP_DEFAULT_LEVEL if compression.level is None else compression.level
        return pa.PythonFile(_GzipSink(sink, level), mode="w")
    if compression.codec == "zstd":
        # One zstd frame for the whole file. pyarrow's streaming compressor takes no level
        # (it runs at level 1); the alternative, a frame per batch at the asked level, is
        # truncated silently by readers that stop after one frame (python-zstandard's
        # default, hence pandas).
        return pa.CompressedOutputStream(sink, "zstd")
    return sink


class _GzipSink:
    """A write-only file object that gzips into an Arrow sink: one gzip member with the
    configured level (pyarrow's gzip stream has no level setting)."""

    def __init__(self, sink: pa.NativeFile, level: int) -> None:
        self._sink = sink
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self.closed = False

    def write(self, data: bytes | memoryview | pa.Buffer) -> int:
        compressed = self._deflate.compress(data)
        if compressed:
            self._sink.write(compressed)
        return len(memoryview(data))

    def flush(self) -> None:
        """Nothing to do: a zlib flush here would cost ratio for no reader benefit."""

    def close(self) -> None:
        """Write the end of the deflate stream and the gzip trailer; the sink stays open."""
        if self.closed:
            return
        self.closed = True
        self._sink.write(self._deflate.flush())
        self._sink.flush()
