"""``rivet check``: validate the config and the plan, and optionally map every column.

Without ``--type-report`` nothing is touched: the config is loaded, the plan built and every
diagnostic printed, with the source's effective TLS mode (what it encrypts and checks, and
which setting chose it) and the warning a connection to another machine without
``[source.tls]`` gets; the source is built to resolve its settings, never connected. With
``--type-report`` the source is built as ``rivet run`` builds it and each export's query is
described by a zero-row probe (:meth:`Source.describe`): per column,
the source type, the Arrow type, the fidelity and the notes, overrides from
``[exports.columns]`` applied. With ``--preflight`` the source is asked, per export, how
big the data is, which plan it would use for the statements the export's mode sends and
whether an index serves the cursor or chunk column, and each export gets a verdict
(``ok``, ``heavy``, ``dangerous``, ``unknown``) with recommendations
(:mod:`rivet_core.runner.preflight_check`). Nothing is exported and nothing is written.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import attrs

from rivet_core.backends import Query, ReadOptions, Source, SourceContext
from rivet_core.cli.common import Console, add_config_arguments, plan_for
from rivet_core.config.connection import ConnectionConfig
from rivet_core.errors import ExitCode, RivetError, UnsupportedTypeError, UsageError
from rivet_core.planner import ExportPlan, Plan, Severity
from rivet_core.redact import redact
from rivet_core.sources import SqlSource
from rivet_core.state.store import utc_now
from rivet_core.types import ColumnInfo, Fidelity

if TYPE_CHECKING:  # --preflight only: loaded when asked for (it brings the manifest reader)
    from rivet_core.runner.preflight_check import ExportPreflight

BAD = frozenset({Fidelity.LOSSY, Fidelity.UNSUPPORTED})
"""Fidelities ``--strict`` refuses."""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "check", help="validate the config and plan; with --type-report, map every column",
        description="Load the config, build the plan and print every diagnostic "
        "(rejected / warning / info). Exit status 4 when an export would be rejected. "
        "--type-report also connects to the source and maps each export's columns with a "
        "zero-row probe of its query; --preflight asks the source for each export's size "
        "and the plans of the statements its mode sends, and gives a verdict (nothing is "
        "exported).",
    )
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--type-report", action="store_true",
                        help="connect to the source and report, per export and column, the "
                             "source type, Arrow type, fidelity and notes")
    parser.add_argument("--preflight", action="store_true",
                        help="connect to the source and report, per export, the estimated "
                             "rows and bytes, the server's plan for the statements the "
                             "mode sends, whether an index serves the cursor or chunk "
                             "column, and a verdict (ok, heavy, dangerous, unknown) with "
                             "recommendations")
    parser.add_argument("--strict", action="store_true",
                        help="with --type-report: exit 6 when a column is lossy or "
                             "unsupported; with --preflight: exit 6 when an export is "
                             "dangerous")
    parser.set_defaults(handler=handle)


@attrs.frozen(kw_only=True)
class ExportTypes:
    """The type report of one export: its columns, or why the probe failed."""

    export: str
    columns: list[ColumnInfo]
    error: str | None = None
    hint: str | None = None

    def bad(self) -> list[ColumnInfo]:
        return [c for c in self.columns if c.fidelity in BAD]

    def as_dict(self) -> dict[str, object]:
        return {"export": self.export, "columns": [c.as_dict() for c in self.columns],
                "error": self.error, "hint": self.hint}


@attrs.frozen(kw_only=True)
class TypeReport:
    source: str
    """Where the probe connected, safe to print."""
    exports: list[ExportTypes]

    def failed(self) -> bool:
        return any(e.error is not None for e in self.exports)

    def bad(self) -> list[ColumnInfo]:
        return [c for e in self.exports for c in e.bad()]


def handle(args: argparse.Namespace, console: Console) -> int:
    if args.strict and not (args.type_report or args.preflight):
        raise UsageError("--strict applies to the type report and the preflight",
                         hint="add --type-report or --preflight")
    plan = plan_for(args.config, args.params, args.exports)
    tls = source_tls(plan)
    report = type_report(plan) if args.type_report else None
    preflight = preflight_report(plan) if args.preflight else None
    destinations = None
    if args.preflight:
        # What `rivet run` probes before reading: a wrong bucket or an unwritable
        # directory fails here too.
        from rivet_core.probe import Status, destination_checks

        destinations = destination_checks(plan)
    if args.json:
        result = as_json(plan)
        if tls is not None:
            result["source"] = tls.as_dict()
        if report is not None:
            result["type_report"] = {"source": report.source,
                                     "exports": [e.as_dict() for e in report.exports]}
        if preflight is not None:
            result["preflight"] = preflight.as_dict()
        if destinations is not None:
            result["destinations"] = [c.as_dict() for c in destinations]
        console.json(result)
    else:
        if tls is not None:
            print_source_tls(console, tls)
        print_plan(console, plan)
        if report is not None:
            print_type_report(console, report, strict=args.strict)
        if preflight is not None:
            print_preflight(console, preflight, strict=args.strict)
        if destinations is not None:
            console.print()
            console.print("destinations (a probe object written, read back and deleted):")
            for check in destinations:
                console.print("  " + check.render().replace("\n", "\n  "))
    if plan.rejected():
        return ExitCode.PLAN_REJECTED
    if (report is not None and report.failed()) or (preflight is not None
                                                      and preflight.failed()):
        return ExitCode.RUN_FAILED
    if destinations is not None and any(c.status is Status.FAIL for c in destinations):
        return ExitCode.RUN_FAILED
    if args.strict and ((report is not None and report.bad())
                        or (preflight is not None and preflight.dangerous())):
        return ExitCode.CHECK_FAILED
    return ExitCode.OK


# ----------------------------------------------------------------------------------- TLS


@attrs.frozen(kw_only=True)
class SourceTLS:
    """The source's effective TLS, from its resolved settings (nothing is connected)."""

    type: str
    location: str
    mode: str | None = None
    """``disable``, ``require``, ``verify-ca``, ``verify-full``, or ``prefer`` (no TLS
    settings); None when the source has no network connection settings."""
    summary: str | None = None
    origin: str | None = None
    ca_file: str | None = None
    warning: str | None = None
    error: str | None = None
    """Why the settings could not be resolved."""

    def as_dict(self) -> dict[str, object]:
        return {"type": self.type, "location": self.location,
                "tls": {"mode": self.mode, "summary": self.summary, "origin": self.origin,
                        "ca_file": self.ca_file, "warning": self.warning,
                        "error": self.error}}


