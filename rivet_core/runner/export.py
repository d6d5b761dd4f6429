"""Running one export: read batches, write files, commit them in the fixed order.

Per file: finish the file (format trailer) → commit the target → record the manifest row.
Per run, after every file: write the destination's run manifest and ``_SUCCESS``
(:mod:`rivet_core.runner.manifest`) → record the run metric. A failure aborts the open target, so an
atomic or finalize-on-close destination shows nothing of the file being written.
Transient source errors are retried on a fresh connection, but only while no file of the
attempt has been committed (a retry then would duplicate rows).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import attrs
import pyarrow as pa

from rivet_core.backends import (
    Destination,
    DestinationContext,
    Format,
    FormatWriter,
    Query,
    ReadOptions,
    Source,
    SourceContext,
    WriteTarget,
)
from rivet_core.errors import RivetError, TransientError
from rivet_core.naming import file_name, new_run_id
from rivet_core.planner import ExportPlan
from rivet_core.redact import redact
from rivet_core.runner.manifest import RunManifest
from rivet_core.runner.progress import PeakMemory, Progress
from rivet_core.runner.sink import HashingSink, open_sink
from rivet_core.state.store import FileRecord, RunRecord, StateStore, iso, utc_now

log = logging.getLogger("rivet.runner")


@attrs.frozen(kw_only=True)
class FileResult:
    name: str
    uri: str
    rows: int
    bytes: int
    sha256: str


@attrs.define(kw_only=True)
class ExportResult:
    """What happened to one export in one run; printed as the summary and as JSON."""

    export: str
    run_id: str
    mode: str
    status: str = "running"
    rows: int = 0
    files: list[FileResult] = attrs.field(factory=list)
    started_at: dt.datetime = attrs.field(factory=utc_now)
    finished_at: dt.datetime | None = None
    peak_rss_mb: float | None = None
    retries: int = 0
    destination: str = ""
    error: str | None = None
    hint: str | None = None
    note: str | None = None

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def duration_ms(self) -> int:
        end = self.finished_at or utc_now()
        return int((end - self.started_at).total_seconds() * 1000)

    def as_dict(self) -> dict[str, Any]:
        return {
            "export": self.export,
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "rows": self.rows,
            "files": [attrs.asdict(f) for f in self.files],
            "bytes": self.bytes,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at) if self.finished_at else None,
            "duration_ms": self.duration_ms,
            "peak_rss_mb": self.peak_rss_mb,
            "retries": self.retries,
            "destination": self.destination,
            "error": self.error,
            "hint": self.hint,
            "note": self.note,
        }


@attrs.frozen(kw_only=True)
class RunContext:
    """What every export of one invocation shares."""

    config_dir: Any
    state: StateStore
    progress: bool | None = None
    """Force progress on or off; None = only when stderr is a terminal."""
    sleep: Callable[[float], None] = time.sleep


class FileRoller:
    """Writes batches into the current file and rolls to a new part at ``max_file_bytes``.

    Owns at most one open target at a time; :meth:`abort` discards it.
    """

    def __init__(self, *, destination: Destination, fmt: Format, schema: pa.Schema,
                 name_for: Callable[[int | None], str], max_file_bytes: int | None,
                 on_commit: Callable[[FileResult], None]) -> None:
        self.destination = destination
        self.fmt = fmt
        self.schema = schema
        self.name_for = name_for
        self.max_file_bytes = max_file_bytes
        self.on_commit = on_commit
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
            self._writer = self.fmt.open(stream, self.schema,
                                         max_file_bytes=self.max_file_bytes)
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
        result = FileResult(name=committed.name, uri=committed.uri, rows=self._rows,
                            bytes=self._sink.size, sha256=self._sink.sha256())
        self._writer = self._target = self._sink = None
        self.committed.append(result)
        self.on_commit(result)

    def abort(self) -> None:
        target, self._target, self._writer, self._sink = self._target, None, None, None
        if target is not None:
            try:
                target.abort()
            except Exception:  # the original failure matters more than a failed cleanup
                log.exception("aborting %s failed", self._name)


class ExportRun:
    """One run of one planned export."""

    def __init__(self, plan: ExportPlan, ctx: RunContext) -> None:
        self.plan = plan
        self.ctx = ctx
        started = utc_now()
        self.result = ExportResult(export=plan.name, run_id=new_run_id(started),
                                   mode=plan.config.mode, started_at=started)
        self._roller: FileRoller | None = None
        self.manifest = RunManifest(plan, self.result)

    def execute(self) -> ExportResult:
        plan, result = self.plan, self.result
        progress = Progress(plan.name, enabled=self.ctx.progress)
        try:
            with PeakMemory() as memory:
                try:
                    self._run_with_retries(progress)
                    if result.rows == 0:
                        result.note = "0 rows read: no file written"
                        result.status = "skipped" if plan.config.skip_empty else "success"
                    else:
                        result.status = "success"
                except RivetError as exc:
                    result.status = "failed"
                    result.error = redact(exc.message)
                    result.hint = exc.hint
                except Exception as exc:
                    result.status = "failed"
                    result.error = redact(f"{type(exc).__name__}: {exc}")
                    result.hint = "this is a bug in Rivet or a plugin; please report it"
                    log.exception("export %s failed unexpectedly", plan.name)
        finally:
            progress.finish()
        result.peak_rss_mb = memory.peak_mb
        result.finished_at = utc_now()
        # After every commit, before the run metric: the destination's manifest/_SUCCESS.
        self.manifest.write(self._build_destination,
                            self._roller.schema if self._roller else None)
        self._record_run()
        return result

    # ------------------------------------------------------------------------- attempts

    def _run_with_retries(self, progress: Progress) -> None:
        plan, result = self.plan, self.result
        attempt = 0
        while True:
            self._roller = None
            source = self._build_source()
            try:
                self._attempt(source, progress)
                return
            except TransientError as exc:
                roller = self._roller
                committed = len(roller.committed) if roller else 0
                # Bytes already shown by a destination that cannot take them back make a
                # retry unsafe even before any commit (stdout).
                unsafe = bool(roller and roller.emitted_bytes
                              and not plan.capabilities.retry_safe)
                if attempt >= plan.tuning.max_retries or committed or unsafe:
                    if committed:
                        exc.hint = (f"{committed} file(s) of this run were already committed, "
                                    "so Rivet did not retry (that would duplicate rows); "
                                    "rerun the export")
                    raise
                attempt += 1
                result.retries += 1
                delay = plan.tuning.retry_backoff_ms / 1000 * 2 ** (attempt - 1)
                delay *= random.uniform(0.5, 1.0)  # jitter: parallel retries spread out
                log.warning("export %s: %s; retry %d/%d in %.1fs on a fresh connection",
                            plan.name, redact(str(exc)), attempt, plan.tuning.max_retries, delay)
                result.rows = 0
                self.ctx.sleep(delay)
            finally:
                source.close()

    def _attempt(self, source: Source, progress: Progress) -> None:
        plan, result = self.plan, self.result
        options = ReadOptions(
            batch_size=plan.tuning.batch_size,
            statement_timeout_s=plan.tuning.statement_timeout_s,
            lock_timeout_s=plan.tuning.lock_timeout_s,
            throttle_ms=plan.tuning.throttle_ms,
            column_types=plan.column_types,
            max_batch_bytes=plan.tuning.max_batch_memory_mb << 20
            if plan.tuning.max_batch_memory_mb else None,
        )
        destination = self.manifest.guard(self._build_destination())
        result.destination = destination.location()
        fmt = plan.format.spec.factory(plan.config.format.options, plan.compression)
        with source.read(Query(sql=plan.sql, label="query"), options) as stream:
            roller = self._roller = FileRoller(
                destination=destination, fmt=fmt, schema=stream.schema,
                name_for=lambda part: file_name(plan.name, result.run_id, fmt.extension,
                                                part=part),
                max_file_bytes=plan.max_file_bytes, on_commit=self._record_file,
            )
            try:
                for batch in stream:
                    if batch.num_rows == 0:
                        continue
                    roller.write(batch)
                    result.rows += batch.num_rows
                    progress.update(result.rows, roller.written_bytes)
                roller.finish()
            except BaseException:
                roller.abort()
                raise
            finally:
                destination.close()

    # --------------------------------------------------------------------------- pieces

    def _build_source(self) -> Source:
        return self.plan.source.spec.factory(self.plan.source_options,
                                             SourceContext(config_dir=self.ctx.config_dir))

    def _build_destination(self) -> Destination:
        plan = self.plan
        context = DestinationContext(export=plan.name, run_id=self.result.run_id,
                                     started_at=self.result.started_at,
                                     config_dir=self.ctx.config_dir)
        return plan.destination.spec.factory(plan.config.destination.options, context)

    def _record_file(self, committed: FileResult) -> None:
        self.result.files.append(committed)
        self.ctx.state.record_file(FileRecord(
            run_id=self.result.run_id, export_name=self.plan.name, file_name=committed.name,
            uri=committed.uri, rows=committed.rows, bytes=committed.bytes,
            sha256=committed.sha256, format=self.plan.format.spec.name,
            compression=self.plan.compression.codec,
        ))

    def _record_run(self) -> None:
        result = self.result
        self.ctx.state.record_run(RunRecord(
            run_id=result.run_id, export_name=result.export, mode=result.mode,
            status=result.status, started_at=iso(result.started_at),
            finished_at=iso(result.finished_at or utc_now()), rows=result.rows,
            files=len(result.files), bytes=result.bytes, duration_ms=result.duration_ms,
            peak_rss_mb=result.peak_rss_mb, retries=result.retries, error=result.error,
        ))
