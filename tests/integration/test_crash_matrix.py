"""The crash matrix: a real ``rivet run`` process dies abruptly at each named step of the
commit order (``RIVET_CRASH_AT``); the test checks state and destination, reruns, and proves
that no row is lost, that a duplicate appears only in the documented at-least-once window and
is then identifiable, and that the cursor is never ahead of committed data."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter

import pyarrow.parquet as pq
import pytest

from rivet_core.runner.crash import EXIT_CODE

ROWS = 1000


@pytest.fixture
def items(database):
    table = database.table("items")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v {database.text})")
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                         [(i, f"v{i}") for i in range(1, ROWS + 1)])
    return table


def write_config(project, db, table, mode_lines):
    project.write_config(f"""
[source]
type = "{db.kind}"
url = "{db.url}"

[[exports]]
name = "items"
table = "{table}"
format = "parquet"
{mode_lines}
[exports.tuning]
batch_size = 100
max_retries = 0
[exports.destination]
type = "local"
path = "./output"
""")


def rivet(project, *args, crash=None):
    env = {k: v for k, v in os.environ.items() if k != "RIVET_CRASH_AT"}
    if crash:
        env["RIVET_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "rivet_core.cli.main", "run", "-c",
                           str(project.config), *args], env=env, capture_output=True,
                          text=True, check=False)


def query(project, sql, *args):
    db = sqlite3.connect(project.path / ".rivet_state.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def visible(project):
    out = project.path / "output"
    return sorted(p for p in out.glob("*.parquet")) if out.exists() else []


def ids_in(paths):
    ids: list[int] = []
    for path in paths:
        ids.extend(pq.read_table(path).column("id").to_pylist())
    return ids


def recorded_files(project):
    return {row[0]: row[1] for row in query(project, "SELECT file_name, run_id FROM files")}


def run_status(project):
    return dict(query(project, "SELECT run_id, status FROM runs"))


def cursor(project):
    rows = query(project, "SELECT value FROM cursors")
    return int(json.loads(rows[0][0])["value"]) if rows else None


def assert_cursor_not_ahead(project):
    """Every id at or below the stored cursor is in a recorded, visible file."""
    value = cursor(project)
    if value is None:
        return
    recorded = [project.path / "output" / name for name in recorded_files(project)]
    assert set(range(1, value + 1)) <= set(ids_in(p for p in recorded if p.exists()))


def crashed(done):
    assert done.returncode == EXIT_CODE, (done.returncode, done.stdout, done.stderr)


INCREMENTAL = 'mode = "incremental"\ncursor_column = "id"'

# ------------------------------------------------------------------------- incremental


def test_crash_after_source_read_leaves_nothing_and_a_rerun_exports_all(
        rivet_project, database, items):
    write_config(rivet_project, database, items, INCREMENTAL)
    crashed(rivet(rivet_project, crash="after_source_read"))
    assert visible(rivet_project) == []
    assert recorded_files(rivet_project) == {} and cursor(rivet_project) is None
    hidden = list((rivet_project.path / "output").glob(".*.rivet-tmp"))
    assert hidden  # the killed writer's temp file, invisible to readers
    assert rivet(rivet_project).returncode == 0
    assert sorted(ids_in(visible(rivet_project))) == list(range(1, ROWS + 1))
    assert cursor(rivet_project) == ROWS
    assert list((rivet_project.path / "output").glob(".*.rivet-tmp")) == []  # swept
    statuses = sorted(run_status(rivet_project).values())
    assert statuses == ["failed", "success"]  # the crashed run is recorded as abandoned


def test_a_file_committed_but_never_recorded_is_removed_by_the_next_run(
        rivet_project, database, items):
    """Killed between a file's commit and its record: no manifest, state row or cursor
    accounts for the file, and the next run reads its rows again, so it removes the file
    first: readers see every row once."""
    write_config(rivet_project, database, items, INCREMENTAL)
    crashed(rivet(rivet_project, crash="after_file_commit"))
    (orphan,) = visible(rivet_project)
    assert orphan.name not in recorded_files(rivet_project) and cursor(rivet_project) is None
    assert rivet(rivet_project).returncode == 0
    (kept,) = visible(rivet_project)
    assert kept != orphan
    assert sorted(ids_in([kept])) == list(range(1, ROWS + 1))
    assert cursor(rivet_project) == ROWS
    assert_cursor_not_ahead(rivet_project)


@pytest.mark.parametrize("point", ["after_manifest_row"])
def test_crash_between_commit_and_cursor_duplicates_identifiably(
        rivet_project, database, items, point):
    write_config(rivet_project, database, items, INCREMENTAL)
    crashed(rivet(rivet_project, crash=point))
    (orphan,) = visible(rivet_project)
    assert cursor(rivet_project) is None
    assert orphan.name in recorded_files(rivet_project)
    assert rivet(rivet_project).returncode == 0
    files = visible(rivet_project)
    assert len(files) == 2
    counts = Counter(ids_in(files))
    assert set(counts) == set(range(1, ROWS + 1))  # no row lost
    assert set(counts.values()) == {2}  # the at-least-once window: every row twice...
    # ...and the duplicate is identifiable: the file of the run that never finished.
    runs = run_status(rivet_project)
    crashed_run = orphan.name.removeprefix("items_").removesuffix(".parquet")
    assert runs[crashed_run] == "failed"
    good = [f for f in files if f != orphan]
    assert sorted(ids_in(good)) == list(range(1, ROWS + 1))
    assert cursor(rivet_project) == ROWS
    assert_cursor_not_ahead(rivet_project)


def test_crash_after_cursor_commit_reruns_to_nothing(rivet_project, database, items):
    write_config(rivet_project, database, items, INCREMENTAL)
    crashed(rivet(rivet_project, crash="after_cursor_commit"))
    assert cursor(rivet_project) == ROWS
    assert_cursor_not_ahead(rivet_project)
    assert run_status(rivet_project) == {}  # the metric is recorded last
    assert rivet(rivet_project).returncode == 0
    assert len(visible(rivet_project)) == 1  # no new file
    assert sorted(ids_in(visible(rivet_project))) == list(range(1, ROWS + 1))
    assert cursor(rivet_project) == ROWS


def test_crash_in_full_mode_leaves_no_orphan_after_the_next_run(rivet_project, database,
                                                                items):
    write_config(rivet_project, database, items, "")
    crashed(rivet(rivet_project, crash="after_file_commit"))
    assert len(visible(rivet_project)) == 1  # the killed run's unrecorded file
    assert rivet(rivet_project).returncode == 0
    (kept,) = visible(rivet_project)
    assert kept.name in recorded_files(rivet_project)
    assert sorted(ids_in([kept])) == list(range(1, ROWS + 1))

# ----------------------------------------------------------------------------- chunked


CHUNKED = 'mode = "chunked"\nchunk_column = "id"\nchunk_size = 100\nchunk_checkpoint = true'


def chunk_statuses(project):
    return Counter(status for (status,) in query(project, "SELECT status FROM chunk_tasks"))


@pytest.mark.parametrize(("point", "completed_before_resume"), [
    ("mid_chunk:3", 2), ("after_chunk_file:3", 2), ("after_chunk_complete:3", 3)])
def test_checkpointed_chunks_resume_exactly_once(rivet_project, database, items, point,
                                                 completed_before_resume):
    write_config(rivet_project, database, items, CHUNKED)
    crashed(rivet(rivet_project, crash=point))
    statuses = chunk_statuses(rivet_project)
    assert statuses["completed"] == completed_before_resume
    before = {p.name: p.stat().st_mtime_ns for p in visible(rivet_project)}
    done = rivet(rivet_project, "--resume")
    assert done.returncode == 0, done.stderr
    files = visible(rivet_project)
    # Chunk files have deterministic names, so a chunk redone after its file was committed
    # overwrites it: exactly one file per chunk, every row exactly once.
    assert len(files) == 10
    assert sorted(ids_in(files)) == list(range(1, ROWS + 1))
    assert chunk_statuses(rivet_project) == {"completed": 10}
    completed_names = {n for n, in query(
        rivet_project, "SELECT f.file_name FROM files f JOIN chunk_tasks t ON "
        "t.idx = f.chunk_index AND t.run_id = f.run_id WHERE t.attempts = 1")}
    for name in completed_names & set(before):
        assert (rivet_project.path / "output" / name).stat().st_mtime_ns == before[name]


def test_parallel_crash_resumes_with_a_different_worker_count(rivet_project, database, items):
    write_config(rivet_project, database, items, CHUNKED + "\nparallel = 2")
    crashed(rivet(rivet_project, crash="mid_chunk:4"))
    write_config(rivet_project, database, items, CHUNKED + "\nparallel = 1")
    done = rivet(rivet_project, "--resume")
    assert done.returncode == 0, done.stderr
    assert sorted(ids_in(visible(rivet_project))) == list(range(1, ROWS + 1))


def test_chunked_without_checkpoint_starts_over_after_a_crash(rivet_project, database, items):
    write_config(rivet_project, database, items,
                 'mode = "chunked"\nchunk_column = "id"\nchunk_size = 100')
    crashed(rivet(rivet_project, crash="after_chunk_complete:3"))
    assert rivet(rivet_project).returncode == 0
    recorded = recorded_files(rivet_project)
    runs = run_status(rivet_project)
    good = [p for p in visible(rivet_project) if runs.get(recorded.get(p.name)) == "success"]
    assert sorted(ids_in(good)) == list(range(1, ROWS + 1))
    stale = [p for p in visible(rivet_project) if p not in good]
    assert len(stale) == 3 and all(runs[recorded[p.name]] == "failed" for p in stale)
