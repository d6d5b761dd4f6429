"""``rivet reconcile`` and ``rivet repair``: a chunked run's chunks counted against the
source and the destination, and the chunks that differ re-exported. The rules and the I/O
are :mod:`rivet_core.reconcile`; this module parses, prints and picks exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from rivet_core.atomic import write_atomic
from rivet_core.cli.common import Console, add_config_arguments, plan_for
from rivet_core.config.models import Config
from rivet_core.errors import ExitCode, PlanRejected, UsageError
from rivet_core.plan import ExportPlan
from rivet_core.planner import Severity
from rivet_core.reconcile import (
    ChunkRunAttached,
    Reconciliation,
    RepairedChunk,
    RepairPlan,
    plan_repair,
    read_report,
)
from rivet_core.redact import redact
from rivet_core.runner.results import RunContext
from rivet_core.state import open_store
from rivet_core.validation import RUN_ID


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    reconcile = commands.add_parser(
        "reconcile", help="count each chunk of a chunked run at the source and the destination",
        description="For each chunk of a chunked export's run (its latest chunk run, or "
        "--run-id), count the rows of the chunk's statement at the source now and the rows "
        "of its files the destination holds at their recorded size. Read-only: no file or "
        "record changes (the check is journaled). Exit status 6 when a chunk does not "
        "match.")
    _export_arguments(reconcile)
    reconcile.add_argument("--run-id", metavar="ID",
                           help="reconcile this chunk run (default: the export's latest)")
    reconcile.add_argument("--json", action="store_true", help="print the report as JSON")
    reconcile.add_argument("--output", metavar="FILE",
                           help="also write the JSON report to FILE (replaced atomically); "
                                "`rivet repair --report FILE` reads it")
    reconcile.set_defaults(handler=handle_reconcile)

    repair = commands.add_parser(
        "repair", help="re-export the chunks of a chunked run that reconcile found different",
        description="Plan (default) or, with --execute, re-export every chunk a "
        "reconciliation found mismatched, under the run's id and file names: each file is "
        "replaced whole, parts no longer produced are deleted, the chunk's file records are "
        "replaced, then the run manifest and _SUCCESS are rewritten. Refused while a run of "
        "the export is alive.")
    _export_arguments(repair)
    repair.add_argument("--report", metavar="FILE",
                        help="a report of `rivet reconcile --output` (default: reconcile the "
                             "export's latest chunk run now)")
    repair.add_argument("--execute", action="store_true",
                        help="re-export the chunks (default: print the plan, change nothing)")
    repair.add_argument("--json", action="store_true", help="print the plan or outcome as JSON")
    repair.set_defaults(handler=handle_repair)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, exports=False)
    parser.add_argument("-e", "--export", required=True, metavar="NAME",
                        help="the chunked export")


# ------------------------------------------------------------------------------ reconcile


def handle_reconcile(args: argparse.Namespace, console: Console) -> int:
    if args.run_id is not None and not re.fullmatch(RUN_ID, args.run_id):
        raise UsageError(f"--run-id {args.run_id!r} is not a run id",
                         hint="run ids look like 20261127T121530Z-a1b2c3")
    plan, config = _chunked_export(args, console, "reconcile")
    with _context(config, args) as ctx:
        attached = ChunkRunAttached(plan, ctx, args.run_id)
        try:
            report = attached.reconcile()
        finally:
            attached.close()
    document = report.as_dict()
    if args.output:
        _write_atomically(Path(args.output), document)
    if args.json:
        console.json(document)
    else:
        _print_reconciliation(console, report)
    if report.summary()["mismatches"]:
        console.say(f"  hint: `rivet repair -e {plan.name}` shows the plan to re-export the "
                    "mismatched chunks; --execute does it")
    return ExitCode.OK if report.ok else ExitCode.CHECK_FAILED


def _print_reconciliation(console: Console, report: Reconciliation) -> None:
    for check in report.chunks:
        if check.status != "match":
            console.print(f"{report.export}: chunk {check.chunk} {check.range}: "
                          f"{check.status.upper()}: {check.note}")
    s = report.summary()
    verdict = "all match" if report.ok else f"{s['mismatches']} mismatch, {s['unknown']} unknown"
    console.print(f"{report.export}: run {report.run_id}: {s['chunks']} chunk(s), {verdict}; "
                  f"source {s['source_rows']:,} rows, exported {s['exported_rows']:,} rows")


# --------------------------------------------------------------------------------- repair


def handle_repair(args: argparse.Namespace, console: Console) -> int:
    plan, config = _chunked_export(args, console, "repair")
    given = _read_report(args.report, plan.name) if args.report else None
    with _context(config, args) as ctx:
        attached = ChunkRunAttached(plan, ctx, given.run_id if given else None)
        try:
            attached.check_repairable()
            if given is not None:
                attached.check_report(given, args.report)
            if not args.execute:
                repair_plan = plan_repair(given or attached.reconcile(),
                                          manifest_problem=attached.manifest_problem())
                repaired = None
            else:
                with attached.locked():
                    repair_plan = plan_repair(given or attached.reconcile(),
                                              manifest_problem=attached.manifest_problem())
                    repaired = attached.repair(repair_plan) if repair_plan.actions else []
            status = attached.run.result.status
        finally:
            attached.close()
    if args.json:
        document = repair_plan.as_dict()
        document["executed"] = repaired is not None
        if repaired is not None:
            document["repaired"] = [attrs.asdict(r) for r in repaired]
        console.json(document)
    else:
        _print_repair(console, repair_plan, repaired, status)
    if repaired is not None and repair_plan.skipped:
        return ExitCode.CHECK_FAILED
    return ExitCode.OK


def _read_report(path: str, export: str) -> Reconciliation:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read --report {path}: {exc.strerror or exc}",
                         hint=f"write one with `rivet reconcile -e {export} --output "
                              f"{path}`") from None
    return read_report(raw, export=export, path=path)


def _print_repair(console: Console, plan: RepairPlan, repaired: list[RepairedChunk] | None,
                  status: str) -> None:
    head = f"{plan.export}: run {plan.run_id}"
    if repaired is None:
        if plan.actions:
            console.print(f"{head}: {len(plan.actions)} chunk(s) to re-export (dry run: "
                          "nothing changed; --execute re-exports them)")
        else:
            console.print(f"{head}: nothing to re-export")
        for action in plan.actions:
            console.print(f"    chunk {action.chunk} {action.range}: {action.reason}")
    else:
        for chunk in repaired:
            removed = f", removed {', '.join(chunk.removed)}" if chunk.removed else ""
            console.print(f"{head}: chunk {chunk.chunk} {chunk.range} re-exported: "
                          f"{chunk.rows:,} rows in {len(chunk.files)} file(s){removed}")
        if repaired:
            marker = ("manifest and _SUCCESS rewritten" if status in ("success", "skipped")
                      else f"manifest rewritten; the run is recorded {status}, so no _SUCCESS")
            console.print(f"{head}: {len(repaired)} chunk(s) repaired; {marker}")
        else:
            console.print(f"{head}: nothing to re-export")
    for skipped in plan.skipped:
        console.print(f"    skipped chunk {skipped.chunk} {skipped.range}: {skipped.reason}")


# ---------------------------------------------------------------------------------- common


def _chunked_export(args: argparse.Namespace, console: Console,
                    command: str) -> tuple[ExportPlan, Config]:
    """The export's plan and the config; a usage error unless it is a chunked export the
    planner accepts."""
    plan = plan_for(args.config, args.params, [args.export])
    (export,) = plan.exports
    if export.config.mode != "chunked":
        instead = ("use `rivet run --reconcile`, which counts a whole-query export's rows as "
                   "it runs" if command == "reconcile" else
                   "run the export again to replace a whole-query export's output")
        raise UsageError(f"export {export.name!r} is a {export.config.mode} export; `rivet "
                         f"{command}` works on the chunks of a chunked export", hint=instead)
    for diagnostic in plan.diagnostics:
        if diagnostic.severity is not Severity.INFO:
            console.say(diagnostic.render())
    if plan.rejected():
        raise PlanRejected(f"the plan was rejected ({len(plan.rejected())} problem(s) above)",
                           hint=f"rivet check -c {args.config} -e {export.name} shows every "
                                "diagnostic")
    return export, plan.loaded.config


@contextlib.contextmanager
def _context(config: Config, args: argparse.Namespace) -> Iterator[RunContext]:
    config_dir = config.directory
    state = open_store(config_dir, state=config.state)
    try:
        # The CLI's signal handler sets `stop`: a repair aborts its open file and stops.
        yield RunContext(config_dir=config_dir, state=state, progress=False,
                         stop=getattr(args, "stop", None) or threading.Event())
    finally:
        state.close()


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    """``path`` holds the old report or the new one, never a part of one."""
    try:
        write_atomic(path, (redact(json.dumps(document, indent=2)) + "\n").encode())
    except OSError as exc:
        raise UsageError(f"cannot write --output {path}: {exc.strerror or exc}") from None
