"""``rivet run --parallel-exports N`` and ``parallel_exports = N``: many exports at once on the
real PostgreSQL. One export's failure stops no other, each export is complete, the runs
really overlap and never exceed N, the summary aggregates the invocation, and SIGTERM stops
every running export cleanly (exit 130, nothing half-written, nothing certified)."""

from __future__ import annotations

import datetime as dt
import io
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest

from rivet_core.errors import ExitCode
from rivet_core.runner.pool import ExportPool
from rivet_core.runner.progress import Progress, ProgressBoard
from rivet_core.runner.results import ExportResult, RunContext

SOURCE = """
[source]
type = "postgres"
url = "{url}"
{source_lines}
"""

EXPORT = """
[[exports]]
name = "{name}"
query = "{query}"
format = "parquet"
{lines}
[exports.destination]
type = "local"
path = "./output/{{export}}"
"""


def config(url, exports, *, top="", source_lines=""):
    """``exports``: (name, query, extra export lines)."""
    return top + SOURCE.format(url=url, source_lines=source_lines) + "".join(
        EXPORT.format(name=name, query=query, lines=lines) for name, query, lines in exports)


def rows_of(n):
    """n rows, each costing the server ~0.2 ms, so an export lasts long enough to overlap."""
    return (f"SELECT g AS id, 'row ' || g AS v FROM generate_series(1, {n}) g "
            "WHERE pg_sleep(0.0002) IS NOT NULL")


def state(project, sql, *args):
    # Read-only: polling must not create an empty state file before the run does.
    uri = (project.path / ".rivet_state.db").as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def temp_files(output):
    """The open (temporary) files under ``output``; directories come and go meanwhile (the
    destination probe's)."""
    try:
        return list(output.rglob("*.rivet-tmp"))
    except FileNotFoundError:
        return []


