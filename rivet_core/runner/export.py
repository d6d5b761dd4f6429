"""Running one export in one of the four modes, with the commit order fixed for every mode.

Per file: finish the file → commit the target → record the manifest row. Then, per mode:
``incremental`` stores the new cursor once every file of the run is committed; ``chunked``
marks a chunk completed in the same transaction as its files' manifest rows. After the last
file, the destination's run manifest and ``_SUCCESS`` are written
(:mod:`rivet_core.runner.manifest`); last, the run metric is recorded. A failure aborts the
open target, so an atomic or finalize-on-close destination shows nothing of the file being
written, and no state moves past what was committed. Every step is journaled.

Transient source errors are retried with backoff on a fresh connection: a whole unit
(``full``, ``incremental``, ``time_window``) only while none of its files is committed; a
chunk always, because a chunk's files have deterministic names that a retry overwrites.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa

from rivet_core.dialect import CursorSpec, SupportsPrimaryKey
from rivet_core.backends import (
    BatchStream,
    Destination,
    DestinationContext,
    Format,
    Query,
    ReadOptions,
    Source,
    SourceContext,
    SupportsListing,
)
from rivet_core.config.values import parse_duration
from rivet_core.errors import RivetError, SourceError, StateError
from rivet_core.naming import file_name, new_run_id
from rivet_core.planner import ExportPlan
from rivet_core.redact import redact
from rivet_core.runner import chunks as chunking
from rivet_core.runner import crash
from rivet_core.runner import cursor as cursors
from rivet_core.runner.files import FileResult, FileRoller
from rivet_core.runner.manifest import RunManifest
from rivet_core.runner.prefetch import prefetch
from rivet_core.runner.progress import PeakMemory, Progress
from rivet_core.runner.retry import RetryPolicy
from rivet_core.state.store import (
    ChunkRun,
    ChunkTask,
    FileRecord,
    RunRecord,
    StateStore,
    iso,
    utc_now,
)

log = logging.getLogger("rivet.runner")

__all__ = ["ExportResult", "ExportRun", "FileResult", "RunContext"]


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
    warnings: list[str] = attrs.field(factory=list)
    cursor_before: str | None = None
    cursor_after: str | None = None
    window_start: str | None = None
    chunks: dict[str, int] | None = None
    resumed: bool = False
    read_paths: list[str] = attrs.field(factory=list)

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
            "cursor_before": self.cursor_before,
            "cursor_after": self.cursor_after,
            "window_start": self.window_start,
            "chunks": self.chunks,
            "resumed": self.resumed,
            "read_paths": self.read_paths,
            "error": self.error,
            "hint": self.hint,
            "note": self.note,
            "warnings": self.warnings,
        }


@attrs.frozen(kw_only=True)
class RunContext:
    """What every export of one invocation shares."""

    config_dir: Path
    state: StateStore
    progress: bool | None = None
    """Force progress on or off; None = only when stderr is a terminal."""
    resume: bool = False
    """``rivet run --resume``: continue an interrupted checkpointed chunk run."""
    sleep: Callable[[float], None] = time.sleep


class ExportRun:
    """One run of one planned export."""

    def __init__(self, plan: ExportPlan, ctx: RunContext) -> None:
        self.plan = plan
        self.ctx = ctx
        self.state = ctx.state
        started = utc_now()
        self.result = ExportResult(export=plan.name, run_id=new_run_id(started),
                                   mode=plan.config.mode, started_at=started)
        self.dialect = plan.source.spec.dialect
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
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._format: Format | None = None
        self._destination: Destination | None = None
        self._guarded: Destination | None = None
        self._schema: pa.Schema | None = None
        self._chunk_max_attempts = 1
        self.manifest = RunManifest(plan, self.result)

    # --------------------------------------------------------------------------- run

    def execute(self) -> ExportResult:
        plan, result = self.plan, self.result
        resumable = self._resumable_chunk_run()
        if resumable is not None:
            result.run_id = resumable.run_id
            result.resumed = True
        with self.state.transaction() as tx:
            holder = tx.acquire_lock(plan.name, result.run_id)
        if holder is not None:
            result.status = "failed"
            result.error = (f"export {plan.name!r} is already running (run {holder.run_id}, "
                            f"pid {holder.pid} on {holder.host}, since {holder.acquired_at})")
            result.hint = "wait for it to finish; concurrent runs of one export are refused"
            result.finished_at = utc_now()
            return result
        progress = self._progress = Progress(plan.name, enabled=self.ctx.progress)
        try:
            self._record_abandoned_runs()
            with self.state.transaction() as tx:
                tx.journal(result.run_id, plan.name, "run_started", mode=plan.config.mode,
                           resume=result.resumed, destination=plan.destination.spec.name,
                           format=plan.format.spec.name)
            with PeakMemory() as memory:
                try:
                    self._run_mode()
                    self._finish_status()
                except RivetError as exc:
                    result.status = "failed"
                    result.error = redact(exc.message)
                    result.hint = exc.hint
                except Exception as exc:
                    result.status = "failed"
                    result.error = redact(f"{type(exc).__name__}: {exc}")
                    result.hint = "this is a bug in Rivet or a plugin; please report it"
                    log.exception("export %s failed unexpectedly", plan.name)
            result.peak_rss_mb = memory.peak_mb
        except KeyboardInterrupt:
            # SIGINT/SIGTERM: the open file was aborted on the way out; record the run as
            # failed, write its manifest, then let the CLI exit 130.
            result.status = "failed"
            result.error = "interrupted by a signal; the file being written was discarded"
            raise
        finally:
            progress.finish()
            result.finished_at = utc_now()
            try:
                # After every commit, before the run metric: the destination's manifest.
                self.manifest.write(self.destination, self._schema)
                self._record_run()
            finally:
                with self.state.transaction() as tx:
                    tx.release_lock(plan.name, result.run_id)
        return result

    def _finish_status(self) -> None:
        result = self.result
        if result.rows == 0 and not result.files:
            result.note = "0 rows read: no file written"
            result.status = "skipped" if self.plan.config.skip_empty else "success"
        else:
            result.status = "success"

    def _run_mode(self) -> None:
        mode = self.plan.config.mode
        if mode == "chunked":
            self._run_chunked()
        elif mode == "incremental":
            self._run_incremental()
        elif mode == "time_window":
            start = window_start(self.result.started_at, self.plan.config.days_window
                                           or 0)
            self.result.window_start = iso(start)
            query = self.dialect.time_window(
                self.plan.sql, str(self.plan.config.time_column), start=start,
                unix=self.plan.config.time_column_type == "unix")
            self._run_unit(query)
        else:
            self._run_unit(Query(sql=self.plan.sql, label="query", table=self.plan.config.table),
                           parallel=self.plan.config.parallel)

    def _record_abandoned_runs(self) -> None:
        """Runs of this export whose process died never recorded their metric: record them
        as failed now, so history is complete."""
        for run_id in self.state.unfinished_runs(self.plan.name):
            if run_id == self.result.run_id:
                continue
            with self.state.transaction() as tx:
                now = iso(utc_now())
                tx.record_run(RunRecord(
                    run_id=run_id, export_name=self.plan.name, mode=self.plan.config.mode,
                    status="failed", started_at=run_id_time(run_id) or now, finished_at=now,
                    rows=0, files=len(self.state.files(self.plan.name, run_id=run_id,
                                                       limit=100_000)),
                    bytes=0, duration_ms=0, peak_rss_mb=None,
                    error="the process ended before the run finished (killed or crashed)"))
                tx.journal(run_id, self.plan.name, "run_abandoned",
                           noticed_by=self.result.run_id)

    # ------------------------------------------------------------------------ pieces

    def _build_source(self) -> Source:
        return self.plan.source.spec.factory(self.plan.source_options,
                                             SourceContext(config_dir=self.ctx.config_dir))

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
        return self._destination

    def target_destination(self) -> Destination:
        """The destination files are opened on: it retires the previous ``_SUCCESS`` before
        the run's first file, so no marker vouches for a run that has not finished."""
        if self._guarded is None:
            self._guarded = self.manifest.guard(self.destination())
        return self._guarded

    def _stream_opened(self, stream: BatchStream) -> None:
        """Note the schema (for the manifest) and how the source reads (for the summary)."""
        with self._lock:
            if self._schema is None:
                self._schema = stream.schema
            if stream.read_path and stream.read_path not in self.result.read_paths:
                self.result.read_paths.append(stream.read_path)

    def fmt(self) -> Format:
        if self._format is None:
            self._format = self.plan.format.spec.factory(self.plan.config.format.options,
                                                         self.plan.compression)
        return self._format

    def _file_record(self, f: FileResult) -> FileRecord:
        return FileRecord(run_id=self.result.run_id, export_name=self.plan.name,
                          file_name=f.name, uri=f.uri, rows=f.rows, bytes=f.bytes,
                          sha256=f.sha256, format=self.plan.format.spec.name,
                          compression=self.plan.compression.codec, chunk_index=f.chunk)

    def _record_committed_file(self, f: FileResult) -> None:
        """Manifest row and journal event of one committed file, in one transaction."""
        with self.state.transaction() as tx:
            tx.record_file(self._file_record(f))
            tx.journal(self.result.run_id, self.plan.name, "file_committed", file=f.name,
                       rows=f.rows, bytes=f.bytes, sha256=f.sha256)
        with self._lock:
            self.result.files.append(f)
        crash.point("after_manifest_row")

    def _record_run(self) -> None:
        result = self.result
        with self.state.transaction() as tx:
            tx.record_run(RunRecord(
                run_id=result.run_id, export_name=result.export, mode=result.mode,
                status=result.status, started_at=iso(result.started_at),
                finished_at=iso(result.finished_at or utc_now()), rows=result.rows,
                files=len(result.files), bytes=result.bytes, duration_ms=result.duration_ms,
                peak_rss_mb=result.peak_rss_mb, retries=result.retries, error=result.error,
            ))
            tx.journal(result.run_id, result.export, "run_finished", status=result.status,
                       rows=result.rows, files=len(result.files), bytes=result.bytes,
                       error=result.error)

    def _count(self, rows: int, roller: FileRoller | None = None, detail: str = "") -> None:
        with self._lock:
            self.result.rows += rows
            written = self.result.bytes + (roller.written_bytes if roller else 0)
            if self._progress is not None:
                self._progress.update(self.result.rows, written, detail)

    def _fetch_rows(self, source: Source, query: Query) -> list[dict[str, Any]]:
        """A small result (statistics, probes) as dicts."""
        with source.read(query, attrs.evolve(self.options, column_types={})) as stream:
            batches = list(stream)
        if not batches:
            return []
        return pa.Table.from_batches(batches).to_pylist()

    # ------------------------------------------------------- full, time_window, incremental

    def _run_unit(self, query: Query, *,
                  on_batch: Callable[[pa.RecordBatch], None] | None = None,
                  parallel: int = 1) -> None:
        """Read one query into files, retrying transient failures while nothing of the
        attempt is committed."""
        options = attrs.evolve(self.options, parallel=parallel)
        attempt = 0
        while True:
            source = self._build_source()
            roller: FileRoller | None = None
            try:
                with source.read(query, options) as stream:
                    self._stream_opened(stream)
                    roller = FileRoller(
                        destination=self.target_destination(), fmt=self.fmt(),
                        schema=stream.schema,
                        name_for=lambda part: file_name(self.plan.name, self.result.run_id,
                                                        self.fmt().extension, part=part),
                        max_file_bytes=self.plan.max_file_bytes,
                        on_commit=self._record_committed_file)
                    try:
                        for batch in prefetch(stream):
                            if batch.num_rows == 0:
                                continue
                            if on_batch is not None:
                                on_batch(batch)
                            roller.write(batch)
                            self._count(batch.num_rows, roller)
                            crash.point("after_source_read")
                        roller.finish()
                    except BaseException:
                        roller.abort()
                        raise
                return
            except RivetError as exc:
                committed = len(roller.committed) if roller else 0
                unsafe = bool(roller and roller.emitted_bytes
                              and not self.plan.capabilities.retry_safe)
                if committed or unsafe or not self.retry.should_retry(exc, attempt):
                    if committed and self.retry.should_retry(exc, attempt):
                        exc.hint = (f"{committed} file(s) of this run were already committed, "
                                    "so Rivet did not retry (that would duplicate rows); the "
                                    "next run starts over from the last committed state")
                    raise
                attempt += 1
                with self._lock:  # the retry reads the unit again from the start
                    self.result.rows = 0
                self._note_retry(exc, attempt, query.label)
            finally:
                source.close()

    def _note_retry(self, exc: RivetError, attempt: int, label: str) -> None:
        delay = self.retry.delay(attempt)
        message = redact(str(exc))
        log.warning("export %s: %s: %s; retry %d/%d in %.1fs on a fresh connection",
                    self.plan.name, label, message, attempt, self.retry.max_retries, delay)
        with self._lock:
            self.result.retries += 1
        with self.state.transaction() as tx:
            tx.journal(self.result.run_id, self.plan.name, "retry", unit=label,
                       attempt=attempt, delay_s=round(delay, 3), error=message)
        self.ctx.sleep(delay)

    def _run_incremental(self) -> None:
        config, result = self.plan.config, self.result
        spec = CursorSpec(column=str(config.cursor_column),
                                    fallback=config.cursor_fallback_column)
        stored = self.state.cursor(self.plan.name)
        result.cursor_before = cursors.display(stored.value) if stored else None
        after = cursors.decode(stored.value) if stored else None
        if config.on_null_cursor == "fail":
            self._refuse_null_cursors(spec)
        lag = parse_duration(config.cursor_lag) if config.cursor_lag is not None else None
        query = self.dialect.incremental(self.plan.sql, spec, after=after,
                                            lag_seconds=lag,
                                            include_nulls=config.on_null_cursor == "include")
        seen: list[Any] = [None]

        def track(batch: pa.RecordBatch) -> None:
            try:
                seen[0] = cursors.later(seen[0], cursors.batch_max(batch, spec.column,
                                                                   spec.fallback))
            except KeyError:
                raise SourceError(f"cursor column {spec.column!r} is not in the query's "
                                  "result", hint="select it, or fix cursor_column") from None

        self._run_unit(query, on_batch=track)
        newest = seen[0]
        if newest is None or (after is not None and newest <= after):
            result.cursor_after = result.cursor_before
            return
        # Every file of the run is committed: only now may the cursor move past its rows.
        value = cursors.encode(newest)
        self.manifest.cursor = {"column": spec.column, "fallback": spec.fallback,
                                "from": json.loads(stored.value) if stored else None,
                                "to": json.loads(value)}
        with self.state.transaction() as tx:
            tx.set_cursor(self.plan.name, value, result.run_id)
            tx.journal(result.run_id, self.plan.name, "cursor_advanced",
                       before=stored.value if stored else None, after=value)
        result.cursor_after = cursors.display(value)
        crash.point("after_cursor_commit")

    def _refuse_null_cursors(self, spec: CursorSpec) -> None:
        source = self._build_source()
        try:
            found = self._fetch_rows(source, self.dialect.null_cursor_probe(
                self.plan.sql, spec))
        finally:
            source.close()
        if found:
            raise SourceError(
                f"rows with a NULL cursor ({spec.column}) exist; an incremental run cannot "
                "order them, and on_null_cursor = \"fail\"",
                hint="set on_null_cursor = \"include\" (exported every run) or \"exclude\" "
                     "(never exported), or add cursor_fallback_column with "
                     "incremental_cursor_mode = \"coalesce\"")

    # ------------------------------------------------------------------------- chunked

    def _resumable_chunk_run(self) -> ChunkRun | None:
        config = self.plan.config
        if config.mode != "chunked" or not config.chunk_checkpoint or not self.ctx.resume:
            return None
        return self.state.chunk_run(self.plan.name, status="in_progress")

    def _chunk_column(self, source: Source) -> str:
        config = self.plan.config
        if config.chunk_column is not None:
            return config.chunk_column
        assert config.table is not None  # config rules require one of the two
        dialect = self.dialect
        assert isinstance(dialect, SupportsPrimaryKey)
        rows = self._fetch_rows(source, dialect.primary_key(config.table))
        integer = [r for r in rows if dialect.is_integer_type(str(r["data_type"]))]
        if len(rows) != 1 or not integer:
            found = ", ".join(f"{r['column_name']} {r['data_type']}" for r in rows) or "none"
            raise SourceError(
                f"table {config.table!r} has no single-column integer primary key "
                f"(primary key: {found})", hint="set chunk_column")
        column = str(rows[0]["column_name"])
        self.result.warnings.append(f"chunk_column not set: using primary key {column!r}")
        return column

    def _plan_chunks(self, source: Source, column: str) -> list[chunking.Chunk]:
        config = self.plan.config
        rows = self._fetch_rows(source, self.dialect.key_stats(self.plan.sql, column))
        stats = chunking.KeyStats(lo=rows[0]["lo"], hi=rows[0]["hi"], count=int(rows[0]["n"]),
                                  nulls=int(rows[0]["nulls"]))
        by_days = config.chunk_by_days is not None

        def histogram(origin: Any, width: int) -> list[chunking.Bucket]:
            query = self.dialect.key_histogram(self.plan.sql, column,
                                                  origin=origin, width=width, by_days=by_days)
            return [chunking.Bucket(index=int(r["bucket"]), n=int(r["n"]), lo=r["lo"],
                                    hi=r["hi"]) for r in self._fetch_rows(source, query)]

        if stats.count and not by_days and not isinstance(stats.lo, int):
            raise SourceError(
                f"chunk column {column!r} holds {type(stats.lo).__name__} values; chunked "
                "mode splits integer keys, or dates with chunk_by_days")
        if by_days:
            return chunking.plan_day_chunks(stats, histogram, days=config.chunk_by_days or 1)
        return chunking.plan_integer_chunks(stats, histogram, chunk_size=config.chunk_size,
                                            chunk_count=config.chunk_count)

    def _run_chunked(self) -> None:
        config, result = self.plan.config, self.result
        source = self._build_source()
        try:
            column = self._chunk_column(source)
            fingerprint = chunking.plan_hash(sql=self.plan.sql, chunk_column=column,
                                             chunk_size=config.chunk_size,
                                             chunk_count=config.chunk_count,
                                             chunk_by_days=config.chunk_by_days)
            if config.chunk_checkpoint:
                tasks = self._checkpoint_tasks(source, column, fingerprint)
            else:
                planned = self._plan_chunks(source, column)
                tasks = [ChunkTask(run_id=result.run_id, idx=c.idx,
                                   lo=_encode_bound(c.lo), hi=_encode_bound(c.hi),
                                   expected_rows=c.expected_rows, status="pending")
                         for c in planned]
        finally:
            source.close()
        with self.state.transaction() as tx:
            tx.journal(result.run_id, self.plan.name, "chunks_planned", column=column,
                       total=len(tasks), pending=sum(t.status != "completed" for t in tasks),
                       plan_hash=fingerprint)
        self._execute_chunks(column, tasks)

    def _checkpoint_tasks(self, source: Source, column: str, fingerprint: str
                          ) -> list[ChunkTask]:
        name, result = self.plan.name, self.result
        max_attempts = self.plan.config.chunk_max_attempts or (self.plan.tuning.max_retries + 1)
        in_progress = self.state.chunk_run(name, status="in_progress")
        if self.ctx.resume:
            if in_progress is None:
                raise StateError(
                    f"export {name!r}: --resume, but no interrupted chunk run to continue",
                    hint="run without --resume to start a new run")
            if in_progress.plan_hash != fingerprint:
                raise StateError(
                    f"export {name!r}: the chunk plan changed since run {in_progress.run_id} "
                    "(query, chunk_column or chunk sizing differ); cannot resume it",
                    hint=f"restore the old settings to resume, or discard it with `rivet state "
                         f"reset-chunks -e {name}` and run again")
            with self.state.transaction() as tx:
                reopened = tx.reopen_tasks(in_progress.run_id)
                tx.journal(result.run_id, name, "chunks_resumed", reopened=reopened)
            self._chunk_max_attempts = in_progress.max_attempts
            # The resumed run's files include those its earlier invocations committed.
            earlier = self.state.files(name, run_id=in_progress.run_id, limit=1_000_000)
            result.files.extend(FileResult(name=f.file_name, uri=f.uri, rows=f.rows,
                                           bytes=f.bytes, sha256=f.sha256, chunk=f.chunk_index)
                                for f in reversed(earlier))
            result.rows += sum(f.rows for f in earlier)
            if earlier:
                result.note = (f"{sum(f.rows for f in earlier):,} of the rows were committed by "
                               "the interrupted invocation(s) of this run")
            return self.state.chunk_tasks(in_progress.run_id)
        if in_progress is not None:
            raise StateError(
                f"export {name!r}: chunk run {in_progress.run_id} was interrupted and is not "
                "finished", hint=f"continue it with `rivet run -e {name} --resume`, or discard "
                                 f"it with `rivet state reset-chunks -e {name}`")
        planned = self._plan_chunks(source, column)
        self._chunk_max_attempts = max_attempts
        now = iso(utc_now())
        tasks = [ChunkTask(run_id=result.run_id, idx=c.idx, lo=_encode_bound(c.lo),
                           hi=_encode_bound(c.hi), expected_rows=c.expected_rows,
                           status="pending") for c in planned]
        with self.state.transaction() as tx:
            tx.create_chunk_run(ChunkRun(run_id=result.run_id, export_name=name,
                                         plan_hash=fingerprint, status="in_progress",
                                         max_attempts=max_attempts, created_at=now,
                                         updated_at=now), tasks)
        return self.state.chunk_tasks(result.run_id)

    def _execute_chunks(self, column: str, tasks: list[ChunkTask]) -> None:
        config, result = self.plan.config, self.result
        total = len(tasks)
        done_before = sum(t.status == "completed" for t in tasks)
        summary = {"total": total, "completed": done_before, "skipped_completed": done_before,
                   "failed": 0}
        result.chunks = summary
        checkpoint = config.chunk_checkpoint
        work: queue.Queue[ChunkTask] = queue.Queue()
        if not checkpoint:
            for task in tasks:
                work.put(task)
        max_attempts = self._chunk_max_attempts
        stop = threading.Event()
        errors: list[RivetError | BaseException] = []

        def next_task() -> ChunkTask | None:
            if stop.is_set():
                return None
            if checkpoint:
                with self.state.transaction() as tx:
                    return tx.claim_chunk(result.run_id, max_attempts)
            try:
                return work.get_nowait()
            except queue.Empty:
                return None

        def worker() -> None:
            source: Source | None = None
            try:
                while (task := next_task()) is not None:
                    if source is None:
                        source = self._build_source()
                    try:
                        source = self._run_chunk(source, column, task)
                        with self._lock:
                            summary["completed"] += 1
                    except BaseException as exc:
                        with self._lock:
                            summary["failed"] += 1
                            errors.append(exc)
                        if checkpoint and isinstance(exc, RivetError):
                            # Other chunks go on: their progress survives for --resume.
                            message = redact(str(exc))
                            with self.state.transaction() as tx:
                                tx.fail_chunk(result.run_id, task.idx, message)
                                tx.journal(result.run_id, self.plan.name, "chunk_failed",
                                           chunk=task.idx, error=message)
                        else:
                            stop.set()  # without a checkpoint a rerun redoes everything
                        if source is not None:
                            source.close()
                        source = None
            finally:
                if source is not None:
                    source.close()

        workers = [threading.Thread(target=worker, name=f"rivet-chunk-{i}", daemon=True)
                   for i in range(min(config.parallel, max(1, total)))]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()

        if errors:
            first = errors[0]
            left = total - summary["completed"]
            if isinstance(first, RivetError):
                raise type(first)(
                    f"{summary['failed']} chunk(s) failed, {left} of {total} not completed; "
                    f"first error: {first.message}",
                    hint=(f"rerun with `rivet run -e {self.plan.name} --resume` to continue "
                          "from the completed chunks") if checkpoint else first.hint)
            raise first
        if checkpoint:
            with self.state.transaction() as tx:
                tx.finish_chunk_run(result.run_id)
                tx.journal(result.run_id, self.plan.name, "chunk_run_completed", total=total)

    def _run_chunk(self, source: Source, column: str, task: ChunkTask) -> Source:
        """Export one chunk, retrying transient errors on a fresh connection. Returns the
        source to keep using (a new one after a retry)."""
        chunk = chunking.Chunk(idx=task.idx, lo=_decode_bound(task.lo),
                               hi=_decode_bound(task.hi), expected_rows=task.expected_rows)
        query = self.dialect.chunk(self.plan.sql, column, chunk.lo, chunk.hi,
                                      label=chunk.label())
        attempt = 0
        while True:
            rows = 0
            committed: list[FileResult] = []
            try:
                with source.read(query, self.options) as stream:
                    self._stream_opened(stream)
                    roller = FileRoller(
                        destination=self.target_destination(), fmt=self.fmt(),
                        schema=stream.schema,
                        name_for=lambda part: file_name(self.plan.name, self.result.run_id,
                                                        self.fmt().extension, chunk=task.idx,
                                                        part=part),
                        max_file_bytes=self.plan.max_file_bytes, on_commit=committed.append,
                        chunk=task.idx)
                    try:
                        for batch in prefetch(stream):
                            if batch.num_rows == 0:
                                continue
                            roller.write(batch)
                            rows += batch.num_rows
                            self._count(batch.num_rows, roller, chunk.label())
                            crash.point("mid_chunk")
                        roller.finish()
                    except BaseException:
                        roller.abort()
                        raise
                break
            except RivetError as exc:
                self._count(-rows)
                if not self.retry.should_retry(exc, attempt):
                    raise
                self._discard_chunk_parts(committed)
                attempt += 1
                self._note_retry(exc, attempt, chunk.label())
                source.close()
                source = self._build_source()
        crash.point("after_chunk_file")
        with self.state.transaction() as tx:
            for f in committed:
                tx.record_file(self._file_record(f))
            tx.complete_chunk(self.result.run_id, task.idx, rows=rows, files=len(committed),
                              bytes_=sum(f.bytes for f in committed))
            tx.journal(self.result.run_id, self.plan.name, "chunk_completed", chunk=task.idx,
                       rows=rows, files=[f.name for f in committed])
        with self._lock:
            self.result.files.extend(committed)
        crash.point("after_chunk_complete")
        return source

    def _discard_chunk_parts(self, committed: list[FileResult]) -> None:
        """Before a chunk is retried, remove parts its failed attempt already committed: the
        retry may split differently and must not leave a stale extra part behind."""
        if not committed:
            return
        destination = self.destination()
        if not isinstance(destination, SupportsListing):
            raise SourceError("a chunk failed after committing part files, and the destination "
                              "cannot delete them before a retry")
        for f in committed:
            destination.delete_file(f.name)


def _encode_bound(value: Any) -> str | None:
    return None if value is None else cursors.encode(value)


def _decode_bound(stored: str | None) -> Any:
    return None if stored is None else cursors.decode(stored)


def window_start(now: dt.datetime, days: int) -> dt.datetime:
    """UTC midnight ``days`` days before ``now``: the first instant a window includes."""
    day = now.astimezone(dt.UTC).date() - dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def run_id_time(run_id: str) -> str | None:
    """The start time encoded in a run id, as ISO text."""
    try:
        moment = dt.datetime.strptime(run_id.split("-")[0], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return iso(moment.replace(tzinfo=dt.UTC))

