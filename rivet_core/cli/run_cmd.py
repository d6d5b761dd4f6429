"""``rivet run``: execute the exports of a config."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

from rivet_core.capabilities import WriteCommitProtocol
from rivet_core.cli.common import Console, add_config_arguments, plan_for
from rivet_core.config.values import format_bytes
from rivet_core.errors import ExitCode, PlanRejected, UsageError
from rivet_core.planner import Plan, Severity
from rivet_core.redact import redact
from rivet_core.runner import ExportResult, RunContext, run_exports
from rivet_core.state import open_store


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
    parser.add_argument("--init-state", action="store_true",
                        help="start with empty state when the state file is empty or "
                             "corrupt (it is kept aside; its cursors and checkpoints are not "
                             "used); without it such a file stops the run")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress line on stderr (default: when stderr is a terminal)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    plan = plan_for(args.config, args.params, args.exports, resume=args.resume)
    streaming = [p.name for p in plan.exports
                 if p.capabilities.commit_protocol is WriteCommitProtocol.STREAMING]
    if args.json and streaming:
        raise UsageError(
            f"--json prints to stdout, where export {streaming[0]!r} writes its data",
            hint="use --summary-output PATH for the JSON summary instead",
        )
    for diagnostic in plan.diagnostics:
        if diagnostic.severity is not Severity.INFO:
            console.say(diagnostic.render())
    if plan.rejected():
        raise PlanRejected(
            f"the plan was rejected ({len(plan.rejected())} problem(s) above); nothing was run",
            hint=f"rivet check -c {args.config} shows every diagnostic",
        )
    config_dir = plan.loaded.config.directory
    state = open_store(config_dir, init=args.init_state)
    try:
        # The CLI's signal handler sets `stop`: writers abort their open files and stop.
        stop = getattr(args, "stop", None) or threading.Event()
        results = run_exports(plan.exports, RunContext(config_dir=config_dir, state=state,
                                                       progress=args.progress,
                                                       resume=args.resume, stop=stop))
    finally:
        state.close()
    summary = summarize(plan, results)
    print_summary(console, results)
    if args.json:
        console.json(summary)
    if args.summary_output:
        Path(args.summary_output).write_text(redact(json.dumps(summary, indent=2)) + "\n")
    if stop.is_set():
        left = [p.name for p in plan.exports][len(results):]
        console.say("rivet: interrupted" + (f"; not started: {', '.join(left)}" if left
                                            else ""))
        return ExitCode.INTERRUPTED
    failed = [r for r in results if r.status == "failed"]
    return ExitCode.RUN_FAILED if failed else ExitCode.OK


def summarize(plan: Plan, results: list[ExportResult]) -> dict[str, Any]:
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
    }


_MARK = {"success": "✓", "failed": "✗", "skipped": "•"}


def print_summary(console: Console, results: list[ExportResult]) -> None:
    for r in results:
        seconds = r.duration_ms / 1000
        rate = f"{r.rows / seconds:,.0f} rows/s" if seconds > 0 and r.rows else ""
        files = f"{len(r.files)} file" + ("" if len(r.files) == 1 else "s")
        console.say(
            f"{_MARK.get(r.status, '?')} {r.export}  {r.status}  {r.rows:,} rows  {files}  "
            f"{format_bytes(r.bytes)}  {seconds:.1f}s  {rate}  peak RSS {r.peak_rss_mb} MiB"
        )
        console.say(f"    run {r.run_id} → {r.destination}")
        for f in r.files:
            console.say(f"    {f.name}  {f.rows:,} rows  {format_bytes(f.bytes)}  "
                        f"sha256:{f.sha256[:16]}…")
        if r.cursor_before or r.cursor_after:
            console.say(f"    cursor {r.cursor_before or '(none)'} → {r.cursor_after or '(none)'}")
        if r.window_start:
            console.say(f"    window from {r.window_start}")
        if r.chunks:
            c = r.chunks
            resumed = f", {c['skipped_completed']} already done" if r.resumed else ""
            console.say(f"    chunks {c['completed']}/{c['total']} completed, {c['failed']} "
                        f"failed{resumed}")
        if r.read_paths:
            console.say(f"    read: {'; '.join(r.read_paths)}")
        for warning in r.warnings:
            console.say(f"    warning: {warning}")
        if r.note:
            console.say(f"    {r.note}")
        if r.error:
            console.say(f"    error: {r.error}")
        if r.hint:
            console.say(f"    hint: {r.hint}")
