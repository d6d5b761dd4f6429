"""The command line and the run loop: seed, warm up, run every (tool, format) alternately,
verify, report.

Order of work, per database and table: seed if needed; one untimed read of the whole table
(the physical-limit command) so every tool starts from the same warm cache; then for run
``i`` in 1..N every (tool, format) job once, the job list rotated by ``i`` so no tool always
runs first or right after another one. Each run gets a fresh directory; its output is read
back, counted and deleted before the next run starts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rivetbench import fixtures, refenv, report, rivetcfg, seed, tools
from rivetbench.fixtures import Table
from rivetbench.measure import Sampler, run_child
from rivetbench.settings import (
    DEFAULT_RESULTS_DIR,
    DEFAULT_WORK_DIR,
    REPO_DIR,
    RIVET_BIN,
    Database,
    database,
)
from rivetbench.verify import read_back

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    all_tools = [t.name for t in tools.REFERENCE_TOOLS] + list(rivetcfg.VARIANTS)
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Seed the benchmark tables and measure rivet against the reference tools. "
        "Run with the repository's .venv: .venv/bin/python bench/run.py --all",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--all", action="store_true",
                      help="seed, then run every table, database, format and tool (the default)")
    mode.add_argument("--smoke", action="store_true",
                      help="small tables (narrow 50k, wide 10k, types 4k), 1 run: a 1-2 minute "
                      "check that every tool works end to end")
    mode.add_argument("--memory", action="store_true",
                      help="memory growth: Rivet on narrow 1M vs 10M rows (Parquet), peak RSS")
    parser.add_argument("--seed-only", action="store_true",
                        help="seed the tables (of --smoke / --memory if given) and stop")
    parser.add_argument("--runs", type=int, help="runs per (tool, table, format); default 3, "
                        "1 with --smoke")
    parser.add_argument("--tables", type=_csv_list, default=list(fixtures.KINDS),
                        help=f"table kinds, comma-separated (default: {','.join(fixtures.KINDS)})")
    parser.add_argument("--db", choices=["pg", "mysql", "both"], default="both")
    parser.add_argument("--formats", type=_csv_list, default=list(tools.FORMATS),
                        help="parquet,csv (default both)")
    parser.add_argument("--tools", type=_csv_list,
                        help=f"only these tools (default: all but the extra Rivet variants): "
                        f"{', '.join(all_tools)}")
    parser.add_argument("--skip-tools", type=_csv_list, default=[],
                        help="leave these tools out, e.g. dlt,naive")
    parser.add_argument("--skip-slow", action="store_true",
                        help="leave out the tools that take minutes per run (dlt, naive)")
    parser.add_argument("--rivet-variants", type=_csv_list,
                        default=list(rivetcfg.DEFAULT_VARIANTS),
                        help="Rivet variants to run (default: rivet): "
                        + ", ".join(rivetcfg.VARIANTS))
    parser.add_argument("--skip-seed", action="store_true",
                        help="do not seed; the tables must exist")
    parser.add_argument("--reseed", action="store_true",
                        help="seed again even when the tables are current")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the untimed read of each table before its first run")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before a run is killed (default 1800, 300 with --smoke)")
    parser.add_argument("--output", type=Path,
                        help="report path without extension; .json and .md are written "
                        "(default bench/results/<UTC timestamp>)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="where runs write their files (deleted after each run)")
    parser.add_argument("--keep-output", action="store_true",
                        help="keep each run's directory (output files, logs, rivet.toml)")
    parser.add_argument("--list-tools", action="store_true", help="list the tools and exit")
    parser.add_argument("--render", type=Path, nargs="+", metavar="JSON",
                        help="print the Markdown of saved reports (.json or .partial.json; "
                        "several are merged, the first one's header is used) and exit")
    args = parser.parse_args(argv)
    unknown = [t for t in (args.tools or []) + args.skip_tools if t not in all_tools]
    unknown += [v for v in args.rivet_variants if v not in rivetcfg.VARIANTS]
    unknown += [k for k in args.tables if k not in fixtures.KINDS]
    unknown += [f for f in args.formats if f not in tools.FORMATS]
    if unknown:
        parser.error(f"unknown name(s): {', '.join(unknown)}")
    if args.runs is None:
        args.runs = 1 if args.smoke else 3
    if args.timeout is None:
        args.timeout = 300.0 if args.smoke else 1800.0
    return args


def select_tools(args: argparse.Namespace) -> list[tools.Tool]:
    variants = list(args.rivet_variants)
    if args.tools:
        variants = [t for t in args.tools if t in rivetcfg.VARIANTS]
    candidates = list(tools.REFERENCE_TOOLS) + tools.rivet_tools(variants)
    if args.memory:
        candidates = tools.rivet_tools(variants)
    chosen = []
    for tool in candidates:
        if args.tools and tool.name not in args.tools:
            continue
        if tool.name in args.skip_tools or (args.skip_slow and tool.slow):
            continue
        chosen.append(tool)
    return chosen


def select_tables(args: argparse.Namespace) -> list[Table]:
    if args.memory:
        memory_rows = (10_000, 50_000) if args.smoke else fixtures.MEMORY_ROWS
        return [Table("narrow", rows) for rows in memory_rows]
    sizes = fixtures.SMOKE_ROWS if args.smoke else fixtures.FULL_ROWS
    return [Table(kind, sizes[kind]) for kind in args.tables]


# ---------------------------------------------------------------------------- one run

def _error_text(text: str, limit: int = 1500) -> str:
    """The telling part of a failed tool's output: after a Python traceback, the exception
    lines; otherwise the last lines around the last line that mentions an error."""
    lines = [_ANSI.sub("", line).rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line.strip() and set(line.strip()) - set("^~ ")]
    traceback = [i for i, line in enumerate(lines) if line.startswith("Traceback ")]
    if traceback:
        body = lines[traceback[-1] + 1:]
        frames = [i for i, line in enumerate(body) if line.startswith(" ")]
        tail = body[frames[-1] + 1:] if frames else body
        return "\n".join(tail)[-limit:]
    interesting = [i for i, line in enumerate(lines)
                   if re.search(r"error|fatal|failed|exception|panic", line, re.IGNORECASE)]
    start = max(0, (interesting[-1] - 3) if interesting else len(lines) - 8)
    return "\n".join(lines[start:start + 12])[-limit:]


def _read(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")


def _reported(tool: tools.Tool, stdout: str) -> tuple[int | None, dict[str, Any]]:
    """Rows the tool says it wrote, and Rivet's JSON summary when there is one."""
    if tool.name == "pg-copy":
        found = re.search(r"COPY (\d+)", stdout)
        return (int(found.group(1)) if found else None), {}
    if tool.kind == "rivet":
        try:
            summary = json.loads(stdout)
        except json.JSONDecodeError:
            return None, {}
        return summary.get("totals", {}).get("rows"), summary
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line).get("rows"), {}
            except json.JSONDecodeError:
                break
    return None, {}


