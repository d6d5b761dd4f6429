"""The order around every mode: lock, journal, probe, run, status, manifest, metric, unlock.

For one export (:func:`run_export`): the mode may adopt an interrupted run's id (a resume);
the export's lock is taken (a concurrent run of the same export is refused) and, in the same
state transaction, runs of this export whose process died are recorded as failed and the
run's start is journaled; the destination is probed before the source is opened, so a wrong
bucket or a missing permission fails the run before a row is read
(:func:`rivet_core.runner.preflight.probe_destination`); the mode runs, recording in the
state store what each step commits (:mod:`rivet_core.runner.modes`); then, whatever
happened, the destination's run manifest and ``_SUCCESS`` are written after the last commit
(:mod:`rivet_core.runner.manifest`), and the run metric is recorded last, in the
transaction that releases the lock. A failure is the run's status and error, never an
exception out of here: an interrupt (SIGINT/SIGTERM) is recorded as the run's failure and
sets the stop event, and the CLI exits 130.

:func:`run_exports` runs the planned exports one after another, or, with
``parallel_exports`` above 1, in a bounded pool of threads (:mod:`rivet_core.runner.pool`).
Either way the exports share the run's idle sources (:mod:`rivet_core.runner.sourcepool`):
a source connection is opened once and reused by the next export, not opened per export.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from rivet_core.backends import SupportsListing
from rivet_core.errors import DestinationError, RivetError, TrustError
from rivet_core.naming import file_stem
from rivet_core.plan import ExportPlan
from rivet_core.redact import redact
from rivet_core.runner import verify
from rivet_core.runner.export import ExportRun
from rivet_core.runner.manifest import COMPLETE, manifest_dir, success_name
from rivet_core.runner.modes import MODES
from rivet_core.runner.pool import ExportPool
from rivet_core.runner.preflight import probe_destination, progress_estimate
from rivet_core.runner.progress import PeakMemory, Progress, ProgressBoard
from rivet_core.runner.results import ExportResult, RunContext
from rivet_core.runner.sourcepool import SourcePool
from rivet_core.runner.timings import phase
from rivet_core.state.store import RunRecord, iso, utc_now

if TYPE_CHECKING:
    from rivet_core.state import StateTx

log = logging.getLogger("rivet.runner")


def run_exports(plans: Iterable[ExportPlan], ctx: RunContext, *,
                parallel_exports: int = 1) -> list[ExportResult]:
    """Run every planned export, started in config order: one after another, or up to
    ``parallel_exports`` at once, each whole on a thread of its own. A failed export does
    not stop the others; its failure is in its result. A signal (``ctx.stop``) ends every
    running export as failed and starts no further one. The results are those of the
    exports started, in config order."""
    plans = list(plans)
    workers = max(1, min(parallel_exports, len(plans)))
    overlap = len(plans) > workers
    owned = ctx.sources is None
    if owned:
        # One idle source per export running at once (and one for the export finishing
        # while the next one reads): a schema of small tables connects once or twice, not
        # once per export (rivet_core.runner.sourcepool).
        ctx = attrs.evolve(ctx, sources=SourcePool(limit=workers + overlap))
    try:
        if workers > 1 or overlap:
            return ExportPool(plans, ctx, workers=workers, run_one=run_export,
                              overlap=overlap).run()
        results = []
        for plan in plans:
            if ctx.stop.is_set():
                break
            results.append(run_export(plan, ctx))
        return results
    finally:
        if owned and ctx.sources is not None:
            ctx.sources.close()


def run_export(plan: ExportPlan, ctx: RunContext, *, board: ProgressBoard | None = None,
               started: Callable[[ExportResult], None] | None = None) -> ExportResult:
    """Run one export (see the module). ``board``: the progress block of the exports
    running at once; ``started`` sees the result as soon as the run has an id."""
    if ctx.timings is None:
        return _run_export(plan, ctx, board=board, started=started)
    with ctx.timings.export(plan.name):
        return _run_export(plan, ctx, board=board, started=started)


def _run_export(plan: ExportPlan, ctx: RunContext, *, board: ProgressBoard | None,
                started: Callable[[ExportResult], None] | None) -> ExportResult:
    run = ExportRun(plan, ctx)
    result, mode = run.result, MODES[plan.config.mode]
    if started is not None:
        started(result)
    try:
        mode.adopt_run(run)
        # One commit: the lock, the records of this export's runs that died, run_started.
        with run.state.transaction() as tx:
            holder = tx.acquire_lock(plan.name, result.run_id)
            abandoned = [] if holder is not None else _start(run, tx)
    except RivetError as exc:
        return _failed_before_start(result, exc.message, exc.hint)
    if holder is not None:
        return _failed_before_start(
            result, f"export {plan.name!r} is already running (run {holder.run_id}, pid "
                    f"{holder.pid} on {holder.host}, since {holder.acquired_at})",
            "wait for it to finish; concurrent runs of one export are refused")
    progress = run.progress = Progress(plan.name, enabled=ctx.progress,
                                       chunks=lambda: run.result.chunks, board=board)
    try:
        with PeakMemory() as memory:
            try:
                _stop_point(ctx)
                with phase("probe"):
                    _probe_destination(run)
                remove_unrecorded_files(run, abandoned)
                if progress.enabled:
                    with phase("probe"):
                        progress.estimated_rows = progress_estimate(run)
                mode.run(run)
                _stop_point(ctx)
                run.checks.decide()
                _finish_status(run)
                with phase("manifest"):
                    verify.destination_holds_the_run(run)
                if ctx.reconcile:
                    verify.reconcile(run)
                if ctx.validate:
                    verify.reread(run)
                _stop_point(ctx)
            except RivetError as exc:
                _failed(result, exc)
                result.untrusted = isinstance(exc, TrustError)
            except Exception as exc:
                result.status = "failed"
                result.error = redact(f"{type(exc).__name__}: {exc}")
                result.hint = "this is a bug in Rivet or a plugin; please report it"
                log.exception("export %s failed unexpectedly", plan.name)
            finally:
                run.release_control_source()
                run.checks.close()
        result.peak_rss_mb = memory.peak_mb
    except KeyboardInterrupt:
        # SIGINT/SIGTERM: the open files were aborted on the way out; the run is recorded
        # as failed, with its manifest, and no further export starts (the CLI exits 130).
        ctx.stop.set()
        result.status = "failed"
        result.error = "interrupted by a signal; the files being written were discarded"
    finally:
        progress.finish()
        result.finished_at = utc_now()
        if result.status == "failed":
            # What a failed run delivered is what its committed files hold.
            result.rows = sum(f.rows for f in result.files)
        # After every commit, before the run metric: the destination's manifest.
        run.manifest.write(run.destination, run.schema)
        if ctx.validate and result.status in COMPLETE:
            _validate_after_manifest(run)
        _close_record(run)
    return result


def _stop_point(ctx: RunContext) -> None:
    """A stop signal raises ``KeyboardInterrupt`` in the main thread only; an export running
    on another thread (``--parallel-exports``) meets the stop event between batches, and here,
    after the steps that do not check it: a run the invocation is stopping is never
    certified."""
    if ctx.stop.is_set():
        raise KeyboardInterrupt


def _probe_destination(run: ExportRun) -> None:
    """Probe the destination before the source is opened; a transient failure is retried
    as a read would be. The failure names the destination's own error."""
    attempt = 0
    while True:
        try:
            run.result.warnings.extend(probe_destination(
                run.destination(), export=run.plan.name, run_id=run.result.run_id))
            return
        except DestinationError as exc:
            if run.retry.should_retry(exc, attempt):
                attempt += 1
                run.note_retry(exc, attempt, "destination probe")
                continue
            raise type(exc)(
                f"the destination failed the check before the run (nothing was read): "
                f"{exc.message}",
                hint=exc.hint or f"before reading, Rivet writes, reads back and deletes a "
                                 f"small object in {manifest_dir(run.plan.name)} and lists "
                                 "it: check the location and that the credentials may "
                                 "write, delete and list there") from exc


