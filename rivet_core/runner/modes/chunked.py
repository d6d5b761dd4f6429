"""``mode = "chunked"``: key ranges of an integer or date column, each its own unit of work.

Planning runs the key statistics (and, for sparse keys, a histogram) through the source's
small statements (:mod:`rivet_core.runner.chunks` holds the pure rules). Chunks are read by
``parallel`` workers, each on its own connection; a chunk's files are recorded in the same
state transaction that marks it completed, and a failed attempt's committed parts are
deleted before its retry. With ``chunk_checkpoint``, the plan and every chunk's status live
in the state store: ``rivet run --resume`` continues an interrupted run without redoing
completed chunks, and a chunk that failed with a permanent error is not claimed again in
the same invocation.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from rivet_core.backends import SupportsListing
from rivet_core.dialect import SupportsDayArithmetic, SupportsPrimaryKey, SupportsTableStats
from rivet_core.errors import RivetError, SourceError, StateError, TransientError, TrustError
from rivet_core.naming import file_stem
from rivet_core.redact import redact
from rivet_core.runner import chunks as chunking
from rivet_core.runner import crash, timings
from rivet_core.runner import cursor as cursors
from rivet_core.runner.modes.base import Add, Mode
from rivet_core.runner.results import FileResult
from rivet_core.runner.unit import SourceHolder, Unit, write_unit
from rivet_core.state.store import ChunkRun, ChunkTask, iso, utc_now

if TYPE_CHECKING:
    from rivet_core.config.models import ExportConfig
    from rivet_core.runner.export import ExportRun

log = logging.getLogger("rivet.runner")


class Chunked(Mode):
    name = "chunked"
    keys = ("chunk_column", "chunk_size", "chunk_count", "chunk_by_days", "chunk_max_attempts")
    settings = (("chunk_checkpoint", False),)
    parallel = True

    def check(self, export: ExportConfig, path: str, add: Add) -> None:
        if export.chunk_column is None and export.table is None:
            add(f"{path}.chunk_column", "required for mode = \"chunked\" unless `table` is "
                "set (then the table's integer primary key is used)")
        sizing = [k for k in ("chunk_size", "chunk_count", "chunk_by_days")
                  if getattr(export, k) is not None]
        if len(sizing) > 1:
            add(f"{path}.{sizing[1]}", f"{' and '.join(sizing)} are mutually exclusive")
        for key in ("chunk_size", "chunk_count", "chunk_by_days", "chunk_max_attempts"):
            value = getattr(export, key)
            if value is not None and value < 1:
                add(f"{path}.{key}", f"must be at least 1, got {value}")

    def needs(self, export: ExportConfig) -> list[tuple[type, str, str]]:
        needs: list[tuple[type, str, str]] = []
        if export.chunk_column is None:
            needs.append((SupportsPrimaryKey, "chunk_column",
                          "set chunk_column to the integer column to split on"))
        if export.chunk_by_days is not None:
            needs.append((SupportsDayArithmetic, "chunk_by_days",
                          "split an integer column with chunk_size instead"))
        return needs

    def resumable(self, export: ExportConfig) -> bool:
        return export.chunk_checkpoint

    def adopt_run(self, run: ExportRun) -> None:
        """``--resume``: the run continues the interrupted one, under its run id."""
        interrupted = self._interrupted(run)
        if interrupted is not None and run.ctx.resume:
            run.result.run_id = interrupted.run_id
            run.result.resumed = True

    @staticmethod
    def _interrupted(run: ExportRun) -> ChunkRun | None:
        if not run.plan.config.chunk_checkpoint:
            return None
        return run.state.chunk_run(run.plan.name, status="in_progress")

    def run(self, run: ExportRun) -> None:
        config = run.plan.config
        try:
            column = _chunk_column(run)
            fingerprint = chunk_fingerprint(run, column)
            if config.chunk_checkpoint:
                tasks, max_attempts = self._checkpoint_tasks(run, column, fingerprint)
            else:
                tasks = [_task(run, c) for c in _plan_chunks(run, column)]
                max_attempts = 1
        finally:
            run.release_control_source()
        run.count_statement = run.dialect.count(run.dialect.full(run.plan.sql))
        run.journal("chunks_planned", column=column, total=len(tasks),
                    pending=sum(t.status != "completed" for t in tasks),
                    plan_hash=fingerprint)
        log.info("export %s: run %s: %d chunk(s) of %s, %d to read, %d worker(s)%s",
                 run.plan.name, run.result.run_id, len(tasks), column,
                 sum(t.status != "completed" for t in tasks), config.parallel,
                 " (resumed)" if run.result.resumed else "", extra=run.log_extra)
        _ChunkPool(run, column, tasks, max_attempts).execute()

    def _checkpoint_tasks(self, run: ExportRun, column: str, fingerprint: str
                          ) -> tuple[list[ChunkTask], int]:
        name, result = run.plan.name, run.result
        in_progress = self._interrupted(run)
        if run.ctx.resume:
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
            with run.state.transaction() as tx:
                reopened = tx.reopen_tasks(in_progress.run_id)
                tx.journal(result.run_id, name, "chunks_resumed", reopened=reopened)
            # The resumed run's files include those its earlier invocations committed.
            earlier = run.state.files(name, run_id=in_progress.run_id, limit=1_000_000)
            result.files.extend(FileResult(name=f.file_name, uri=f.uri, rows=f.rows,
                                           bytes=f.bytes, sha256=f.sha256, chunk=f.chunk_index)
                                for f in reversed(earlier))
            result.rows += sum(f.rows for f in earlier)
            if earlier:
                result.note = (f"{sum(f.rows for f in earlier):,} of the rows were committed by "
                               "the interrupted invocation(s) of this run")
            return run.state.chunk_tasks(in_progress.run_id), in_progress.max_attempts
        if in_progress is not None:
            raise StateError(
                f"export {name!r}: chunk run {in_progress.run_id} was interrupted and is not "
                "finished", hint=f"continue it with `rivet run -e {name} --resume`, or discard "
                                 f"it with `rivet state reset-chunks -e {name}`")
        planned = _plan_chunks(run, column)
        max_attempts = run.plan.config.chunk_max_attempts or (run.plan.tuning.max_retries + 1)
        now = iso(utc_now())
        with run.state.transaction() as tx:
            tx.create_chunk_run(ChunkRun(run_id=result.run_id, export_name=name,
                                         plan_hash=fingerprint, status="in_progress",
                                         max_attempts=max_attempts, created_at=now,
                                         updated_at=now), [_task(run, c) for c in planned])
        return run.state.chunk_tasks(result.run_id), max_attempts


def chunk_fingerprint(run: ExportRun, column: str) -> str:
    """The plan hash a checkpointed chunk run stores: what ``--resume`` (and a worker of a
    distributed run) checks its own config against."""
    config = run.plan.config
    return chunking.plan_hash(sql=run.plan.sql, chunk_column=column,
                              chunk_size=config.chunk_size, chunk_count=config.chunk_count,
                              chunk_by_days=config.chunk_by_days)


def checkpointed_tasks(run: ExportRun) -> tuple[str, list[ChunkTask], int]:
    """Plan the run's chunks and record them as a checkpointed chunk run (or, with
    ``--resume``, reopen the interrupted one), exactly as a local run does, without reading
    any: for a run whose chunks other processes read (:mod:`rivet_core.runner.distributed`).
    Returns the chunk column, every task, and the most attempts a task may have."""
    try:
        column = _chunk_column(run)
        tasks, max_attempts = Chunked()._checkpoint_tasks(run, column,
                                                          chunk_fingerprint(run, column))
    finally:
        run.release_control_source()
    run.journal("chunks_planned", column=column, total=len(tasks),
                pending=sum(t.status != "completed" for t in tasks),
                plan_hash=chunk_fingerprint(run, column))
    return column, tasks, max_attempts


def _task(run: ExportRun, chunk: chunking.Chunk) -> ChunkTask:
    return ChunkTask(run_id=run.result.run_id, idx=chunk.idx, lo=_encode_bound(chunk.lo),
                     hi=_encode_bound(chunk.hi), expected_rows=chunk.expected_rows,
                     status="pending")


def _chunk_column(run: ExportRun) -> str:
    """``chunk_column``, or the table's single-column integer primary key."""
    config = run.plan.config
    if config.chunk_column is not None:
        return config.chunk_column
    assert config.table is not None  # the mode's config check requires one of the two
    dialect = run.dialect
    assert isinstance(dialect, SupportsPrimaryKey)  # the planner requires it
    rows = run.fetch_rows(dialect.primary_key(config.table))
    integer = [r for r in rows if dialect.is_integer_type(str(r["data_type"]))]
    if len(rows) != 1 or not integer:
        found = ", ".join(f"{r['column_name']} {r['data_type']}" for r in rows) or "none"
        raise SourceError(
            f"table {config.table!r} has no single-column integer primary key "
            f"(primary key: {found})", hint="set chunk_column")
    column = str(rows[0]["column_name"])
    run.result.warnings.append(f"chunk_column not set: using primary key {column!r}")
    return column


