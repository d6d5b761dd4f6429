"""``rivet run``: execute the exports of a config, one after another or several at once
(``--parallel-exports``), then print the summary (per export, and the aggregate of the
invocation when more than one export ran) and choose the exit code."""

from __future__ import annotations

import argparse
import datetime as dt
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from rivet_core.capabilities import WriteCommitProtocol
from rivet_core.cli.common import Console, add_config_arguments, plan_for
from rivet_core.config.models import MAX_PARALLEL_EXPORTS
from rivet_core.config.values import format_bytes
from rivet_core.errors import ExitCode, PlanRejected, UsageError
from rivet_core.naming import new_run_id
from rivet_core.planner import Plan, Severity, parallel_connections
from rivet_core.report import redacted, summary_document, write_reports, write_summary_output
from rivet_core.runner import ExportResult, RunContext, run_exports
from rivet_core.runner.timings import (
    Recorder,
    Timings,
    attach,
    phase,
    process_age,
    timed_state,
)
from rivet_core.runner.timings import render as render_timings
from rivet_core.state import open_store
from rivet_core.state.store import iso, utc_now

if TYPE_CHECKING:
    from rivet_core.sealed import SealedPlan


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "run", help="run the exports of a config",
        description="Run every export of the config (or those named with -e). The planner "
        "checks everything first; a rejected export stops the run before any connection.",
    )
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the run summary as JSON on stdout")
    parser.add_argument("--summary-output", metavar="PATH",
                        help="also write the JSON summary to PATH")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run of chunked exports with "
                             "chunk_checkpoint = true (completed chunks are not redone)")
    parser.add_argument("--reconcile", action="store_true",
                        help="count the export's rows on the source after the run and "
                             "compare with the rows committed; a mismatch fails the run "
                             "before it is certified (exit 7)")
    parser.add_argument("--validate", action="store_true",
                        help="re-read every committed file (checksum and row count) before "
                             "certifying the run, and check the destination against the "
                             "manifest after writing it")
    parser.add_argument("--init-state", action="store_true",
                        help="start with empty state when the state file is empty or "
                             "corrupt (it is kept aside; its cursors and checkpoints are not "
                             "used); without it such a file stops the run")
    parser.add_argument("--parallel-exports", type=_parallel_count, metavar="N",
                        help=f"run up to N exports at once (1-{MAX_PARALLEL_EXPORTS}), each on "
                             "its own thread and its own source connection(s), started in "
                             "config order; wins over the config's parallel_exports "
                             "(default 1: one after another)")
    parser.add_argument("--timings", action="store_true",
                        help="print where the time went: start-up, config, plan, and per "
                             "export connect, describe, probe, read, encode, commit, state, "
                             "manifest (also in the --json summary; -vv shows them too)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress on stderr, a line per running export (default: when "
                             "stderr is a terminal)")
    parser.add_argument("--distributed", action="store_true",
                        help="plan the chunks of each chunked export, record them in the "
                             "PostgreSQL state store and queue them for `rivet worker` "
                             "processes, then return (docs/scale.md)")
    parser.add_argument("--wait", action="store_true",
                        help="with --distributed: follow the run (chunks done, rows) until "
                             "the workers finish it; exit 0 on success, 1 on failure")
    parser.set_defaults(handler=handle)


def _parallel_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_PARALLEL_EXPORTS:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_PARALLEL_EXPORTS}, got {value}")
    return value


def handle(args: argparse.Namespace, console: Console) -> int:
    if args.distributed:
        from rivet_core.cli.worker_cmd import run_distributed

        return run_distributed(args, console)
    if args.wait:
        raise UsageError("--wait follows a distributed run", hint="add --distributed")
    if timings_wanted(args):
        # Start-up is the process's age by now, when this process is the command.
        args.timings_recorder = Timings(
            startup_s=process_age() if getattr(args, "own_process", False) else None)
    with attach(_recorder(args)):
        plan = plan_for(args.config, args.params, args.exports, resume=args.resume)
    return execute(plan, args, console)


def timings_wanted(args: argparse.Namespace) -> bool:
    """``--timings``, or ``-vv``."""
    return bool(getattr(args, "timings", False)) or (getattr(args, "verbose", 0) or 0) >= 2


