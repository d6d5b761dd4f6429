"""Distributed chunked runs, the runner's side: starting a run whose chunks other processes
read, reading one chunk of it, and finishing it exactly once. No queue here: the task queue
that carries chunks to workers is :mod:`rivet_core.distributed`; the commands are
:mod:`rivet_core.cli.worker_cmd`.

A distributed run is a checkpointed chunk run like a local one (the same planner, the same
tasks in the state store, the same chunk-writing code, :func:`~rivet_core.runner.modes.
chunked.write_chunk`), except that no process holds it from start to end:

- :func:`start_run` takes the export's lock for the planning only, plans and records the
  chunk run, and journals ``distributed_run_started`` (not ``run_started``: no later run
  takes a run whose process ended on purpose for a dead one);
- :meth:`ChunkWorker.run_chunk` claims one named chunk, writes it in its own source
  transaction with its own files and completes (or fails) it, then passes the gate;
- the gate (:meth:`ChunkWorker.finish_if_done`) is one state transaction that locks the
  chunk run's record: the caller that finds every chunk completed while the run has no
  ``run_finished`` event since its start writes the manifest and ``_SUCCESS``, completes
  the chunk run and records the run (journaling ``run_finished``), all before that
  transaction commits. A concurrent caller waits for the lock and then finds the run
  finished; a caller killed inside leaves nothing recorded, and the queue hands its chunk
  to another worker, which finds the chunk completed and passes the gate again.
  A chunk that cannot complete (a permanent error, or no attempts left) fails the run the
  same way, once; the rest of its chunks are then skipped, and ``rivet run --distributed
  --resume`` continues it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping

import attrs

from rivet_core.backends import SupportsListing
from rivet_core.errors import (
    DestinationError,
    RivetError,
    StateError,
    TransientError,
    UsageError,
)
from rivet_core.plan import ExportPlan
from rivet_core.redact import redact
from rivet_core.runner import verify
from rivet_core.runner.export import ExportRun
from rivet_core.runner.lifecycle import (
    record_abandoned_runs,
    record_run,
    remove_unrecorded_files,
)
from rivet_core.runner.modes import MODES
from rivet_core.runner.modes.chunked import checkpointed_tasks, chunk_fingerprint, write_chunk
from rivet_core.runner.preflight import probe_destination
from rivet_core.runner.results import FileResult, RunContext
from rivet_core.runner.unit import SourceHolder
from rivet_core.state.base import StateStore
from rivet_core.state.records import ChunkTask, JournalEvent, RunRecord, utc_now

log = logging.getLogger("rivet.runner")

RUNNING = "running"
"""A distributed run's status until its gate records the outcome."""
STARTED = "distributed_run_started"
"""The journal event that starts (or resumes) a distributed run."""


def refusals(plan: ExportPlan) -> list[str]:
    """Why ``plan`` cannot run distributed (empty: it can). Pure."""
    config, problems = plan.config, []
    if config.mode != "chunked":
        problems.append(f"export {plan.name!r}: mode is {config.mode!r}; --distributed "
                        "splits chunked exports (mode = \"chunked\")")
        return problems
    if not config.chunk_checkpoint:
        problems.append(f"export {plan.name!r}: chunk_checkpoint = true is required: the "
                        "chunks' progress lives in the state store the workers share")
    if config.quality is not None:
        problems.append(f"export {plan.name!r}: quality gates are decided over the whole "
                        "run, which no single worker reads; run it without --distributed")
    if not plan.destination.spec.capabilities.idempotent_overwrite:
        problems.append(f"export {plan.name!r}: destination {plan.destination.spec.name!r} "
                        "cannot overwrite a chunk's files, so a chunk taken over from a "
                        "dead worker could leave duplicates")
    return problems


@attrs.frozen(kw_only=True)
class StartedRun:
    """A distributed run planned and recorded: what to enqueue."""

    export: str
    run_id: str
    column: str
    total: int
    pending: list[int]
    """The indexes of the chunks left to read (all of them, unless resumed)."""
    resumed: bool


