"""The command line and the run loop: seed, warm up, run every (tool, format) alternately,
verify, report.

Besides the main comparison, four shapes: ``--memory`` and ``--scaling`` (the same loop over
narrow tables of several sizes), ``--many-small`` (one process per tool over N small tables,
:func:`run_many_small`) and ``--startup`` (:mod:`rivetbench.startup`).

Order of work, per database and table: seed if needed; one untimed read of the whole table
(the physical-limit command) so every tool starts from the same warm cache; then for run
``i`` in 1..N every (tool, format) job once, the job list rotated by ``i`` so no tool always
runs first or right after another one. Each run gets a fresh directory; its output is read
back, counted and deleted before the next run starts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
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

from rivetbench import fixtures, plot, refenv, report, rivetcfg, seed, startup, tools
from rivetbench.fixtures import Table
from rivetbench.measure import Sampler, run_child
from rivetbench.report import error_text as _error_text
from rivetbench.settings import (
    DEFAULT_RESULTS_DIR,
    DEFAULT_WORK_DIR,
    PLOT_VENV,
    REPO_DIR,
    RIVET_BIN,
    Database,
    database,
)
from rivetbench.verify import read_back, table_mismatches


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _size_list(text: str) -> list[int]:
    try:
        return [fixtures.parse_size(part) for part in _csv_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shape_list(text: str) -> list[tuple[int, int]]:
    try:
        return [fixtures.parse_many_small_shape(part) for part in _csv_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
                      help="small tables (narrow 50k, wide 10k, types 4k, orders 50k), 1 run: a "
                      "few-minute check that every tool works end to end")
    mode.add_argument("--memory", action="store_true",
                      help="memory growth: Rivet on narrow 1M vs 10M rows (Parquet), peak RSS")
    mode.add_argument("--startup", action="store_true",
                      help="CLI start-up: rivet --version / --help / plugins / check / a "
                      "1,000-row run, --runs times each (default 10), plus one "
                      "-X importtime start: modules, import time, heavy packages loaded")
    mode.add_argument("--scaling", action="store_true",
                      help="Rivet (Parquet) and the physical limit on narrow tables of "
                      "--scaling-sizes rows: wall, rows/s, peak RSS per size, and a PNG plot")
    mode.add_argument("--many-small", action="store_true",
                      help="many small tables: ONE rivet process with one export per table "
                      "vs ONE DuckDB process with one COPY per table (--many-small-shapes)")
    parser.add_argument("--scaling-sizes", type=_size_list,
                        default=list(fixtures.SCALING_ROWS), metavar="1m,10m,50m",
                        help="--scaling: narrow table sizes (default 1m,10m,50m; 50m is "
                        "~4 GB on PostgreSQL)")
    parser.add_argument("--many-small-shapes", type=_shape_list,
                        default=list(fixtures.MANY_SMALL_SHAPES), metavar="20x50k,200x1k",
                        help="--many-small: TABLESxROWS shapes (default 20x50k,200x1k)")
    parser.add_argument("--plot", type=Path,
                        help="--scaling: the PNG to write (default: the report path with "
                        ".png); with --render: draw the plot of a saved scaling report")
    parser.add_argument("--seed-only", action="store_true",
                        help="seed the tables (of --smoke / --memory / --scaling / --many-small / "
                        "--startup if given) and stop")
    parser.add_argument("--runs", type=int, help="runs per (tool, table, format); default 3, "
                        "1 with --smoke, 10 with --startup")
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
        args.runs = 1 if args.smoke else 10 if args.startup else 3
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.timeout is None:
        args.timeout = 300.0 if args.smoke else 1800.0
    return args


def select_tools(args: argparse.Namespace) -> list[tools.Tool]:
    variants = list(args.rivet_variants)
    if args.tools:
        variants = [t for t in args.tools if t in rivetcfg.VARIANTS]
    candidates = list(tools.REFERENCE_TOOLS) + tools.rivet_tools(variants)
    limits = [t for t in tools.REFERENCE_TOOLS if t.kind == "limit"]
    if args.memory:
        candidates = tools.rivet_tools(variants)
    elif args.scaling:
        candidates = limits + tools.rivet_tools(variants)
    elif args.many_small:
        duckdb = [t for t in tools.REFERENCE_TOOLS if t.name == "duckdb"]
        candidates = limits + tools.rivet_tools(variants) + duckdb
    elif args.startup:
        candidates = []
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
    if args.scaling:
        return [Table("narrow", rows) for rows in sorted(set(args.scaling_sizes))]
    if args.many_small:
        found: list[Table] = []
        for count, rows in args.many_small_shapes:
            found += [t for t in fixtures.many_small_tables(count, rows) if t not in found]
        return found
    if args.startup:
        return [Table("narrow", fixtures.STARTUP_ROWS)]
    sizes = fixtures.SMOKE_ROWS if args.smoke else fixtures.FULL_ROWS
    return [Table(kind, sizes[kind]) for kind in args.tables]


# ---------------------------------------------------------------------------- one run

def _read(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")


def _reported(tool: tools.Tool, stdout: str) -> tuple[int | None, dict[str, Any]]:
    """Rows the tool says it wrote, and Rivet's JSON summary when there is one."""
    if tool.name == "pg-copy":
        found = re.findall(r"^COPY (\d+)", stdout, re.MULTILINE)
        return (sum(int(n) for n in found) if found else None), {}
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


