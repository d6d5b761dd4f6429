"""``rivet doctor``: can this config's exports run here, now?

The config is loaded and planned as ``rivet check`` does (a config error exits 3 before any
probe). Then, with the probes of :mod:`rivet_core.probe`: the source (connection, server
version and time zone, read-only transaction, TLS, and a zero-row probe of each export's
query, which fails on a missing grant), and each export's destination (the credentials it
resolved, list / write / read back / delete of a probe object under the export's prefix,
free space on local disk). One line per check, ``[OK]``, ``[WARN]`` or ``[FAIL]``, with a
hint under each that is not OK; exit 1 when any check fails.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rivet_core.cli.common import Console, add_config_arguments, plan_for
from rivet_core.errors import ExitCode, RivetError

if TYPE_CHECKING:
    from rivet_core.planner import Plan
    from rivet_core.probe import Check


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "doctor", help="check that the source and every destination can be reached, read "
                       "and written",
        description="Probe what the exports of a config need, without exporting anything: "
                    "connect to the source (server version and time zone, read-only "
                    "transaction, TLS) and describe each export's query with a zero-row "
                    "probe (SELECT grants); for each export's destination, name the "
                    "credentials in use, then write a small probe object under its prefix, "
                    "read it back and delete it (local disk: and the free space). One line "
                    "per check: [OK], [WARN] or [FAIL]. Exit 1 when a check fails.")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    from rivet_core.probe import Status, destination_checks

    plan = plan_for(args.config, args.params, args.exports)
    checks = _plan_checks(plan) + _source_checks(plan) + destination_checks(plan)
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    if args.json:
        console.json({"config": str(plan.loaded.config.path), "ok": not failed,
                      "checks": [c.as_dict() for c in checks],
                      "summary": {"ok": len(checks) - failed - warned, "warn": warned,
                                  "fail": failed}})
    else:
        for check in checks:
            console.print(check.render())
        console.print(f"{'FAILED' if failed else 'OK'}: {len(checks) - failed - warned} ok, "
                      f"{warned} warning(s), {failed} failed")
        if failed:
            console.say("some checks failed: fix them (each [FAIL] line has a hint), then "
                        f"run rivet doctor -c {args.config} again")
    return ExitCode.RUN_FAILED if failed else ExitCode.OK


def _plan_checks(plan: Plan) -> list[Check]:
    from rivet_core.probe import Check, Status

    rejected = plan.rejected()
    if not rejected:
        return [Check(subject="config", name="plan", status=Status.OK,
                      detail=f"{len(plan.exports)} export(s) planned")]
    return [Check(subject=d.export or "config", name="plan", status=Status.FAIL,
                  detail=f"{d.toml_path}: {d.message} ({d.rule})", hint=d.hint)
            for d in rejected]


def _source_checks(plan: Plan) -> list[Check]:
    from rivet_core.backends import Query, ReadOptions, SourceContext
    from rivet_core.probe import Check, ExportQuery, Status, probe_source

    if not plan.exports:
        return []
    first = plan.exports[0]
    context = SourceContext(config_dir=plan.loaded.config.directory)
    exports = [ExportQuery(name=p.name, query=Query(sql=p.sql, label=f"export {p.name!r}"),
                           options=ReadOptions(column_types=p.column_types,
                                               statement_timeout_s=30, lock_timeout_s=5))
               for p in plan.exports]
    try:
        with first.source.spec.factory(first.source_options, context) as source:
            return probe_source(source, first.dialect, exports)
    except RivetError as exc:
        return [Check(subject="source", name="connect", status=Status.FAIL,
                      detail=exc.message, hint=exc.hint)]