def start_run(plan: ExportPlan, ctx: RunContext) -> StartedRun:
    """Plan ``plan``'s chunks and record them as a checkpointed chunk run (``ctx.resume``:
    continue the interrupted one), holding the export's lock meanwhile; the run is then
    recorded ``running`` and the lock released. :class:`StateError` if a live run holds the
    export, or the plan fails (then the run is recorded failed)."""
    run = ExportRun(plan, ctx)
    MODES["chunked"].adopt_run(run)
    name, result = plan.name, run.result
    with ctx.state.transaction() as tx:
        holder = tx.acquire_lock(name, result.run_id)
        abandoned = [] if holder is not None else record_abandoned_runs(run, tx)
        if holder is None:
            tx.journal(result.run_id, name, STARTED, mode=plan.config.mode,
                       resume=result.resumed, destination=plan.destination.spec.name,
                       format=plan.format.spec.name)
    if holder is not None:
        raise StateError(f"export {name!r} is already running (run {holder.run_id}, pid "
                         f"{holder.pid} on {holder.host}, since {holder.acquired_at})",
                         hint="wait for it to finish; concurrent runs of one export are "
                              "refused")
    try:
        run.result.warnings.extend(probe_destination(run.destination(), export=name,
                                                     run_id=result.run_id))
        remove_unrecorded_files(run, abandoned)
        column, tasks, _ = checkpointed_tasks(run)
        pending = [t.idx for t in tasks if t.status != "completed"]
        with ctx.state.transaction() as tx:
            tx.journal(result.run_id, name, "chunks_queued", chunks=len(tasks),
                       pending=len(pending))
            tx.release_lock(name, result.run_id)
    except BaseException as exc:
        result.status = "failed"
        result.error = redact(exc.message if isinstance(exc, RivetError) else str(exc))
        result.finished_at = utc_now()
        with ctx.state.transaction() as tx:
            record_run(run, tx)
            tx.release_lock(name, result.run_id)
        raise
    log.info("export %s: distributed run %s: %d chunk(s) of %s, %d to read", name,
             result.run_id, len(tasks), column, len(pending), extra=run.log_extra)
    return StartedRun(export=name, run_id=result.run_id, column=column, total=len(tasks),
                      pending=pending, resumed=result.resumed)


def started(state: StateStore, run_id: str) -> JournalEvent | None:
    """The event that started the run, while it runs; None once it is finished (a
    ``run_finished`` event since), or if it never started."""
    # Newest first: whichever of the two comes first decides; chunk events in between.
    for event in reversed(state.journal(run_id=run_id, limit=500)):
        if event.event == "run_finished":
            return None
        if event.event == STARTED:
            return event
    # More events than that since the start, and none of them the finish.
    return JournalEvent(id=0, run_id=run_id, export_name="", at="", event=STARTED, data={})


def run_record(state: StateStore, export: str, run_id: str) -> RunRecord | None:
    """The run's recorded outcome, or None."""
    # A distributed run's record is among its export's newest: no other run of the export
    # starts while its chunk run is unfinished.
    return next((r for r in state.runs(export, limit=1000) if r.run_id == run_id), None)


@attrs.frozen(kw_only=True)
class Progress:
    """Where a distributed run stands, read from the state store."""

    export: str
    run_id: str
    status: str
    """``running``, or the recorded outcome (``success``, ``skipped``, ``failed``)."""
    total: int
    completed: int
    failed: int
    rows: int
    error: str | None = None


def progress(ctx: RunContext, export: str, run_id: str) -> Progress:
    """The run's chunks done and rows so far, and its status."""
    state = ctx.state
    tasks = state.chunk_tasks(run_id)
    record = None if started(state, run_id) is not None else run_record(state, export, run_id)
    return Progress(export=export, run_id=run_id,
                    status=RUNNING if record is None else record.status,
                    total=len(tasks), completed=sum(t.status == "completed" for t in tasks),
                    failed=sum(t.status == "failed" for t in tasks),
                    rows=sum(t.rows or 0 for t in tasks if t.status == "completed"),
                    error=record.error if record is not None else None)


