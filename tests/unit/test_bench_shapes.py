"""The benchmark harness's shapes beyond the main comparison (orders fixture, start-up,
scaling, many small tables): their pure parts, sizes and names, import-time parsing, the
figures derived from runs, and the generated configs.

Like tests/unit/test_bench_report.py, no database and no child process: the harness itself
(bench/) is not part of the test suite.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from rivetbench import cli, fixtures, plot, report, rivetcfg, startup, verify
from rivetbench.fixtures import Table
from rivetbench.settings import Database

# ---------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(("text", "rows"), [
    ("1m", 1_000_000), ("50M", 50_000_000), ("50k", 50_000), ("1500", 1_500),
    ("10_000", 10_000), (" 2m ", 2_000_000)])
def test_parse_size_reads_the_labels_of_size_label(text: str, rows: int) -> None:
    assert fixtures.parse_size(text) == rows


@pytest.mark.parametrize("rows", [1_000, 50_000, 1_000_000, 10_000_000, 1_500, 7])
def test_parse_size_inverts_size_label(rows: int) -> None:
    assert fixtures.parse_size(fixtures.size_label(rows)) == rows


@pytest.mark.parametrize("text", ["", "m", "1g", "-5k", "0", "1.5m", "k5"])
def test_parse_size_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        fixtures.parse_size(text)


def test_many_small_shapes_parse_and_label() -> None:
    assert fixtures.parse_many_small_shape("20x50k") == (20, 50_000)
    assert fixtures.parse_many_small_shape("200X1k") == (200, 1_000)
    assert fixtures.shape_label(200, 1_000) == "200x1k"
    for bad in ("20", "x50k", "0x1k", "20x", "20y50k"):
        with pytest.raises(ValueError):
            fixtures.parse_many_small_shape(bad)


# ------------------------------------------------------------------------------- fixtures

def test_many_small_tables_are_narrow_tables_numbered_to_the_width_of_the_count() -> None:
    twenty = fixtures.many_small_tables(20, 50_000)
    assert [t.name for t in twenty[:2]] == ["small_50k_01", "small_50k_02"]
    assert twenty[-1].name == "small_50k_20"
    hundreds = fixtures.many_small_tables(200, 1_000)
    assert (hundreds[0].name, hundreds[-1].name) == ("small_1k_001", "small_1k_200")
    assert len({t.name for t in hundreds}) == 200
    assert {t.kind for t in twenty + hundreds} == {"narrow"}
    # Same DDL and rows as narrow, so the same fixture version and seeding statements.
    assert fixtures.pg_fill(twenty[0], 1, 10) == fixtures.pg_fill(
        Table("narrow", 50_000), 1, 10).replace("narrow_50k", "small_50k_01")


def test_the_plain_names_are_unchanged() -> None:
    assert Table("narrow", 10_000_000).name == "narrow_10m"
    assert Table("orders", 2_000_000).name == "orders_2m"
    assert Table("orders", 50_000).name == "orders_50k"


def test_orders_is_a_kind_with_its_own_version_and_sizes() -> None:
    assert "orders" in fixtures.KINDS
    assert fixtures.FULL_ROWS["orders"] == 2_000_000
    assert fixtures.SMOKE_ROWS["orders"] == 50_000
    assert len({fixtures.fixture_version(kind) for kind in fixtures.KINDS}) == len(fixtures.KINDS)
    assert fixtures.batches(Table("orders", 2_000_000)) == [
        (1, 500_000), (500_001, 1_000_000), (1_000_001, 1_500_000), (1_500_001, 2_000_000)]


def test_orders_sql_has_every_column_on_both_databases() -> None:
    table = Table("orders", 50_000)
    columns = ["id", "order_id", "part_id", "supplier_id", "line_number", "quantity",
               "extended_price", "discount", "tax", "ship_date", "commit_date",
               "receipt_date", "return_flag", "line_status", "ship_mode", "ship_instruct",
               "comment"]
    for ddl in (fixtures.pg_create(table)[1], fixtures.mysql_create(table)[1]):
        found = [line.split()[0] for line in ddl.splitlines()[2:] if line.startswith("    ")
                 and not line.strip().startswith("PRIMARY")]
        assert found == columns
    assert "numeric(15,2)" in fixtures.pg_create(table)[1]
    assert "DECIMAL(15,2)" in fixtures.mysql_create(table)[1]
    pg = fixtures.pg_fill(table, 1, 100)
    my = fixtures.mysql_fill(table, 1, 100)
    assert "generate_series(1::bigint, 100::bigint)" in pg
    assert "seq_1_to_50000" in my and "BETWEEN 1 AND 100" in my
    assert "random" not in (pg + my).lower() and "rand(" not in my.lower()
    assert fixtures.pg_finish(table) == ["ALTER TABLE orders_50k ADD PRIMARY KEY (id)"]


def _order_line(i: int) -> tuple[int, int]:
    """The (order, line number) arithmetic of the orders fill, in Python."""
    k, b = (i - 1) % 28, (i - 1) // 28
    j = next(n for n, bound in enumerate((1, 3, 6, 10, 15, 21, 28)) if k < bound)
    return b * 7 + j + 1, k - j * (j + 1) // 2 + 1


def test_orders_rows_make_orders_of_one_to_seven_lines() -> None:
    lines: dict[int, list[int]] = {}
    for i in range(1, 28 * 3 + 1):
        order, line = _order_line(i)
        lines.setdefault(order, []).append(line)
    assert len(lines) == 21
    assert sorted(len(v) for v in lines.values()) == sorted(list(range(1, 8)) * 3)
    assert all(v == list(range(1, len(v) + 1)) for v in lines.values())


# ------------------------------------------------------------------------------- configs

_PG = Database("pg", "127.0.0.1", 5432, "postgres", "", "rivet_bench")
_MY = Database("mysql", "127.0.0.1", 3306, "root", "", "rivet_bench")


def test_many_config_has_one_table_export_per_table_each_in_its_own_directory() -> None:
    tables = fixtures.many_small_tables(3, 1_000)
    config = tomllib.loads(rivetcfg.render_many_config(rivetcfg.VARIANTS["rivet"], _MY,
                                                       tables, "parquet"))
    assert config["source"] == {"type": "mysql", "url_env": rivetcfg.URL_ENV}
    assert [e["table"] for e in config["exports"]] == [
        "rivet_bench.small_1k_1", "rivet_bench.small_1k_2", "rivet_bench.small_1k_3"]
    assert {e["destination"]["path"] for e in config["exports"]} == {"./out/{export}"}
    assert {(e["format"], e["compression"]) for e in config["exports"]} == {("parquet", "zstd")}


def test_single_config_is_unchanged_by_the_many_config() -> None:
    config = tomllib.loads(rivetcfg.render_config(rivetcfg.VARIANTS["rivet-p2"], _PG,
                                                  Table("orders", 50_000), "csv"))
    (export,) = config["exports"]
    assert export == {"name": "orders_50k", "table": "public.orders_50k", "format": "csv",
                      "compression": "none", "parallel": 2,
                      "destination": {"type": "local", "path": "./out"}}


# ------------------------------------------------------------------------------ read-back

def test_files_are_attributed_to_their_table() -> None:
    assert verify.table_of(Path("small_1k_001/part-00000.parquet")) == "small_1k_001"
    assert verify.table_of(Path("small_1k_001.parquet")) == "small_1k_001"
    assert verify.table_of(Path("t/2024-01-01/x.csv")) == "t"


def test_table_mismatches_name_missing_short_and_unexpected_tables() -> None:
    expected = {"a": 10, "b": 10, "c": 10}
    assert verify.table_mismatches(expected, {"a": 10, "b": 10, "c": 10}) == []
    problems = verify.table_mismatches(expected, {"a": 10, "b": 20, "z": 5})
    assert problems == ["b: 20 rows, expected 10", "c: 0 rows, expected 10",
                        "z: 5 rows of a table not exported"]


# ------------------------------------------------------------------------------ start-up

_IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:      2000 |       2500 |   site
import time:       500 |        500 |     encodings.idna
import time:        74 |         74 |     numpy
import time:     30000 |      45000 | pyarrow
import time:     15000 |      15000 |   pyarrow.lib
rivet 0.1.0
import time: garbage | x | y
"""


