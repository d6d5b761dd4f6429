"""Writing one unit of work's files: batches in, committed files out, in the fixed order.

Per file: finish the file (format trailer) → commit the target → hand the committed file to
the caller, who records it. :class:`FileRoller` owns at most one open target and rolls to a
new part when ``max_file_size`` is reached; :meth:`FileRoller.abort` discards the open one.

Holding (``hold=True``, used when quality gates must pass before anything becomes visible):
a finished file is not committed but kept, finished and invisible, until :meth:`release`
commits every held file in order; :meth:`abort` discards the held files with the open one.
An atomic or finalize-on-close destination then shows no file of the unit until release.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from rivet_core.backends import CommittedFile, Destination, Format, FormatWriter, WriteTarget
from rivet_core.runner import crash
from rivet_core.runner.results import FileResult
from rivet_core.runner.signals import uninterrupted
from rivet_core.runner.sink import HashingSink, open_sink
from rivet_core.runner.timings import phase

log = logging.getLogger("rivet.runner")


class FileRoller:
    """Writes batches into the current file and rolls to a new part at ``max_file_bytes``."""

    def __init__(self, *, destination: Destination, fmt: Format, schema: pa.Schema,
                 name_for: Callable[[int | None], str], max_file_bytes: int | None,
                 on_commit: Callable[[FileResult], None], chunk: int | None = None,
                 hold: bool = False) -> None:
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
        self.hold = hold
        self._held: list[tuple[WriteTarget, HashingSink, str, int]] = []
        """Finished files not yet committed: target, sink, name, rows."""

    @property
    def written_bytes(self) -> int:
        done = sum(f.bytes for f in self.committed) + sum(h[1].size for h in self._held)
        return done + (self._sink.size if self._sink else 0)

    @property
    def emitted_bytes(self) -> bool:
        """Whether any byte reached the destination (committed or not)."""
        return bool(self.committed or self._held) or bool(self._sink and self._sink.size)

    @property
    def held(self) -> int:
        """Finished files waiting for :meth:`release`."""
        return len(self._held)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._open()
        assert self._writer is not None and self._sink is not None
        with phase("encode"):
            self._writer.write_batch(batch)
        self._rows += batch.num_rows
        if self.max_file_bytes is not None and self._sink.size >= self.max_file_bytes:
            self.finish()

    def _open(self) -> None:
        self.part += 1
        self._name = self.name_for(self.part if self.max_file_bytes is not None else None)
        with phase("commit"):
            self._target = self.destination.open(self._name)
        self._sink, stream = open_sink(self._target)
        try:
            with phase("encode"):
                self._writer = self.fmt.open(stream, self.schema,
                                             max_file_bytes=self.max_file_bytes)
        except BaseException:
            self.abort()
            raise
        self._rows = 0

    def finish(self) -> None:
        """Finish the open file, then commit and report it (or, holding, keep it for
        :meth:`release`); no-op when none is open."""
        if self._writer is None:
            return
        assert self._target is not None and self._sink is not None
        with phase("encode"):
            self._writer.close()
        finished = (self._target, self._sink, self._name, self._rows)
        self._writer = self._target = self._sink = None
        self._held.append(finished)
        if not self.hold:
            self.release()

    def release(self) -> None:
        """Commit every held file, in the order they were finished. A file whose commit
        fails stays held, so :meth:`abort` discards it."""
        while self._held:
            target, sink, _, rows = self._held[0]
            # A stop signal may not fall between a commit and its record: the file would
            # be visible and in no manifest.
            with uninterrupted():
                with phase("commit"):
                    committed = target.commit()
                self._held.pop(0)
                self._committed(committed, sink, rows)

    def _committed(self, committed: CommittedFile, sink: HashingSink, rows: int) -> None:
        crash.point("after_file_commit")
        result = FileResult(name=committed.name, uri=committed.uri, rows=rows,
                            bytes=sink.size, sha256=sink.sha256(), chunk=self.chunk)
        self.committed.append(result)
        self.on_commit(result)

    def abort(self) -> None:
        """Discard the open file and every held one; committed files stay."""
        writer, sink = self._writer, self._sink
        target, self._target, self._writer, self._sink = self._target, None, None, None
        held, self._held = self._held, []
        if sink is not None:
            sink.shut()  # whatever the writer still writes never reaches the target
        if writer is not None:
            writer.abort()
        for each, name in [(target, self._name)] + [(h[0], h[2]) for h in held]:
            if each is None:
                continue
            try:
                each.abort()
            except Exception:  # the original failure matters more than a failed cleanup
                log.exception("aborting %s failed", name)