def _recorder(args: argparse.Namespace) -> Recorder | None:
    timings: Timings | None = getattr(args, "timings_recorder", None)
    return timings.run if timings is not None else None


def execute(plan: Plan, args: argparse.Namespace, console: Console,
            sealed: SealedPlan | None = None) -> int:
    """Run a built plan: the rest of ``rivet run``, and of ``rivet apply``, which passes the
    plan it applies (``sealed``)."""
    streaming = [p.name for p in plan.exports
                 if p.capabilities.commit_protocol is WriteCommitProtocol.STREAMING]
    if args.json and streaming:
        raise UsageError(
            f"--json prints to stdout, where export {streaming[0]!r} writes its data",
            hint="use --summary-output PATH for the JSON summary instead",
        )
    requested = getattr(args, "parallel_exports", None)
    if requested is not None:
        # The command line wins over the config: its connection budget is the one to check.
        plan = attrs.evolve(plan, diagnostics=[
            *(d for d in plan.diagnostics if d.rule != "parallel-connections"),
            *parallel_connections(plan.exports, requested, key="--parallel-exports")])
    workers = max(1, min(requested or plan.loaded.config.parallel_exports, len(plan.exports)))
    for diagnostic in plan.diagnostics:
        if diagnostic.severity is not Severity.INFO:
            console.say(diagnostic.render())
    if plan.rejected():
        raise PlanRejected(
            f"the plan was rejected ({len(plan.rejected())} problem(s) above); nothing was run",
            hint=f"rivet check -c {args.config} shows every diagnostic",
        )
    config_dir = plan.loaded.config.directory
    started_at = utc_now()
    if getattr(args, "timings_recorder", None) is None and timings_wanted(args):
        args.timings_recorder = Timings()  # `rivet apply`: its plan was made elsewhere
    timings: Timings | None = getattr(args, "timings_recorder", None)
    with attach(_recorder(args)):
        with phase("state"):
            store = open_store(config_dir, state=plan.loaded.config.state,
                               init=args.init_state)
        try:
            # The CLI's signal handler sets `stop`: writers abort their open files and stop.
            stop = getattr(args, "stop", None) or threading.Event()
            with phase("exports"):
                results = run_exports(
                    plan.exports,
                    RunContext(config_dir=config_dir,
                               state=timed_state(store) if timings else store,
                               progress=args.progress, resume=args.resume, stop=stop,
                               reconcile=args.reconcile, validate=args.validate,
                               sealed=sealed, timings=timings),
                    parallel_exports=workers)
        finally:
            with phase("state"):
                store.close()
    aggregate = aggregate_summary(results, config_path=str(plan.loaded.config.path),
                                  started_at=started_at, finished_at=utc_now(),
                                  workers=workers)
    summary = summarize(plan, results, aggregate)
    if sealed is not None:
        summary["applied_plan"] = sealed.summary()
        console.say(sealed.headline())
    print_summary(console, results)
    if len(results) > 1:
        print_aggregate(console, aggregate)
    with attach(_recorder(args)), phase("report"):
        _write_reports(console, plan, results, started_at, config_dir,
                       {"parallel_mode": aggregate["parallel_mode"],
                        "parallel_exports": aggregate["parallel_exports"]})
    if timings is not None:
        summary["timings"] = timings.as_dict()
        for line in render_timings(summary["timings"]):
            console.say(line)
    notifications = plan.loaded.config.notifications
    if notifications is not None and results:
        from rivet_core.notify import notify

        for warning in notify(notifications, summary, config_dir=config_dir):
            console.say(f"warning: {warning}")
    if args.json:
        console.json(redacted(summary))
    if args.summary_output:
        try:
            write_summary_output(Path(args.summary_output), summary)
        except OSError as exc:
            console.say(f"warning: --summary-output {args.summary_output}: {exc.strerror or exc}")
    if stop.is_set():
        left = [p.name for p in plan.exports][len(results):]
        console.say("rivet: interrupted" + (f"; not started: {', '.join(left)}" if left
                                            else ""))
        return ExitCode.INTERRUPTED
    return exit_code(results)


