"""CSV encoding: :class:`CsvFormat`, the writer it opens, and the compressed output streams.

Imported by the spec's factory only, because it imports ``pyarrow.csv``. What each type
becomes as text is decided in :mod:`rivet_csv.render`; this module only writes the rendered
batches, one at a time, through pyarrow's CSV writer into the sink (directly, or through a
gzip or zstd stream).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from rivet_core.backends import Compression, Format, FormatWriter
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

    def write_options(self) -> pacsv.WriteOptions:
        return pacsv.WriteOptions(
            include_header=self.options.header,
            delimiter=self.options.delimiter,
            # "needed" quotes every string value and never a NULL, which is what keeps an
            # empty string ("") apart from NULL (nothing).
            quoting_style="needed",
        )

    def open(
        self, sink: pa.NativeFile, schema: pa.Schema, *, max_file_bytes: int | None = None
    ) -> CsvFormatWriter:
        # Decided (and refused) before the first byte, header included, reaches the sink.
        plan = plan_columns(schema)
        stream = _output_stream(sink, self.compression)
        return CsvFormatWriter(stream, plan, self.write_options(), ends_stream=stream is not sink)


class CsvFormatWriter(FormatWriter):
    """One CSV file. Holds no rows: each batch is rendered and written when it arrives."""

    def __init__(
        self,
        stream: pa.NativeFile,
        plan: ColumnPlan,
        options: pacsv.WriteOptions,
        *,
        ends_stream: bool,
    ) -> None:
        self.plan = plan
        self._stream = stream
        self._ends_stream = ends_stream
        self._writer = pacsv.CSVWriter(stream, plan.schema, write_options=options)
        self._closed = False

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._writer.write_batch(self.plan.render(batch))

    def close(self) -> None:
        """Write what is buffered and end the compressed stream, if any.

        Ending the zstd stream makes pyarrow close the sink as well (the runner's sink
        ignores that), after the last byte is in it; the other codecs leave the sink open.
        """
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        if self._ends_stream:
            self._stream.close()
        else:
            self._stream.flush()


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