def source_tls(plan: Plan) -> SourceTLS | None:
    """The effective TLS of the source the exports read, or None without exports."""
    if not plan.exports:
        return None
    first = plan.exports[0]
    context = SourceContext(config_dir=plan.loaded.config.directory)
    with first.source.spec.factory(first.source_options, context) as source:
        kind = first.source.spec.name
        if not (isinstance(source, SqlSource)
                and isinstance(first.source_options, ConnectionConfig)):
            return SourceTLS(type=kind, location=source.display_name())
        try:
            params = source.connection_params()
        except RivetError as exc:
            return SourceTLS(type=kind, location=source.display_name(),
                             error=redact(exc.message))
        return SourceTLS(
            type=kind, location=source.display_name(), mode=params.tls_mode or "prefer",
            summary=params.tls_summary(),
            origin=params.tls_origin if params.tls_mode else None,
            ca_file=params.ca_file if params.tls_verified() else None,
            warning=params.unverified_warning(kind))


def print_source_tls(console: Console, tls: SourceTLS) -> None:
    console.print(f"source: {tls.type} {tls.location}")
    if tls.error is not None:
        console.print(f"  TLS: unknown ({tls.error})")
    elif tls.summary is not None:
        console.print(f"  TLS: {tls.summary}")
    if tls.warning is not None:
        console.print(f"  [warning] {tls.warning}")


# ---------------------------------------------------------------------------- type report


def type_report(plan: Plan) -> TypeReport:
    """Describe every planned export's query on one source connection."""
    if not plan.exports:
        return TypeReport(source="", exports=[])
    first = plan.exports[0]
    context = SourceContext(config_dir=plan.loaded.config.directory)
    source: Source = first.source.spec.factory(first.source_options, context)
    with source:
        return TypeReport(source=source.display_name(),
                          exports=[_probe(source, p) for p in plan.exports])


