"""The ``jsonl`` format: :class:`JsonlFormat` and the writer it opens.

Imported by the spec's factory only. What each type becomes is decided in
:mod:`rivet_sqlite_jsonl.jsontext`; this module writes the encoded batches into the sink,
as they come, directly or through gzip.

- Streaming: each batch is encoded and handed to the sink (or to the compressor, which
  passes on its output as its window fills) inside :meth:`JsonlWriter.write_batch`, so
  memory holds about one batch whatever the size of the file.
- Zero rows: an empty file (with gzip, an empty gzip member).
- Abort: every write happens in the caller's thread, inside ``write_batch`` or ``close``,
  and nothing writes on its own later (no thread, no compressor that ends its stream when
  collected), so :meth:`JsonlWriter.abort` only has to refuse the later calls. A format
  whose library can write behind its back would route the sink through
  ``rivet_core.api.SinkGate`` instead.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import pyarrow as pa

from rivet_core.api import Compression, Format, FormatWriter
from rivet_sqlite_jsonl.jsontext import Encoder, encode_batch, plan_columns

if TYPE_CHECKING:
    from rivet_sqlite_jsonl.config import JsonlOptions

GZIP_DEFAULT_LEVEL = 6
"""zlib's own default: most of level 9's ratio at a fraction of its time."""

EXTENSIONS = {"none": "jsonl", "gzip": "jsonl.gz"}


class JsonlFormat(Format):
    """JSON Lines, optionally gzipped."""

    def __init__(self, options: JsonlOptions, compression: Compression) -> None:
        self.options = options
        self.compression = compression

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.compression.codec]

    def open(self, sink: pa.NativeFile, schema: pa.Schema, *,
             max_file_bytes: int | None = None) -> JsonlWriter:
        # Refused before a byte reaches the sink; a line is a few KiB at most, so no
        # internal buffer needs to know the part size.
        plan = plan_columns(schema)
        level = None
        if self.compression.codec == "gzip":
            level = self.compression.level or GZIP_DEFAULT_LEVEL
        return JsonlWriter(sink, plan, gzip_level=level)


class JsonlWriter(FormatWriter):
    """One JSON Lines file written into ``sink``; gzip (one member, at ``gzip_level``)
    when a level is given."""

    def __init__(self, sink: pa.NativeFile, plan: list[tuple[str, Encoder]], *,
                 gzip_level: int | None) -> None:
        self._sink = sink
        self._plan = plan
        # wbits 16 + 15: a gzip header and trailer around the deflate stream.
        self._deflate = (None if gzip_level is None
                         else zlib.compressobj(gzip_level, zlib.DEFLATED, 16 + zlib.MAX_WBITS))
        self._done = False

    def _send(self, data: bytes | pa.Buffer) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data)
            if not data:
                return
        self._sink.write(data)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self._done:
            raise RuntimeError("write_batch after the file was closed or aborted")
        if batch.num_rows:
            self._send(encode_batch(batch, self._plan))

    def close(self) -> None:
        """End the gzip member, if any; the sink stays open (committing it is the
        runner's decision)."""
        if self._done:
            return
        self._done = True
        if self._deflate is not None:
            self._sink.write(self._deflate.flush())
        self._sink.flush()

    def abort(self) -> None:
        """Nothing more reaches the sink: the compressor's pending output is dropped."""
        self._done = True
        self._deflate = None
