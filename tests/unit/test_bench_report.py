"""The benchmark report's pure logic: medians over passing runs, statuses, ratios, Markdown.

The harness itself (bench/) is not part of the test suite; this covers the arithmetic the
published numbers rest on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from rivetbench import report


def _run(tool: str, wall: float, *, fmt: str = "parquet", status: str = "ok",
         rows: int | None = 100, kind: str = "reference", stmt: float = 0.1) -> dict[str, Any]:
    return {"db": "pg", "table": "narrow_100", "format": fmt, "tool": tool, "tool_kind": kind,
            "rows_expected": 100, "status": status, "error": None if status == "ok" else "boom",
            "wall_s": wall, "cpu_s": wall / 2, "max_rss_mb": 50.0, "output_bytes": 1000,
            "rows_verified": rows, "longest_statement_s": stmt, "longest_xact_s": stmt,
            "max_backends": 1}


def _by_tool(summaries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["tool"]: s for s in summaries}


def test_wall_is_the_median_of_passing_runs_only() -> None:
    runs = [_run("rivet", 3.0), _run("rivet", 1.0), _run("rivet", 99.0, status="FAILED"),
            _run("rivet", 2.0)]
    summary = _by_tool(report.summarize(runs))["rivet"]
    assert summary["wall_s"] == 2.0
    assert summary["ok_runs"] == 3
    assert summary["status"] == "FAILED 1/4"


def test_longest_statement_is_the_worst_run() -> None:
    runs = [_run("duckdb", 1.0, stmt=0.2), _run("duckdb", 1.0, stmt=0.9)]
    assert _by_tool(report.summarize(runs))["duckdb"]["longest_statement_s"] == 0.9


def test_ratios_use_duckdb_of_the_same_format_and_the_limit_of_the_same_table() -> None:
    runs = [_run("pg-copy", 2.0, fmt="-", kind="limit"), _run("duckdb", 4.0),
            _run("duckdb", 8.0, fmt="csv"), _run("rivet", 6.0), _run("rivet", 4.0, fmt="csv")]
    summaries = report.summarize(runs)
    parquet = next(s for s in summaries if s["tool"] == "rivet" and s["format"] == "parquet")
    csv = next(s for s in summaries if s["tool"] == "rivet" and s["format"] == "csv")
    assert parquet["vs_duckdb"] == 1.5 and parquet["vs_limit"] == 3.0
    assert csv["vs_duckdb"] == 0.5 and csv["vs_limit"] == 2.0


def test_a_tool_that_never_passed_has_no_numbers_and_no_ratio() -> None:
    runs = [_run("duckdb", 4.0), _run("sling", 1.0, status="FAILED", rows=None)]
    sling = _by_tool(report.summarize(runs))["sling"]
    assert sling["status"] == "FAILED"
    assert sling["wall_s"] is None and sling["vs_duckdb"] is None


def test_section_lists_the_limit_first_marks_wrong_counts_and_explains_failures() -> None:
    runs = [_run("rivet", 3.0), _run("pg-copy", 1.0, fmt="-", kind="limit"),
            _run("sling", 2.0, status="FAILED-VERIFY", rows=80), _run("duckdb", 2.0)]
    text = report.render_section(report.summarize(runs), "pg", "narrow_100", "parquet",
                                 ["adbc (no MySQL support)"])
    table_rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in table_rows] == [
        "pg-copy", "duckdb", "rivet", "sling"]
    assert "80 ✗" in text and "100 ✓" in text
    assert "- **sling** FAILED-VERIFY: boom" in text
    assert "not applicable here: adbc (no MySQL support)" in text


def test_memory_table_shows_growth_between_the_two_sizes() -> None:
    small = _run("rivet", 1.0) | {"table": "narrow_1m", "max_rss_mb": 100.0}
    large = _run("rivet", 9.0) | {"table": "narrow_10m", "max_rss_mb": 150.0}
    text = report.render_memory(report.summarize([small, large]), ("narrow_1m", "narrow_10m"))
    assert "| PostgreSQL | rivet | 100 | 150 | 1.50× |" in text  # noqa: RUF001