def run_once(tool: tools.Tool, fmt: str, db: Database, table: Table, run: int,
             expected: int, run_dir: Path, args: argparse.Namespace,
             install_failures: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "db": db.kind, "table": table.name, "table_kind": table.kind,
        "rows_expected": expected, "tool": tool.name, "tool_kind": tool.kind,
        "format": fmt, "run": run, "status": report.OK, "error": None,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    missing = [p for p in tool.packages if p in install_failures]
    if missing:
        record.update(status="FAILED", error="not installed: " + "; ".join(
            f"{p}: {install_failures[p]}" for p in missing))
        return record
    run_dir.mkdir(parents=True)
    invocation = tools.invocation(tool, db, table, fmt, run_dir)
    sampler = Sampler(db)
    sampler.start()
    try:
        result = run_child(invocation.argv, invocation.env, cwd=run_dir,
                           stdout_path=invocation.stdout_path,
                           stderr_path=invocation.stderr_path, timeout_s=args.timeout)
    finally:
        sampler.stop()
    stdout = _read(invocation.stdout_path)
    rows_reported, summary = _reported(tool, stdout)
    record.update(
        returncode=result.returncode, wall_s=result.wall_s, user_s=result.user_s,
        sys_s=result.sys_s, cpu_s=result.user_s + result.sys_s, max_rss_mb=result.max_rss_mb,
        longest_statement_s=sampler.longest_statement_s, longest_xact_s=sampler.longest_xact_s,
        max_backends=sampler.max_backends, samples=sampler.samples,
        rss_source=result.rss_source,
        sampler_error=sampler.error, rows_reported=rows_reported,
    )
    if summary:
        exports = summary.get("exports") or [{}]
        record["rivet_peak_rss_mb"] = exports[0].get("peak_rss_mb")
    if result.timed_out:
        record.update(status="TIMEOUT", error=f"killed after {args.timeout:.0f}s")
    elif result.returncode != 0:
        error = ""
        if summary:
            exports = summary.get("exports") or [{}]
            error = " ".join(str(exports[0].get(k) or "") for k in ("error", "hint")).strip()
        record.update(status="FAILED",
                      error=error or _error_text(_read(invocation.stderr_path) + "\n" + stdout)
                      or f"exit code {result.returncode}")
    if tool.kind == "limit":
        record.update(output_bytes=0, files=0, rows_verified=rows_reported)
    elif record["status"] != report.OK:
        record.update(rows_verified=None)
    else:
        output = read_back(invocation.data_dir)
        record.update(output_bytes=output.bytes, files=output.files,
                      rows_verified=output.rows)
        if output.error:
            record.update(status="FAILED-VERIFY", error=output.error)
        elif output.rows != expected:
            record.update(status="FAILED-VERIFY",
                          error=f"the files hold {output.rows:,} rows; the table has "
                          f"{expected:,} (the tool reported {rows_reported})")
    if record["status"] == report.OK and tool.name == "pg-copy" and rows_reported != expected:
        record.update(status="FAILED-VERIFY",
                      error=f"COPY reported {rows_reported} rows; the table has {expected:,}")
    if not args.keep_output:
        shutil.rmtree(run_dir, ignore_errors=True)
    return record


def _describe(record: dict[str, Any]) -> str:
    if "wall_s" not in record:
        return f"{record['status']}: {record['error']}"
    text = (f"{record['status']} {record['wall_s']:.2f}s cpu {record['cpu_s']:.1f}s "
            f"rss {record['max_rss_mb']:.0f}MB longest {record['longest_statement_s']:.2f}s "
            f"backends {record['max_backends']}")
    if record["status"] != report.OK:
        first = (record["error"] or "").strip().splitlines()
        text += f" — {first[-1][:200] if first else ''}"
    return text


# ---------------------------------------------------------------------------- metadata

def _command_output(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (result.stdout or result.stderr).strip()


def _server_version(db: Database) -> str:
    try:
        if db.kind == "pg":
            with seed.pg_connect(db, database="postgres") as conn:
                row = conn.execute("SELECT version()").fetchone()
                return str(row[0]) if row else "?"
        with seed.mysql_connect(db) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            return str(cur.fetchone()[0])
    except Exception as exc:
        return f"unavailable ({exc})"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _git_revision() -> str:
    return _command_output(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"])


# ---------------------------------------------------------------------------- the report

def render_markdown(meta: dict[str, Any], summaries: list[report.Summary],
                    not_applicable: dict[str, list[str]], memory: bool) -> str:
    load = meta["loadavg_start"], meta["loadavg_end"]
    lines = [
        f"# Rivet benchmark — {meta['started_at']}", "",
        f"- machine: {meta['cpus']} CPUs, {meta['memory_gib']:.0f} GiB, {meta['platform']}; "
        f"load average (1 min) {load[0]:.2f} at start, {load[1]:.2f} at end",
        f"- rivet {meta['rivet_version']} (git {meta['git']}); "
        f"servers: {'; '.join(meta['servers'].values())}",
        f"- reference tools: {', '.join(f'{k} {v}' for k, v in meta['ref_versions'].items())}",
        f"- {meta['runs']} run(s) per (tool, table, format), alternating; "
        + ("one untimed full read of each table before its first run; " if meta["warmup"]
           else "no warm-up; ") + "page cache not dropped",
        "- wall = median seconds of the runs that passed; CPU = user+sys of the tool's process "
        "(median); peak RSS = ru_maxrss of the tool's process (median); longest stmt / xact / "
        "backends = maximum seen by the server-side sampler (every 50 ms)",
        f"- total time {meta['duration_s'] / 60:.1f} min, of which seeding "
        f"{sum(meta['seed_seconds'].values()) / 60:.1f} min",
        "",
    ]
    if memory and len(meta["tables"]) == 2:
        small, large = sorted(meta["tables"], key=meta["tables"].get)
        lines += [report.render_memory(summaries, (small, large)), ""]
    for db, table, fmt in report.sections(summaries):
        lines += [report.render_section(summaries, db, table, fmt, not_applicable.get(db)), ""]
    return "\n".join(lines)


def _output_stem(args: argparse.Namespace, stamp: str) -> Path:
    if args.output is None:
        return DEFAULT_RESULTS_DIR / stamp
    path = Path(args.output)
    return path.with_suffix("") if path.suffix in (".json", ".md") else path


# ---------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render_saved(args.render)
    chosen = select_tools(args)
    if args.list_tools:
        for tool in list(tools.REFERENCE_TOOLS) + tools.rivet_tools(list(rivetcfg.VARIANTS)):
            print(f"{tool.name:18} {tool.kind:9} {','.join(tool.dbs):9} {tool.description}")
        return 0
    if not RIVET_BIN.exists() and any(t.kind == "rivet" for t in chosen):
        log(f"{RIVET_BIN} not found: install Rivet first (see README.md, Quickstart)")
        return 2
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    loadavg_start = os.getloadavg()[0]
    if loadavg_start > 0.5:
        log(f"note: load average {loadavg_start:.2f}: the machine is busy; timings will be noisy")
    dbs = [database(kind) for kind in (["pg", "mysql"] if args.db == "both" else [args.db])]
    tables = select_tables(args)
    formats = ["parquet"] if args.memory else args.formats

    install_failures: dict[str, str] = {}
    if any(t.kind == "reference" for t in chosen) and not args.seed_only:
        install_failures = refenv.ensure(log)

    seed_seconds: dict[str, float] = {}
    expected: dict[tuple[str, str], int] = {}
    for db in dbs:
        seed.ensure_database(db)
        for table in tables:
            if not args.skip_seed:
                seconds = seed.seed_table(db, table, log, force=args.reseed)
                if seconds is not None:
                    seed_seconds[f"{db.kind}.{table.name}"] = seconds
            expected[(db.kind, table.name)] = seed.count_rows(db, table)
    if args.seed_only:
        log(f"seeding done in {time.perf_counter() - started:.0f}s")
        return 0

    work_dir = args.work_dir / stamp
    stem = _output_stem(args, stamp)
    stem.parent.mkdir(parents=True, exist_ok=True)
    partial = stem.with_suffix(".partial.json")
    runs: list[dict[str, Any]] = []
    not_applicable: dict[str, list[str]] = {}
    for db in dbs:
        jobs = [(tool, fmt) for tool in chosen
                for fmt in [*formats, tools.LIMIT_FORMAT] if tool.supports(db.kind, fmt)]
        not_applicable[db.kind] = [
            f"{t.name} (no {'PostgreSQL' if db.kind == 'pg' else 'MySQL'} support)"
            for t in chosen if db.kind not in t.dbs and t.kind != "limit"]
        for table in tables:
            rows = expected[(db.kind, table.name)]
            if not args.no_warmup:
                warm_dir = work_dir / f"warmup-{db.kind}-{table.name}"
                warm_dir.mkdir(parents=True)
                warm = tools.warmup_invocation(db, table, warm_dir)
                log(f"warm-up read of {db.kind}.{table.name}")
                run_child(warm.argv, warm.env, cwd=warm_dir, stdout_path=warm.stdout_path,
                          stderr_path=warm.stderr_path, timeout_s=args.timeout)
                shutil.rmtree(warm_dir, ignore_errors=True)
            for run in range(1, args.runs + 1):
                shift = (run - 1) % len(jobs) if jobs else 0
                for tool, fmt in jobs[shift:] + jobs[:shift]:
                    label = fmt if fmt != tools.LIMIT_FORMAT else "nofile"
                    run_dir = work_dir / f"{db.kind}-{table.name}-{label}-{tool.name}-{run}"
                    record = run_once(tool, fmt, db, table, run, rows, run_dir, args,
                                      install_failures)
                    runs.append(record)
                    # Kept current after every run: a run killed halfway still has its data.
                    partial.write_text(json.dumps({"runs": runs}, default=str) + "\n")
                    log(f"[{db.kind} {table.name} {fmt} run {run}] {tool.name}: "
                        f"{_describe(record)}")
    shutil.rmtree(work_dir, ignore_errors=True)

    meta: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": time.perf_counter() - started,
        "argv": sys.argv[1:] if argv is None else argv,
        "mode": "memory" if args.memory else "smoke" if args.smoke else "full",
        "runs": args.runs, "warmup": not args.no_warmup,
        "tables": {t.name: t.rows for t in tables},
        "cpus": os.cpu_count(), "memory_gib": _memory_gib() or 0.0,
        "platform": platform.platform(),
        "loadavg_start": loadavg_start, "loadavg_end": os.getloadavg()[0],
        "rivet_version": _command_output([str(RIVET_BIN), "--version"]),
        "git": _git_revision(),
        "servers": {db.kind: _server_version(db).split(" on ")[0] for db in dbs},
        "ref_versions": refenv.versions(),
        "seed_seconds": seed_seconds,
        "install_failures": install_failures,
        "tools": {t.name: t.description for t in chosen},
    }
    meta["not_applicable"] = not_applicable
    summaries = report.summarize(runs)
    markdown = render_markdown(meta, summaries, not_applicable, args.memory)
    stem.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "summary": summaries, "runs": runs}, indent=2, default=str)
        + "\n")
    stem.with_suffix(".md").write_text(markdown + "\n")
    partial.unlink(missing_ok=True)
    print(markdown)
    log(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


def render_saved(paths: list[Path]) -> int:
    """Print the Markdown report of saved JSON reports again: after a change to the report's
    layout, to read the ``.partial.json`` of an interrupted run, or to merge runs taken in
    several invocations (their runs are pooled; the first file with a header gives it)."""
    runs: list[dict[str, Any]] = []
    meta: dict[str, Any] | None = None
    for path in paths:
        data = json.loads(path.read_text())
        runs += data["runs"]
        if meta is None and data.get("meta"):
            meta = data["meta"]
    summaries = report.summarize(runs)
    if meta is None:
        lines = [f"# Rivet benchmark — partial results from {paths[0].name}", ""]
        for db, table, fmt in report.sections(summaries):
            lines += [report.render_section(summaries, db, table, fmt), ""]
        print("\n".join(lines))
        return 0
    print(render_markdown(meta, summaries, meta.get("not_applicable", {}),
                          meta.get("mode") == "memory"))
    return 0
