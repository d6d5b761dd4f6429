"""``rivet validate``: re-list each export's destination and check it against its manifest.

The destination's location is resolved the way the run resolved it: ``{run_id}`` and
``{date}`` come from ``--run-id``, else from the export's latest run in the state store,
else (``{date}`` only) from today's UTC date. A location holds the manifest of the last run
that wrote there: ``--run-id`` of an older run whose manifest a later run replaced (a path
without ``{run_id}``) is reported as that run's manifest missing, never checked against the
later run's. The state store also says which unlisted files earlier runs committed (see
:func:`~rivet_core.validation.validate_export`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from typing import Any

from rivet_core.backends import Destination, DestinationContext, SupportsListing
from rivet_core.cli.common import Console, add_config_arguments, plan_for
from rivet_core.config.models import StateConfig
from rivet_core.errors import DestinationError, ExitCode, UsageError
from rivet_core.planner import ExportPlan
from rivet_core.runner.manifest import manifest_name
from rivet_core.state import open_existing_store
from rivet_core.validation import (
    RUN_ID,
    ExportValidation,
    Finding,
    StateRecords,
    printable,
    validate_export,
)

MAX_RECORDS = 1_000_000
"""Runs and files of an export read from the state store to vouch for unlisted files."""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "validate", help="check each export's destination against its run manifest",
        description="Re-list each export's destination and check it against "
        "_rivet/<export>/manifest.json and _SUCCESS: every listed file present with its "
        "size and SHA-256, no unlisted file of the export, a marker that belongs to the "
        "manifest. Exit status 6 when any export fails.",
    )
    add_config_arguments(parser)
    parser.add_argument("--run-id", metavar="ID",
                        help="fill {run_id}/{date} in destination paths from this run "
                             "(default: the export's latest run in the state store)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    if args.run_id is not None and not _parse_run_id(args.run_id):
        raise UsageError(f"--run-id {args.run_id!r} is not a run id",
                         hint="run ids look like 20261127T121530Z-a1b2c3")
    plan = plan_for(args.config, args.params, args.exports, connect=False)
    config_dir = plan.loaded.config.directory
    latest, recorded = _state(config_dir, plan.loaded.config.state,
                              [e.name for e in plan.exports])
    reports = []
    for export in plan.exports:
        run_id = args.run_id or latest.get(export.name)
        reports.append(validate_one(export, config_dir, run_id,
                                    recorded=recorded.get(export.name),
                                    requested=args.run_id))
    if args.json:
        console.json({"config": str(plan.loaded.config.path),
                      "ok": all(r.ok for r in reports),
                      "exports": [r.as_dict() for r in reports]})
    else:
        for report in reports:
            _print(console, report)
    failed = [r for r in reports if not r.ok]
    return ExitCode.CHECK_FAILED if failed else ExitCode.OK


def validate_one(export: ExportPlan, config_dir: Any, run_id: str | None, *,
                 recorded: StateRecords | None = None, requested: str | None = None
                 ) -> ExportValidation:
    """Validate one export's destination. ``run_id`` fills the path's placeholders;
    ``requested`` is the run the user asked for (``--run-id``), whose manifest must be the
    one found; ``recorded`` is what the state store knows of the export's runs."""
    spec = export.destination.spec
    started = _parse_run_id(run_id) if run_id else None
    context = DestinationContext(
        export=export.name, run_id=run_id or "{run_id}",
        started_at=started or dt.datetime.now(dt.UTC), config_dir=config_dir)
    destination: Destination = spec.factory(export.config.destination.options, context)
    try:
        location = destination.location()
        report = ExportValidation(export=export.name, location=location)
        if not isinstance(destination, SupportsListing):
            report.findings.append(Finding(
                kind="not_applicable", severity="info",
                message=f"destination {spec.name!r} keeps no files to check (no manifest)"))
        elif "{run_id}" in location:
            report.findings.append(Finding(
                kind="no_manifest", message="the destination path uses {run_id} and no run "
                "of this export is known: pass --run-id"))
        else:
            try:
                report = validate_export(export.name, destination, location,
                                         recorded=recorded)
            except DestinationError as exc:
                report.findings.append(Finding(kind="unreadable", message=exc.message))
            if requested and report.run_id and report.run_id != requested:
                report = _replaced(export.name, location, requested, report.run_id)
        return report
    finally:
        destination.close()


def _replaced(export: str, location: str, requested: str, found: str) -> ExportValidation:
    """The report of a run whose manifest a later run replaced: its files cannot be told
    apart from the later run's, so nothing is checked against the wrong manifest."""
    report = ExportValidation(export=export, location=location, run_id=requested)
    report.findings.append(Finding(
        kind="no_manifest", name=manifest_name(export),
        message=f"the manifest of run {requested} is gone: the one here describes run "
                f"{found}, a later run that wrote to the same location, so run {requested} "
                "cannot be validated (put {run_id} in the path to keep every run's "
                "manifest)"))
    return report


def _parse_run_id(run_id: str | None) -> dt.datetime | None:
    """The start time a run id encodes, or None if it is not a run id (``99999999T…``
    has the shape of one but no time)."""
    if not run_id or not re.fullmatch(RUN_ID, run_id):
        return None
    try:
        started = dt.datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return started.replace(tzinfo=dt.UTC)


def _state(config_dir: Path, state: StateConfig | None, exports: list[str]
           ) -> tuple[dict[str, str], dict[str, StateRecords]]:
    """From the state store, without creating one: the latest run id of each export, and
    what it records of each export's runs."""
    store = open_existing_store(config_dir, state=state)
    if store is None:
        return {}, {}
    try:
        latest: dict[str, str] = {}
        for run in store.runs(limit=10_000):
            latest.setdefault(run.export_name, run.run_id)
        recorded = {name: StateRecords(
            runs=frozenset([*(r.run_id for r in store.runs(name, limit=MAX_RECORDS)),
                            *store.unfinished_runs(name)]),
            files=frozenset(f.file_name for f in store.files(name, limit=MAX_RECORDS)))
            for name in exports}
        return latest, recorded
    finally:
        store.close()


def _print(console: Console, report: ExportValidation) -> None:
    verdict = {"passed": "PASSED", "failed": "FAILED", "no_manifest": "NO MANIFEST"}
    console.print(f"{report.export}: {verdict[report.status]}  {report.location}")
    if report.run_id:
        console.print(f"    run {report.run_id} ({report.run_status}), "
                      f"{report.files_checked} file(s) checked")
    for finding in report.findings:
        # A name may come from the destination's listing: a file named with a newline or
        # with bytes that are not UTF-8 must not break the line or the stream.
        where = f"{printable(finding.name)}: " if finding.name else ""
        console.print(f"    {finding.severity}: {finding.kind}: {where}{finding.message}")
