"""Writing one unit of work's files: batches in, committed files out, in the fixed order.

Per file: finish the file (format trailer) → commit the target → hand the committed file to
the caller, who records it. :class:`FileRoller` owns at most one open target and rolls to a
new part when ``max_file_size`` is reached; :meth:`FileRoller.abort` discards the open one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from rivet_core.backends import Destination, Format, FormatWriter, WriteTarget
from rivet_core.runner import crash
from rivet_core.runner.results import FileResult
from rivet_core.runner.sink import HashingSink, open_sink

log = logging.getLogger("rivet.runner")


class FileRoller:
    """Writes batches into the current file and rolls to a new part at ``max_file_bytes``."""

    def __init__(self, *, destination: Destination, fmt: Format, schema: pa.Schema,
                 name_for: Callable[[int | None], str], max_file_bytes: int | None,
                 on_commit: Callable[[FileResult], None], chunk: int | None = None) -> None:
        self.destination = destination
        self.fmt = fmt
        self.schema = schema
        self.name_for = name_for
        self.max_file_bytes = max_file_bytes
        self.on_commit = on_commit
        self.chunk = chunk
        self.part = 0
        self.committed: list[FileResult] = []
        self._target: WriteTarget | None = None
        self._sink: HashingSink | None = None
        self._writer: FormatWriter | None = None
        self._name = ""
        self._rows = 0

    @property
    def written_bytes(self) -> int:
        done = sum(f.bytes for f in self.committed)
        return done + (self._sink.size if self._sink else 0)

    @property
    def emitted_bytes(self) -> bool:
        """Whether any byte reached the destination (committed or not)."""
        return bool(self.committed) or bool(self._sink and self._sink.size)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._open()
        assert self._writer is not None and self._sink is not None
        self._writer.write_batch(batch)
        self._rows += batch.num_rows
        if self.max_file_bytes is not None and self._sink.size >= self.max_file_bytes:
            self.finish()

    def _open(self) -> None:
        self.part += 1
        self._name = self.name_for(self.part if self.max_file_bytes is not None else None)
        self._target = self.destination.open(self._name)
        self._sink, stream = open_sink(self._target)
        try:
            self._writer = self.fmt.open(stream, self.schema, max_file_bytes=self.max_file_bytes)
        except BaseException:
            self.abort()
            raise
        self._rows = 0

    def finish(self) -> None:
        """Finish the open file, commit it, and report it; no-op when none is open."""
        if self._writer is None:
            return
        assert self._target is not None and self._sink is not None
        self._writer.close()
        committed = self._target.commit()
        crash.point("after_file_commit")
        result = FileResult(name=committed.name, uri=committed.uri, rows=self._rows,
                            bytes=self._sink.size, sha256=self._sink.sha256(), chunk=self.chunk)
        self._writer = self._target = self._sink = None
        self.committed.append(result)
        self.on_commit(result)

    def abort(self) -> None:
        writer, sink = self._writer, self._sink
        target, self._target, self._writer, self._sink = self._target, None, None, None
        if sink is not None:
            sink.shut()  # whatever the writer still writes never reaches the target
        if writer is not None:
            writer.abort()
        if target is not None:
            try:
                target.abort()
            except Exception:  # the original failure matters more than a failed cleanup
                log.exception("aborting %s failed", self._name)