def _rivet_error(summary: dict[str, Any]) -> str:
    """The first failed export's error and hint from Rivet's JSON summary."""
    exports = summary.get("exports") or [{}]
    failed = next((e for e in exports if e.get("error")), exports[0])
    return " ".join(str(failed.get(k) or "") for k in ("error", "hint")).strip()


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
    return execute(record, tool, db, invocation, run_dir, args)


def execute(record: dict[str, Any], tool: tools.Tool, db: Database,
            invocation: tools.Invocation, run_dir: Path, args: argparse.Namespace,
            expected_by_table: dict[str, int] | None = None) -> dict[str, Any]:
    """Run ``invocation`` measured, with the server sampled, then read its files back and
    check them against ``record["rows_expected"]`` (and, for a many-tables run, against
    ``expected_by_table``); fills ``record`` and deletes ``run_dir`` unless kept."""
    expected = record["rows_expected"]
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
    if summary and expected_by_table is None:
        exports = summary.get("exports") or [{}]
        record["rivet_peak_rss_mb"] = exports[0].get("peak_rss_mb")
    if result.timed_out:
        record.update(status="TIMEOUT", error=f"killed after {args.timeout:.0f}s")
    elif result.returncode != 0:
        error = _rivet_error(summary) if summary else ""
        record.update(status="FAILED",
                      error=error or _error_text(_read(invocation.stderr_path) + "\n" + stdout)
                      or f"exit code {result.returncode}")
    if tool.kind == "limit":
        record.update(output_bytes=0, files=0, rows_verified=rows_reported)
    elif record["status"] != report.OK:
        record.update(rows_verified=None)
    else:
        output = read_back(invocation.data_dir, by_table=expected_by_table is not None)
        record.update(output_bytes=output.bytes, files=output.files,
                      rows_verified=output.rows)
        mismatches = table_mismatches(expected_by_table, output.by_table or {}) \
            if expected_by_table is not None and not output.error else []
        if output.error:
            record.update(status="FAILED-VERIFY", error=output.error)
        elif output.rows != expected:
            record.update(status="FAILED-VERIFY",
                          error=f"the files hold {output.rows:,} rows; the table has "
                          f"{expected:,} (the tool reported {rows_reported})"
                          + (f"; {'; '.join(mismatches[:5])}" if mismatches else ""))
        elif mismatches:
            record.update(status="FAILED-VERIFY",
                          error=f"{len(mismatches)} table(s) wrong: {'; '.join(mismatches[:5])}")
    if record["status"] == report.OK and tool.name == "pg-copy" and rows_reported != expected:
        what = "the tables have" if expected_by_table is not None else "the table has"
        record.update(status="FAILED-VERIFY",
                      error=f"COPY reported {rows_reported} rows; {what} {expected:,}")
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


# ---------------------------------------------------------------------------- many small

