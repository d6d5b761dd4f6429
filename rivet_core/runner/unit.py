"""The one write path every mode uses: read a unit of work into committed files, retrying.

A :class:`Unit` is one statement (the whole query, an incremental slice, a chunk). Writing it
is always: open the source's stream → roll batches into files (finish the file → commit the
target → hand the committed file on, in that order: :mod:`rivet_core.runner.files`) → on a
failure, abort the open target, so an atomic or finalize-on-close destination shows nothing
of the file being written.

Retries: a transient source error is retried with backoff on a fresh connection, as
:class:`~rivet_core.runner.retry.RetryPolicy` decides; a permanent one never is. What a
retry may do about files the failed attempt already committed is the unit's choice:

- ``retract=False`` (whole-query units, whose files are recorded as they commit): no retry
  once a file is committed, since the retry would duplicate its rows; none either once bytes
  reached a destination that is not retry-safe;
- ``retract=True`` (chunks, whose files are recorded only when the chunk completes): the
  attempt's committed parts are deleted before the retry, which may split differently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from rivet_core.backends import Query, Source, SupportsListing
from rivet_core.errors import RivetError, SourceError
from rivet_core.runner import crash
from rivet_core.runner.prefetch import prefetch
from rivet_core.runner.results import FileResult
from rivet_core.runner.timings import phase

if TYPE_CHECKING:
    import pyarrow as pa

    from rivet_core.runner.checks import AttemptChecks
    from rivet_core.runner.export import ExportRun
    from rivet_core.runner.files import FileRoller

log = logging.getLogger("rivet.runner")


@attrs.frozen(kw_only=True)
class Unit:
    """One statement to read into files."""

    query: Query
    parallel: int = 1
    """Connections the source may read it over (its row order is then not kept)."""
    chunk: int | None = None
    """The chunk index its files are named and recorded with."""
    retract: bool = False
    """Whether a retry deletes the parts the failed attempt committed (see the module)."""
    record: bool = True
    """Record each file in the state store as it commits (else the caller records them)."""
    on_batch: Callable[[pa.RecordBatch], None] | None = None
    """Sees every non-empty batch before it is written (an incremental cursor)."""
    crash_point: str = "after_source_read"
    """The test crash point reached after each batch is written."""
    decide: bool = False
    """The unit is the whole run: the run's checks are decided once it is read, and its
    files are held uncommitted until they pass when the checks ask for it
    (:mod:`rivet_core.runner.checks`)."""


class SourceHolder:
    """The source a worker reads with: taken on first use (from the run's idle sources, or
    new), kept across units, replaced by a fresh one (a new connection, never an idle one)
    after a failure, and given back when the worker is done."""

    def __init__(self, run: ExportRun) -> None:
        self.run = run
        self._source: Source | None = None
        self._failed = False

    def get(self) -> Source:
        if self._source is None:
            self._source = self.run.build_source() if self._failed else self.run.take_source()
        return self._source

    def reset(self) -> None:
        """Close the source after a failure (its connection is never reused); the next
        :meth:`get` builds a fresh one."""
        source, self._source = self._source, None
        self._failed = True
        if source is not None:
            self.run.discard_source(source)

    def close(self) -> None:
        """The worker is done: give the source back (a later export may reuse it once it
        has reset its session)."""
        source, self._source = self._source, None
        if source is not None:
            self.run.give_back_source(source)


def write_unit(run: ExportRun, unit: Unit, sources: SourceHolder) -> tuple[int, list[FileResult]]:
    """Read ``unit`` into committed files; the rows read and the files, in commit order."""
    attempt = 0
    while True:
        tried = _Attempt(run, unit)
        try:
            tried.write(sources)
            return tried.rows, tried.committed
        except BaseException as exc:
            # Whatever failed, the connection is in an unknown state: never reused.
            sources.reset()
            if not isinstance(exc, RivetError):
                raise
            # Only the rows of files that stay committed count; a retracted attempt's none.
            kept = 0 if unit.retract else sum(f.rows for f in tried.committed)
            run.count(-(tried.rows - kept))
            retry = run.retry.should_retry(exc, attempt)
            log.debug("export %s: %s failed after %d row(s), %d file(s) committed: %s",
                      run.plan.name, unit.query.label, tried.rows, len(tried.committed),
                      exc.message, extra=run.log_extra)
            if not unit.retract and tried.committed:
                if retry:
                    exc.hint = (f"{len(tried.committed)} file(s) of this run were already "
                                "committed, so Rivet did not retry (that would duplicate "
                                "rows); the next run starts over from the last committed "
                                "state")
                raise
            if not unit.retract and tried.emitted and not run.plan.capabilities.retry_safe:
                raise
            if not retry:
                raise
            _retract(run, tried.committed)
            attempt += 1
            run.note_retry(exc, attempt, unit.query.label)


class _Attempt:
    """One attempt at a unit: what it read and committed, known after a failure too."""

    def __init__(self, run: ExportRun, unit: Unit) -> None:
        self.run = run
        self.unit = unit
        self.rows = 0
        self.committed: list[FileResult] = []
        self.emitted = False
        """Whether any byte reached the destination."""

    def _committed(self, f: FileResult) -> None:
        self.committed.append(f)
        if self.unit.record:
            self.run.record_committed_file(f)
        log.info("export %s: committed %s (%d rows, %d bytes)", self.run.plan.name, f.name,
                 f.rows, f.bytes, extra=self.run.log_extra)

    def write(self, sources: SourceHolder) -> None:
        run, unit = self.run, self.unit
        detail = unit.query.label if unit.chunk is not None else ""
        options = attrs.evolve(run.options, parallel=unit.parallel)
        query = unit.query
        # The statement's shape, never its parameters' values (a cursor, a key range).
        log.debug("export %s: %s: %s [%d parameter(s), parallel %d, batch_size %d]",
                  run.plan.name, query.label, " ".join(query.sql.split()), len(query.params),
                  unit.parallel, options.batch_size, extra=run.log_extra)
        with phase("read"):
            stream = sources.get().read(unit.query, options)
        nbytes = 0
        roller: FileRoller | None = None
        checks: AttemptChecks | None = None
        try:
            with stream:
                _refuse_duplicate_names(stream.schema.names, unit.query.label)
                schema = run.checks.opened(stream.schema)
                run.stream_opened(stream, schema)
                log.info("export %s: reading %s: %d column(s) via %s", run.plan.name,
                         query.label, len(schema), stream.read_path or "the source's reader",
                         extra=run.log_extra)
                checks = run.checks.attempt()
                roller = run.roller(schema, chunk=unit.chunk, on_commit=self._committed,
                                    hold=unit.decide and run.checks.holds)
                batches = prefetch(stream, interrupt=run.ctx.stop)
                try:
                    while True:
                        with phase("read"):
                            try:
                                batch = next(batches)
                            except StopIteration:
                                break
                        if batch is None or run.ctx.stop.is_set():
                            # The invocation is stopping (a signal): the server stops the
                            # statement, so the reader waiting on it lets go at once.
                            stream.cancel()
                            raise KeyboardInterrupt
                        if batch.num_rows == 0:
                            continue
                        if unit.on_batch is not None:
                            unit.on_batch(batch)
                        roller.write(checks.observe(batch))
                        self.rows += batch.num_rows
                        nbytes += batch.nbytes
                        run.count(batch.num_rows, roller, detail)
                        crash.point(unit.crash_point)
                except BaseException:
                    # Abort the open file first; closing the reader may wait for a slow read.
                    roller, checks = self._abort(roller, checks)
                    raise
                finally:
                    batches.close()
            # Every row is in and the stream is closed (its transaction ended): a unit that
            # is the whole run gives its source back before its last file is encoded and
            # committed.
            if unit.decide:
                sources.close()
                run.read_finished(nbytes)
            roller.finish()
            checks.done()
            if unit.decide:
                run.checks.decide()
            roller.release()
        except BaseException:
            self._abort(roller, checks)
            raise

    def _abort(self, roller: FileRoller | None, checks: AttemptChecks | None) -> tuple[None, None]:
        """Discard the attempt's open and held files and its observations (once: the
        caller forgets them through the returned Nones)."""
        if roller is not None:
            self.emitted = roller.emitted_bytes
        if checks is not None:
            checks.discard()
        if roller is not None:
            roller.abort()
        return None, None


def _refuse_duplicate_names(names: list[str], label: str) -> None:
    """Two result columns of one name make a file readers cannot read (Parquet) or read
    ambiguously (CSV): refused before any file is opened."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SourceError(f"{label}: the query returns two columns named {name!r}",
                              hint="give each column a distinct name (… AS other_name)")
        seen.add(name)


def _retract(run: ExportRun, committed: list[FileResult]) -> None:
    """Remove the parts a failed attempt committed: the retry may split differently and
    must not leave a stale extra part behind."""
    if not committed:
        return
    destination = run.destination()
    if not isinstance(destination, SupportsListing):
        raise SourceError("a chunk failed after committing part files, and the destination "
                          "cannot delete them before a retry")
    for f in committed:
        destination.delete_file(f.name)