def planned_chunks(run: ExportRun) -> tuple[str, list[chunking.Chunk]]:
    """The chunk column and the chunks a run of the export would read if it started now:
    what ``rivet plan`` seals, by the statements the run itself uses."""
    try:
        column = _chunk_column(run)
        return column, _plan_chunks(run, column)
    finally:
        run.release_control_source()


def _plan_chunks(run: ExportRun, column: str) -> list[chunking.Chunk]:
    sealed = run.ctx.sealed_export(run.plan.name)
    if sealed is not None:
        # `rivet apply`: the boundaries sealed in the plan, not those of the data now.
        return sealed.chunks_for(column)
    config, dialect, sql = run.plan.config, run.dialect, run.plan.sql
    estimate = _catalog_estimate(run)
    if estimate is not None:
        # The catalog knows the table: two short statements instead of a full count.
        (row,) = run.fetch_rows(dialect.chunk_key_bounds(sql, column))
        found = bool(run.fetch_rows(dialect.chunk_key_has_nulls(sql, column)))
        stats = chunking.KeyStats(lo=row["lo"], hi=row["hi"],
                                  count=0 if row["lo"] is None else max(1, estimate[0]),
                                  nulls=int(found), estimated=True)
    else:
        (row,) = run.fetch_rows(dialect.key_stats(sql, column))
        stats = chunking.KeyStats(lo=row["lo"], hi=row["hi"], count=int(row["n"]),
                                  nulls=int(row["nulls"]))
    chunk_size = config.chunk_size
    if chunk_size is None and config.chunk_count is None and estimate is not None:
        chunk_size = chunking.size_from_catalog(*estimate)
        if chunk_size is not None and config.chunk_by_days is None:
            run.result.warnings.append(
                f"chunk_size not set: {chunk_size:,} keys per chunk (about "
                f"{chunking.CHUNK_TARGET_BYTES >> 20} MiB of the table each, from the "
                "catalog's statistics)")
    by_days = config.chunk_by_days is not None

    def histogram(origin: Any, width: int) -> list[chunking.Bucket]:
        query = dialect.key_histogram(sql, column, origin=origin, width=width, by_days=by_days)
        return [chunking.Bucket(index=int(r["bucket"]), n=int(r["n"]), lo=r["lo"], hi=r["hi"])
                for r in run.fetch_rows(query)]

    if stats.count and not by_days and not isinstance(stats.lo, int):
        raise SourceError(
            f"chunk column {column!r} holds {type(stats.lo).__name__} values; chunked "
            "mode splits integer keys, or dates with chunk_by_days")
    if by_days:
        return chunking.plan_day_chunks(stats, histogram, days=config.chunk_by_days or 1)
    return chunking.plan_integer_chunks(stats, histogram, chunk_size=chunk_size,
                                        chunk_count=config.chunk_count)


