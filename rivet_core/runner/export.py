"""One run of one export: the services every mode uses.

:class:`ExportRun` holds what a mode needs while it runs: the plan, the result being built,
the state store, the destination (built once, guarded so the old ``_SUCCESS`` is retired
at the first commit), the format, fresh sources, the runner's small statements
(:meth:`ExportRun.fetch_rows`), counting and progress, retries and the journal. The one
write path is :func:`rivet_core.runner.unit.write_unit`; what a mode does with it is in
:mod:`rivet_core.runner.modes`; the order around a mode (lock, status, manifest, run metric)
is :mod:`rivet_core.runner.lifecycle`.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import attrs

from rivet_core.backends import (
    BatchStream,
    Destination,
    DestinationContext,
    Format,
    Query,
    ReadOptions,
    Source,
    SourceContext,
)
from rivet_core.errors import RivetError
from rivet_core.naming import file_name, new_run_id
from rivet_core.redact import redact
from rivet_core.runner import crash
from rivet_core.runner.checks import RunChecks
from rivet_core.runner.files import FileRoller
from rivet_core.runner.manifest import RunManifest
from rivet_core.runner.progress import Progress
from rivet_core.runner.results import ExportResult, FileResult, RunContext
from rivet_core.runner.retry import RetryPolicy
from rivet_core.runner.timings import phase
from rivet_core.state.store import FileRecord, utc_now

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

    from rivet_core.dialect import Dialect
    from rivet_core.plan import ExportPlan

log = logging.getLogger("rivet.runner")

OVERLAP_MAX_BYTES = 32 << 20
"""The most Arrow data an export may have read for the next export to start while it
finishes (:meth:`ExportRun.read_finished`): what it still holds then (its last row group,
being encoded) is small, so two exports at once stay within the memory of one."""


class ExportRun:
    """One run of one planned export. Safe to use from the worker threads of a mode."""

    def __init__(self, plan: ExportPlan, ctx: RunContext) -> None:
        self.plan = plan
        self.ctx = ctx
        self.state = ctx.state
        started = utc_now()
        self.result = ExportResult(export=plan.name, run_id=new_run_id(started),
                                   mode=plan.config.mode, started_at=started)
        self.retry = RetryPolicy(max_retries=plan.tuning.max_retries,
                                 backoff_ms=plan.tuning.retry_backoff_ms,
                                 retry_timeouts=plan.tuning.retry_timeouts)
        self.options = ReadOptions(
            batch_size=plan.tuning.batch_size,
            statement_timeout_s=plan.tuning.statement_timeout_s,
            lock_timeout_s=plan.tuning.lock_timeout_s,
            throttle_ms=plan.tuning.throttle_ms,
            column_types=plan.column_types,
            max_batch_bytes=plan.tuning.max_batch_memory_mb << 20
            if plan.tuning.max_batch_memory_mb else None,
        )
        self.lock = threading.Lock()
        self.progress: Progress | None = None
        self.manifest = RunManifest(plan, self.result)
        self.checks = RunChecks(self)
        self.count_statement: Query | None = None
        """What ``--reconcile`` counts on the source: the rows this run read (set by the
        mode once it knows them)."""
        self.schema: pa.Schema | None = None
        """The schema of the first stream opened (for the manifest)."""
        self._format: Format | None = None
        self._destination: Destination | None = None
        self._guarded: Destination | None = None
        self._control: Source | None = None

    @property
    def dialect(self) -> Dialect:
        return self.plan.dialect

    @property
    def log_extra(self) -> dict[str, str]:
        """The ``extra`` of a log call about this run (``--log-format json`` shows it)."""
        return {"export": self.plan.name, "run_id": self.result.run_id}

    # ------------------------------------------------------------------ backends

    def build_source(self) -> Source:
        """A fresh source (it connects on first use)."""
        self._wait_to_read()
        source: Source = self.plan.source.spec.factory(
            self.plan.source_options, SourceContext(config_dir=self.ctx.config_dir))
        log.info("export %s: new %s source connection to %s", self.plan.name,
                 self.plan.source.spec.name, source.display_name(), extra=self.log_extra)
        return source

    def take_source(self) -> Source:
        """A source to read with: one the run's earlier exports left clean
        (:mod:`rivet_core.runner.sourcepool`), else a fresh one. Hand it back with
        :meth:`give_back_source`, or :meth:`discard_source` after a failure."""
        pool = self.ctx.sources
        if pool is None:
            return self.build_source()
        self._wait_to_read()
        source, reused = pool.take(self.plan.source_options, self.build_source)
        if reused:
            log.debug("export %s: reusing the %s source connection to %s", self.plan.name,
                      self.plan.source.spec.name, source.display_name(), extra=self.log_extra)
        return source

    def _wait_to_read(self) -> None:
        """Before the export's first statement on the source: when the run overlaps its
        exports, wait for a reading slot (what came before, the lock, the journal and the
        destination probe, never touches the source)."""
        if self.ctx.read_slot is not None:
            self.ctx.read_slot()

    def give_back_source(self, source: Source) -> None:
        """``source`` is done with and healthy: kept for a later export (reset first) when
        the run keeps sources, else closed."""
        pool = self.ctx.sources
        if pool is None:
            source.close()
        else:
            pool.give_back(self.plan.source_options, source)

    def discard_source(self, source: Source) -> None:
        """Close ``source`` after a failure: its connection never serves anything again."""
        if self.ctx.sources is None:
            source.close()
        else:
            self.ctx.sources.discard(source)

    def fetch_rows(self, query: Query) -> list[dict[str, Any]]:
        """One of the runner's small statements (probes, key statistics), on a source kept
        for them until :meth:`release_control_source`; reads use sources of their own.
        Transient failures are retried on a fresh connection, as reads are; after any
        failure the source is closed, never reused."""
        options = attrs.evolve(self.options, column_types={})
        log.debug("export %s: %s: %s%s", self.plan.name, query.label, query.sql,
                  f" [{len(query.params)} parameter(s)]" if query.params else "")
        attempt = 0
        while True:
            if self._control is None:
                # A retry gets a fresh connection, never an idle one.
                self._control = self.build_source() if attempt else self.take_source()
            try:
                with phase("probe"):
                    return self._control.fetch_rows(query, options)
            except RivetError as exc:
                self._discard_control()
                if not self.retry.should_retry(exc, attempt):
                    raise
                attempt += 1
                self.note_retry(exc, attempt, query.label)
            except BaseException:
                self._discard_control()
                raise

    def release_control_source(self) -> None:
        """Give back the source of the small statements (a later one takes a source
        again), so this export holds no idle connection while the data is read."""
        control, self._control = self._control, None
        if control is not None:
            self.give_back_source(control)

    def read_finished(self, nbytes: int) -> None:
        """The export has read everything it will read from the source (its last
        statement's stream is closed; ``nbytes`` of Arrow data came in). Its idle control
        source goes back at once; when it read little (at most :data:`OVERLAP_MAX_BYTES`)
        and nothing else of this run reads the source again (``--reconcile`` counts on it
        after the mode), the run may start the next export while this one encodes, commits
        and records its file (:class:`~rivet_core.runner.pool.ExportPool`)."""
        self.release_control_source()
        if self.ctx.read_done is None or self.ctx.reconcile or nbytes > OVERLAP_MAX_BYTES:
            return
        log.debug("export %s: read done (%d bytes): the next export may start", self.plan.name,
                  nbytes, extra=self.log_extra)
        self.ctx.read_done()

    def _discard_control(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            self.discard_source(control)

    def destination(self) -> Destination:
        """The export's destination (built once per run)."""
        if self._destination is None:
            plan = self.plan
            context = DestinationContext(export=plan.name, run_id=self.result.run_id,
                                         started_at=self.result.started_at,
                                         config_dir=self.ctx.config_dir)
            self._destination = plan.destination.spec.factory(plan.config.destination.options,
                                                              context)
            self.result.destination = self._destination.location()
            log.debug("export %s: destination %s at %s", plan.name,
                      plan.destination.spec.name, self.result.destination,
                      extra=self.log_extra)
        return self._destination

    def target_destination(self) -> Destination:
        """The destination files are opened on: it retires the previous ``_SUCCESS`` at
        the run's first commit, so no marker vouches for a run that has not finished."""
        if self._guarded is None:
            self._guarded = self.manifest.guard(self.destination())
        return self._guarded

    def fmt(self) -> Format:
        if self._format is None:
            self._format = self.plan.format.spec.factory(self.plan.config.format.options,
                                                         self.plan.compression)
        return self._format

    def roller(self, schema: pa.Schema, *, chunk: int | None,
               on_commit: Callable[[FileResult], None], hold: bool = False) -> FileRoller:
        """A file roller for one unit's stream: parts named for the run (and the chunk)."""
        extension = self.fmt().extension
        return FileRoller(
            destination=self.target_destination(), fmt=self.fmt(), schema=schema,
            name_for=lambda part: file_name(self.plan.name, self.result.run_id, extension,
                                            chunk=chunk, part=part),
            max_file_bytes=self.plan.max_file_bytes, on_commit=on_commit, chunk=chunk,
            hold=hold)

    # ------------------------------------------------------------------ bookkeeping

    def stream_opened(self, stream: BatchStream, schema: pa.Schema) -> None:
        """Note the schema files are written with (for the manifest) and how the source
        reads (for the summary)."""
        with self.lock:
            if self.schema is None:
                self.schema = schema
            if stream.read_path and stream.read_path not in self.result.read_paths:
                self.result.read_paths.append(stream.read_path)

    def count(self, rows: int, roller: FileRoller | None = None, detail: str = "") -> None:
        with self.lock:
            self.result.rows += rows
            written = self.result.bytes + (roller.written_bytes if roller else 0)
            if self.progress is not None:
                self.progress.update(self.result.rows, written, detail)

    def file_record(self, f: FileResult) -> FileRecord:
        return FileRecord(run_id=self.result.run_id, export_name=self.plan.name,
                          file_name=f.name, uri=f.uri, rows=f.rows, bytes=f.bytes,
                          sha256=f.sha256, format=self.plan.format.spec.name,
                          compression=self.plan.compression.codec, chunk_index=f.chunk)

    def record_committed_file(self, f: FileResult) -> None:
        """Manifest row and journal event of one committed file, in one transaction."""
        with self.state.transaction() as tx:
            tx.record_file(self.file_record(f))
            tx.journal(self.result.run_id, self.plan.name, "file_committed", file=f.name,
                       rows=f.rows, bytes=f.bytes, sha256=f.sha256)
        with self.lock:
            self.result.files.append(f)
        crash.point("after_manifest_row")

    def journal(self, event: str, **data: Any) -> None:
        with self.state.transaction() as tx:
            tx.journal(self.result.run_id, self.plan.name, event, **data)

    def note_retry(self, exc: RivetError, attempt: int, label: str) -> None:
        """Count, log and journal a retry, then wait its backoff."""
        delay = self.retry.delay(attempt)
        message = redact(str(exc))
        log.warning("export %s: %s: %s; retry %d/%d in %.1fs on a fresh connection",
                    self.plan.name, label, message, attempt, self.retry.max_retries, delay,
                    extra=self.log_extra)
        with self.lock:
            self.result.retries += 1
        self.journal("retry", unit=label, attempt=attempt, delay_s=round(delay, 3),
                     error=message)
        self.ctx.sleep(delay)
