"""From individual runs to the report: medians, ratios, the Markdown tables. Pure logic.

A *run* is one dict per tool execution (the JSON report keeps them all). Runs are grouped
by (database, table, format, tool). For a group:

- ``status`` is ``ok`` when every run passed, else the first failure's status (``FAILED``,
  ``FAILED-VERIFY``, ``TIMEOUT``) with ``k/n`` when only some runs failed;
- wall, CPU, peak RSS and output size are medians over the runs that passed;
- longest statement, longest transaction and backends are the maximum over those runs (the
  worst the source had to bear);
- ``vs_duckdb`` and ``vs_limit`` divide the median wall by DuckDB's and the physical
  limit's median wall on the same table (and format, for DuckDB).

The physical-limit runs write no file, so their group (format ``-``) is listed in the tables
of every format of that table.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from typing import Any

LIMIT_FORMAT = "-"
OK = "ok"
FORMAT_TITLES = {"parquet": "Parquet (zstd)", "csv": "CSV (uncompressed)"}
DB_TITLES = {"pg": "PostgreSQL", "mysql": "MariaDB"}

Run = dict[str, Any]
Summary = dict[str, Any]


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def maximum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return value / base


def _key(run: Run) -> tuple[str, str, str, str]:
    return (run["db"], run["table"], run["format"], run["tool"])


def group_status(statuses: list[str]) -> str:
    failures = [s for s in statuses if s != OK]
    if not failures:
        return OK
    if len(failures) == len(statuses):
        return failures[0]
    return f"{failures[0]} {len(failures)}/{len(statuses)}"


def summarize(runs: list[Run]) -> list[Summary]:
    """One summary per (db, table, format, tool), in the order the groups first ran."""
    groups: dict[tuple[str, str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault(_key(run), []).append(run)
    summaries: list[Summary] = []
    for (db, table, fmt, tool), members in groups.items():
        passed = [r for r in members if r["status"] == OK]
        wall = median(r["wall_s"] for r in passed)
        first = members[0]
        failure = next((r for r in members if r["status"] != OK), None)
        verified = [r.get("rows_verified") for r in (passed or members)]
        summaries.append({
            "db": db, "table": table, "format": fmt, "tool": tool,
            "tool_kind": first.get("tool_kind"),
            "rows_expected": first.get("rows_expected"),
            "runs": len(members), "ok_runs": len(passed),
            "status": group_status([r["status"] for r in members]),
            "error": failure.get("error") if failure else None,
            "wall_s": wall,
            "rows_per_s": (first["rows_expected"] / wall) if wall and first.get("rows_expected")
            else None,
            "cpu_s": median(r.get("cpu_s") for r in passed),
            "max_rss_mb": median(r.get("max_rss_mb") for r in passed),
            "rivet_peak_rss_mb": median(r.get("rivet_peak_rss_mb") for r in passed),
            "output_bytes": median(r.get("output_bytes") for r in passed),
            "rows_verified": verified[-1] if len(set(verified)) == 1 else verified,
            "longest_statement_s": maximum(r.get("longest_statement_s") for r in passed),
            "longest_xact_s": maximum(r.get("longest_xact_s") for r in passed),
            "max_backends": maximum(r.get("max_backends") for r in passed),
        })
    for summary in summaries:
        same_table = [s for s in summaries
                      if s["db"] == summary["db"] and s["table"] == summary["table"]]
        duckdb = next((s for s in same_table
                       if s["tool"] == "duckdb" and s["format"] == summary["format"]), None)
        limit = next((s for s in same_table if s["format"] == LIMIT_FORMAT), None)
        summary["vs_duckdb"] = ratio(summary["wall_s"], duckdb["wall_s"] if duckdb else None)
        summary["vs_limit"] = ratio(summary["wall_s"], limit["wall_s"] if limit else None)
    return summaries


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_text(text: str, limit: int = 1500) -> str:
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


# ------------------------------------------------------------------------------- Markdown

def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"  # noqa: RUF001


def _rows_verified(summary: Summary) -> str:
    verified = summary["rows_verified"]
    expected = summary["rows_expected"]
    if isinstance(verified, list):
        return ", ".join("—" if v is None else f"{v:,}" for v in verified) + " (varies)"
    if verified is None:
        return "—"
    mark = "✓" if verified == expected else "✗"
    return f"{verified:,} {mark}"


HEADER = ("| tool | status | wall s | rows/s | CPU s | peak RSS MB | output MB | rows verified "
          "| longest stmt s | longest xact s | backends | vs DuckDB | vs limit |")
RULE = "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"


def _row(s: Summary) -> str:
    output = None if s["output_bytes"] is None else s["output_bytes"] / 1e6
    output_text = "— (none)" if s["format"] == LIMIT_FORMAT else _num(output, 1)
    status = s["status"] if s["status"] == OK else f"**{s['status']}**"
    rows_per_s = "—" if s["rows_per_s"] is None else f"{s['rows_per_s']:,.0f}"
    backends = "—" if s["max_backends"] is None else str(int(s["max_backends"]))
    return (f"| {s['tool']} | {status} | {_num(s['wall_s'], 2)} | {rows_per_s} "
            f"| {_num(s['cpu_s'], 1)} | {_num(s['max_rss_mb'], 0)} | {output_text} "
            f"| {_rows_verified(s)} | {_num(s['longest_statement_s'], 2)} "
            f"| {_num(s['longest_xact_s'], 2)} | {backends} "
            f"| {_times(s['vs_duckdb'])} | {_times(s['vs_limit'])} |")


def _order(s: Summary) -> tuple[int, float]:
    if s["format"] == LIMIT_FORMAT:
        return (0, 0.0)
    if s["status"] != OK or s["wall_s"] is None:
        return (2, 0.0)
    return (1, s["wall_s"])


def sections(summaries: list[Summary]) -> list[tuple[str, str, str]]:
    """``(db, table, format)`` of every table to print, in run order."""
    seen: list[tuple[str, str, str]] = []
    for s in summaries:
        if s["format"] == LIMIT_FORMAT:
            continue
        key = (s["db"], s["table"], s["format"])
        if key not in seen:
            seen.append(key)
    for s in summaries:  # a table measured with the limit tool alone still gets a section
        if s["format"] == LIMIT_FORMAT and not any(k[:2] == (s["db"], s["table"]) for k in seen):
            seen.append((s["db"], s["table"], LIMIT_FORMAT))
    return seen


def render_section(summaries: list[Summary], db: str, table: str, fmt: str,
                   not_applicable: list[str] | None = None) -> str:
    members = [s for s in summaries if s["db"] == db and s["table"] == table
               and s["format"] in (fmt, LIMIT_FORMAT)]
    members.sort(key=_order)
    rows_expected = members[0]["rows_expected"] if members else None
    title = FORMAT_TITLES.get(fmt, "no file (physical limit only)")
    lines = [f"### {DB_TITLES.get(db, db)} · `{table}` "
             f"({_num(rows_expected, 0) if rows_expected else '?'} rows) → {title}", "",
             HEADER, RULE, *(_row(s) for s in members)]
    failures = [s for s in members if s["status"] != OK and s["error"]]
    self_reported = [s for s in members if s.get("rivet_peak_rss_mb") is not None]
    if failures or not_applicable or self_reported:
        lines.append("")
    for s in self_reported:
        lines.append(f"- {s['tool']}'s own summary reports peak RSS "
                     f"{s['rivet_peak_rss_mb']:.0f} MiB")
    for s in failures:
        error = " ".join(str(s["error"]).split())
        if len(error) > 400:
            error = error[:400] + " …"
        lines.append(f"- **{s['tool']}** {s['status']}: {error}")
    if not_applicable:
        lines.append(f"- not applicable here: {', '.join(not_applicable)}")
    return "\n".join(lines)


def render_memory(summaries: list[Summary], tables: tuple[str, str]) -> str:
    """The bounded-memory check: each tool's peak RSS on the small and the large table."""
    small, large = tables
    lines = [f"### Memory growth: `{small}` vs `{large}` (Parquet)", "",
             f"| db | tool | peak RSS MB, {small} | peak RSS MB, {large} | growth |",
             "|---|---|--:|--:|--:|"]
    keys = []
    for s in summaries:
        key = (s["db"], s["tool"])
        if s["format"] == "parquet" and key not in keys:
            keys.append(key)
    for db, tool in keys:
        def rss(table: str, db: str = db, tool: str = tool) -> float | None:
            found = next((s for s in summaries if s["db"] == db and s["tool"] == tool
                          and s["table"] == table and s["format"] == "parquet"), None)
            return found["max_rss_mb"] if found else None
        a, b = rss(small), rss(large)
        lines.append(f"| {DB_TITLES.get(db, db)} | {tool} | {_num(a, 0)} | {_num(b, 0)} "
                     f"| {_times(ratio(b, a))} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------ start-up shape

STARTUP_WATCH = ("pyarrow", "psycopg", "pymysql", "connectorx", "obstore", "numpy")
"""Heavy packages whose import the start-up table reports (``yes`` / ``no``)."""


def parse_importtime(text: str, loaded: set[str] | None = None) -> dict[str, Any]:
    """What ``python -X importtime`` wrote on stderr (other lines are ignored).

    A line is written for every import the interpreter *attempted*, a failed one too (a
    ``try: import numpy`` where numpy is not installed still gets its line), so ``loaded``,
    the names in ``sys.modules`` when the process ended, tells the two apart when given:

    - ``modules``: modules imported (lines whose module was loaded);
    - ``failed``: lines of imports that did not load a module;
    - ``import_ms``: the sum of every line's own time, failed attempts included: the whole
      time spent importing, the interpreter's ``site`` included;
    - ``packages``: the sorted top-level names of the modules imported.
    """
    modules = failed = self_us = 0
    packages: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3:
            continue
        try:
            own = int(fields[0].strip())
        except ValueError:
            continue
        name = fields[2].strip()
        self_us += own
        if loaded is not None and name not in loaded:
            failed += 1
            continue
        modules += 1
        packages.add(name.split(".")[0])
    return {"modules": modules, "failed": failed, "import_ms": self_us / 1000,
            "packages": sorted(packages)}


def summarize_startup(record: dict[str, Any]) -> dict[str, Any]:
    """One start-up command's runs -> wall median and minimum (ms) and median peak RSS (MB)
    over the runs that exited 0; status as for a benchmark group."""
    runs = record.get("runs") or []
    passed = [r for r in runs if r["status"] == OK]
    walls = [r["wall_s"] * 1000 for r in passed]
    profile = record.get("importtime") or {}
    packages = set(profile.get("packages") or [])
    return {
        "command": record["command"],
        "status": group_status([r["status"] for r in runs]) if runs else "FAILED",
        "error": next((r.get("error") for r in runs if r["status"] != OK), None)
        or record.get("error"),
        "runs": len(runs), "ok_runs": len(passed),
        "wall_median_ms": median(walls), "wall_min_ms": min(walls) if walls else None,
        "max_rss_mb": median(r.get("max_rss_mb") for r in passed),
        "modules": profile.get("modules"), "import_ms": profile.get("import_ms"),
        "imported": {name: (name in packages) if profile else None for name in STARTUP_WATCH},
    }


def render_startup(summaries: list[dict[str, Any]]) -> str:
    """The start-up table: one row per command."""
    watch = " | ".join(STARTUP_WATCH)
    lines = ["### CLI start-up", "",
             f"| command | status | wall median ms | wall min ms | peak RSS MB | modules "
             f"| import ms | {watch} |",
             "|---|---|--:|--:|--:|--:|--:|" + ":-:|" * len(STARTUP_WATCH)]
    for s in summaries:
        status = s["status"] if s["status"] == OK else f"**{s['status']}**"
        imported = " | ".join("—" if s["imported"][n] is None else "yes" if s["imported"][n]
                              else "no" for n in STARTUP_WATCH)
        modules = "—" if s["modules"] is None else str(s["modules"])
        lines.append(f"| `{s['command']}` | {status} | {_num(s['wall_median_ms'], 0)} "
                     f"| {_num(s['wall_min_ms'], 0)} | {_num(s['max_rss_mb'], 0)} | {modules} "
                     f"| {_num(s['import_ms'], 0)} | {imported} |")
    notes = [s for s in summaries if s["status"] != OK and s["error"]]
    if notes:
        lines.append("")
    for s in notes:
        error = " ".join(str(s["error"]).split())
        lines.append(f"- **`{s['command']}`** {s['status']}: {error[:400]}")
    return "\n".join(lines)


# ------------------------------------------------------------------------- scaling shape

def scaling_series(summaries: list[Summary], tables: dict[str, int]
                   ) -> dict[str, list[tuple[int, float | None, float | None]]]:
    """``{"PostgreSQL · rivet": [(rows, wall_s, peak_rss_mb), ...]}``, one series per
    (database, tool), points in row order; failed groups have ``None`` figures. Only the
    Parquet runs and the physical limits of the tables in ``tables``."""
    series: dict[str, list[tuple[int, float | None, float | None]]] = {}
    for s in summaries:
        if s["table"] not in tables or s["format"] not in ("parquet", LIMIT_FORMAT):
            continue
        label = f"{DB_TITLES.get(s['db'], s['db'])} · {s['tool']}"
        series.setdefault(label, []).append((tables[s["table"]], s["wall_s"], s["max_rss_mb"]))
    return {label: sorted(points) for label, points in series.items()}


def render_scaling(summaries: list[Summary], tables: dict[str, int],
                   plot: str | None = None) -> str:
    """The scaling table: per database and tool, one row per size."""
    lines = ["### Scaling: narrow tables by size (Parquet)", "",
             "| db | tool | rows | status | wall s | rows/s | peak RSS MB | vs limit |",
             "|---|---|--:|---|--:|--:|--:|--:|"]
    keys: list[tuple[str, str]] = []
    for s in summaries:
        if s["table"] in tables and (s["db"], s["tool"]) not in keys:
            keys.append((s["db"], s["tool"]))
    for db, tool in keys:
        members = sorted((s for s in summaries if s["db"] == db and s["tool"] == tool
                          and s["table"] in tables
                          and s["format"] in ("parquet", LIMIT_FORMAT)),
                         key=lambda s: tables[s["table"]])
        for s in members:
            status = s["status"] if s["status"] == OK else f"**{s['status']}**"
            rows_per_s = "—" if s["rows_per_s"] is None else f"{s['rows_per_s']:,.0f}"
            lines.append(f"| {DB_TITLES.get(db, db)} | {tool} | {tables[s['table']]:,} "
                         f"| {status} | {_num(s['wall_s'], 2)} | {rows_per_s} "
                         f"| {_num(s['max_rss_mb'], 0)} | {_times(s['vs_limit'])} |")
    if plot:
        lines += ["", f"Plot: `{plot}`"]
    return "\n".join(lines)


# ---------------------------------------------------------------------- many-small shape

def per_table_ms(wall_s: float | None, tables: int) -> float | None:
    """The fixed cost per table (per export, for Rivet) of a many-tables run: wall / N."""
    if wall_s is None or tables <= 0:
        return None
    return wall_s / tables * 1000


def render_many_small(summaries: list[Summary], shapes: dict[str, int]) -> str:
    """The many-small-tables table: per database and shape, every tool's single process
    over all the shape's tables (``shapes``: label -> number of tables)."""
    lines = ["### Many small tables: one process for N tables (Parquet)", "",
             "| db | shape | tool | status | wall s | peak RSS MB | backends | rows verified "
             "| vs DuckDB | wall / table ms |",
             "|---|---|---|---|--:|--:|--:|--:|--:|--:|"]
    members = [s for s in summaries if s["table"] in shapes]
    for db, table, fmt in sections(members):
        group = [s for s in members if s["db"] == db and s["table"] == table
                 and s["format"] in (fmt, LIMIT_FORMAT)]
        for s in sorted(group, key=_order):
            status = s["status"] if s["status"] == OK else f"**{s['status']}**"
            backends = "—" if s["max_backends"] is None else str(int(s["max_backends"]))
            lines.append(f"| {DB_TITLES.get(db, db)} | {table} | {s['tool']} | {status} "
                         f"| {_num(s['wall_s'], 2)} | {_num(s['max_rss_mb'], 0)} | {backends} "
                         f"| {_rows_verified(s)} | {_times(s['vs_duckdb'])} "
                         f"| {_num(per_table_ms(s['wall_s'], shapes[table]), 1)} |")
    return "\n".join(lines)