def _catalog_estimate(run: ExportRun) -> tuple[int, int] | None:
    """The catalog's (rows, data bytes) of a ``table`` export's table, or None (a query
    export, a dialect without table statistics, a table never analyzed)."""
    table, dialect = run.plan.config.table, run.dialect
    if table is None or not isinstance(dialect, SupportsTableStats):
        return None
    rows = run.fetch_rows(dialect.table_stats(table))
    if not rows:
        return None
    estimated, data_bytes = rows[0].get("estimated_rows"), rows[0].get("data_bytes")
    if not estimated or not data_bytes or int(estimated) <= 0:
        return None
    return int(estimated), int(data_bytes)


STOP_GRACE_S = 30.0
"""After a signal, how long the main thread waits for workers to end their reads (their open
files are aborted at once; a read in flight ends at its next batch)."""


class _ChunkPool:
    """``parallel`` workers taking chunks until none is left, each on its own source."""

    def __init__(self, run: ExportRun, column: str, tasks: list[ChunkTask],
                 max_attempts: int) -> None:
        self.run = run
        self.column = column
        self.checkpoint = run.plan.config.chunk_checkpoint
        self.max_attempts = max_attempts
        self.total = len(tasks)
        done = sum(t.status == "completed" for t in tasks)
        self.summary = {"total": self.total, "completed": done, "skipped_completed": done,
                        "failed": 0}
        run.result.chunks = self.summary
        self.queue = [] if self.checkpoint else list(reversed(tasks))
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.permanent: set[int] = set()
        """Chunks that failed with a permanent error: not claimed again this invocation."""

    def execute(self) -> None:
        # Each worker sets its event as it ends; the main thread waits on those, not with
        # Thread.join, which a KeyboardInterrupt leaves believing the thread stopped
        # (CPython 3.11): the grace period below would then be skipped.
        count = min(self.run.plan.config.parallel, max(1, self.total))
        ended = [threading.Event() for _ in range(count)]
        # The workers' phases count for this export (--timings).
        recorder = timings.current()
        workers = [threading.Thread(target=self._worker, args=(done, recorder),
                                    name=f"rivet-chunk-{i}", daemon=True)
                   for i, done in enumerate(ended)]
        for thread in workers:
            thread.start()
        try:
            for done in ended:
                done.wait()
        except KeyboardInterrupt:
            # A signal reaches only this thread: tell the workers, which abort their open
            # files at once, then give their reads a bounded time to end.
            self.run.ctx.stop.set()
            deadline = time.monotonic() + STOP_GRACE_S
            for done in ended:
                done.wait(max(0.0, deadline - time.monotonic()))
            raise
        if self.errors:
            self._raise_first()
        if self.checkpoint:
            with self.run.state.transaction() as tx:
                tx.finish_chunk_run(self.run.result.run_id, planned=self.total)
                tx.journal(self.run.result.run_id, self.run.plan.name, "chunk_run_completed",
                           total=self.total)

    def _next(self) -> ChunkTask | None:
        if self.stop.is_set() or self.run.ctx.stop.is_set():
            return None
        if self.checkpoint:
            with self.run.lock:
                skip = set(self.permanent)
            with self.run.state.transaction() as tx:
                return tx.claim_chunk(self.run.result.run_id, self.max_attempts, skip=skip)
        with self.run.lock:
            return self.queue.pop() if self.queue else None

    def _worker(self, ended: threading.Event, recorder: timings.Recorder | None) -> None:
        with timings.attach(recorder):
            self._work(ended)

    def _work(self, ended: threading.Event) -> None:
        sources = SourceHolder(self.run)
        try:
            while True:
                try:
                    task = self._next()
                except BaseException as exc:  # the state store failed: nothing to claim
                    self._stop_with(exc)
                    return
                if task is None:
                    return
                try:
                    self._run_chunk(task, sources)
                    with self.run.lock:
                        self.summary["completed"] += 1
                except BaseException as exc:
                    self._failed(task, exc)
                    sources.reset()
        finally:
            try:
                sources.close()
            finally:
                ended.set()

    def _stop_with(self, exc: BaseException) -> None:
        with self.run.lock:
            self.errors.append(exc)
        self.stop.set()

    def _failed(self, task: ChunkTask, exc: BaseException) -> None:
        run = self.run
        with run.lock:
            self.summary["failed"] += 1
            self.errors.append(exc)
            if not isinstance(exc, TransientError):
                self.permanent.add(task.idx)
        if not (self.checkpoint and isinstance(exc, RivetError)):
            self.stop.set()  # without a checkpoint a rerun redoes everything
            return
        if isinstance(exc, TrustError):
            self.stop.set()  # a trust failure (drift) is the same for every chunk
        # Other chunks go on: their progress survives for --resume.
        message = redact(str(exc))
        log.warning("export %s: chunk %d failed: %s", run.plan.name, task.idx, message,
                    extra=run.log_extra)
        try:
            with run.state.transaction() as tx:
                tx.fail_chunk(run.result.run_id, task.idx, message)
                tx.journal(run.result.run_id, run.plan.name, "chunk_failed", chunk=task.idx,
                           error=message)
        except RivetError as state_failure:
            self._stop_with(state_failure)

    def _run_chunk(self, task: ChunkTask, sources: SourceHolder) -> None:
        write_chunk(self.run, self.column, task, sources, checkpoint=self.checkpoint)

    def _raise_first(self) -> None:
        first, summary = self.errors[0], self.summary
        if isinstance(first, TrustError):
            raise first  # its own message and hint: --resume would meet it again
        left = self.total - summary["completed"]
        if isinstance(first, RivetError):
            raise type(first)(
                f"{summary['failed']} chunk(s) failed, {left} of {self.total} not completed; "
                f"first error: {first.message}",
                hint=(f"rerun with `rivet run -e {self.run.plan.name} --resume` to continue "
                      "from the completed chunks") if self.checkpoint else first.hint)
        raise first


