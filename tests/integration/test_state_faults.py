"""The state store failing under a run: a full disk, a read-only database, an empty or corrupt
state file. Each stops cleanly (one line naming the path, a hint, no traceback), leaves the
destination uncertified, never loses the cursor, and an empty or corrupt file is refused
instead of silently taken as new state, unless ``--init-state`` says so.

The full and read-only file systems are real: a small tmpfs mounted for the test (skipped,
saying why, where mounting is not permitted).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from rivet_core.errors import ExitCode


def config(db, table, *, output):
    return f"""
[source]
type = "{db.kind}"
url = "{db.url}"

[[exports]]
name = "t"
table = "{table}"
mode = "incremental"
cursor_column = "id"
format = "csv"
max_file_size = "16KB"
[exports.tuning]
batch_size = 100
max_retries = 0
[exports.destination]
type = "local"
path = "{output}"
"""


@pytest.fixture
def items(database):
    table = database.table("state_faults")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v {database.text})")
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                         [(i, "v" * 60) for i in range(1, 3001)])
    return table


class SmallFileSystem:
    """A tmpfs of a few hundred KiB mounted at ``path``."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")

    def fill(self, leave: int) -> None:
        """Leave only ``leave`` bytes free."""
        free = shutil.disk_usage(self.path).free
        with open(self.path / "ballast", "wb") as ballast:
            ballast.write(b"\0" * max(0, free - leave))

    def free_up(self) -> None:
        (self.path / "ballast").unlink(missing_ok=True)

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def small_fs(tmp_path):
    filesystems: list[SmallFileSystem] = []

    def make(size: str = "2m") -> SmallFileSystem:
        fs = SmallFileSystem(tmp_path / f"fs{len(filesystems)}", size)
        filesystems.append(fs)
        return fs

    yield make
    for fs in filesystems:
        fs.unmount()


def stored_cursor(state_file: Path):
    db = sqlite3.connect(state_file)
    try:
        rows = db.execute("SELECT value FROM cursors WHERE export_name = 't'").fetchall()
    finally:
        db.close()
    return json.loads(rows[0][0])["value"] if rows else None


def project_on(fs, rivet_project):
    """The project's config (and so its state file) on the small file system; the output
    stays on the normal disk."""
    from rivet_core.testing.project import RivetProject

    return RivetProject(fs.path), rivet_project.path / "output"


def test_a_full_disk_under_the_state_stops_cleanly_and_keeps_the_cursor(
        rivet_project, database, items, small_fs):
    fs = small_fs("2m")
    project, output = project_on(fs, rivet_project)
    project.write_config(config(database, items, output=output))
    project.run("run").assert_success()
    assert stored_cursor(project.path / ".rivet_state.db") == "3000"
    database.executemany(f"INSERT INTO {items} VALUES (%s, %s)",
                         [(i, "w" * 60) for i in range(3001, 6001)])
    fs.fill(leave=96 << 10)
    outcome = project.run("run", "--json")
    assert outcome.code == ExitCode.RUN_FAILED, outcome.err
    assert "Traceback" not in outcome.err
    assert ".rivet_state.db" in outcome.err and "space" in outcome.err
    assert outcome.out, outcome.err
    summary = json.loads(outcome.out)
    assert summary["exports"][0]["status"] == "failed", outcome.err
    assert not (output / "_rivet" / "t" / "_SUCCESS").exists()
    fs.free_up()
    assert stored_cursor(project.path / ".rivet_state.db") == "3000"
    again = project.run("run", "--json").assert_success().json()
    assert again["exports"][0]["cursor_after"].startswith("6000")