def _failed(result: ExportResult, exc: RivetError) -> None:
    result.status = "failed"
    result.error = redact(exc.message)
    result.hint = exc.hint


def _failed_before_start(result: ExportResult, error: str, hint: str | None) -> ExportResult:
    """The run could not take the export (it is running, or the state is unusable)."""
    result.status = "failed"
    result.error = redact(error)
    result.hint = hint
    result.finished_at = utc_now()
    return result


def _start(run: ExportRun, tx: StateTx) -> list[str]:
    """In the transaction that took the export's lock: the runs of this export whose
    process died are recorded as failed, and the run's start is journaled. Returns the
    dead runs' ids."""
    plan, result, sealed = run.plan, run.result, run.ctx.sealed
    abandoned = record_abandoned_runs(run, tx)
    tx.journal(result.run_id, plan.name, "run_started", mode=plan.config.mode,
               resume=result.resumed, destination=plan.destination.spec.name,
               format=plan.format.spec.name)
    if sealed is not None:
        tx.journal(result.run_id, plan.name, "plan_applied", digest=sealed.digest,
                   created_at=iso(sealed.created_at), overridden=list(sealed.overridden))
    return abandoned


def _close_record(run: ExportRun) -> None:
    """Record the run metric and release the lock, in one commit. A state store that
    cannot be written fails the run (its files may be complete and certified, but its
    record is missing), without a traceback; the lock is then released on its own, and a
    lock left behind is taken over once its process is gone."""
    result = run.result
    try:
        with run.state.transaction() as tx:
            record_run(run, tx)
            tx.release_lock(run.plan.name, result.run_id)
        return
    except RivetError as exc:
        if result.status != "failed":
            result.error = redact(f"the run finished, but its record could not be written: "
                                  f"{exc.message}")
            result.hint = exc.hint
            result.status = "failed"
    try:
        with run.state.transaction() as tx:
            tx.release_lock(run.plan.name, result.run_id)
    except RivetError as exc:
        log.error("export %s: could not release its lock: %s", run.plan.name, exc.message)