@attrs.frozen(kw_only=True)
class ChunkOutcome:
    """What became of one chunk job."""

    status: str
    """``completed``, ``failed`` (the run failed with it), ``retry`` (the queue is to
    hand it out again after ``retry_in`` seconds), or ``skipped`` (its run is finished,
    or the chunk was completed already)."""
    retry_in: float = 0.0
    detail: str = ""


class ChunkWorker:
    """Reads chunks of distributed runs for one worker process: its config's plans, one
    state store and one pool of idle source connections shared by its threads."""

    def __init__(self, plans: Mapping[str, ExportPlan], ctx: RunContext) -> None:
        self.plans = plans
        self.ctx = ctx
        self.gate = threading.Lock()

    def run_chunk(self, export: str, run_id: str, idx: int, column: str) -> ChunkOutcome:
        """Claim chunk ``idx`` of run ``run_id``, write it, complete it (or fail it), then
        pass the gate. Never raises for the chunk's own failure: see :class:`ChunkOutcome`."""
        plan = self.plans.get(export)
        if plan is None:
            raise UsageError(f"this worker's config has no export {export!r} (run {run_id} "
                             "was started from another config)",
                             hint="run the workers with the config `rivet run --distributed` "
                                  "used")
        run = self._run(plan, run_id)
        state = self.ctx.state
        start = started(state, run_id)
        chunk_run = state.chunk_run(export, run_id=run_id)
        if start is None or chunk_run is None:
            return ChunkOutcome(status="skipped", detail="the run is finished")
        if chunk_fingerprint(run, column) != chunk_run.plan_hash:
            return self._fail_unclaimed(run, idx, chunk_run.max_attempts,
                                        "this worker's config plans the export differently "
                                        "from the config that started the run (query, "
                                        "chunk_column or chunk sizing)")
        with state.transaction() as tx:
            task = tx.claim_chunk_at(run_id, idx, chunk_run.max_attempts)
        if task is None:
            current = next((t for t in state.chunk_tasks(run_id) if t.idx == idx), None)
            if current is not None and current.status == "completed":
                # A worker killed after completing it, maybe inside the gate.
                self.finish_if_done(run)
                return ChunkOutcome(status="skipped", detail="already completed")
            return self._fail_unclaimed(
                run, idx, chunk_run.max_attempts,
                f"chunk {idx} has had its {chunk_run.max_attempts} attempt(s) "
                "(chunk_max_attempts, or tuning.max_retries + 1)")
        sources = SourceHolder(run)
        try:
            try:
                rows, files = write_chunk(run, column, task, sources, checkpoint=True)
            except BaseException as exc:
                sources.reset()
                return self._failed(run, task, chunk_run.max_attempts, exc)
            sources.close()
            self.finish_if_done(run)
            return ChunkOutcome(status="completed",
                                detail=f"{rows} rows, {len(files)} file(s)")
        finally:
            run.checks.close()
            run.destination().close()

    def _run(self, plan: ExportPlan, run_id: str) -> ExportRun:
        run = ExportRun(plan, self.ctx)
        run.result.run_id = run_id
        return run

    def _failed(self, run: ExportRun, task: ChunkTask, max_attempts: int,
                exc: BaseException) -> ChunkOutcome:
        """A chunk attempt failed: retried later while it has attempts and the error is
        transient (or this worker is stopping); otherwise the run fails with it."""
        name, run_id = run.plan.name, run.result.run_id
        stopping = isinstance(exc, KeyboardInterrupt) or self.ctx.stop.is_set()
        if stopping:
            message = "the worker reading it stopped (a signal); another worker takes it over"
        elif isinstance(exc, RivetError):
            message = redact(exc.message)
        else:
            log.error("export %s: chunk %d failed unexpectedly", name, task.idx,
                      exc_info=exc, extra=run.log_extra)
            message = redact(f"{type(exc).__name__}: {exc}")
        retry = stopping or (isinstance(exc, TransientError) and task.attempts < max_attempts)
        log.warning("export %s: chunk %d failed (attempt %d of %d): %s%s", name, task.idx,
                    task.attempts, max_attempts, message,
                    "; it will be retried" if retry else "", extra=run.log_extra)
        with self.ctx.state.transaction() as tx:
            tx.fail_chunk(run_id, task.idx, message)
            tx.journal(run_id, name, "chunk_failed", chunk=task.idx, error=message,
                       attempt=task.attempts, retry=retry)
        if retry:
            delay = 0.0 if stopping else run.retry.delay(task.attempts)
            return ChunkOutcome(status="retry", retry_in=delay, detail=message)
        self.finish_if_done(run, failure=f"chunk {task.idx} failed: {message}")
        return ChunkOutcome(status="failed", detail=message)

    def _fail_unclaimed(self, run: ExportRun, idx: int, max_attempts: int,
                        message: str) -> ChunkOutcome:
        """The chunk cannot be read here: it is recorded failed (if a dead worker left it
        running) and the run fails with it."""
        name, run_id = run.plan.name, run.result.run_id
        with self.ctx.state.transaction() as tx:
            tx.fail_chunk(run_id, idx, message)
            tx.journal(run_id, name, "chunk_failed", chunk=idx, error=message, retry=False)
        log.error("export %s: chunk %d: %s", name, idx, message, extra=run.log_extra)
        self.finish_if_done(run, failure=f"chunk {idx} failed: {message}")
        return ChunkOutcome(status="failed", detail=message)

    def finish_if_done(self, run: ExportRun, *, failure: str | None = None) -> bool:
        """The gate (see the module): record the run's outcome if every chunk is completed
        (or, with ``failure``, fail it), unless another caller did. Whether this call
        recorded it."""
        state, name, result = self.ctx.state, run.plan.name, run.result
        run_id = result.run_id
        # One caller per process at a time; across processes, the row lock below.
        with self.gate, state.transaction() as tx:
            if tx.lock_chunk_run(run_id) is None:
                return False
            start = started(state, run_id)
            if start is None:
                return False
            tasks = state.chunk_tasks(run_id)
            if failure is None and any(t.status != "completed" for t in tasks):
                return False
            chunk_run = state.chunk_run(name, run_id=run_id)
            begun = start.at or (chunk_run.created_at if chunk_run is not None else "")
            if begun:
                result.started_at = dt.datetime.fromisoformat(begun)
            committed = list(reversed(state.files(name, run_id=run_id, limit=10_000_000)))
            result.files = [FileResult(name=f.file_name, uri=f.uri, rows=f.rows,
                                       bytes=f.bytes, sha256=f.sha256, chunk=f.chunk_index)
                            for f in committed]
            result.rows = sum(f.rows for f in committed)
            done = sum(t.status == "completed" for t in tasks)
            result.chunks = {"total": len(tasks), "completed": done, "skipped_completed": 0,
                             "failed": sum(t.status == "failed" for t in tasks)}
            if failure is None:
                try:
                    verify.destination_holds_the_run(run)
                except DestinationError as exc:
                    failure = exc.message
            if failure is None:
                result.status = ("skipped" if not committed and run.plan.config.skip_empty
                                 else "success")
                if not committed:
                    result.note = "0 rows read: no file written"
            else:
                result.status = "failed"
                result.error = redact(failure)
                result.hint = (f"fix the cause, then `rivet run --distributed --resume -e "
                               f"{name}` continues from the {done} completed chunk(s)")
            result.finished_at = utc_now()
            # A failed run that committed files says so in its manifest, as a local one.
            run.manifest.touched = bool(committed) and isinstance(run.destination(),
                                                                  SupportsListing)
            run.manifest.write(run.destination, run.schema)
            if result.status != "failed":
                tx.finish_chunk_run(run_id, planned=len(tasks))
                tx.journal(run_id, name, "chunk_run_completed", total=len(tasks))
            record_run(run, tx)
        log.info("export %s: distributed run %s finished: %s, %d rows, %d file(s)", name,
                 run_id, result.status, result.rows, len(result.files), extra=run.log_extra)
        return True