def _probe(source: Source, plan: ExportPlan) -> ExportTypes:
    options = ReadOptions(column_types=plan.column_types,
                          statement_timeout_s=plan.tuning.statement_timeout_s,
                          lock_timeout_s=plan.tuning.lock_timeout_s)
    query = Query(sql=plan.sql, label=f"export {plan.name!r}")
    try:
        columns = source.describe(query, options)
    except UnsupportedTypeError as exc:
        # Not a failure of the probe: the report shows the unsupported columns.
        if exc.columns:
            return ExportTypes(export=plan.name, columns=list(exc.columns))
        return ExportTypes(export=plan.name, columns=[], error=redact(exc.message),
                           hint=exc.hint)
    except RivetError as exc:
        return ExportTypes(export=plan.name, columns=[], error=redact(exc.message),
                           hint=exc.hint)
    return ExportTypes(export=plan.name, columns=columns + _meta_columns(plan))


def _meta_columns(plan: ExportPlan) -> list[ColumnInfo]:
    """The columns ``meta_columns`` appends, as the files will carry them."""
    meta = plan.config.meta_columns
    if meta is None or not meta.any():
        return []
    from rivet_core.meta import meta_fields

    return [ColumnInfo(name=f.name, source_type="(meta column)", arrow_type=f.type,
                       fidelity=Fidelity.EXACT, note="appended by meta_columns")
            for f in meta_fields(meta)]


_MARKS = {Fidelity.EXACT: "exact", Fidelity.WIDENED: "widened", Fidelity.LOSSY: "✗ lossy",
          Fidelity.UNSUPPORTED: "✗ unsupported"}


def arrow_text(column: ColumnInfo) -> str:
    """The Arrow type as the report shows it: ``string (json)`` for a logical type, ``—``
    for none."""
    if column.arrow_type is None:
        return "—"
    text = str(column.arrow_type)
    return f"{text} ({column.logical_type})" if column.logical_type else text


def print_type_report(console: Console, report: TypeReport, *, strict: bool) -> None:
    console.print()
    console.print(f"type report (zero-row probe on {report.source}):")
    for export in report.exports:
        console.print()
        console.print(f"{export.export}:")
        if export.error is not None:
            console.print(f"  probe failed: {export.error}")
            if export.hint:
                console.print(f"    hint: {export.hint}")
            continue
        rows = [("Column", "Source type", "Arrow type", "Fidelity", "Notes")]
        rows += [(c.name, c.source_type, arrow_text(c), _MARKS[c.fidelity], c.note)
                 for c in export.columns]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            console.print(("  " + "  ".join(cells) + "  " + row[4]).rstrip())
    bad = report.bad()
    lossy = sum(c.fidelity is Fidelity.LOSSY for c in bad)
    unsupported = len(bad) - lossy
    failed = sum(e.error is not None for e in report.exports)
    console.print()
    verdict = "OK" if not bad and not failed else ("FAILED" if strict or failed else "WARNING")
    console.print(f"type report {verdict}: {len(report.exports)} export(s), {lossy} lossy "
                  f"column(s), {unsupported} unsupported column(s), {failed} probe(s) failed")


# ------------------------------------------------------------------------------ preflight


@attrs.frozen(kw_only=True)
class PreflightReport:
    source: str
    """Where the statements were planned, safe to print."""
    exports: list[ExportPreflight]

    def failed(self) -> bool:
        return any(e.error is not None for e in self.exports)

    def dangerous(self) -> list[ExportPreflight]:
        return [e for e in self.exports if e.verdict == "dangerous"]

    def counts(self) -> dict[str, int]:
        verdicts = [e.verdict for e in self.exports if e.error is None]
        counts = {v: verdicts.count(v) for v in ("ok", "heavy", "dangerous", "unknown")}
        counts["failed"] = len(self.exports) - len(verdicts)
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "exports": [e.as_dict() for e in self.exports],
                "summary": self.counts()}


def preflight_report(plan: Plan) -> PreflightReport:
    """The preflight of every planned export, on one source connection; an export the
    planner rejected is not asked about."""
    from rivet_core.runner.preflight_check import ExportPreflight, preflight_export, stored_cursors

    if not plan.exports:
        return PreflightReport(source="", exports=[])
    first = plan.exports[0]
    config_dir = plan.loaded.config.directory
    stored = stored_cursors(config_dir, plan.loaded.config.state)
    now, rejected = utc_now(), plan.rejected_exports()
    source: Source = first.source.spec.factory(first.source_options,
                                               SourceContext(config_dir=config_dir))
    with source:
        return PreflightReport(source=source.display_name(), exports=[
            ExportPreflight(export=p.name, mode=p.config.mode,
                            error="rejected by the planner", hint="see the diagnostics")
            if p.name in rejected else
            preflight_export(source, p, stored_cursor=stored.get(p.name), now=now)
            for p in plan.exports])