def run_many_small(args: argparse.Namespace, db: Database, chosen: list[tools.Tool],
                   expected: dict[tuple[str, str], int], work_dir: Path,
                   install_failures: dict[str, str], runs: list[dict[str, Any]],
                   partial: Path) -> None:
    """Per shape: one untimed read of all its tables (the limit's process), then for run
    ``i`` every tool once, one process over all the shape's tables, rotated by ``i``."""
    fmt = "parquet"
    jobs = [t for t in chosen if db.kind in t.dbs]
    for count, rows_each in args.many_small_shapes:
        shape = fixtures.shape_label(count, rows_each)
        tables = fixtures.many_small_tables(count, rows_each)
        by_table = {t.name: expected[(db.kind, t.name)] for t in tables}
        total = sum(by_table.values())
        if not args.no_warmup:
            warm_dir = work_dir / f"warmup-{db.kind}-{shape}"
            warm_dir.mkdir(parents=True)
            limit = next(t for t in tools.REFERENCE_TOOLS
                         if t.kind == "limit" and db.kind in t.dbs)
            warm = tools.many_invocation(limit, db, tables, tools.LIMIT_FORMAT, warm_dir)
            log(f"warm-up read of the {count} tables of {db.kind} {shape}")
            run_child(warm.argv, warm.env, cwd=warm_dir, stdout_path=warm.stdout_path,
                      stderr_path=warm.stderr_path, timeout_s=args.timeout)
            shutil.rmtree(warm_dir, ignore_errors=True)
        for run in range(1, args.runs + 1):
            shift = (run - 1) % len(jobs) if jobs else 0
            for tool in jobs[shift:] + jobs[:shift]:
                tool_fmt = tools.LIMIT_FORMAT if tool.kind == "limit" else fmt
                record: dict[str, Any] = {
                    "db": db.kind, "table": shape, "table_kind": "many-small",
                    "tables": count, "rows_each": rows_each,
                    "rows_expected": total, "tool": tool.name, "tool_kind": tool.kind,
                    "format": tool_fmt, "run": run, "status": report.OK, "error": None,
                    "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                }
                missing = [p for p in tool.packages if p in install_failures]
                if missing:
                    record.update(status="FAILED", error="not installed: " + "; ".join(
                        f"{p}: {install_failures[p]}" for p in missing))
                else:
                    label = "nofile" if tool.kind == "limit" else fmt
                    run_dir = work_dir / f"{db.kind}-{shape}-{label}-{tool.name}-{run}"
                    run_dir.mkdir(parents=True)
                    invocation = tools.many_invocation(tool, db, tables, tool_fmt, run_dir)
                    execute(record, tool, db, invocation, run_dir, args,
                            expected_by_table=None if tool.kind == "limit" else by_table)
                runs.append(record)
                partial.write_text(json.dumps({"runs": runs}, default=str) + "\n")
                log(f"[{db.kind} {shape} {tool_fmt} run {run}] {tool.name}: "
                    f"{_describe(record)}")


# ---------------------------------------------------------------------------- the plot

def draw_plot(series: dict[str, Any], path: Path, title: str) -> str | None:
    """Draw the scaling PNG with matplotlib: imported here, only for this shape, from the
    harness's interpreter when it has it, else run by ``bench/.venv-plot`` (see
    :data:`rivetbench.settings.PLOT_VENV`). ``None`` when drawn, else why not."""
    if importlib.util.find_spec("matplotlib") is not None:
        try:
            plot.draw(series, path, title)
        except Exception as exc:
            return f"drawing {path} failed: {exc}"
        return None
    python = PLOT_VENV / "bin" / "python"
    if not python.exists():
        return plot.MISSING
    data = path.with_suffix(".plot.json")
    data.write_text(json.dumps({"title": title, "series": series}))
    try:
        result = subprocess.run([str(python), str(Path(plot.__file__).resolve()), str(data),
                                 str(path)], capture_output=True, text=True, timeout=300)
    finally:
        data.unlink(missing_ok=True)
    if result.returncode != 0:
        return (result.stderr.strip() or f"exit code {result.returncode}")[-1500:]
    return None


def _plot_title(meta: dict[str, Any]) -> str:
    return (f"Rivet scaling, narrow tables (Parquet) — {meta['started_at']}, "
            f"{meta['cpus']} CPUs, load {meta['loadavg_start']:.1f} to {meta['loadavg_end']:.1f}")


# ---------------------------------------------------------------------------- the report

def render_markdown(meta: dict[str, Any], summaries: list[report.Summary],
                    not_applicable: dict[str, list[str]],
                    startup_records: list[dict[str, Any]] | None = None) -> str:
    mode = meta.get("mode")
    load = meta["loadavg_start"], meta["loadavg_end"]
    if mode == "startup":
        method = [
            f"- {meta['runs']} start(s) of each command, alternating, "
            + ("after one untimed warm-up start of each; " if meta["warmup"] else "no warm-up; ")
            + "then one more start under `python -X importtime`",
            "- wall = milliseconds from starting the process to its exit (median and minimum "
            "of the starts that exited 0); peak RSS = ru_maxrss (median); modules / import ms "
            "/ yes-no = from the -X importtime start (every module imported, the sum of their "
            "own import times, the interpreter's `site` included)",
        ]
    else:
        per = "(tool, shape): one process over all the shape's tables" \
            if mode == "many-small" else "(tool, table, format)"
        method = [
            f"- {meta['runs']} run(s) per {per}, alternating; "
            + ("one untimed full read of each table before its first run; " if meta["warmup"]
               else "no warm-up; ") + "page cache not dropped",
            "- wall = median seconds of the runs that passed; CPU = user+sys of the tool's "
            "process (median); peak RSS = ru_maxrss of the tool's process (median); longest "
            "stmt / xact / backends = maximum seen by the server-side sampler (every 50 ms)",
        ]
    lines = [
        f"# Rivet benchmark — {meta['started_at']}", "",
        f"- machine: {meta['cpus']} CPUs, {meta['memory_gib']:.0f} GiB, {meta['platform']}; "
        f"load average (1 min) {load[0]:.2f} at start, {load[1]:.2f} at end",
        f"- rivet {meta['rivet_version']} (git {meta['git']}); "
        f"servers: {'; '.join(meta['servers'].values())}",
        f"- reference tools: {', '.join(f'{k} {v}' for k, v in meta['ref_versions'].items())}",
        *method,
        f"- total time {meta['duration_s'] / 60:.1f} min, of which seeding "
        f"{sum(meta['seed_seconds'].values()) / 60:.1f} min",
        "",
    ]
    if mode == "startup":
        summaries_startup = [report.summarize_startup(r) for r in startup_records or []]
        lines += [report.render_startup(summaries_startup), ""]
        return "\n".join(lines)
    if mode == "memory" and len(meta["tables"]) == 2:
        small, large = sorted(meta["tables"], key=meta["tables"].get)
        lines += [report.render_memory(summaries, (small, large)), ""]
    if mode == "scaling":
        plot_note = meta.get("plot") if not meta.get("plot_error") else \
            f"not drawn: {meta['plot_error']}"
        lines += [report.render_scaling(summaries, meta["tables"], plot_note), ""]
    if mode == "many-small":
        shapes = {label: shape["tables"] for label, shape in meta["many_small_shapes"].items()}
        lines += [report.render_many_small(summaries, shapes), ""]
    for db, table, fmt in report.sections(summaries):
        lines += [report.render_section(summaries, db, table, fmt, not_applicable.get(db)), ""]
    return "\n".join(lines)


def _output_stem(args: argparse.Namespace, stamp: str) -> Path:
    if args.output is None:
        return DEFAULT_RESULTS_DIR / stamp
    path = Path(args.output)
    return path.with_suffix("") if path.suffix in (".json", ".md") else path


def _mode(args: argparse.Namespace) -> str:
    for mode in ("memory", "startup", "scaling", "many_small", "smoke"):
        if getattr(args, mode):
            return mode.replace("_", "-")
    return "full"


# ---------------------------------------------------------------------------- main

def compile_bytecode() -> None:
    """Compile Rivet's modules to bytecode before anything is timed, as ``pip install`` does
    for an installed package: in an editable checkout, under ``PYTHONDONTWRITEBYTECODE=1``
    (set on some machines), every run would otherwise compile them again (about 0.2-0.4 s
    of each run's start-up)."""
    import compileall

    for package in ("rivet_core", "plugins"):
        compileall.compile_dir(REPO_DIR / package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render_saved(args.render, args.plot)
    chosen = select_tools(args)
    if args.list_tools:
        for tool in list(tools.REFERENCE_TOOLS) + tools.rivet_tools(list(rivetcfg.VARIANTS)):
            print(f"{tool.name:18} {tool.kind:9} {','.join(tool.dbs):9} {tool.description}")
        return 0
    if not RIVET_BIN.exists() and (args.startup or any(t.kind == "rivet" for t in chosen)):
        log(f"{RIVET_BIN} not found: install Rivet first (see README.md, Quickstart)")
        return 2
    compile_bytecode()
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    loadavg_start = os.getloadavg()[0]
    if loadavg_start > 0.5:
        log(f"note: load average {loadavg_start:.2f}: the machine is busy; timings will be noisy")
    dbs = [database(kind) for kind in (["pg", "mysql"] if args.db == "both" else [args.db])]
    tables = select_tables(args)
    formats = ["parquet"] if args.memory or args.scaling or args.many_small else args.formats

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
    startup_records: list[dict[str, Any]] = []
    not_applicable: dict[str, list[str]] = {}
    if args.startup:
        startup_records = startup.run(args, dbs, tables[0], expected, work_dir, log)
    for db in dbs if not args.startup else []:
        jobs = [(tool, fmt) for tool in chosen
                for fmt in [*formats, tools.LIMIT_FORMAT] if tool.supports(db.kind, fmt)]
        not_applicable[db.kind] = [
            f"{t.name} (no {'PostgreSQL' if db.kind == 'pg' else 'MySQL'} support)"
            for t in chosen if db.kind not in t.dbs and t.kind != "limit"]
        if args.many_small:
            run_many_small(args, db, chosen, expected, work_dir, install_failures, runs,
                           partial)
            continue
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
    if not args.keep_output:
        shutil.rmtree(work_dir, ignore_errors=True)

    meta: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": time.perf_counter() - started,
        "argv": sys.argv[1:] if argv is None else argv,
        "mode": _mode(args),
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
    if args.many_small:
        meta["tables"] = {}
        meta["many_small_shapes"] = {
            fixtures.shape_label(count, rows): {"tables": count, "rows_each": rows}
            for count, rows in args.many_small_shapes}
    summaries = report.summarize(runs)
    if args.scaling:
        plot_path = args.plot or stem.with_suffix(".png")
        meta["plot"] = str(plot_path)
        meta["plot_error"] = draw_plot(report.scaling_series(summaries, meta["tables"]),
                                       plot_path, _plot_title(meta))
        if meta["plot_error"]:
            log(f"no plot: {meta['plot_error']}")
        else:
            log(f"wrote {plot_path}")
    markdown = render_markdown(meta, summaries, not_applicable, startup_records)
    stem.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "summary": summaries, "runs": runs,
                    "startup": startup_records}, indent=2, default=str)
        + "\n")
    stem.with_suffix(".md").write_text(markdown + "\n")
    partial.unlink(missing_ok=True)
    print(markdown)
    log(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


def render_saved(paths: list[Path], plot_path: Path | None = None) -> int:
    """Print the Markdown report of saved JSON reports again: after a change to the report's
    layout, to read the ``.partial.json`` of an interrupted run, or to merge runs taken in
    several invocations (their runs are pooled; the first file with a header gives it).
    With ``plot_path``, a scaling report's plot is drawn (again) there."""
    runs: list[dict[str, Any]] = []
    startup_records: list[dict[str, Any]] = []
    meta: dict[str, Any] | None = None
    for path in paths:
        data = json.loads(path.read_text())
        runs += data["runs"]
        startup_records += data.get("startup") or []
        if meta is None and data.get("meta"):
            meta = data["meta"]
    summaries = report.summarize(runs)
    if meta is None:
        lines = [f"# Rivet benchmark — partial results from {paths[0].name}", ""]
        for db, table, fmt in report.sections(summaries):
            lines += [report.render_section(summaries, db, table, fmt), ""]
        print("\n".join(lines))
        return 0
    if plot_path is not None and meta.get("mode") == "scaling":
        meta["plot"] = str(plot_path)
        meta["plot_error"] = draw_plot(report.scaling_series(summaries, meta["tables"]),
                                       plot_path, _plot_title(meta))
        log(f"no plot: {meta['plot_error']}" if meta["plot_error"] else f"wrote {plot_path}")
    print(render_markdown(meta, summaries, meta.get("not_applicable", {}), startup_records))
    return 0