def most_at_once(intervals):
    """The most intervals (start, end) open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda edge: (edge[0], edge[1]))
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def when(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ------------------------------------------------------------- twenty exports, one failing


def test_twenty_exports_four_at_once_one_failing_the_others_complete(rivet_project, pg_url,
                                                                      pg_schema):
    expected = {f"e{i:02d}": 200 + 10 * i for i in range(20) if i != 7}
    exports = [(name, rows_of(n), "") for name, n in expected.items()]
    exports.insert(7, ("broken", f"SELECT * FROM {pg_schema}.missing_table", ""))
    rivet_project.write_config(config(pg_url, exports))

    outcome = rivet_project.run("run", "--parallel-exports", "4", "--json")
    outcome.assert_failed(ExitCode.RUN_FAILED)
    summary = outcome.json()

    # Every export, in config order; the failure is its own.
    assert [e["export"] for e in summary["exports"]] == [name for name, _, _ in exports]
    statuses = {e["export"]: e["status"] for e in summary["exports"]}
    assert statuses.pop("broken") == "failed"
    assert set(statuses.values()) == {"success"}
    for name, n in expected.items():
        (path,) = (rivet_project.path / "output" / name).glob("*.parquet")
        table = pq.read_table(path)
        assert table.num_rows == n, name
        assert sorted(table.column("id").to_pylist()) == list(range(1, n + 1)), name
        assert (rivet_project.path / "output" / name / "_rivet" / name / "_SUCCESS").exists()

    aggregate = summary["aggregate"]
    assert aggregate["parallel_mode"] == "parallel-threads"
    assert aggregate["parallel_exports"] == 4
    assert (aggregate["total_exports"], aggregate["success_count"], aggregate["failed_count"],
            aggregate["skipped_count"]) == (20, 19, 1, 0)
    assert aggregate["total_rows"] == sum(expected.values()) == summary["totals"]["rows"]
    assert aggregate["total_files"] == 19
    assert aggregate["run_aggregate_id"].startswith("agg_")
    (failed,) = [e for e in aggregate["per_export"] if e["status"] == "failed"]
    assert failed["export_name"] == "broken"
    assert "missing_table" in failed["error_message"]

    # The text summary: the exports' own blocks, then the aggregate with the failure.
    err = outcome.err
    assert err.index("✓ e19") < err.index("Run summary (20 exports): 19 success · 1 failed · "
                                          "0 skipped")
    assert "parallel-threads (4 exports at once)" in err
    block = err.split("Run summary (20 exports)", 1)[1]
    assert '✗ broken: query: relation "' in block and "missing_table\" does not exist" in block
    assert f"rerun: rivet run -c {rivet_project.config} -e broken" in block

    # State: one run record per export, no lock left, and the runs overlapped: never more
    # than four reading at once, and a fifth at most finishing its small file.
    runs = state(rivet_project, "SELECT export_name, status, started_at, finished_at FROM runs")
    assert len(runs) == 20
    assert {name for name, *_ in runs} == {name for name, _, _ in exports}
    assert state(rivet_project, "SELECT * FROM locks") == []
    peak = most_at_once([(when(start), when(end)) for _, _, start, end in runs])
    assert 2 <= peak <= 5, peak


# ----------------------------------------------------------------- the key and the flag


def test_the_config_key_sets_the_exports_at_once_and_the_flag_wins(rivet_project, pg_url):
    exports = [(f"k{i}", "SELECT g AS id FROM generate_series(1, 50) g", "")
               for i in range(4)]
    rivet_project.write_config(config(pg_url, exports, top="parallel_exports = 3\n"))

    def how(*flags):
        summary = rivet_project.run("run", "--json", *flags).assert_success().json()
        assert [e["rows"] for e in summary["exports"]] == [50] * 4
        return summary["aggregate"]["parallel_mode"], summary["aggregate"]["parallel_exports"]

    assert how() == ("parallel-threads", 3)
    assert how("--parallel-exports", "1") == ("sequential", 1)
    assert how("--parallel-exports", "2") == ("parallel-threads", 2)
    # Never more threads than exports.
    assert how("--parallel-exports", "32") == ("parallel-threads", 4)
    # One export named: nothing to run at once.
    summary = rivet_project.run("run", "--json", "-e", "k1").assert_success().json()
    assert summary["aggregate"]["parallel_mode"] == "sequential"
    assert summary["aggregate"]["total_exports"] == 1


def test_without_the_key_one_export_reads_at_a_time(rivet_project, pg_url):
    """Without the key, exports run one after another as far as the source can tell: the
    next one starts only once the previous one has read all its rows (it may still be
    encoding and committing its small file)."""
    exports = [(f"s{i}", rows_of(100), "") for i in range(4)]
    rivet_project.write_config(config(pg_url, exports))
    outcome = rivet_project.run("-vv", "run", "--json").assert_success()
    aggregate = outcome.json()["aggregate"]
    assert (aggregate["parallel_mode"], aggregate["parallel_exports"]) == ("sequential", 1)
    runs = state(rivet_project, "SELECT started_at, finished_at FROM runs")
    assert most_at_once([(when(s), when(f)) for s, f in runs]) <= 2
    lines = outcome.err.splitlines()

    def first(text):
        return next(i for i, line in enumerate(lines) if text in line)

    for i in range(1, 4):
        assert first(f"export s{i - 1}: read done") < first(f"export s{i}: reading "), i
    assert "Run summary (4 exports): 4 success · 0 failed · 0 skipped" in outcome.err
    assert "sequential (one export reading at a time)" in outcome.err


def test_an_export_that_read_much_finishes_before_the_next_starts(rivet_project, pg_url):
    """Overlap is for small exports only: one that read more than 32 MiB holds what its
    last row group needs, so the next export waits for it to end (memory stays that of
    one export)."""
    big = ("SELECT g AS id, repeat('x', 100) || g AS v FROM generate_series(1, 400000) g")
    rivet_project.write_config(config(pg_url, [("big", big, ""), ("small", rows_of(10), ""),
                                               ("after", rows_of(10), "")]))
    outcome = rivet_project.run("-vv", "run").assert_success()
    assert "export big: read done" not in outcome.err
    assert "export small: read done" in outcome.err
    lines = outcome.err.splitlines()

    def first(text):
        return next(i for i, line in enumerate(lines) if text in line)

    # The small export may prepare (lock, probe) while the big one finishes, but reads
    # only once it has ended.
    assert first("export big: run manifest written") < first("export small: reading ")


@pytest.mark.parametrize("value, message", [
    ("0", "parallel_exports: must be from 1 to 32, got 0"),
    ("33", "parallel_exports: must be from 1 to 32, got 33"),
    ('"4"', "parallel_exports: expected an integer, got a string"),
    ("true", "parallel_exports: expected an integer, got a boolean"),
])
def test_a_parallel_exports_key_out_of_range_is_a_config_error(rivet_project, pg_url, value,
                                                               message):
    rivet_project.write_config(config(pg_url, [("a", "SELECT 1 AS x", "")],
                                      top=f"parallel_exports = {value}\n"))
    outcome = rivet_project.run("run").assert_failed(ExitCode.CONFIG)
    assert f"rivet: config error: rivet.toml: {message}" in outcome.err


@pytest.mark.parametrize("value", ["0", "33", "four"])
def test_a_parallel_exports_flag_out_of_range_is_a_usage_error(rivet_project, pg_url, value,
                                                               capsys):
    rivet_project.write_config(config(pg_url, [("a", "SELECT 1 AS x", "")]))
    outcome = rivet_project.run("run", "--parallel-exports", value)
    assert outcome.code == ExitCode.USAGE
    assert "error: argument --parallel-exports: " in capsys.readouterr().err  # argparse's


def test_too_many_connections_at_once_is_a_planner_warning(rivet_project, pg_url):
    chunked = 'mode = "chunked"\nchunk_column = "id"\nchunk_size = 10\nparallel = 6'
    exports = [(f"c{i}", "SELECT g AS id FROM generate_series(1, 30) g", chunked)
               for i in range(3)]
    rivet_project.write_config(config(pg_url, exports, top="parallel_exports = 3\n"))
    checked = rivet_project.run("check")
    assert ("[warning] parallel_exports: 3 exports run at once, each on its own source "
            "connection(s) (its `parallel`): up to 18 connections to the source at once, "
            "more than 16 (parallel-connections)") in checked.out
    # The flag wins, and so decides the budget: two exports of 6 connections are within it.
    outcome = rivet_project.run("run", "--parallel-exports", "2").assert_success()
    assert "parallel-connections" not in outcome.err
    outcome = rivet_project.run("run").assert_success()
    assert "[warning] parallel_exports: 3 exports run at once" in outcome.err


# ------------------------------------------------------------------------------ SIGTERM


def test_sigterm_stops_every_running_export_and_starts_no_other(rivet_project, pg_url):
    slow = (f"{rows_of(20_000)}", "[exports.tuning]\nbatch_size = 50")
    exports = [(f"s{i}", *slow) for i in range(6)]
    rivet_project.write_config(config(pg_url, exports, source_lines='read_path = "cursor"'))
    output = rivet_project.path / "output"
    process = subprocess.Popen(
        [sys.executable, "-m", "rivet_core.cli.main", "run", "-c", str(rivet_project.config),
         "--parallel-exports", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(temp_files(output)) < 4:  # four files open at once
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "the exports never all opened their files"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = err.decode()
    assert process.returncode == ExitCode.INTERRUPTED, text
    assert "Traceback" not in text
    # Four read; a fifth had started (its lock, its probe) and waited for a turn to read.
    assert "rivet: interrupted; not started: s5" in text
    # Nothing half-written, nothing certified.
    assert temp_files(output) == []
    assert list(output.rglob("*.parquet")) == []
    assert list(output.rglob("_SUCCESS")) == []
    runs = state(rivet_project, "SELECT export_name, status, error FROM runs")
    assert sorted(name for name, _, _ in runs) == ["s0", "s1", "s2", "s3", "s4"]
    assert {(status, error) for _, status, error in runs} == {
        ("failed", "interrupted by a signal; the files being written were discarded")}
    assert state(rivet_project, "SELECT * FROM locks") == []
    started = state(rivet_project, "SELECT DISTINCT export_name FROM journal "
                                   "WHERE event = 'run_started'")
    assert sorted(name for (name,) in started) == ["s0", "s1", "s2", "s3", "s4"]


# ---------------------------------------------------------------- the pool, in isolation


class _Plan:
    """What the pool reads of a plan: its name and its mode."""

    def __init__(self, name):
        self.name = name
        self.config = type("C", (), {"mode": "full"})()


def test_the_pool_starts_in_config_order_bounds_the_threads_and_isolates_a_bug(tmp_path):
    lock = threading.Lock()
    running, peak, order = [0], [0], []

    def run_one(plan, ctx, *, board, started):
        result = ExportResult(export=plan.name, run_id=f"r-{plan.name}", mode="full")
        started(result)
        with lock:
            order.append(plan.name)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.05)
            if plan.name == "p3":
                raise RuntimeError("boom")
            result.status = "success"
            result.finished_at = result.started_at
            return result
        finally:
            with lock:
                running[0] -= 1

    plans = [_Plan(f"p{i}") for i in range(10)]
    ctx = RunContext(config_dir=tmp_path, state=None, progress=False)
    results = ExportPool(plans, ctx, workers=3, run_one=run_one).run()
    assert [r.export for r in results] == [p.name for p in plans]
    assert peak[0] == 3
    assert order[:3] == ["p0", "p1", "p2"]
    bug = results[3]
    assert (bug.status, bug.error) == ("failed", "RuntimeError: boom")
    assert "bug" in bug.hint
    assert all(r.status == "success" for i, r in enumerate(results) if i != 3)


def test_after_a_stop_the_pool_starts_no_further_export(tmp_path):
    ctx = RunContext(config_dir=tmp_path, state=None, progress=False)

    def run_one(plan, ctx, *, board, started):
        result = ExportResult(export=plan.name, run_id=f"r-{plan.name}", mode="full")
        started(result)
        if plan.name == "p1":
            ctx.stop.set()
        result.status, result.finished_at = "success", result.started_at
        return result

    results = ExportPool([_Plan(f"p{i}") for i in range(6)], ctx, workers=2,
                         run_one=run_one).run()
    assert [r.export for r in results] == ["p0", "p1"]


# ------------------------------------------------------------------------ progress block


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_running_exports_share_a_block_redrawn_in_place():
    screen = _Terminal()
    board = ProgressBoard(screen, interval=0)
    first = Progress("orders", board=board)
    second = Progress("customers", board=board)
    first.update(10, 100)
    assert screen.getvalue().count("\x1b[2K") == 2  # one line per running export
    screen.truncate(0), screen.seek(0)
    second.update(20, 200)
    text = screen.getvalue()
    assert text.startswith("\r\x1b[2A")  # back to the block's first line
    assert "orders: 10 rows" in text and "customers: 20 rows" in text
    screen.truncate(0), screen.seek(0)
    first.finish()
    text = screen.getvalue()
    assert text.startswith("\r\x1b[2A") and "orders" not in text and text.endswith("\x1b[J")
    screen.truncate(0), screen.seek(0)
    board.close()
    assert screen.getvalue() == "\r\x1b[1A\x1b[J"


def test_progress_forced_on_without_a_terminal_prints_plain_lines_now_and_then():
    log = io.StringIO()
    board = ProgressBoard(log, enabled=True, plain_interval=0)
    Progress("orders", board=board).update(10, 100)
    assert log.getvalue().startswith("orders: 10 rows") and "\x1b" not in log.getvalue()
    quiet = io.StringIO()
    Progress("orders", board=ProgressBoard(quiet)).update(10, 100)
    assert quiet.getvalue() == ""


def test_the_json_schema_knows_the_top_level_key():
    from rivet_core.config.schema import config_schema
    from rivet_core.plugins import build_registry

    key = config_schema(build_registry())["properties"]["parallel_exports"]
    assert (key["type"], key["minimum"], key["maximum"], key["default"]) == \
        ("integer", 1, 32, 1)


def test_the_pool_leaves_unstarted_exports_out_when_the_signal_lands_in_the_wait(tmp_path):
    """KeyboardInterrupt in the main thread while it waits: the stop event is set, the
    running exports see it, no other starts."""
    ctx = RunContext(config_dir=tmp_path, state=None, progress=False)
    entered = threading.Event()

    def run_one(plan, ctx, *, board, started):
        result = ExportResult(export=plan.name, run_id=f"r-{plan.name}", mode="full")
        started(result)
        entered.set()
        while not ctx.stop.wait(0.01):
            pass
        result.status, result.error = "failed", "interrupted"
        result.finished_at = result.started_at
        return result

    def interrupt():
        entered.wait(10)
        time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    results = ExportPool([_Plan(f"p{i}") for i in range(5)], ctx, workers=2,
                         run_one=run_one).run()
    assert ctx.stop.is_set()
    assert [r.export for r in results] == ["p0", "p1"]
    assert {r.status for r in results} == {"failed"}


def test_turns_to_read_go_in_config_order_and_skip_an_export_that_never_reads():
    from rivet_core.runner.pool import _Turns

    turns = _Turns(1, threading.Event())
    order: list[int] = []

    def reader(index):
        turns.take(index)
        order.append(index)
        turns.give_back()

    later = threading.Thread(target=reader, args=(2,))
    later.start()  # ready first, but its turn comes after 0 and 1
    time.sleep(0.3)
    assert order == []
    reader(0)
    time.sleep(0.3)
    assert order == [0]  # 2 still waits for 1
    turns.pass_turn(1)  # 1 ended without reading
    later.join(5)
    assert order == [0, 2]
