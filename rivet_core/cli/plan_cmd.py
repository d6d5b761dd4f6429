"""``rivet plan`` and ``rivet apply``: seal what a run would do, then run exactly that.

``rivet plan`` builds the plan as ``rivet run`` would, then decides now what a run decides
when it starts (each chunked export's boundaries, by the chunked mode's own planning; each
incremental export's cursor; each time-window export's window start) and seals it, with the
facts it depends on, into a JSON artifact (:mod:`rivet_core.sealed`). ``rivet apply`` reads
the artifact, gathers the same facts again, refuses a stale plan with every reason (or,
with ``--force``, says what it overrides), and runs the exports with the sealed values
through the same path as ``rivet run`` (:func:`rivet_core.cli.run_cmd.execute`).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from rivet_core import __version__
from rivet_core.backends import SourceContext
from rivet_core.cli.common import Console, add_config_arguments, load, plan_for
from rivet_core.cli.run_cmd import execute
from rivet_core.config.values import parse_duration
from rivet_core.errors import ExitCode, PlanRejected, RivetError
from rivet_core.planner import Plan, Severity, build_plan
from rivet_core.redact import redact
from rivet_core.runner.export import ExportRun
from rivet_core.runner.modes.chunked import planned_chunks
from rivet_core.runner.modes.time_window import window_start
from rivet_core.runner.results import RunContext
from rivet_core.sealed import (
    Current,
    CurrentExport,
    SealedChunks,
    SealedExport,
    SealedPlan,
    StalePlan,
    digest_of,
    read_plan,
    show_cursor,
    stale_reasons,
    write_plan,
)
from rivet_core.state import StateStore, open_store
from rivet_core.state.store import iso, utc_now

if TYPE_CHECKING:
    import datetime as dt

    from rivet_core.config.models import ExportConfig
    from rivet_core.plan import ExportPlan
    from rivet_core.plugins import Registered
    from rivet_core.specs import SourceSpec

DEFAULT_MAX_AGE = "24h"


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    plan = commands.add_parser(
        "plan", help="seal what a run would do now (chunk boundaries, cursors, windows) in a file",
        description="Build the plan as `rivet run` would and seal it: the resolved query of "
        "each export, the chunk boundaries of chunked exports (computed now, on the source), "
        "the stored cursor of incremental exports, the window start of time-window exports, "
        "and digests of the config and query files. `rivet apply FILE` runs exactly that "
        "later. Nothing is exported or recorded; no password is in the plan.")
    add_config_arguments(plan)
    plan.add_argument("-o", "--output", metavar="FILE",
                      help="write the plan to FILE (replaced atomically), for `rivet apply`")
    plan.add_argument("--json", action="store_true",
                      help="print the plan artifact as JSON on stdout")
    plan.set_defaults(handler=handle_plan)

    apply = commands.add_parser(
        "apply", help="run a sealed plan exactly as planned; refuse it when it is stale",
        description="Run the exports of a plan written by `rivet plan -o FILE`, with the "
        "chunk boundaries, cursors and window starts sealed in it. A stale plan is refused "
        "with every reason, before anything runs (exit 4): older than --max-age, made by "
        "another Rivet version, config or query file changed, resolved query or source "
        "changed, an incremental cursor moved. --force runs it anyway and says what it "
        "overrode; a plan altered after sealing, or naming an export that is gone or runs "
        "another mode, is refused even then.")
    apply.add_argument("plan", metavar="PLAN", help="the plan file (`rivet plan -o PLAN`)")
    apply.add_argument("-c", "--config", metavar="PATH",
                       help="config file (default: the one the plan was made from)")
    apply.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", dest="params",
                       help="value for ${KEY} in the config, as given to `rivet plan` "
                            "(repeatable)")
    apply.add_argument("--force", action="store_true",
                       help="run a stale plan anyway, saying which reasons were overridden "
                            "(an incremental export whose cursor moved starts from the "
                            "stored cursor)")
    apply.add_argument("--max-age", metavar="DURATION", type=_duration,
                       default=parse_duration(DEFAULT_MAX_AGE),
                       help=f"refuse a plan older than this (default: {DEFAULT_MAX_AGE}; "
                            "e.g. 30m, 2h, 1d)")
    apply.add_argument("--json", action="store_true",
                       help="print the run summary as JSON on stdout")
    apply.add_argument("--summary-output", metavar="PATH",
                       help="also write the JSON summary to PATH")
    apply.add_argument("--reconcile", action="store_true",
                       help="as `rivet run --reconcile`")
    apply.add_argument("--validate", action="store_true",
                       help="as `rivet run --validate`")
    apply.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress line on stderr (default: when stderr is a terminal)")
    apply.set_defaults(handler=handle_apply, resume=False, init_state=False)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ------------------------------------------------------------------------------- plan


def handle_plan(args: argparse.Namespace, console: Console) -> int:
    plan = plan_for(args.config, args.params, args.exports)
    for diagnostic in plan.diagnostics:
        if diagnostic.severity is not Severity.INFO:
            console.say(diagnostic.render())
    if plan.rejected():
        raise PlanRejected(
            f"the plan was rejected ({len(plan.rejected())} problem(s) above); nothing was "
            "sealed", hint=f"rivet check -c {args.config} shows every diagnostic")
    sealed, notes = seal(plan)
    document = sealed.document()
    if args.output:
        path = Path(args.output)
        try:
            write_plan(path, sealed)
        except OSError as exc:
            raise RivetError(f"cannot write the plan to {path}: {exc.strerror or exc}",
                             hint="choose a writable path with -o") from None
    for note in notes:
        console.say(f"note: {note}")
    if args.json:
        console.json(document)
    else:
        for line in describe(sealed):
            console.print(line)
    if args.output:
        console.say(f"plan written to {args.output} ({document['digest']}); run it with "
                    f"`rivet apply {args.output}`")
    elif not args.json:
        console.say("hint: nothing was written; add -o FILE to seal this plan for "
                    "`rivet apply FILE`")
    return ExitCode.OK


def seal(plan: Plan) -> tuple[SealedPlan, list[str]]:
    """The sealed form of ``plan``: what every export's run would decide if it started now.
    Chunked exports are planned on the source, by the chunked mode's own statements."""
    config = plan.loaded.config
    created = utc_now()
    first = plan.exports[0]
    # Resolving the source's display name registers its password for redaction.
    display = source_display(first.source, first.source_options, config.directory)
    notes: list[str] = []
    state = open_store(config.directory, state=config.state, inspect=True)
    try:
        exports = [_seal_export(p, state, created, notes, config.directory)
                   for p in plan.exports]
    finally:
        state.close()
    sealed = SealedPlan(tool_version=__version__, created_at=created,
                        config_path=str(config.path), config_sha256=file_sha256(config.path),
                        source_type=config.source.type, source_display=display,
                        exports=tuple(exports))
    return attrs.evolve(sealed, digest=digest_of(sealed.body())), notes