def test_importtime_counts_modules_time_and_packages() -> None:
    profile = report.parse_importtime(_IMPORTTIME)
    assert profile["modules"] == 6 and profile["failed"] == 0
    assert profile["import_ms"] == pytest.approx(47.694)
    assert profile["packages"] == ["_io", "encodings", "numpy", "pyarrow", "site"]


def test_importtime_leaves_out_imports_that_loaded_nothing() -> None:
    loaded = {"_io", "site", "encodings", "encodings.idna", "pyarrow", "pyarrow.lib"}
    profile = report.parse_importtime(_IMPORTTIME, loaded)
    assert profile["modules"] == 5 and profile["failed"] == 1
    assert "numpy" not in profile["packages"]
    assert profile["import_ms"] == pytest.approx(47.694)  # the failed attempt took time too


def _start(wall: float, status: str = "ok", rss: float = 20.0) -> dict[str, Any]:
    return {"wall_s": wall, "max_rss_mb": rss, "status": status,
            "error": None if status == "ok" else "boom"}


def test_startup_summary_is_median_and_minimum_of_the_starts_that_passed() -> None:
    record = {"command": "rivet --version",
              "runs": [_start(0.3), _start(0.1, rss=10.0), _start(9.0, "FAILED"),
                       _start(0.2, rss=30.0)],
              "importtime": {"modules": 140, "import_ms": 80.0, "packages": ["rivet_core"]}}
    summary = report.summarize_startup(record)
    assert summary["wall_median_ms"] == pytest.approx(200.0)
    assert summary["wall_min_ms"] == pytest.approx(100.0)
    assert summary["max_rss_mb"] == 20.0
    assert summary["status"] == "FAILED 1/4" and summary["error"] == "boom"
    assert summary["imported"]["pyarrow"] is False
    text = report.render_startup([summary])
    assert "| `rivet --version` | **FAILED 1/4** | 200 | 100 | 20 | 140 | 80 | no |" in text