def _finish_status(run: ExportRun) -> None:
    result = run.result
    if result.rows == 0 and not result.files:
        result.note = "0 rows read: no file written"
        result.status = "skipped" if run.plan.config.skip_empty else "success"
    else:
        result.status = "success"


def _validate_after_manifest(run: ExportRun) -> None:
    """``--validate``, last step: the destination checked against the manifest just written,
    as ``rivet validate`` does. A failure withdraws the marker and fails the run."""
    from rivet_core.validation import validate_export

    result = run.result
    destination = run.destination()
    if not isinstance(destination, SupportsListing):
        return
    try:
        report = validate_export(run.plan.name, destination, destination.location())
        ok = report.ok and report.run_id == result.run_id
        problems = [f.message for f in report.findings if f.severity == "error"]
        if report.run_id != result.run_id:
            problems.append(f"the manifest names run {report.run_id}")
    except DestinationError as exc:
        ok, problems = False, [exc.message]
    if result.validation is not None:
        result.validation["manifest"] = "pass" if ok else "FAIL"
    run.journal("validated_manifest", passed=ok, problems=problems)
    if ok:
        return
    result.status = "failed"
    result.untrusted = True
    result.error = redact("--validate: the destination does not match the manifest just "
                          "written: " + "; ".join(problems[:5]))
    result.hint = "the run is not certified; run the export again"
    try:
        destination.delete_file(success_name(run.plan.name))
    except DestinationError as exc:
        log.error("export %s: could not withdraw _SUCCESS: %s", run.plan.name, exc.message)


def record_abandoned_runs(run: ExportRun, tx: StateTx) -> list[str]:
    """Runs of this export whose process died never recorded their metric: record them as
    failed now, in ``tx`` (which holds the export's lock), so history is complete. Returns
    their run ids."""
    name = run.plan.name
    abandoned = []
    for run_id in run.state.unfinished_runs(name):
        if run_id == run.result.run_id:
            continue
        abandoned.append(run_id)
        now = iso(utc_now())
        tx.record_run(RunRecord(
            run_id=run_id, export_name=name, mode=run.plan.config.mode,
            status="failed", started_at=run_id_time(run_id) or now, finished_at=now,
            rows=0, files=len(run.state.files(name, run_id=run_id, limit=100_000)),
            bytes=0, duration_ms=0, peak_rss_mb=None,
            error="the process ended before the run finished (killed or crashed)"))
        tx.journal(run_id, name, "run_abandoned", noticed_by=run.result.run_id)
    return abandoned


def remove_unrecorded_files(run: ExportRun, abandoned: list[str]) -> None:
    """A process killed between a file's commit and its record left a visible file that no
    manifest, state row or cursor accounts for: its rows are read again by this run (the
    cursor never moved past them), so a reader of the prefix would read them twice. Such
    files of the abandoned runs are removed before this run writes; recorded ones stay."""
    if not abandoned:
        return
    destination = run.destination()
    if not isinstance(destination, SupportsListing):
        return
    name = run.plan.name
    for run_id in abandoned:
        recorded = {f.file_name for f in run.state.files(name, run_id=run_id, limit=1_000_000)}
        stray = sorted(f for f in destination.list_files(file_stem(name, run_id))
                       if "/" not in f and f not in recorded)
        for file in stray:
            destination.delete_file(file)
        if stray:
            log.warning("export %s: removed %d file(s) the killed run %s committed but never "
                        "recorded: %s", name, len(stray), run_id, ", ".join(stray))
            run.journal("unrecorded_files_removed", run=run_id, files=stray)


def record_run(run: ExportRun, tx: StateTx) -> None:
    result = run.result
    tx.record_run(RunRecord(
        run_id=result.run_id, export_name=result.export, mode=result.mode,
        status=result.status, started_at=iso(result.started_at),
        finished_at=iso(result.finished_at or utc_now()), rows=result.rows,
        files=len(result.files), bytes=result.bytes, duration_ms=result.duration_ms,
        peak_rss_mb=result.peak_rss_mb, retries=result.retries, error=result.error,
    ))
    if result.status in ("success", "skipped"):
        run.checks.record(tx)
    tx.journal(result.run_id, result.export, "run_finished", status=result.status,
               rows=result.rows, files=len(result.files), bytes=result.bytes,
               error=result.error)


def run_id_time(run_id: str) -> str | None:
    """The start time encoded in a run id, as ISO text."""
    try:
        moment = dt.datetime.strptime(run_id.split("-")[0], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return iso(moment.replace(tzinfo=dt.UTC))
