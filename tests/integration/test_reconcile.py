"""`rivet reconcile` and `rivet repair` on checkpointed chunked runs, PostgreSQL and MariaDB,
local disk and S3 (moto): what reconcile finds when a part file is lost or the source
changed, what a dry run leaves alone, and that an executed repair passes `rivet validate`
and a new reconcile."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import sqlite3
from pathlib import Path

import pytest
from servers import MOTO_AUTH, BucketReader, http

from rivet_core.errors import ExitCode

ROWS = 3000


def config(db, table: str, *, destination: str | None = None, extra: str = "") -> str:
    # 1000-row chunks read in 200-row batches of ~8 KB: each chunk rolls into 5 parts.
    destination = destination or 'type = "local"\npath = "./output/{export}"'
    return f"""
[source]
type = "{db.kind}"
url = "{db.url}"

[[exports]]
name = "ev"
table = "{table}"
mode = "chunked"
chunk_column = "id"
chunk_size = 1000
chunk_checkpoint = true
format = "csv"
max_file_size = "8KB"
[exports.tuning]
batch_size = 200
[exports.destination]
{destination}
{extra}
"""


OTHER_EXPORT = """
[[exports]]
name = "other"
query = "SELECT 1 AS id"
mode = "chunked"
chunk_column = "id"
chunk_checkpoint = true
format = "csv"
[exports.destination]
type = "local"
path = "./output/{export}"
"""


@pytest.fixture
def items(database):
    table = database.table("rc_items")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, label {database.text})")
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                         [(i, f"label-{i:06d}-{'x' * 24}") for i in range(1, ROWS + 1)])
    return table


def held(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file()}


def file_records(project) -> list[tuple]:
    db = sqlite3.connect(project.path / ".rivet_state.db")
    try:
        return db.execute("SELECT file_name, rows, bytes, sha256, chunk_index FROM files "
                          "ORDER BY file_name").fetchall()
    finally:
        db.close()


def exported_ids(out: Path) -> list[int]:
    ids = []
    for path in sorted(out.glob("ev_*.csv")):
        ids += [int(row["id"]) for row in csv.DictReader(io.StringIO(path.read_text()))]
    return ids


def chunk_of(report: dict, idx: int) -> dict:
    (check,) = [c for c in report["chunks"] if c["chunk"] == idx]
    return check


def test_reconcile_finds_a_lost_part_and_repair_restores_it(rivet_project, database, items):
    rivet_project.write_config(config(database, items))
    run_id = rivet_project.run("run", "--json").assert_success().json()["exports"][0]["run_id"]
    out = rivet_project.path / "output" / "ev"
    report = rivet_project.run("reconcile", "-e", "ev", "--json").assert_success().json()
    assert set(report) == {"rivet_version", "export", "run_id", "chunks", "summary"}
    assert (report["export"], report["run_id"]) == ("ev", run_id)
    assert report["summary"] == {"chunks": 3, "matches": 3, "mismatches": 0, "unknown": 0,
                                 "source_rows": ROWS, "exported_rows": ROWS}
    assert report["chunks"][1] == {"chunk": 1, "range": report["chunks"][1]["range"],
                                   "source_rows": 1000, "exported_rows": 1000,
                                   "status": "match", "note": None}
    assert re.fullmatch(r"\[\d+\.\.\d+\)", report["chunks"][1]["range"])

    lost = f"ev_{run_id}_chunk000001_part0002.csv"
    assert len(list(out.glob(f"ev_{run_id}_chunk000001_part*.csv"))) == 5
    (out / lost).unlink()
    found = rivet_project.run("reconcile", "-e", "ev").assert_failed(ExitCode.CHECK_FAILED)
    (line, summary) = found.out.splitlines()
    assert line.startswith("ev: chunk 1 [") and "MISMATCH" in line and f"missing {lost}" in line
    assert "source=1000, exported=800, diff=200" in line
    assert summary.startswith(f"ev: run {run_id}: 3 chunk(s), 1 mismatch, 0 unknown")

    before, records = held(out), file_records(rivet_project)
    dry = rivet_project.run("repair", "-e", "ev", "--json").assert_success().json()
    assert set(dry) == {"rivet_version", "export", "run_id", "actions", "skipped", "executed"}
    assert dry["executed"] is False and dry["skipped"] == []
    assert [(a["chunk"], f"missing {lost}" in a["reason"]) for a in dry["actions"]] == [
        (1, True)]
    text = rivet_project.run("repair", "-e", "ev").assert_success().out
    assert "1 chunk(s) to re-export (dry run" in text and "chunk 1 [" in text
    assert held(out) == before and file_records(rivet_project) == records

    # Refused while a live process holds the export's lock (this test process).
    db = sqlite3.connect(rivet_project.path / ".rivet_state.db")
    with db:
        db.execute("INSERT INTO locks VALUES ('ev', '20990101T000000Z-abcdef', ?, ?, 'now')",
                   (os.getpid(), socket.gethostname()))
    busy = rivet_project.run("repair", "-e", "ev", "--execute").assert_failed(
        ExitCode.RUN_FAILED)
    assert "is running" in busy.err and held(out) == before
    with db:
        db.execute("DELETE FROM locks")
    db.close()

    done = rivet_project.run("repair", "-e", "ev", "--execute", "--json").assert_success()
    (repaired,) = done.json()["repaired"]
    assert repaired["chunk"] == 1 and repaired["rows"] == 1000 and repaired["removed"] == []
    assert lost in repaired["files"] and (out / lost).exists()
    assert sorted(exported_ids(out)) == list(range(1, ROWS + 1))
    rivet_project.run("validate", "-e", "ev").assert_success()
    rivet_project.run("reconcile", "-e", "ev").assert_success()
    events = [e["event"] for e in rivet_project.run(
        "journal", "-e", "ev", "--json").json()["events"]]
    assert "reconciled" in events and "chunk_repaired" in events


POSTGRES_ONLY = pytest.mark.parametrize("database", ["postgres"], indirect=True)


@POSTGRES_ONLY
def test_rows_deleted_at_the_source_make_their_chunk_mismatch_until_repaired(
        rivet_project, database, items):
    table = items
    rivet_project.write_config(config(database, table, extra=OTHER_EXPORT))
    run_id = rivet_project.run("run", "-e", "ev", "--json").assert_success().json()[
        "exports"][0]["run_id"]
    out = rivet_project.path / "output" / "ev"
    database.execute(f"DELETE FROM {table} WHERE id BETWEEN 1001 AND 1300")

    report_path = rivet_project.path / "report.json"
    rivet_project.run("reconcile", "-e", "ev", "--output", str(report_path)).assert_failed(
        ExitCode.CHECK_FAILED)
    report = json.loads(report_path.read_text())
    assert chunk_of(report, 1)["status"] == "mismatch"
    assert chunk_of(report, 1)["source_rows"] == 700
    assert chunk_of(report, 1)["exported_rows"] == 1000
    assert chunk_of(report, 1)["note"] == "source=700, exported=1000, diff=-300"
    assert report["summary"]["source_rows"] == ROWS - 300

    wrong = rivet_project.run("repair", "-e", "other", "--report", str(report_path))
    wrong.assert_failed(ExitCode.USAGE)
    assert "report of export 'ev', not of 'other'" in wrong.err

    done = rivet_project.run("repair", "-e", "ev", "--report", str(report_path), "--execute",
                             "--json").assert_success().json()
    (repaired,) = done["repaired"]
    # 700 rows fill four parts: the fifth, no longer produced, is gone.
    assert repaired["rows"] == 700
    assert repaired["removed"] == [f"ev_{run_id}_chunk000001_part0005.csv"]
    assert not (out / repaired["removed"][0]).exists()
    expected = [i for i in range(1, ROWS + 1) if not 1001 <= i <= 1300]
    assert sorted(exported_ids(out)) == expected
    assert [r[1] for r in file_records(rivet_project) if r[4] == 1] == [200, 200, 200, 100]
    rivet_project.run("validate", "-e", "ev").assert_success()
    rivet_project.run("reconcile", "-e", "ev").assert_success()
    chunks = rivet_project.run("state", "chunks", "-e", "ev", "--json").json()["tasks"]
    assert (chunks[1]["rows"], chunks[1]["files"]) == (700, 4)

    # A repaired chunk that comes back with other columns is not vouched for.
    database.execute(f"ALTER TABLE {table} ADD COLUMN added int")
    (out / f"ev_{run_id}_chunk000000_part0001.csv").unlink()
    widened = rivet_project.run("repair", "-e", "ev", "--execute").assert_failed(
        ExitCode.RUN_FAILED)
    assert "other columns" in widened.err and not (out / "_rivet/ev/_SUCCESS").exists()

    rivet_project.write_config(config(database, table).replace("chunk_size = 1000",
                                                                "chunk_size = 500"))
    changed = rivet_project.run("reconcile", "-e", "ev").assert_failed(ExitCode.RUN_FAILED)
    assert "chunk plan changed" in changed.err


def test_reconcile_and_repair_refuse_what_has_no_recorded_chunks(rivet_project, pg_url):
    rivet_project.write_config(f"""