def test_startup_without_an_importtime_profile_says_unknown() -> None:
    summary = report.summarize_startup({"command": "x", "runs": [_start(0.1)],
                                        "importtime": None})
    assert set(summary["imported"].values()) == {None}
    assert "| — | — | — |" in report.render_startup([summary])


def test_importtime_wrapper_is_valid_python_for_both_kinds_of_command() -> None:
    for command in (startup.Command("rivet --version", ("--version",)),
                    startup.Command("python -c pass", ("-c", "pass"), rivet=False)):
        source = startup.importtime_wrapper(command, Path("/tmp/modules.txt"))
        compile(source, "<wrapper>", "exec")
        assert "'/tmp/modules.txt'" in source


# ------------------------------------------------------------------------------- scaling

def _summary(db: str, table: str, tool: str, wall: float | None, *, fmt: str = "parquet",
             rss: float = 100.0, rows: int = 1_000_000, status: str = "ok") -> dict[str, Any]:
    return {"db": db, "table": table, "format": fmt, "tool": tool,
            "tool_kind": "limit" if fmt == "-" else "rivet", "rows_expected": rows,
            "runs": 1, "ok_runs": 1, "status": status, "error": None, "wall_s": wall,
            "rows_per_s": rows / wall if wall else None, "cpu_s": None, "max_rss_mb": rss,
            "rivet_peak_rss_mb": None, "output_bytes": None, "rows_verified": rows,
            "longest_statement_s": None, "longest_xact_s": None, "max_backends": 1,
            "vs_duckdb": None, "vs_limit": None}