def _seal_export(p: ExportPlan, state: StateStore, created: dt.datetime,
                 notes: list[str], config_dir: Path) -> SealedExport:
    query_file, query_sha = query_file_digest(p.config, config_dir)
    sealed = SealedExport(name=p.name, mode=p.config.mode, query=redact(p.sql),
                          query_file=query_file, query_file_sha256=query_sha)
    if p.config.mode == "chunked":
        run = ExportRun(p, RunContext(config_dir=config_dir, state=state))
        column, chunks = planned_chunks(run)
        notes += [f"export {p.name!r}: {w}" for w in run.result.warnings]
        return attrs.evolve(sealed, chunks=SealedChunks(column=column, chunks=tuple(chunks)))
    if p.config.mode == "incremental":
        stored = state.cursor(p.name)
        return attrs.evolve(sealed, cursor=stored.value if stored else None)
    if p.config.mode == "time_window":
        return attrs.evolve(sealed, window_start=window_start(created, p.config.days_window or 0))
    return sealed


def describe(plan: SealedPlan) -> list[str]:
    """The plan for people: one line per export, after the plan's own facts."""
    lines = [f"plan {plan.digest}",
             f"  made {iso(plan.created_at)} by rivet {plan.tool_version}",
             f"  config {plan.config_path} (sha256 {plan.config_sha256[:16]}…)",
             f"  source {plan.source_type} {plan.source_display}"]
    for e in plan.exports:
        if e.chunks is not None:
            keyed = [c for c in e.chunks.chunks if not c.null_keys]
            keys = f", keys [{keyed[0].lo}..{keyed[-1].hi})" if keyed else ", no keys"
            nulls = " + NULL keys" if len(keyed) < len(e.chunks.chunks) else ""
            what = (f"{len(e.chunks.chunks)} chunk(s) on {e.chunks.column}{keys}{nulls}")
        elif e.mode == "incremental":
            what = (f"rows after cursor {show_cursor(e.cursor)}" if e.cursor is not None
                    else "every row (no stored cursor)")
        elif e.window_start is not None:
            what = f"rows from {iso(e.window_start)}"
        else:
            what = "every row"
        lines.append(f"  {e.name}  {e.mode}  {what}")
    return lines