def test_a_read_only_state_database_is_one_clean_line(rivet_project, database, items,
                                                      small_fs):
    fs = small_fs("2m")
    project, output = project_on(fs, rivet_project)
    project.write_config(config(database, items, output=output))
    project.run("run").assert_success()
    fs.read_only()
    for args in (("run",), ("state", "reset", "-e", "t"), ("state", "reset-chunks", "-e", "t")):
        outcome = project.run(*args)
        assert outcome.code == ExitCode.RUN_FAILED, (args, outcome.err)
        assert "Traceback" not in outcome.err, args
        assert "read-only" in outcome.err and ".rivet_state.db" in outcome.err, args
    shown = project.run("state", "show", "--json").assert_success().json()
    assert shown["exports"][0]["cursor_raw"] is not None


def test_an_empty_state_file_is_refused_not_taken_as_new(rivet_project, database, items):
    rivet_project.write_config(config(database, items, output="./output"))
    rivet_project.run("run").assert_success()
    state_file = rivet_project.path / ".rivet_state.db"
    for leftover in rivet_project.path.glob(".rivet_state.db-*"):
        leftover.unlink()
    state_file.write_bytes(b"")
    outcome = rivet_project.run("run")
    assert outcome.code == ExitCode.RUN_FAILED, outcome.err
    assert "empty" in outcome.err and "--init-state" in outcome.err
    assert state_file.stat().st_size == 0  # left as found
    assert len(list((rivet_project.path / "output").glob("t_*.csv"))) > 0
    files_before = sorted((rivet_project.path / "output").glob("t_*.csv"))
    # Explicitly starting over keeps the old file aside and exports everything again.
    rivet_project.run("run", "--init-state").assert_success()
    assert list(rivet_project.path.glob(".rivet_state.db.empty-*"))
    assert len(sorted((rivet_project.path / "output").glob("t_*.csv"))) > len(files_before)


def test_a_corrupt_state_file_is_refused_until_init_state(rivet_project, database, items):
    rivet_project.write_config(config(database, items, output="./output"))
    state_file = rivet_project.path / ".rivet_state.db"
    state_file.write_bytes(b"this is not a database" * 100)
    for args in (("run",), ("state", "show")):
        outcome = rivet_project.run(*args)
        assert outcome.code == ExitCode.RUN_FAILED, outcome.err
        assert "Traceback" not in outcome.err
        assert "--init-state" in outcome.err and ".rivet_state.db" in outcome.err
    rivet_project.run("run", "--init-state").assert_success()
    assert list(rivet_project.path.glob(".rivet_state.db.corrupt-*"))


def test_a_lock_left_on_another_host_is_removed_only_with_force(rivet_project, pg_url):
    """A run killed in a container whose host name is gone leaves a lock Rivet cannot judge:
    runs and `state reset` refuse it, `state unlock --force` removes it, and runs resume."""
    rivet_project.write_config(f"""
[source]
type = "postgres"
url = "{pg_url}"

[[exports]]
name = "t"
query = "SELECT 1 AS x"
format = "csv"
[exports.destination]
type = "local"
path = "./out"
""")
    rivet_project.run("run").assert_success()
    db = sqlite3.connect(rivet_project.path / ".rivet_state.db")
    with db:
        db.execute("INSERT INTO locks VALUES ('t', '20260101T000000Z-dead00', 4242, "
                   "'pod-7f9c', '2026-01-01T00:00:00Z')")
    db.close()
    refused = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    assert "already running" in refused.json()["exports"][0]["error"]
    unlock = rivet_project.run("state", "unlock", "-e", "t").assert_failed(ExitCode.RUN_FAILED)
    assert "pod-7f9c" in unlock.err and "--force" in unlock.err
    removed = rivet_project.run("state", "unlock", "-e", "t", "--force", "--json")
    assert removed.assert_success().json() == {"export": "t", "removed": True,
                                               "run_id": "20260101T000000Z-dead00"}
    rivet_project.run("run").assert_success()
    again = rivet_project.run("state", "unlock", "-e", "t").assert_success()
    assert "not locked" in again.out
    events = rivet_project.run("journal", "--json").assert_success().json()["events"]
    assert any(e["event"] == "lock_removed" and e["data"]["forced"] for e in events)