def exit_code(results: list[ExportResult]) -> ExitCode:
    """1 when an export failed at run time; else 7 when one failed a trust check (a gate,
    drift, reconcile); else 0."""
    failed = [r for r in results if r.status == "failed"]
    if any(not r.untrusted for r in failed):
        return ExitCode.RUN_FAILED
    return ExitCode.NOT_TRUSTED if failed else ExitCode.OK


def _write_reports(console: Console, plan: Plan, results: list[ExportResult],
                   started_at: dt.datetime, config_dir: Path, extra: dict[str, Any]) -> None:
    """``.rivet/runs/<run_id>/summary.json`` and ``summary.md`` beside the config, per
    export; a report that cannot be written is a warning, never a failed run."""
    if not results:
        return
    document = summary_document(
        [r.as_dict() for r in results], config_path=str(plan.loaded.config.path),
        started_at=started_at, finished_at=utc_now(),
        invocation_id=new_run_id(started_at), extra=extra)
    try:
        paths = write_reports(config_dir, document)
    except (OSError, ValueError) as exc:
        console.say(f"warning: the run reports could not be written under "
                    f"{config_dir / '.rivet' / 'runs'}: {exc}")
        return
    for path in paths:
        if path.suffix == ".md":
            console.say(f"report: {path}")


