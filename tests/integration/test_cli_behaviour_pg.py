"""The operator's side of the CLI against PostgreSQL and real processes: what ``-v``,
``-vv`` and ``--log-format json`` log during a run, a reader that closes stdout early, and
``rivet validate`` after several runs (an older ``--run-id``, planted files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rivet_core.errors import ExitCode
from rivet_core.state.store import ChunkRun, ChunkTask, SQLiteStateStore, iso, utc_now

PASSWORD = "pw-never-shown-9"


@pytest.fixture
def orders(pg, pg_schema) -> str:
    """A table of 1,000 rows whose ``updated_at`` orders them (an incremental cursor)."""
    table = f"{pg_schema}.cli_orders"  # unquoted: it goes into a TOML string
    pg.execute(f"DROP TABLE IF EXISTS {table}")
    pg.execute(f"CREATE TABLE {table} AS SELECT g AS id, md5(g::text) AS h, "
               "TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '1 minute' AS updated_at "
               "FROM generate_series(1, 1000) g")
    return table


def add_rows(pg, table: str, first: int, last: int) -> None:
    pg.execute(f"INSERT INTO {table} SELECT g, md5(g::text), TIMESTAMPTZ '2026-01-01 "
               f"00:00:00+00' + g * INTERVAL '1 minute' FROM generate_series({first}, {last}) g")


def incremental(pg_url: str, table: str, *, path: str = "./output/{export}") -> str:
    # trust authentication ignores the password, so the URL can carry one to be masked.
    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@")
    return f"""
[source]
type = "postgres"
url = "{url}"

[[exports]]
name = "orders"
query = "SELECT id, h, updated_at FROM {table}"
mode = "incremental"
cursor_column = "updated_at"
format = "csv"
[exports.destination]
type = "local"
path = "{path}"
"""


def records(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------------------ logging


def test_verbose_run_logs_each_step_without_the_password(rivet_project, pg_url, orders):
    rivet_project.write_config(incremental(pg_url, orders))
    outcome = rivet_project.run("-v", "run", "--json").assert_success()
    (result,) = outcome.json()["exports"]
    run_id, (file,) = result["run_id"], result["files"]
    lines = [line for line in outcome.err.splitlines() if line.startswith("rivet: INFO: ")]
    messages = [line.removeprefix("rivet: INFO: ") for line in lines]
    expected = [
        f"config loaded: {rivet_project.config.resolve()} (source postgres; 1 export(s): "
        "orders)",
        "plan built: 1 export(s), 0 rejected, 1 diagnostic(s)",
        f"export orders: run {run_id}: rows after cursor (none: every row)",
        "export orders: new postgres source connection to "
        "postgresql://postgres:REDACTED@127.0.0.1:5432/test",
        "export orders: reading incremental: 3 column(s) via binary COPY",
        f"export orders: committed {file['name']} (1000 rows, {file['bytes']} bytes)",
        "export orders: cursor committed: (none) → 2026-01-01T16:40:00.000000+00:00 "
        "(timestamptz)",
        "export orders: run manifest written (status success, 1 file(s)) with _SUCCESS at "
        f"{result['destination']}",
    ]
    assert [m for m in messages if not m.startswith("export orders: new postgres")] == \
        [m for m in expected if not m.startswith("export orders: new postgres")]
    assert expected[3] in messages
    assert PASSWORD not in outcome.err
    assert not [line for line in outcome.err.splitlines() if ": DEBUG: " in line]


def test_very_verbose_logs_the_statements_shape_but_not_its_parameters(
        rivet_project, pg, pg_url, orders):
    rivet_project.write_config(incremental(pg_url, orders))
    rivet_project.run("run").assert_success()
    add_rows(pg, orders, 1001, 1010)
    outcome = rivet_project.run("-vv", "run").assert_success()
    (statement,) = [line for line in outcome.err.splitlines()
                    if line.startswith("rivet: DEBUG: export orders: incremental: ")]
    assert "%s" in statement and "[1 parameter(s), parallel 1, batch_size 10000]" in statement
    assert "2026-01-01 16:40" not in statement, "a parameter's value was logged"
    assert "rivet: INFO: export orders: committed " in outcome.err
    assert PASSWORD not in outcome.err


def test_json_log_lines_name_the_export_and_the_run(rivet_project, pg_url, orders):
    rivet_project.write_config(incremental(pg_url, orders))
    outcome = rivet_project.run("run", "-v", "--log-format", "json", "--json").assert_success()
    run_id = outcome.json()["exports"][0]["run_id"]
    logged = records(outcome.err)
    about_the_run = [r for r in logged if r["logger"] in ("rivet.runner", "rivet.manifest")]
    assert len(about_the_run) >= 5
    assert all((r["export"], r["run_id"]) == ("orders", run_id) for r in about_the_run)
    assert {r["logger"] for r in logged} == {"rivet.config", "rivet.plan", "rivet.runner",
                                             "rivet.manifest"}
    assert PASSWORD not in outcome.err


# --------------------------------------------------------------------- a closed stdout


def rivet(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rivet_core.cli.main", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "0"})


def read_a_line_then_close(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    """What ``… | head -n 1`` does: read one line, close the pipe, let the writer finish."""
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first, "the command printed nothing"
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    return process.returncode, err.decode()


@pytest.fixture
def many_chunks(rivet_project) -> Path:
    """A project whose state store holds a chunk run of 3,000 tasks: `rivet state chunks`
    prints far more than a pipe holds."""
    rivet_project.write_config("""
