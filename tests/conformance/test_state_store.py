"""The conformance suite of the state store interface (:mod:`rivet_core.state.base`): every
test runs on each backend, SQLite (a file in the test's directory) and PostgreSQL (a fresh
schema of the test server per test, dropped after it).

What is recorded is read back through a second store on a fresh connection, and where it
matters (a rollback, a redacted secret) through a back door: the backend's own driver,
never the store under test. Concurrency is real: several processes, each with its own
store, race for one run lock, claim chunks of one chunk run, or read while another commits.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rivet_core.errors import StateError
from rivet_core.state import StateLocation, StateStore, open_location
from rivet_core.state.backend import postgres_location
from rivet_core.state.copy import copy_state
from rivet_core.state.migrations import MIGRATIONS, PG_MIGRATIONS
from rivet_core.state.records import (
    COPIED_TABLES,
    STATE_TABLES,
    ChunkRun,
    ChunkTask,
    FileRecord,
    RunRecord,
    iso,
    utc_now,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateLocation]:
    if request.param == "sqlite":
        yield StateLocation(backend="sqlite", path=tmp_path / ".rivet_state.db")
        return
    import psycopg

    url = request.getfixturevalue("pg_url")
    schema = f"rivet_st_{uuid.uuid4().hex[:10]}"
    yield postgres_location(url, schema)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def store(location: StateLocation) -> Iterator[StateStore]:
    with open_location(location) as opened:
        yield opened


def backdoor(location: StateLocation, statement: str, args: tuple[Any, ...] = ()
             ) -> list[tuple[Any, ...]]:
    """Run ``statement`` (``?`` parameters) with the backend's own driver, committed."""
    if location.backend == "sqlite":
        assert location.path is not None
        db = sqlite3.connect(location.path)
        try:
            with db:
                return db.execute(statement, args).fetchall()
        finally:
            db.close()
    import psycopg

    assert location.url is not None
    with psycopg.connect(location.url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{location.schema}"')
        cursor = conn.execute(statement.replace("?", "%s"), args)
        return cursor.fetchall() if cursor.description else []


def file_record(i: int, *, export: str = "e", run_id: str = "r1", **changes: Any) -> FileRecord:
    values: dict[str, Any] = dict(run_id=run_id, export_name=export, file_name=f"f{i}.csv",
                                  uri=f"file:///out/f{i}.csv", rows=10 * i, bytes=100 * i,
                                  sha256=f"{i:064x}", format="csv", compression="none")
    values.update(changes)
    return FileRecord(**values)


def run_record(run_id: str, *, export: str = "e", started_at: str = "2026-01-01T00:00:00Z",
               **changes: Any) -> RunRecord:
    values: dict[str, Any] = dict(run_id=run_id, export_name=export, mode="full",
                                  status="success", started_at=started_at,
                                  finished_at=started_at, rows=5, files=1, bytes=50,
                                  duration_ms=7, peak_rss_mb=12.5)
    values.update(changes)
    return RunRecord(**values)


def chunk_run(store: StateStore, run_id: str = "c1", tasks: int = 3,
              export: str = "e") -> None:
    now = iso(utc_now())
    with store.transaction() as tx:
        tx.create_chunk_run(
            ChunkRun(run_id=run_id, export_name=export, plan_hash="h", status="in_progress",
                     max_attempts=2, created_at=now, updated_at=now),
            [ChunkTask(run_id=run_id, idx=i, lo=str(i * 10), hi=str(i * 10 + 10),
                       expected_rows=10, status="pending") for i in range(tasks)])


# ------------------------------------------------------------------------------ records


def test_a_new_store_is_empty_at_the_latest_version_and_reopening_migrates_nothing(
        location, store):
    assert set(store.counts()) == set(STATE_TABLES)
    assert not any(store.counts().values())
    latest = len(MIGRATIONS if location.backend == "sqlite" else PG_MIGRATIONS)
    assert store.schema_version == latest
    with open_location(location) as again:
        assert again.schema_version == latest
    table = "schema_version" if location.backend == "sqlite" else "rivet_schema_version"
    assert backdoor(location, f"SELECT COUNT(*) FROM {table}") == [(latest,)]


def test_a_store_newer_than_this_rivet_is_refused(location, store):
    table = "schema_version" if location.backend == "sqlite" else "rivet_schema_version"
    extra = ", 'x'" if location.backend == "postgresql" else ""
    store.close()
    backdoor(location, f"INSERT INTO {table} VALUES (999, 'later'{extra})")
    with pytest.raises(StateError, match="newer than this Rivet"):
        open_location(location)


def test_file_records_read_back_newest_first_with_every_field(location, store):
    records = [file_record(1, chunk_index=0, created_at="2026-01-01T00:00:00.000001Z"),
               file_record(2, run_id="r2"), file_record(3, export="other")]
    with store.transaction() as tx:
        for record in records:
            tx.record_file(record)
    with open_location(location) as reader:
        assert reader.files("e") == [
            file_record(2, run_id="r2", created_at=reader.files("e")[0].created_at),
            records[0]]
        assert [f.file_name for f in reader.files()] == ["f3.csv", "f2.csv", "f1.csv"]
        assert [f.file_name for f in reader.files(run_id="r1")] == ["f3.csv", "f1.csv"]
        assert [f.file_name for f in reader.files(limit=1)] == ["f3.csv"]


def test_secrets_in_a_file_uri_and_a_run_error_are_stored_masked(location, store):
    with store.transaction() as tx:
        tx.record_file(file_record(1, uri="s3://key:hunter2secret@bucket/f1.csv"))
        tx.record_run(run_record("r1", status="failed",
                                 error="login postgresql://u:hunter2secret@db/x failed"))
        tx.journal("r1", "e", "retry", error="postgresql://u:hunter2secret@db/x")
    for table, column in (("files", "uri"), ("runs", "error"), ("journal", "data")):
        (stored,), = backdoor(location, f"SELECT {column} FROM {table}")
        assert "hunter2secret" not in stored and "REDACTED" in stored, table


def test_runs_come_newest_first_and_recording_a_run_again_replaces_it(location, store):
    with store.transaction() as tx:
        tx.record_run(run_record("a", started_at="2026-01-01T00:00:00Z"))
        tx.record_run(run_record("b", started_at="2026-01-02T00:00:00Z"))
        tx.record_run(run_record("c", started_at="2026-01-02T00:00:00Z", export="other"))
    assert [r.run_id for r in store.runs()] == ["c", "b", "a"]
    with store.transaction() as tx:
        tx.record_run(run_record("b", started_at="2026-01-02T00:00:00Z", status="failed",
                                 error="boom", retries=2, peak_rss_mb=None))
    with open_location(location) as reader:
        # Recorded again: the newest of its instant, and one row.
        assert [r.run_id for r in reader.runs()] == ["b", "c", "a"]
        assert reader.runs("e") == [
            run_record("b", started_at="2026-01-02T00:00:00Z", status="failed",
                       error="boom", retries=2, peak_rss_mb=None),
            run_record("a", started_at="2026-01-01T00:00:00Z")]
        assert reader.runs(limit=1)[0].run_id == "b"
        assert reader.counts()["runs"] == 3


def test_cursors_are_set_replaced_and_reset(location, store):
    with store.transaction() as tx:
        tx.set_cursor("b", '{"type": "int", "value": "1"}', "r1")
        tx.set_cursor("a", '{"type": "int", "value": "5"}', "r1")
        tx.set_cursor("b", '{"type": "int", "value": "2"}', "r2")
    with open_location(location) as reader:
        assert [(c.export_name, c.value, c.run_id) for c in reader.cursors()] == [
            ("a", '{"type": "int", "value": "5"}', "r1"),
            ("b", '{"type": "int", "value": "2"}', "r2")]
        cursor = reader.cursor("b")
        assert cursor is not None and cursor.updated_at.endswith("Z")
    with store.transaction() as tx:
        assert tx.reset_cursor("b") is True
        assert tx.reset_cursor("b") is False
    assert store.cursor("b") is None
    assert store.cursor("a") is not None


def test_the_journal_reads_back_oldest_first_and_finds_runs_that_never_finished(
        location, store):
    with store.transaction() as tx:
        tx.journal("r1", "e", "run_started", mode="full", resume=False)
        tx.journal("r1", "e", "file_committed", file="f1.csv", rows=3)
        tx.journal("r2", "e", "run_started", mode="full", resume=False)
        tx.journal("r3", "other", "run_started", mode="full", resume=False)
        tx.record_run(run_record("r1"))
    with open_location(location) as reader:
        events = reader.journal(export_name="e")
        assert [(e.run_id, e.event) for e in events] == [
            ("r1", "run_started"), ("r1", "file_committed"), ("r2", "run_started")]
        assert events[1].data == {"file": "f1.csv", "rows": 3}
        assert events[0].id < events[1].id < events[2].id
        assert [e.event for e in reader.journal(run_id="r1", limit=1)] == ["file_committed"]
        assert len(reader.journal()) == 4
        assert reader.unfinished_runs("e") == ["r2"]
        assert reader.unfinished_runs("other") == ["r3"]


def test_the_latest_export_schema_replaces_the_one_before(location, store):
    columns = [{"name": "id", "type": "int64", "nullable": False}]
    with store.transaction() as tx:
        tx.record_schema("e", "r1", columns, {"name": 3})
        tx.record_schema("e", "r2", [*columns, {"name": "x", "type": "string"}], {"x": 9})
    with open_location(location) as reader:
        assert reader.export_schema("e") == (
            "r2", [*columns, {"name": "x", "type": "string"}], {"x": 9})
        assert reader.export_schema("other") is None
    assert backdoor(location, "SELECT COUNT(*) FROM export_schemas") == [(1,)]


# ------------------------------------------------------------------------- transactions


def test_a_transaction_that_raises_leaves_nothing_behind(location, store):
    chunk_run(store)

    class Boom(Exception):
        pass

    before = backdoor(location, "SELECT status, attempts FROM chunk_tasks ORDER BY idx")
    with pytest.raises(Boom), store.transaction() as tx:
        tx.record_file(file_record(1))
        tx.set_cursor("e", "1", "r1")
        tx.journal("r1", "e", "cursor_advanced", after="1")
        tx.record_run(run_record("r1"))
        tx.record_schema("e", "r1", [], {})
        assert tx.claim_chunk("c1", 2) is not None
        tx.acquire_lock("e", "r1")
        raise Boom
    for table in ("files", "cursors", "journal", "runs", "export_schemas", "locks"):
        assert backdoor(location, f"SELECT COUNT(*) FROM {table}") == [(0,)], table
    assert backdoor(location, "SELECT status, attempts FROM chunk_tasks ORDER BY idx") == before
    # The store goes on working, and the lock of the rolled-back block is not held.
    with store.transaction() as tx:
        tx.set_cursor("e", "2", "r2")
    with open_location(location) as other, other.transaction() as tx:
        assert tx.acquire_lock("e", "r3") is None


def test_a_cursor_commits_with_its_file_or_not_at_all(location, store):
    """A state error inside the commit step (the chunk is no longer running) takes the file
    record and the cursor of the same step back with it."""
    chunk_run(store, tasks=1)
    with store.transaction() as tx:
        claimed = tx.claim_chunk("c1", 2)
    assert claimed is not None
    with store.transaction() as tx:
        tx.reopen_tasks("c1")  # someone else moved the chunk back
    with pytest.raises(StateError, match="no longer recorded as running"), \
            store.transaction() as tx:
        tx.record_file(file_record(1, chunk_index=0))
        tx.set_cursor("e", "10", "r1")
        tx.complete_chunk("c1", 0, rows=10, files=1, bytes_=100)
    assert store.files() == [] and store.cursor("e") is None


# ------------------------------------------------------------------------------- chunks


def test_a_chunk_run_claims_fails_reopens_completes_and_finishes(location, store):
    chunk_run(store, tasks=3)
    run = store.chunk_run("e")
    assert run is not None and run.status == "in_progress"
    assert store.chunk_run("e", status="completed") is None
    assert store.chunk_run("e", run_id="c1") == run
    with store.transaction() as tx:
        first = tx.claim_chunk("c1", 2)
        second = tx.claim_chunk("c1", 2, skip={1})
        assert first is not None and second is not None
        assert (first.idx, first.status, first.attempts) == (0, "running", 1)
        assert (first.lo, first.hi, first.expected_rows) == ("0", "10", 10)
        assert second.idx == 2
        tx.fail_chunk("c1", 2, "lost postgresql://u:topsecret99@h/d")
        third = tx.claim_chunk("c1", 2)
        assert third is not None and third.idx == 1
        retried = tx.claim_chunk("c1", 2)
        assert retried is not None and (retried.idx, retried.attempts) == (2, 2)
        tx.fail_chunk("c1", 2, "again")
        assert tx.claim_chunk("c1", 2) is None  # chunk 2 used both attempts
        with pytest.raises(StateError, match="planned 3"):
            tx.finish_chunk_run("c1", 3)
    tasks = {t.idx: t for t in store.chunk_tasks("c1")}
    assert tasks[2].status == "failed" and tasks[2].last_error == "again"
    with store.transaction() as tx:
        assert tx.reopen_tasks("c1") == 3  # two running, one failed
        assert [tx.claim_chunk("c1", 3).idx for _ in range(3)] == [0, 1, 2]  # type: ignore
        for idx in range(3):
            tx.complete_chunk("c1", idx, rows=10, files=1, bytes_=100)
        with pytest.raises(StateError, match="no longer recorded as running"):
            tx.complete_chunk("c1", 0, rows=10, files=1, bytes_=100)
        tx.finish_chunk_run("c1", 3)
    finished = store.chunk_run("e", status="completed")
    assert finished is not None and finished.run_id == "c1"
    assert [(t.status, t.rows, t.files, t.bytes, t.last_error) for t in
            store.chunk_tasks("c1")] == [("completed", 10, 1, 100, None)] * 3


def test_a_repaired_chunk_gets_its_new_files_and_totals(location, store):
    chunk_run(store, tasks=2)
    with store.transaction() as tx:
        for idx in (0, 1):
            tx.claim_chunk("c1", 2)
            tx.record_file(file_record(idx, run_id="c1", chunk_index=idx))
            tx.complete_chunk("c1", idx, rows=10, files=1, bytes_=100)
    with store.transaction() as tx:
        tx.replace_chunk_files("e", "c1", 0, [file_record(7, run_id="c1", chunk_index=0),
                                              file_record(8, run_id="c1", chunk_index=0)],
                               rows=150)
    assert sorted(f.file_name for f in store.files("e")) == ["f1.csv", "f7.csv", "f8.csv"]
    repaired = store.chunk_tasks("c1")[0]
    assert (repaired.rows, repaired.files, repaired.bytes) == (150, 2, 1500)


def test_deleting_an_exports_chunk_runs_removes_their_tasks(location, store):
    chunk_run(store, "c1")
    chunk_run(store, "c2")
    chunk_run(store, "c3", export="other")
    with store.transaction() as tx:
        assert tx.delete_chunk_runs("e") == 2
        assert tx.delete_chunk_runs("e") == 0
    assert store.chunk_run("e") is None and store.chunk_tasks("c1") == []
    assert len(store.chunk_tasks("c3")) == 3
    assert backdoor(location, "SELECT COUNT(*) FROM chunk_tasks") == [(3,)]


# -------------------------------------------------------------------------------- locks


def test_a_run_lock_is_held_by_one_store_until_released(location, store):
    with store.transaction() as tx:
        assert tx.acquire_lock("e", "r1") is None
    with open_location(location) as other:
        with other.transaction() as tx:
            holder = tx.acquire_lock("e", "r2")
            assert holder is not None and holder.run_id == "r1" and holder.pid == os.getpid()
            assert tx.live_lock("e") == holder
            with pytest.raises(StateError, match="is running"):
                tx.refuse_while_running("e")
            assert tx.acquire_lock("other", "r2") is None  # locks are per export
        recorded = other.lock("e")
        assert recorded is not None and recorded.run_id == "r1"
        with store.transaction() as tx:
            assert tx.acquire_lock("e", "r1b") is not None  # held, even by the same store
            tx.release_lock("e", "r1")
        with other.transaction() as tx:
            assert tx.live_lock("e") is None
            tx.refuse_while_running("e")
            assert tx.acquire_lock("e", "r2") is None
        with store.transaction() as tx:
            assert tx.acquire_lock("e", "r1") is not None
        with other.transaction() as tx:
            tx.release_lock("e", "r2")
    with store.transaction() as tx:
        assert tx.acquire_lock("e", "r1") is None


def test_a_lock_recorded_on_another_host_counts_as_live_only_where_holders_are_unseen(
        location, store):
    """SQLite cannot tell whether a holder on another host lives, so its lock stands;
    PostgreSQL sees that no session holds it, so it is taken over."""
    backdoor(location, "INSERT INTO locks VALUES ('e', 'dead-run', 4242, 'pod-gone', "
                       "'2026-01-01T00:00:00Z')")
    with store.transaction() as tx:
        holder = tx.live_lock("e")
        if store.sees_remote_holders:
            assert holder is None
            assert tx.acquire_lock("e", "r1") is None
        else:
            assert holder is not None and holder.host == "pod-gone"
            assert tx.acquire_lock("e", "r1") == holder


# ------------------------------------------------------------------------- concurrency

WORKER = r"""
import json, os, sys, time
from pathlib import Path
from rivet_core.state import StateLocation, open_location
from rivet_core.state.records import FileRecord

spec = json.loads(sys.argv[1])
store = open_location(StateLocation(
    backend=spec["backend"], path=Path(spec["path"]) if spec["path"] else None,
    url=spec["url"], schema=spec["schema"]))
print("ready", flush=True)
go = Path(spec["go"])
while not go.exists():
    time.sleep(0.002)
if spec["action"] == "lock":
    with store.transaction() as tx:
        holder = tx.acquire_lock("race", f"run-{os.getpid()}")
    print(json.dumps({"won": holder is None}), flush=True)
    if holder is None:
        sys.stdin.read()  # hold the lock until killed
elif spec["action"] == "claim":
    claimed = []
    while True:
        with store.transaction() as tx:
            task = tx.claim_chunk("c1", 3)
        if task is None:
            break
        claimed.append(task.idx)
        with store.transaction() as tx:
            tx.complete_chunk("c1", task.idx, rows=1, files=1, bytes_=1)
    print(json.dumps(claimed), flush=True)
elif spec["action"] == "commit":
    for i in range(spec["steps"]):
        with store.transaction() as tx:
            tx.record_file(FileRecord(run_id="w", export_name="e", file_name=f"f{i}",
                                      uri=f"file:///f{i}", rows=1, bytes=1, sha256="0",
                                      format="csv", compression="none"))
            tx.set_cursor("e", str(i), "w")
            tx.journal("w", "e", "cursor_advanced", after=i)
    print("done", flush=True)
store.close()
"""


class Workers:
    """Processes running :data:`WORKER`, each with its own store, started together."""

    def __init__(self, location: StateLocation, tmp_path: Path) -> None:
        self.location = location
        self.go = tmp_path / f"go-{uuid.uuid4().hex}"
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, action: str, count: int, **extra: Any) -> list[subprocess.Popen[str]]:
        spec = {"backend": self.location.backend, "url": self.location.url,
                "schema": self.location.schema, "go": str(self.go), "action": action,
                "path": str(self.location.path) if self.location.path else None, **extra}
        started = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True) for _ in range(count)]
        self.procs += started
        for proc in started:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.go.touch()
        return started

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def workers(location: StateLocation, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(location, tmp_path)
    try:
        yield pool
    finally:
        pool.stop()


def test_two_processes_race_for_one_lock_exactly_one_wins_and_its_death_frees_it(
        location, store, workers):
    procs = workers.start("lock", 2)
    outcomes = [json.loads(p.stdout.readline()) for p in procs]  # type: ignore[union-attr]
    winners = [p for p, o in zip(procs, outcomes, strict=True) if o["won"]]
    assert len(winners) == 1, outcomes
    (winner,) = winners
    loser = next(p for p in procs if p is not winner)
    assert loser.wait(timeout=30) == 0
    with store.transaction() as tx:
        holder = tx.acquire_lock("race", "observer")
        assert holder is not None and holder.pid == winner.pid
    winner.send_signal(signal.SIGKILL)  # no clean-up: the lock must free itself
    winner.wait()
    deadline = time.monotonic() + 15
    while True:
        with store.transaction() as tx:
            holder = tx.acquire_lock("race", "observer")
        if holder is None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert holder is None, f"the dead winner's lock was still held: {holder}"


def test_concurrent_claims_from_many_processes_never_hand_out_a_chunk_twice(
        location, store, workers):
    chunk_run(store, tasks=40)
    procs = workers.start("claim", 4)
    claims = [json.loads(p.stdout.readline()) for p in procs]  # type: ignore[union-attr]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    flat = [idx for claimed in claims for idx in claimed]
    assert sorted(flat) == list(range(40)), claims
    assert all(claimed == sorted(claimed) for claimed in claims)  # each took the first free
    assert {(t.status, t.attempts) for t in store.chunk_tasks("c1")} == {("completed", 1)}


def test_a_reader_never_sees_a_cursor_without_its_file_nor_a_file_without_its_cursor(
        location, store, workers):
    steps = 150
    (writer,) = workers.start("commit", 1, steps=steps)
    observations = 0
    while writer.poll() is None or observations == 0:
        cursor = store.cursor("e")
        files = {f.file_name for f in store.files("e", limit=10_000)}
        if cursor is not None:
            assert {f"f{i}" for i in range(int(cursor.value) + 1)} <= files
        files_first = {f.file_name for f in store.files("e", limit=10_000)}
        cursor = store.cursor("e")
        newest = max((int(name[1:]) for name in files_first), default=-1)
        assert (int(cursor.value) if cursor else -1) >= newest
        observations += 1
    assert writer.wait() == 0
    assert store.cursor("e").value == str(steps - 1)  # type: ignore[union-attr]
    assert store.counts()["files"] == steps and store.counts()["journal"] == steps


# ---------------------------------------------------------------------------- migrating


def populate(store: StateStore) -> None:
    chunk_run(store, tasks=2)
    with store.transaction() as tx:
        tx.claim_chunk("c1", 2)
        tx.record_file(file_record(1, run_id="c1", chunk_index=0))
        tx.complete_chunk("c1", 0, rows=10, files=1, bytes_=100)
        tx.record_file(file_record(2, export="inc", run_id="r9"))
        tx.set_cursor("inc", '{"type": "int", "value": "99"}', "r9")
        tx.record_schema("inc", "r9", [{"name": "id", "type": "int64"}], {"id": 8})
        tx.journal("r9", "inc", "run_started", mode="incremental")
        tx.journal("r9", "inc", "cursor_advanced", after="99")
        tx.record_run(run_record("r8", export="inc", started_at="2026-01-01T00:00:00Z"))
        tx.record_run(run_record("r9", export="inc", started_at="2026-01-01T00:00:00Z"))
        tx.acquire_lock("dead", "r0")
        tx.release_lock("dead", "r0")


def test_a_copy_into_an_empty_store_reads_back_the_same_and_goes_on_from_there(
        location, store, tmp_path):
    source_location = StateLocation(backend="sqlite", path=tmp_path / "source" / "s.db")
    source_location.path.parent.mkdir()  # type: ignore[union-attr]
    with open_location(source_location) as source:
        populate(source)
        copied = copy_state(source, store)
        assert copied == {t: n for t, n in source.counts().items() if t in COPIED_TABLES}
        for table in COPIED_TABLES:
            assert list(store.dump(table)) == list(source.dump(table)), table
        assert store.runs() == source.runs() and store.journal() == source.journal()
        with pytest.raises(StateError, match="not empty"):
            copy_state(source, store)
        with store.transaction() as tx:
            tx.journal("r10", "inc", "run_started")
            tx.record_file(file_record(3, export="inc", run_id="r10"))
        ids = [e.id for e in store.journal()]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)  # new ids follow the copied
        assert store.files(limit=1)[0].file_name == "f3.csv"
        assert copy_state(source, store, force=True) == copied
        assert store.counts()["journal"] == source.counts()["journal"]


def test_a_copy_is_refused_while_a_run_holds_a_lock(location, store, tmp_path):
    source_location = StateLocation(backend="sqlite", path=tmp_path / "source.db")
    with open_location(source_location) as source:
        with source.transaction() as tx:
            tx.acquire_lock("e", "r1")
        with pytest.raises(StateError, match="running"):
            copy_state(source, store)
    assert not any(store.counts().values())