def write_chunk(run: ExportRun, column: str, task: ChunkTask, sources: SourceHolder, *,
                checkpoint: bool) -> tuple[int, list[FileResult]]:
    """Read one claimed chunk into committed files, then record them and (``checkpoint``)
    complete its task in one state transaction: what every worker of a chunked run does
    with a chunk, in this process or another (:mod:`rivet_core.runner.distributed`).
    Returns the rows and the files."""
    chunk = chunking.Chunk(idx=task.idx, lo=_decode_bound(task.lo),
                           hi=_decode_bound(task.hi), expected_rows=task.expected_rows)
    query = run.dialect.chunk(run.plan.sql, column, chunk.lo, chunk.hi, label=chunk.label())
    if checkpoint and task.attempts > 1:
        _remove_earlier_attempts(run, task.idx)
    unit = Unit(query=query, chunk=task.idx, retract=True, record=False,
                crash_point="mid_chunk")
    rows, committed = write_unit(run, unit, sources)
    crash.point("after_chunk_file")
    with run.state.transaction() as tx:
        for f in committed:
            tx.record_file(run.file_record(f))
        if checkpoint:
            tx.complete_chunk(run.result.run_id, task.idx, rows=rows,
                              files=len(committed), bytes_=sum(f.bytes for f in committed))
        tx.journal(run.result.run_id, run.plan.name, "chunk_completed", chunk=task.idx,
                   rows=rows, files=[f.name for f in committed])
    log.info("export %s: chunk %d completed and recorded (%d rows, %d file(s))",
             run.plan.name, task.idx, rows, len(committed), extra=run.log_extra)
    with run.lock:
        run.result.files.extend(committed)
    crash.point("after_chunk_complete")
    return rows, committed


def _remove_earlier_attempts(run: ExportRun, idx: int) -> None:
    """Before a chunk runs again, delete every file an earlier attempt of it left (a killed
    process committed parts it never recorded): the new attempt may write fewer parts, and
    a stale one would duplicate rows."""
    destination = run.destination()
    if not isinstance(destination, SupportsListing):
        return
    stem = file_stem(run.plan.name, run.result.run_id, chunk=idx)
    own = re.compile(re.escape(stem) + r"(_part\d+)?\.")
    for name in destination.list_files(stem):
        if own.match(name) and "/" not in name:
            destination.delete_file(name)


def _encode_bound(value: Any) -> str | None:
    return None if value is None else cursors.encode(value)


def _decode_bound(stored: str | None) -> Any:
    return None if stored is None else cursors.decode(stored)