def summarize(plan: Plan, results: list[ExportResult],
              aggregate: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary (``--json``, ``--summary-output``, notifications)."""
    return {
        "config": str(plan.loaded.config.path),
        "status": "failed" if any(r.status == "failed" for r in results) else "success",
        "exports": [r.as_dict() for r in results],
        "totals": {
            "exports": len(results),
            "success": sum(r.status == "success" for r in results),
            "failed": sum(r.status == "failed" for r in results),
            "skipped": sum(r.status == "skipped" for r in results),
            "rows": sum(r.rows for r in results),
            "files": sum(len(r.files) for r in results),
            "bytes": sum(r.bytes for r in results),
        },
        "aggregate": aggregate,
    }


def aggregate_summary(results: list[ExportResult], *, config_path: str,
                      started_at: dt.datetime, finished_at: dt.datetime,
                      workers: int) -> dict[str, Any]:
    """The invocation as a whole: when, how (one after another or ``workers`` at once),
    the counts and totals, and one line per export."""
    duration_ms = max(0, int((finished_at - started_at).total_seconds() * 1000))
    rows = sum(r.rows for r in results)
    return {
        "run_aggregate_id": "agg_" + started_at.astimezone(dt.UTC).strftime(
            "%Y%m%dT%H%M%S") + f"{started_at.microsecond // 1000:03d}",
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "duration_ms": duration_ms,
        "config_path": config_path,
        "parallel_mode": "parallel-threads" if workers > 1 else "sequential",
        "parallel_exports": workers,
        "total_exports": len(results),
        "success_count": sum(r.status == "success" for r in results),
        "failed_count": sum(r.status == "failed" for r in results),
        "skipped_count": sum(r.status == "skipped" for r in results),
        "total_rows": rows,
        "total_files": sum(len(r.files) for r in results),
        "total_bytes": sum(r.bytes for r in results),
        "rows_per_second": round(rows / (duration_ms / 1000)) if duration_ms else None,
        "per_export": [{
            "export_name": r.export, "status": r.status, "run_id": r.run_id, "mode": r.mode,
            "rows": r.rows, "files": len(r.files), "bytes": r.bytes,
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at) if r.finished_at else None,
            "duration_ms": r.duration_ms, "error_message": r.error, "hint": r.hint,
        } for r in results],
    }


def print_aggregate(console: Console, aggregate: dict[str, Any]) -> None:
    """The ``Run summary (N exports)`` block, after the exports' own."""
    a = aggregate
    seconds = a["duration_ms"] / 1000
    how = (f"{a['parallel_exports']} exports at once" if a["parallel_mode"] != "sequential"
           else "one export reading at a time")
    rate = f"  {a['rows_per_second']:,} rows/s" if a["rows_per_second"] else ""
    files = f"{a['total_files']} file" + ("" if a["total_files"] == 1 else "s")
    console.say()
    console.say(f"Run summary ({a['total_exports']} exports): {a['success_count']} success · "
                f"{a['failed_count']} failed · {a['skipped_count']} skipped")
    console.say(f"    {a['total_rows']:,} rows  {files}  {format_bytes(a['total_bytes'])}  "
                f"{seconds:.1f}s wall{rate}")
    console.say(f"    {a['run_aggregate_id']}  {a['parallel_mode']} ({how})  "
                f"config {a['config_path']}")
    for e in a["per_export"]:
        if e["status"] != "failed":
            continue
        first = (e["error_message"] or "failed").splitlines()[0]
        console.say(f"    ✗ {e['export_name']}: {first}")
        if e["hint"]:
            console.say(f"        hint: {e['hint']}")
        console.say(f"        rerun: rivet run -c {a['config_path']} -e {e['export_name']}")


_MARK = {"success": "✓", "failed": "✗", "skipped": "•"}


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def trust_lines(r: ExportResult) -> list[str]:
    """The summary lines of the trust checks: quality, schema, reconcile, validation."""
    lines = []
    if r.quality:
        failed = [g for g in r.quality if not g["passed"]]
        verdict = "pass" if not failed else (
            "FAIL" if any(g["severity"] == "fail" for g in failed) else "warn")
        lines.append(f"quality: {verdict} ({len(r.quality) - len(failed)}/{len(r.quality)} "
                     "gates passed)")
        lines += [f"  {'✗' if g['severity'] == 'fail' else '!'} {g['message']}"
                  for g in failed]
    if r.schema_drift is not None:
        drift = r.schema_drift
        lines.append(f"schema: CHANGED since run {drift['since_run']} ({drift['summary']})"
                     if drift["changed"] else "schema: unchanged")
    if r.reconcile is not None:
        c = r.reconcile
        verdict = "MATCH" if c["match"] else "MISMATCH"
        lines.append(f"reconcile: {verdict} (source {c['source_rows']:,}, exported "
                     f"{c['exported_rows']:,})")
    if r.validation is not None:
        v = r.validation
        lines.append(f"validated: {'pass' if v['passed'] else 'FAIL'} "
                     f"({v['files']} file(s) re-read)")
    return lines


def print_summary(console: Console, results: list[ExportResult]) -> None:
    for r in results:
        seconds = r.duration_ms / 1000
        rate = f"{r.rows / seconds:,.0f} rows/s" if seconds > 0 and r.rows else ""
        files = f"{len(r.files)} file" + ("" if len(r.files) == 1 else "s")
        # Unknown when the run never started (the export was locked by another run).
        memory = f"  peak RSS {r.peak_rss_mb} MiB" if r.peak_rss_mb is not None else ""
        console.say(
            f"{_MARK.get(r.status, '?')} {r.export}  {r.status}  {_rows(r.rows)}  {files}  "
            f"{format_bytes(r.bytes)}  {seconds:.1f}s  {rate}{memory}"
        )
        console.say(f"    run {r.run_id} → {r.destination}")
        for f in r.files:
            console.say(f"    {f.name}  {_rows(f.rows)}  {format_bytes(f.bytes)}  "
                        f"sha256:{f.sha256[:16]}…")
        if r.cursor_before or r.cursor_after:
            after = r.cursor_after or ("(unchanged)" if r.status == "failed" else "(none)")
            console.say(f"    cursor {r.cursor_before or '(none)'} → {after}")
        if r.window_start:
            console.say(f"    window from {r.window_start}")
        if r.chunks:
            c = r.chunks
            resumed = f", {c['skipped_completed']} already done" if r.resumed else ""
            console.say(f"    chunks {c['completed']}/{c['total']} completed, {c['failed']} "
                        f"failed{resumed}")
        if r.read_paths:
            console.say(f"    read: {'; '.join(r.read_paths)}")
        for line in trust_lines(r):
            console.say(f"    {line}")
        for warning in r.warnings:
            console.say(f"    warning: {warning}")
        if r.note:
            console.say(f"    {r.note}")
        if r.error:
            console.say(f"    error: {r.error}")
        if r.hint:
            console.say(f"    hint: {r.hint}")