_VERDICTS = {"ok": "ok", "heavy": "HEAVY", "dangerous": "DANGEROUS", "unknown": "unknown"}


def print_preflight(console: Console, report: PreflightReport, *, strict: bool) -> None:
    from rivet_core.runner.preflight_check import describe_size

    console.print()
    console.print(f"preflight (plans from {report.source}):")
    for export in report.exports:
        console.print()
        on = f" on {export.column}" if export.column else ""
        console.print(f"{export.export}: {export.mode}{on}")
        if export.error is not None:
            console.print(f"  preflight failed: {export.error}")
            if export.hint:
                console.print(f"    hint: {export.hint}")
            continue
        estimate = export.estimate
        origin = f" (from the {estimate.origin})" if estimate.origin else ""
        console.print(f"  estimate: {describe_size(estimate)}{origin}")
        for statement in export.statements:
            console.print(f"  {statement.role}:")
            if statement.steps is None:
                console.print("    (no plan: the source's dialect cannot explain or read it)")
            for step in statement.steps or ():
                console.print("    " + "  " * step.depth + step.text)
        assessment = export.assessment
        assert assessment is not None
        use = assessment.index
        if export.column is not None:
            found = ("unknown" if use.serves is None else use.index if use.serves
                     else f"none (full scan of {', '.join(use.full_scans)})")
            console.print(f"  index on {export.column}: {found}")
        console.print(f"  verdict: {_VERDICTS[assessment.verdict]} — {assessment.reason}")
        for recommendation in assessment.recommendations:
            console.print(f"  recommend: {recommendation.render()}")
        for note in assessment.notes:
            console.print(f"  note: {note}")
    counts = report.counts()
    console.print()
    verdict = ("FAILED" if counts["failed"] or (strict and counts["dangerous"])
               else "WARNING" if counts["dangerous"] or counts["heavy"] else "OK")
    console.print(f"preflight {verdict}: {len(report.exports)} export(s), "
                  + ", ".join(f"{n} {v}" for v, n in counts.items()))


# ---------------------------------------------------------------------------------- plan


def as_json(plan: Plan) -> dict[str, object]:
    return {
        "config": str(plan.loaded.config.path),
        "ok": not plan.rejected(),
        "exports": [
            {
                "name": p.name,
                "mode": p.config.mode,
                "source": p.source.spec.name,
                "format": p.format.spec.name,
                "compression": {"codec": p.compression.codec, "level": p.compression.level},
                "destination": p.destination.spec.name,
                "commit_protocol": p.capabilities.commit_protocol.value,
                "max_file_bytes": p.max_file_bytes,
                "tuning": {"profile": p.tuning.profile, "batch_size": p.tuning.batch_size,
                           "statement_timeout_s": p.tuning.statement_timeout_s,
                           "max_retries": p.tuning.max_retries},
                "sql": p.sql,
            }
            for p in plan.exports
        ],
        "diagnostics": [d.as_dict() for d in plan.diagnostics],
    }


def print_plan(console: Console, plan: Plan) -> None:
    for p in plan.exports:
        codec = p.compression.codec + (f"({p.compression.level})" if p.compression.level else "")
        console.print(
            f"{p.name}: {p.config.mode} {p.source.spec.name} → {p.format.spec.name}/{codec} → "
            f"{p.destination.spec.name} ({p.capabilities.commit_protocol.value}), "
            f"profile {p.tuning.profile}, batch {p.tuning.batch_size:,} rows"
        )
    for d in plan.diagnostics:
        console.print(d.render())
    rejected = len(plan.rejected())
    warnings = sum(d.severity is Severity.WARNING for d in plan.diagnostics)
    verdict = "REJECTED" if rejected else "OK"
    console.print(f"{verdict}: {len(plan.exports)} export(s), {rejected} rejected, "
                  f"{warnings} warning(s)")
