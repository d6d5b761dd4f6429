"""``rivet check``: validate the config and the plan without touching anything."""

from __future__ import annotations

import argparse

from rivet_core.cli.common import Console, add_config_arguments, plan_for
from rivet_core.errors import ExitCode
from rivet_core.planner import Plan, Severity


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "check", help="validate the config and plan; connects to nothing, writes nothing",
        description="Load the config, build the plan and print every diagnostic "
        "(rejected / warning / info). Exit status 4 when an export would be rejected.",
    )
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    plan = plan_for(args.config, args.params, args.exports)
    if args.json:
        console.json(as_json(plan))
    else:
        print_plan(console, plan)
    return ExitCode.PLAN_REJECTED if plan.rejected() else ExitCode.OK


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
