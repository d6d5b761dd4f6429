"""``rivet worker`` and ``rivet run --distributed``: chunked exports read by many processes.

``rivet run --distributed`` plans each chunked export as a local run would, records the
chunks in the PostgreSQL state store and queues one job per chunk, then returns (or, with
``--wait``, follows the run to its end). ``rivet worker`` reads queued chunks until stopped.
The queue is :mod:`rivet_core.distributed`; the runner's side is
:mod:`rivet_core.runner.distributed`; docs/scale.md is the user's guide.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rivet_core.cli.common import Console, add_config_arguments, plan_for, positive_int
from rivet_core.errors import ExitCode, PlanRejected, UsageError
from rivet_core.planner import Plan, Severity

WAIT_POLL_S = 1.0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "worker", help="read the chunks of distributed runs (rivet run --distributed)",
        description="Run a worker of distributed chunked runs: it takes chunk jobs from the "
        "task queue in the PostgreSQL state store, reads each chunk into its own files and "
        "records it, and the worker that records a run's last chunk certifies the run. "
        "Run any number of them, on any machines, with the same config. SIGTERM stops it: "
        "the chunks being read are aborted and handed to other workers.",
    )
    add_config_arguments(parser, exports=False)
    parser.add_argument("--concurrency", type=positive_int, default=1, metavar="N",
                        help="chunks read at once, each on its own thread and source "
                             "connection (default 1)")
    parser.add_argument("--heartbeat", type=_seconds, default=10.0, metavar="SECONDS",
                        help="how often the worker tells the queue it is alive (default 10); "
                             "a worker silent for 3 heartbeats is taken for dead and its "
                             "chunks are handed out again")
    parser.add_argument("--init", action="store_true",
                        help="create the task queue's tables in the state schema and exit "
                             "(the first `rivet run --distributed` or worker also does)")
    parser.set_defaults(handler=handle)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _checked(plan: Plan, console: Console, config: str) -> None:
    for diagnostic in plan.diagnostics:
        if diagnostic.severity is not Severity.INFO:
            console.say(diagnostic.render())
    if plan.rejected():
        raise PlanRejected(
            f"the plan was rejected ({len(plan.rejected())} problem(s) above); nothing was run",
            hint=f"rivet check -c {config} shows every diagnostic")


def handle(args: argparse.Namespace, console: Console) -> int:
    from rivet_core import distributed
    from rivet_core.runner.distributed import ChunkWorker
    from rivet_core.runner.results import RunContext
    from rivet_core.runner.sourcepool import SourcePool
    from rivet_core.state import open_location, resolve_location

    plan = plan_for(args.config, args.params, None)
    config = plan.loaded.config
    location = resolve_location(config.directory, config.state)
    distributed.require_postgres(location)
    distributed.require()
    _checked(plan, console, args.config)
    created = distributed.ensure_schema(location)
    if args.init:
        console.say(f"task queue {'created' if created else 'already there'} in "
                    f"{location.display()}")
        return ExitCode.OK
    store = open_location(location)
    sources = SourcePool(limit=args.concurrency)
    ctx = RunContext(config_dir=config.directory, state=store, progress=False,
                     stop=args.stop, sources=sources)
    worker = ChunkWorker({p.name: p for p in plan.exports}, ctx)
    console.say(f"rivet worker: {len(plan.exports)} export(s) of {config.path}, "
                f"concurrency {args.concurrency}, state {location.display()}")
    try:
        distributed.serve(location, worker.run_chunk, concurrency=args.concurrency,
                          heartbeat=args.heartbeat, stalled_after=3 * args.heartbeat,
                          stop=args.stop)
    finally:
        sources.close()
        store.close()
    if args.stop.is_set():
        console.say("rivet worker: stopped")
        return ExitCode.INTERRUPTED
    return ExitCode.OK


def run_distributed(args: argparse.Namespace, console: Console) -> int:
    """``rivet run --distributed [--wait]``."""
    from rivet_core import distributed
    from rivet_core.runner.distributed import refusals, start_run
    from rivet_core.runner.results import RunContext
    from rivet_core.state import open_location, resolve_location

    for flag in ("reconcile", "validate", "parallel_exports", "init_state"):
        if getattr(args, flag, None):
            raise UsageError(f"--{flag.replace('_', '-')} does not apply to --distributed",
                             hint="`rivet validate` checks a finished distributed run")
    plan = plan_for(args.config, args.params, args.exports, resume=args.resume)
    config = plan.loaded.config
    location = resolve_location(config.directory, config.state)
    distributed.require_postgres(location)
    distributed.require()
    _checked(plan, console, args.config)
    problems = [p for export in plan.exports for p in refusals(export)]
    if problems:
        raise UsageError("; ".join(problems),
                         hint="choose the chunked exports with -e NAME (docs/scale.md)")
    distributed.ensure_schema(location)
    store = open_location(location)
    ctx = RunContext(config_dir=config.directory, state=store, progress=False,
                     resume=args.resume, stop=args.stop)
    summary: list[dict[str, Any]] = []
    try:
        for export in plan.exports:
            started = start_run(export, ctx)
            queued = distributed.enqueue(location, started)
            console.say(f"{started.export}: run {started.run_id}: {started.total} chunk(s), "
                        f"{queued} queued" + (" (resumed)" if started.resumed else ""))
            summary.append({"export": started.export, "run_id": started.run_id,
                            "chunks": started.total, "queued": queued})
        if not args.wait:
            if args.json:
                console.json({"status": "queued", "runs": summary})
            console.say("the workers (`rivet worker -c CONFIG`) read the chunks; "
                        "`rivet state chunks -e NAME` shows where a run stands")
            return ExitCode.OK
        return _wait(ctx, summary, console, as_json=args.json)
    finally:
        store.close()


def _wait(ctx: Any, runs: list[dict[str, Any]], console: Console, *, as_json: bool) -> int:
    """Follow the runs until each is recorded finished: a progress line per change (chunks
    done of total, rows), then the outcome. Exit 0 when every run succeeded, else 1."""
    from rivet_core.runner.distributed import RUNNING, progress

    shown: dict[str, tuple[int, int, int]] = {}
    while True:
        states = [progress(ctx, r["export"], r["run_id"]) for r in runs]
        for p in states:
            key = (p.completed, p.failed, p.rows)
            if shown.get(p.export) != key:
                shown[p.export] = key
                failed = f", {p.failed} failed" if p.failed else ""
                console.say(f"{p.export}: {p.completed}/{p.total} chunks{failed}, "
                            f"{p.rows:,} rows")
        if all(p.status != RUNNING for p in states):
            break
        time.sleep(WAIT_POLL_S)
    for p in states:
        console.say(f"{'✓' if p.status in ('success', 'skipped') else '✗'} {p.export}  "
                    f"{p.status}  {p.rows:,} rows  run {p.run_id}")
        if p.error:
            console.say(f"    error: {p.error}")
    if as_json:
        console.json({"status": "success" if all(p.status != "failed" for p in states)
                      else "failed",
                      "runs": [{"export": p.export, "run_id": p.run_id, "status": p.status,
                                "chunks": p.total, "completed": p.completed,
                                "failed": p.failed, "rows": p.rows, "error": p.error}
                               for p in states]})
    return ExitCode.RUN_FAILED if any(p.status == "failed" for p in states) else ExitCode.OK
