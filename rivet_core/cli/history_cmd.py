"""``rivet journal`` and ``rivet metrics``: what past runs did, from the state store."""

from __future__ import annotations

import argparse
import json

import attrs

from rivet_core.cli.common import Console, positive_int
from rivet_core.cli.state_cmd import _open
from rivet_core.config.values import format_bytes
from rivet_core.errors import ExitCode


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    journal = commands.add_parser(
        "journal", help="the step-by-step event log of recent runs",
        description="Every step a run took (run started, file committed, cursor advanced, "
        "chunk completed, retry, run finished), newest runs last.")
    journal.add_argument("-c", "--config", default="rivet.toml", metavar="PATH")
    journal.add_argument("-e", "--export", metavar="NAME", help="only this export")
    journal.add_argument("--run-id", metavar="ID", help="only this run")
    journal.add_argument("-l", "--last", type=positive_int, default=5, metavar="N",
                         help="the last N runs (default 5)")
    journal.add_argument("--json", action="store_true", help="print as JSON")
    journal.set_defaults(handler=show_journal)

    metrics = commands.add_parser(
        "metrics", help="run history: status, rows, files, bytes, duration, peak memory",
        description="One line per run, newest first.")
    metrics.add_argument("-c", "--config", default="rivet.toml", metavar="PATH")
    metrics.add_argument("-e", "--export", metavar="NAME", help="only this export")
    metrics.add_argument("-l", "--last", type=positive_int, default=20, metavar="N",
                         help="the last N runs (default 20)")
    metrics.add_argument("--json", action="store_true", help="print as JSON")
    metrics.set_defaults(handler=show_metrics)


def show_journal(args: argparse.Namespace, console: Console) -> int:
    store, names = _open(args)
    try:
        events = store.journal(export_name=args.export, run_id=args.run_id, limit=100_000)
    finally:
        store.close()
    events = [e for e in events if e.export_name in names]
    run_ids: list[str] = []
    for event in events:
        if event.run_id not in run_ids:
            run_ids.append(event.run_id)
    keep = set(run_ids[-args.last:]) if args.run_id is None else set(run_ids)
    events = [e for e in events if e.run_id in keep]
    if args.json:
        console.json({"events": [attrs.asdict(e) for e in events]})
        return ExitCode.OK
    current = None
    for e in events:
        if e.run_id != current:
            current = e.run_id
            console.print(f"{e.export_name}  run {e.run_id}")
        details = "  ".join(f"{k}={_shown(v)}" for k, v in e.data.items() if v is not None)
        console.print(f"  {e.at}  {e.event:<18} {details}")
    if not events:
        console.print("no journal events")
    return ExitCode.OK


def show_metrics(args: argparse.Namespace, console: Console) -> int:
    store, names = _open(args)
    try:
        runs = [r for r in store.runs(args.export, limit=args.last * 4 + 100)
                if r.export_name in names][: args.last]
    finally:
        store.close()
    if args.json:
        console.json({"runs": [attrs.asdict(r) for r in runs]})
        return ExitCode.OK
    console.print(f"{'EXPORT':<20} {'STATUS':<8} {'ROWS':>12} {'FILES':>5} {'BYTES':>10} "
                  f"{'DURATION':>9} {'RSS MiB':>8}  RUN ID")
    for r in runs:
        console.print(f"{r.export_name:<20} {r.status:<8} {r.rows:>12,} {r.files:>5} "
                      f"{format_bytes(r.bytes):>10} {r.duration_ms / 1000:>8.1f}s "
                      f"{r.peak_rss_mb or 0:>8.1f}  {r.run_id}")
        if r.error:
            console.print(f"    error: {r.error}")
    return ExitCode.OK


def _shown(value: object) -> str:
    """A journal value as text: scalars as they are, lists and tables as compact JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)