# ------------------------------------------------------------------------------ apply


def handle_apply(args: argparse.Namespace, console: Console) -> int:
    # A config named on the command line is read first, so a broken one is the same config
    # error as for every other command.
    given = load(args.config, args.params) if args.config is not None else None
    sealed = read_plan(Path(args.plan))
    registry, loaded = given or load(sealed.config_path, args.params)
    config = loaded.config
    known = {e.name for e in config.exports}
    plan = build_plan(loaded, registry, only=[e.name for e in sealed.exports
                                              if e.name in known])
    current = gather(plan, registry.sources[config.source.type])
    reasons = stale_reasons(sealed, current, max_age_s=args.max_age)
    blocking = [r for r in reasons if not r.overridable] if args.force else reasons
    if blocking:
        forceable = all(r.overridable for r in blocking)
        raise StalePlan(
            f"plan {args.plan} is stale: " + "; ".join(r.message for r in blocking),
            hint=(f"make a new plan with `rivet plan -c {config.path} -o {args.plan}`"
                  + (", or pass --force to apply this one anyway" if forceable
                     else "; --force cannot apply this one")))
    for reason in reasons:
        console.say(f"warning: --force: overriding: {reason.message}")
    if reasons:
        sealed = sealed.overriding(reasons, {name: e.cursor
                                             for name, e in current.exports.items()})
    args.config = str(config.path)
    return execute(plan, args, console, sealed=sealed)


def gather(plan: Plan, source: Registered[SourceSpec]) -> Current:
    """What a sealed plan is compared with: the same facts, taken now."""
    config = plan.loaded.config
    display = source_display(source, config.source.options, config.directory)
    state = open_store(config.directory, state=config.state)
    try:
        cursors = {p.name: state.cursor(p.name) for p in plan.exports}
    finally:
        state.close()
    exports = {}
    for p in plan.exports:
        query_file, query_sha = query_file_digest(p.config, config.directory)
        stored = cursors[p.name]
        exports[p.name] = CurrentExport(mode=p.config.mode, query=redact(p.sql),
                                        query_file=query_file, query_file_sha256=query_sha,
                                        cursor=stored.value if stored else None)
    return Current(now=utc_now(), tool_version=__version__, config_path=str(config.path),
                   config_sha256=file_sha256(config.path), source_type=config.source.type,
                   source_display=display, exports=exports)


# ------------------------------------------------------------------------------ facts


def source_display(source: Registered[SourceSpec], options: Any, config_dir: Path) -> str:
    """The source as people see it (never its password); no connection is opened."""
    built = source.spec.factory(options, SourceContext(config_dir=config_dir))
    try:
        return redact(built.display_name())
    finally:
        built.close()


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise RivetError(f"cannot read {path}: {exc.strerror or exc}") from None


def query_file_digest(export: ExportConfig, config_dir: Path) -> tuple[str | None, str | None]:
    """``(query_file, sha256 of its bytes)``, or ``(None, None)`` without one."""
    if export.query_file is None:
        return None, None
    return export.query_file, file_sha256(config_dir / export.query_file)

