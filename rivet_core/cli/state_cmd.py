"""``rivet state``: inspect and reset durable state (cursors, files, chunk checkpoints)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

import attrs

from rivet_core.cli.common import Console, positive_int
from rivet_core.config.loader import load_export_names, load_state_config
from rivet_core.config.models import STATE_URL_SCHEMES
from rivet_core.config.values import format_bytes
from rivet_core.errors import ExitCode, StateError, UsageError
from rivet_core.redact import redact
from rivet_core.runner import cursor as cursors
from rivet_core.state import StateStore, open_store
from rivet_core.state.backend import open_location, postgres_location, resolve_location
from rivet_core.state.store import STATE_FILE, SQLiteStateStore


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "state", help="inspect or reset cursors, files and chunk checkpoints",
        description="Read or change the state store (.rivet_state.db beside the config, or "
        "the PostgreSQL store [state] or RIVET_STATE_URL names). These commands only read the "
        "config's export names and [state]; they connect to no source.")
    sub = parser.add_subparsers(dest="state_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Any, *, export: str = "optional") -> None:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-c", "--config", default="rivet.toml", metavar="PATH",
                       help="config file (default: ./rivet.toml)")
        if export == "required":
            p.add_argument("-e", "--export", required=True, metavar="NAME")
        elif export == "optional":
            p.add_argument("-e", "--export", metavar="NAME", help="only this export")
        p.add_argument("--json", action="store_true", help="print as JSON")
        p.set_defaults(handler=handler)
        if name == "unlock":
            p.add_argument("--force", action="store_true",
                           help="remove a lock held on another host (Rivet cannot see whether "
                                "that process still runs: make sure it does not)")
        if name == "files":
            p.add_argument("-l", "--last", type=positive_int, default=50, metavar="N",
                           help="newest N files (default 50)")
        if name == "migrate":
            p.add_argument("--to", metavar="URL",
                           help="the PostgreSQL store to copy into (default: the one [state] or "
                                "RIVET_STATE_URL names; a URL here shows its password to "
                                "other users of this machine)")
            p.add_argument("--schema", metavar="NAME",
                           help="its schema (default: [state] schema, or rivet)")
            p.add_argument("--force", action="store_true",
                           help="replace what the target store holds")

    action("show", "cursor, last run, open chunk run and lock of each export", show)
    action("reset", "forget an incremental export's cursor (the next run exports everything)",
           reset, export="required")
    action("files", "the file manifest: committed files with rows, bytes, SHA-256", files)
    action("chunks", "the latest chunk run of an export and its tasks", chunks,
           export="required")
    action("reset-chunks", "discard an export's chunk checkpoints (the next run starts over)",
           reset_chunks, export="required")
    action("unlock", "remove the lock a dead run left (a process on this host that is gone, or "
           "with --force one on another host)", unlock, export="required")
    action("migrate", "copy the SQLite state beside the config into a PostgreSQL state store",
           migrate, export="none")


def export_names(config_path: str) -> tuple[Path, list[str]]:
    """The config's directory and export names, without resolving anything else (so state
    can be inspected where the source's secrets are not available). A file ``rivet check``
    could not read, or whose ``source`` or ``exports`` have the wrong shape, is the same
    config error here."""
    return load_export_names(config_path)


def _open(args: argparse.Namespace, *, inspect: bool = True
          ) -> tuple[StateStore, list[str]]:
    """The state store and the export names the command is about. ``inspect``: the
    command only reads (a read-only state file is then fine)."""
    directory, names = export_names(args.config)
    export = getattr(args, "export", None)
    if export is not None and export not in names:
        raise UsageError(f"export {export!r} not found in {Path(args.config).name}",
                         hint=f"known exports: {', '.join(names) or 'none'}; "
                              "see `rivet state show`")
    state = load_state_config(args.config)
    return (open_store(directory, state=state, inspect=inspect),
            ([export] if export else names))


def show(args: argparse.Namespace, console: Console) -> int:
    store, names = _open(args)
    try:
        rows: list[dict[str, Any]] = []
        for name in names:
            cursor = store.cursor(name)
            runs = store.runs(name, limit=1)
            chunk_run = store.chunk_run(name, status="in_progress")
            lock = store.lock(name)
            rows.append({
                "export": name,
                "cursor": cursors.display(cursor.value) if cursor else None,
                "cursor_raw": cursor.value if cursor else None,
                "cursor_run_id": cursor.run_id if cursor else None,
                "last_run": attrs.asdict(runs[0]) if runs else None,
                "chunk_run_in_progress": chunk_run.run_id if chunk_run else None,
                "locked_by": attrs.asdict(lock) if lock else None,
            })
    finally:
        store.close()
    if args.json:
        console.json({"exports": rows})
        return ExitCode.OK
    for row in rows:
        last = row["last_run"]
        console.print(f"{row['export']}")
        console.print(f"  cursor:    {row['cursor'] or '-'}")
        console.print("  last run:  " + (f"{last['run_id']} {last['status']} {last['rows']:,} "
                                           f"rows {last['finished_at']}" if last else "-"))
        if row["chunk_run_in_progress"]:
            console.print(f"  chunk run: {row['chunk_run_in_progress']} in progress "
                          "(rivet run --resume continues it)")
        holder = row["locked_by"]
        if holder:
            console.print(f"  running:   pid {holder['pid']} on {holder['host']} since "
                          f"{holder['acquired_at']}")
    return ExitCode.OK


def reset(args: argparse.Namespace, console: Console) -> int:
    store, _ = _open(args, inspect=False)
    try:
        before = store.cursor(args.export)
        with store.transaction() as tx:
            tx.refuse_while_running(args.export)
            removed = tx.reset_cursor(args.export)
            if removed:
                tx.journal("-", args.export, "cursor_reset",
                           before=before.value if before else None)
    finally:
        store.close()
    if args.json:
        console.json({"export": args.export, "reset": removed})
    else:
        console.print(f"{args.export}: cursor " + (
            f"reset (was {cursors.display(before.value)})" if before else "was not set"))
    return ExitCode.OK


def files(args: argparse.Namespace, console: Console) -> int:
    store, _ = _open(args)
    try:
        records = store.files(args.export, limit=args.last)
    finally:
        store.close()
    if args.json:
        console.json({"files": [attrs.asdict(r) for r in records]})
        return ExitCode.OK
    for r in records:
        console.print(f"{r.created_at}  {r.run_id}  {r.file_name}  {r.rows:,} rows  "
                      f"{format_bytes(r.bytes)}  sha256:{r.sha256[:16]}…")
    if not records:
        console.print("no files recorded")
    return ExitCode.OK


def chunks(args: argparse.Namespace, console: Console) -> int:
    store, _ = _open(args)
    try:
        run = store.chunk_run(args.export)
        tasks = store.chunk_tasks(run.run_id) if run else []
    finally:
        store.close()
    if args.json:
        console.json({"chunk_run": attrs.asdict(run) if run else None,
                      "tasks": [attrs.asdict(t) for t in tasks]})
        return ExitCode.OK
    if run is None:
        console.print(f"{args.export}: no chunk run recorded (chunk_checkpoint = true records "
                      "them)")
        return ExitCode.OK
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.status] = counts.get(t.status, 0) + 1
    console.print(f"{args.export}: chunk run {run.run_id} {run.status}, plan {run.plan_hash}, "
                  + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    console.print(f"{'IDX':>5}  {'STATUS':<9}  {'ATT':>3}  {'ROWS':>10}  RANGE")
    for t in tasks:
        lo = cursors.display(t.lo) if t.lo else "NULL keys"
        hi = cursors.display(t.hi) if t.hi else ""
        rows = f"{t.rows:,}" if t.rows is not None else "-"
        console.print(f"{t.idx:>5}  {t.status:<9}  {t.attempts:>3}  {rows:>10}  {lo}"
                      + (f" .. {hi}" if hi else ""))
        if t.last_error:
            console.print(f"       error: {t.last_error}")
    return ExitCode.OK


def reset_chunks(args: argparse.Namespace, console: Console) -> int:
    store, _ = _open(args, inspect=False)
    try:
        with store.transaction() as tx:
            tx.refuse_while_running(args.export)
            removed = tx.delete_chunk_runs(args.export)
            tx.journal("-", args.export, "chunks_reset", chunk_runs=removed)
    finally:
        store.close()
    if args.json:
        console.json({"export": args.export, "chunk_runs_removed": removed})
    else:
        console.print(f"{args.export}: removed {removed} chunk run(s)")
    return ExitCode.OK


def unlock(args: argparse.Namespace, console: Console) -> int:
    """Remove an export's lock whose run is gone. A lock of a dead process on this host is
    taken over by the next run anyway; one taken on another host (a container, another
    machine) can only be judged by the operator, hence ``--force``."""
    store, _ = _open(args, inspect=False)
    try:
        with store.transaction() as tx:
            holder = tx.live_lock(args.export)
            # A store that sees holders on other hosts knows this one is alive: no --force.
            elsewhere = (holder is not None and holder.host != socket.gethostname()
                         and not store.sees_remote_holders)
            if holder is not None and not (args.force and elsewhere):
                raise StateError(
                    f"export {args.export!r} is locked by run {holder.run_id} (pid "
                    f"{holder.pid} on {holder.host}, since {holder.acquired_at})"
                    + ("" if elsewhere else ", and that process is still running"),
                    hint=("if that process is gone (a stopped container, another machine), "
                          f"remove the lock with `rivet state unlock -e {args.export} "
                          "--force`") if elsewhere else
                    "stop that run first (SIGTERM lets it abort its open files)")
            lock = store.lock(args.export)
            if lock is not None:
                tx.release_lock(args.export, lock.run_id)
                tx.journal(lock.run_id, args.export, "lock_removed", pid=lock.pid,
                           host=lock.host, forced=bool(args.force))
    finally:
        store.close()
    if args.json:
        console.json({"export": args.export, "removed": lock is not None,
                      "run_id": lock.run_id if lock else None})
    elif lock is None:
        console.print(f"{args.export}: not locked")
    else:
        console.print(f"{args.export}: removed the lock of run {lock.run_id} (pid {lock.pid} "
                      f"on {lock.host})")
    return ExitCode.OK



def migrate(args: argparse.Namespace, console: Console) -> int:
    """Copy ``.rivet_state.db`` into a PostgreSQL store (the target must be empty, unless
    ``--force``); the SQLite file is left as it was."""
    from rivet_core.state.copy import copy_state

    directory, _ = export_names(args.config)
    state = load_state_config(args.config)
    schema = args.schema or (state.schema if state is not None else "rivet")
    if args.to is not None:
        if not args.to.startswith(STATE_URL_SCHEMES):
            raise UsageError(f"--to {redact(args.to)!r} is not a postgresql:// URL",
                             hint="rivet state migrate --to postgresql://user@host:5432/db")
        target = postgres_location(args.to, schema, origin="--to")
    else:
        target = resolve_location(directory, state)
        if target.backend != "postgresql":
            raise UsageError("no PostgreSQL state store to migrate into",
                             hint="name it with --to URL, or with [state] url / url_env or "
                                  "RIVET_STATE_URL (then runs use it too)")
        if args.schema:
            target = attrs.evolve(target, schema=args.schema)
    path = directory / STATE_FILE
    if not path.is_file():
        raise StateError(f"no SQLite state to migrate: {path} does not exist",
                         hint="run `rivet state migrate` in the project whose state it is")
    source = SQLiteStateStore(path)
    try:
        destination = open_location(target)
        try:
            copied = copy_state(source, destination, force=args.force)
        finally:
            destination.close()
    finally:
        source.close()
    if args.json:
        console.json({"source": str(path), "target": target.display(), "copied": copied})
        return ExitCode.OK
    console.print(f"copied {path} to {target.display()}")
    console.print("  " + ", ".join(f"{table} {n:,}" for table, n in copied.items()))
    console.print(f"  {path.name} is unchanged; runs use the PostgreSQL store while [state] "
                  "or RIVET_STATE_URL names it")
    return ExitCode.OK