[source]
type = "postgres"
url = "postgresql://nobody@127.0.0.1:1/never-connected"

[[exports]]
name = "ev"
table = "events"
mode = "chunked"
format = "csv"
[exports.destination]
type = "local"
""")
    store = SQLiteStateStore(rivet_project.path / ".rivet_state.db")
    now = iso(utc_now())
    try:
        with store.transaction() as tx:
            tx.create_chunk_run(
                ChunkRun(run_id="20260101T000000Z-abcdef", export_name="ev", plan_hash="p",
                         status="in_progress", max_attempts=3, created_at=now, updated_at=now),
                [ChunkTask(run_id="20260101T000000Z-abcdef", idx=i,
                           lo=json.dumps({"type": "int", "value": str(i * 1000)}),
                           hi=json.dumps({"type": "int", "value": str(i * 1000 + 999)}),
                           expected_rows=1000, status="pending") for i in range(3000)])
    finally:
        store.close()
    return rivet_project.path


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_state_chunks_into_a_closed_pipe_exits_141_without_a_traceback(many_chunks, as_json):
    args = ["state", "chunks", "-e", "ev", "-c", "rivet.toml"] + (["--json"] if as_json else [])
    code, err = read_a_line_then_close(rivet(*args, cwd=many_chunks))
    assert code == ExitCode.BROKEN_PIPE, err
    assert err == ""


def test_a_reader_that_reads_everything_sees_exit_0(many_chunks):
    process = rivet("state", "chunks", "-e", "ev", "-c", "rivet.toml", cwd=many_chunks)
    out, err = process.communicate(timeout=120)
    assert process.returncode == ExitCode.OK, err
    assert len(out.splitlines()) == 3002


def test_the_stdout_destination_into_a_closed_pipe_fails_the_export_without_a_traceback(
        rivet_project, pg_url):
    rivet_project.write_config(f"""
[source]
type = "postgres"
url = "{pg_url}"

[[exports]]
name = "nums"
query = "SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 300000) g"
format = "csv"
[exports.tuning]
max_retries = 0
[exports.destination]
type = "stdout"
""")
    code, err = read_a_line_then_close(rivet("run", "-c", "rivet.toml", cwd=rivet_project.path))
    assert code == ExitCode.RUN_FAILED, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert ("error: stdout was closed by its reader before the whole file was written: the "
            "export is incomplete") in err
    store = SQLiteStateStore(rivet_project.path / ".rivet_state.db")
    try:
        (run,) = store.runs("nums")
    finally:
        store.close()
    assert run.status == "failed" and "closed by its reader" in (run.error or "")


# ----------------------------------------------------------- validate after several runs


def test_validate_run_id_of_an_older_run_says_its_manifest_is_gone(
        rivet_project, pg, pg_url, orders):
    rivet_project.write_config(incremental(pg_url, orders))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]["run_id"]
    add_rows(pg, orders, 1001, 1010)
    second = rivet_project.run("run", "--json").assert_success().json()["exports"][0]["run_id"]
    latest = rivet_project.run("validate", "--json").assert_success().json()["exports"][0]
    assert latest["run_id"] == second
    assert [f["kind"] for f in latest["findings"]] == ["previous_run"]
    older = rivet_project.run("validate", "--json", "--run-id", first)
    older.assert_failed(ExitCode.CHECK_FAILED)
    (report,) = older.json()["exports"]
    assert (report["status"], report["run_id"]) == ("no_manifest", first)
    assert report["findings"][0]["message"].startswith(
        f"the manifest of run {first} is gone: the one here describes run {second}")


def test_validate_reports_a_planted_file_named_like_an_earlier_runs(
        rivet_project, pg, pg_url, orders):
    rivet_project.write_config(incremental(pg_url, orders))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    add_rows(pg, orders, 1001, 1010)
    rivet_project.run("run").assert_success()
    out = rivet_project.path / "output" / "orders"
    planted = "orders_20250101T000000Z-abcdef.csv"
    (out / planted).write_text("id,h,updated_at\n666,x,2026-01-01T00:00:00Z\n")
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    found = sorted((f["kind"], f["severity"], f["name"])
                   for f in outcome.json()["exports"][0]["findings"])
    assert found == [("previous_run", "info", first["files"][0]["name"]),
                     ("unknown_file", "error", planted)]