[source]
type = "postgres"
url = "{pg_url}"

[[exports]]
name = "whole"
query = "SELECT 1 AS id"
format = "csv"
[exports.destination]
type = "local"
path = "./output/{{export}}"

[[exports]]
name = "unchecked"
query = "SELECT 1 AS id"
mode = "chunked"
chunk_column = "id"
format = "csv"
[exports.destination]
type = "local"
path = "./output/{{export}}"
""")
    for command in ("reconcile", "repair"):
        outcome = rivet_project.run(command, "-e", "whole").assert_failed(ExitCode.USAGE)
        assert "full export" in outcome.err
    assert "rivet run --reconcile" in rivet_project.run("reconcile", "-e", "whole").err
    unchecked = rivet_project.run("reconcile", "-e", "unchecked").assert_failed(
        ExitCode.RUN_FAILED)
    assert "no chunk run" in unchecked.err and "chunk_checkpoint = true" in unchecked.err
    rivet_project.run("reconcile", "-e", "nope").assert_failed(ExitCode.USAGE)
    rivet_project.run("reconcile", "-e", "unchecked", "--run-id", "x").assert_failed(
        ExitCode.USAGE)


@POSTGRES_ONLY
def test_repair_replaces_a_lost_object_on_s3(rivet_project, database, items, moto_endpoint,
                                             s3_bucket, monkeypatch):
    monkeypatch.setenv("RIVET_T_S3_KEY", "testing")
    monkeypatch.setenv("RIVET_T_S3_SECRET", "Sup3rS3cretS3Key")
    destination = (f'type = "s3"\nbucket = "{s3_bucket}"\nendpoint = "{moto_endpoint}"\n'
                   'allow_http = true\nregion = "us-east-1"\nprefix = "{export}"\n'
                   'access_key_env = "RIVET_T_S3_KEY"\nsecret_key_env = "RIVET_T_S3_SECRET"')
    rivet_project.write_config(config(database, items, destination=destination))
    run_id = rivet_project.run("run", "--json").assert_success().json()["exports"][0]["run_id"]
    reader = BucketReader(moto_endpoint, s3_bucket)
    lost = f"ev/ev_{run_id}_chunk000002_part0001.csv"
    original = reader.read(lost)
    status, _ = http("DELETE", f"{moto_endpoint}/{s3_bucket}/{lost}",
                     headers={"Authorization": MOTO_AUTH})
    assert status == 204 and lost not in reader.list("ev/")

    found = rivet_project.run("reconcile", "-e", "ev", "--json").assert_failed(
        ExitCode.CHECK_FAILED).json()
    assert [c["chunk"] for c in found["chunks"] if c["status"] != "match"] == [2]
    assert f"missing {lost.removeprefix('ev/')}" in chunk_of(found, 2)["note"]
    rivet_project.run("repair", "-e", "ev", "--execute").assert_success()
    assert reader.read(lost) == original  # the same rows, split the same way
    rivet_project.run("validate", "-e", "ev").assert_success()
    rivet_project.run("reconcile", "-e", "ev").assert_success()


@POSTGRES_ONLY
def test_an_older_run_is_reconciled_by_id_but_not_repaired_under_a_newer_runs_manifest(
        rivet_project, database, items):
    rivet_project.write_config(config(database, items))
    older, newer = (rivet_project.run("run", "--json").assert_success().json()["exports"][0][
        "run_id"] for _ in range(2))
    out = rivet_project.path / "output" / "ev"
    report = rivet_project.run("reconcile", "-e", "ev", "--run-id", older,
                               "--json").assert_success().json()
    assert report["run_id"] == older and report["summary"]["matches"] == 3

    (out / f"ev_{older}_chunk000000_part0001.csv").unlink()
    report_path = rivet_project.path / "older.json"
    rivet_project.run("reconcile", "-e", "ev", "--run-id", older, "--output",
                      str(report_path)).assert_failed(ExitCode.CHECK_FAILED)
    before = held(out)
    refused = rivet_project.run("repair", "-e", "ev", "--report", str(report_path),
                                "--execute").assert_failed(ExitCode.RUN_FAILED)
    assert f"describes run {newer}, not run {older}" in refused.err and held(out) == before

    # A repair stopped before rewriting the manifest leaves every chunk matching but no
    # _SUCCESS: repair re-exports the smallest chunk to write them again.
    (out / "_rivet/ev/_SUCCESS").unlink()
    plan = rivet_project.run("repair", "-e", "ev", "--json").assert_success().json()
    (action,) = plan["actions"]
    assert action["chunk"] == 0 and "no _SUCCESS" in action["reason"]  # all 1000 rows
    rivet_project.run("repair", "-e", "ev", "--execute").assert_success()
    rivet_project.run("validate", "-e", "ev").assert_success()


def test_a_chunk_whose_count_failed_is_unknown_and_left_out_of_the_repair():
    from rivet_core.reconcile import Reconciliation, compare_chunk, plan_repair
    from rivet_core.runner.chunks import Chunk
    from rivet_core.state.store import FileRecord

    chunk = Chunk(idx=4, lo=10, hi=20)
    record = FileRecord(run_id="r", export_name="ev", file_name="ev_r_chunk000004.csv",
                        uri="", rows=7, bytes=99, sha256="", format="csv", compression="none")
    unknown = compare_chunk(chunk, task_status="completed", records=[record],
                            held={record.file_name: 99}, source_rows=None,
                            count_error="statement timeout")
    assert (unknown.status, unknown.exported_rows) == ("unknown", 7)
    assert unknown.note == "source=?, exported=7; source count failed: statement timeout"
    # A file problem is a mismatch whatever the count says.
    resized = compare_chunk(chunk, task_status="completed", records=[record],
                            held={record.file_name: 98, "ev_r_chunk000004_part0009.csv": 5},
                            source_rows=None, count_error="statement timeout")
    assert resized.status == "mismatch" and resized.exported_rows == 0
    assert resized.note.endswith("; ev_r_chunk000004.csv holds 98 bytes, 99 recorded; "
                                 "unrecorded ev_r_chunk000004_part0009.csv")
    plan = plan_repair(Reconciliation(export="ev", run_id="r", chunks=[unknown, resized]))
    assert [a.chunk for a in plan.actions] == [4] and plan.actions[0].reason == resized.note
    assert [s.chunk for s in plan.skipped] == [4]