def test_scaling_series_is_one_line_per_database_and_tool_in_row_order() -> None:
    tables = {"narrow_1m": 1_000_000, "narrow_10m": 10_000_000}
    summaries = [_summary("pg", "narrow_10m", "rivet", 20.0, rss=120.0, rows=10_000_000),
                 _summary("pg", "narrow_1m", "rivet", 2.0, rss=110.0),
                 _summary("pg", "narrow_1m", "pg-copy", 1.0, fmt="-", rss=10.0),
                 _summary("pg", "narrow_1m", "rivet", 3.0, fmt="csv"),
                 _summary("mysql", "narrow_1m", "rivet", None, status="FAILED"),
                 _summary("pg", "wide_2m", "rivet", 50.0)]
    series = report.scaling_series(summaries, tables)
    assert series == {
        "PostgreSQL · rivet": [(1_000_000, 2.0, 110.0), (10_000_000, 20.0, 120.0)],
        "PostgreSQL · pg-copy": [(1_000_000, 1.0, 10.0)],
        "MariaDB · rivet": [(1_000_000, None, 100.0)],
    }
    text = report.render_scaling(summaries, tables, "/tmp/x.png")
    rows = [line for line in text.splitlines() if line.startswith("| PostgreSQL | rivet")]
    assert rows == ["| PostgreSQL | rivet | 1,000,000 | ok | 2.00 | 500,000 | 110 | — |",
                    "| PostgreSQL | rivet | 10,000,000 | ok | 20.00 | 500,000 | 120 | — |"]
    assert "Plot: `/tmp/x.png`" in text


def test_scaling_arguments() -> None:
    args = cli.parse_args(["--scaling", "--scaling-sizes", "10m,1m,1m", "--db", "pg"])
    assert [t.name for t in cli.select_tables(args)] == ["narrow_1m", "narrow_10m"]
    assert [t.name for t in cli.select_tools(args)] == ["pg-copy", "mysql-quick", "rivet"]
    assert args.runs == 3
    with pytest.raises(SystemExit):
        cli.parse_args(["--scaling", "--scaling-sizes", "1g"])


# ---------------------------------------------------------------------------- many small

def test_per_table_cost_is_wall_over_the_number_of_tables() -> None:
    assert report.per_table_ms(2.0, 200) == pytest.approx(10.0)
    assert report.per_table_ms(None, 20) is None
    assert report.per_table_ms(1.0, 0) is None


def _run(tool: str, wall: float, shape: str = "20x50k", fmt: str = "parquet",
         kind: str = "rivet") -> dict[str, Any]:
    return {"db": "pg", "table": shape, "format": fmt, "tool": tool, "tool_kind": kind,
            "rows_expected": 1_000_000, "status": "ok", "error": None, "wall_s": wall,
            "cpu_s": wall, "max_rss_mb": 80.0, "output_bytes": 1000,
            "rows_verified": 1_000_000, "longest_statement_s": 0.1, "longest_xact_s": 0.1,
            "max_backends": 1}


def test_many_small_table_gives_ratio_to_duckdb_and_cost_per_table() -> None:
    runs = [_run("rivet", 4.0), _run("rivet", 6.0), _run("duckdb", 2.5, kind="reference"),
            _run("pg-copy", 1.0, fmt="-", kind="limit")]
    text = report.render_many_small(report.summarize(runs), {"20x50k": 20})
    rows = [line for line in text.splitlines() if line.startswith("| PostgreSQL")]
    assert [row.split("|")[3].strip() for row in rows] == ["pg-copy", "duckdb", "rivet"]
    assert rows[2] == ("| PostgreSQL | 20x50k | rivet | ok | 5.00 | 80 | 1 "
                       "| 1,000,000 ✓ | 2.00× | 250.0 |")  # noqa: RUF001


def test_many_small_arguments_select_each_table_once() -> None:
    args = cli.parse_args(["--many-small", "--many-small-shapes", "3x1k,2x1k,2x50k"])
    names = [t.name for t in cli.select_tables(args)]
    assert names == ["small_1k_1", "small_1k_2", "small_1k_3", "small_50k_1", "small_50k_2"]
    assert [t.name for t in cli.select_tools(args)] == [
        "pg-copy", "mysql-quick", "rivet", "duckdb"]
    assert cli.parse_args(["--startup"]).runs == 10


def test_plot_labels() -> None:
    assert [plot.rows_label(n) for n in (1_000_000, 50_000_000, 50_000, 1_500_000, 7)] == [
        "1M", "50M", "50k", "1.5M", "7"]
    assert [plot._minor_label(v, None) for v in (0.2, 0.3, 0.4, 5.0, 60.0, 0.0)] == [
        "0.2", "0.3", "", "5", "", ""]
