"""The four modes end to end on PostgreSQL and MariaDB: what each run exports, what state
it leaves, and how reruns and resumes behave."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest

from rivet_core.errors import ExitCode


def config(db, export_lines, *, fmt="parquet", name="ev", extra_tables=""):
    return f"""
[source]
type = "{db.kind}"
url = "{db.url}"

[[exports]]
name = "{name}"
format = "{fmt}"
{export_lines}
[exports.destination]
type = "local"
path = "./output/{{export}}"
{extra_tables}
"""


def exported_ids(project, export="ev", column="id"):
    """Every value of ``column`` in the export's visible Parquet files, with multiplicity."""
    ids: list = []
    for path in sorted((project.path / "output" / export).glob("*.parquet")):
        ids.extend(pq.read_table(path).column(column).to_pylist())
    return ids


def state(project, sql, *args):
    db = sqlite3.connect(project.path / ".rivet_state.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def stored_cursor(project, export="ev"):
    rows = state(project, "SELECT value FROM cursors WHERE export_name = ?", export)
    return json.loads(rows[0][0]) if rows else None


@pytest.fixture
def events(database):
    """1000 rows; updated_at strictly increasing with microsecond fractions."""
    table = database.table("events")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, "
                     f"updated_at {database.timestamptz}, created_at {database.timestamptz}, "
                     f"day date, note {database.text})")
    base = dt.datetime(2024, 3, 10, 1, 30, 0, 1, tzinfo=dt.UTC)
    rows = [(i, base + dt.timedelta(seconds=i, microseconds=i), base, dt.date(2024, 1, 1)
             + dt.timedelta(days=i // 100), f"n{i}") for i in range(1, 1001)]
    if database.kind == "mysql":
        rows = [(i, u.replace(tzinfo=None), c.replace(tzinfo=None), d, n)
                for i, u, c, d, n in rows]
        database.execute("SET time_zone = '+00:00'")
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", rows)
    return table


def insert(database, table, rows):
    if database.kind == "mysql":
        rows = [tuple(v.astimezone(dt.UTC).replace(tzinfo=None)
                      if isinstance(v, dt.datetime) and v.tzinfo else v for v in row)
                for row in rows]
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", rows)

# --------------------------------------------------------------------------- incremental


def test_incremental_exports_only_new_rows_and_keeps_microseconds(rivet_project, database,
                                                                   events):
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "incremental"\n'
                                                'cursor_column = "updated_at"'))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert first["rows"] == 1000 and len(first["files"]) == 1
    assert stored_cursor(rivet_project) == {"type": "timestamptz",
                                            "value": "2024-03-10T01:46:40.001001+00:00"}
    second = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert second["rows"] == 0 and second["files"] == []
    # One microsecond after the stored cursor is new; the same instant is not.
    last = dt.datetime(2024, 3, 10, 1, 46, 40, 1001, tzinfo=dt.UTC)
    insert(database, events, [
        (2001, last + dt.timedelta(microseconds=1), last, dt.date(2024, 1, 1), "later"),
        (2002, last, last, dt.date(2024, 1, 1), "tie"),
    ])
    third = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert third["rows"] == 1
    assert sorted(exported_ids(rivet_project)) == [*range(1, 1001), 2001]
    assert stored_cursor(rivet_project)["value"] == "2024-03-10T01:46:40.001002+00:00"


def test_incremental_rows_come_ordered_by_the_cursor(rivet_project, database, events):
    rivet_project.write_config(config(database, f'query = "SELECT id, updated_at FROM {events} '
                                                'ORDER BY id DESC"\nmode = "incremental"\n'
                                                'cursor_column = "updated_at"'))
    rivet_project.run("run").assert_success()
    (path,) = (rivet_project.path / "output" / "ev").glob("*.parquet")
    stamps = pq.read_table(path).column("updated_at").to_pylist()
    assert stamps == sorted(stamps)


def test_null_cursor_fails_by_default_and_commits_nothing(rivet_project, database, events):
    insert(database, events, [(3000, None, None, None, "no cursor")])
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "incremental"\n'
                                                'cursor_column = "updated_at"'))
    outcome = rivet_project.run("run").assert_failed(ExitCode.RUN_FAILED)
    assert "NULL cursor" in outcome.err and "on_null_cursor" in outcome.err
    assert exported_ids(rivet_project) == [] and stored_cursor(rivet_project) is None


@pytest.mark.parametrize(("policy", "exported_each_time"), [("include", 1), ("exclude", 0)])
def test_null_cursor_policies(rivet_project, database, events, policy, exported_each_time):
    insert(database, events, [(3000, None, None, None, "no cursor")])
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "incremental"\n'
                                                f'cursor_column = "updated_at"\n'
                                                f'on_null_cursor = "{policy}"'))
    rivet_project.run("run").assert_success()
    rivet_project.run("run").assert_success()
    assert Counter(exported_ids(rivet_project))[3000] == 2 * exported_each_time
    assert len(exported_ids(rivet_project)) == 1000 + 2 * exported_each_time


def test_coalesce_cursor_uses_the_fallback_where_the_cursor_is_null(rivet_project, database,
                                                                    events):
    late = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    insert(database, events, [(3000, None, late, None, "fallback only")])
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "incremental"\n'
                                                'cursor_column = "updated_at"\n'
                                                'incremental_cursor_mode = "coalesce"\n'
                                                'cursor_fallback_column = "created_at"'))
    rivet_project.run("run").assert_success()
    assert 3000 in exported_ids(rivet_project)
    assert stored_cursor(rivet_project)["value"] == "2030-01-01T00:00:00.000000+00:00"


def test_cursor_lag_holds_back_rows_newer_than_now_minus_lag(rivet_project, database, events):
    database.execute(f"INSERT INTO {events} VALUES (5000, {database.now_minus(7200)}, NULL, "
                     f"NULL, 'two hours ago')")
    database.execute(f"INSERT INTO {events} VALUES (5001, {database.now_minus(5)}, NULL, "
                     f"NULL, 'just now')")
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "incremental"\n'
                                                'cursor_column = "updated_at"\n'
                                                'cursor_lag = "1h"'))
    rivet_project.run("run").assert_success()
    ids = exported_ids(rivet_project)
    assert 5000 in ids and 5001 not in ids


def test_integer_cursor_and_state_reset(rivet_project, database, events):
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "incremental"\n'
                                                'cursor_column = "id"'))
    rivet_project.run("run").assert_success()
    assert stored_cursor(rivet_project) == {"type": "int", "value": "1000"}
    shown = rivet_project.run("state", "show", "--json").assert_success().json()
    assert shown["exports"][0]["cursor"] == "1000 (int)"
    rivet_project.run("state", "reset", "-e", "ev").assert_success()
    assert stored_cursor(rivet_project) is None
    rivet_project.run("run").assert_success()
    assert len(exported_ids(rivet_project)) == 2000
    rivet_project.run("state", "reset", "-e", "nope").assert_failed(ExitCode.USAGE)

# --------------------------------------------------------------------------- time window


def test_time_window_takes_rows_from_utc_midnight_n_days_ago(rivet_project, database):
    table = database.table("tw")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id int, ts {database.timestamptz}, epoch bigint)")
    midnight = sql_window_start = dt.datetime.combine(
        dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC)
    stamps = {1: sql_window_start, 2: midnight - dt.timedelta(microseconds=1),
              3: midnight + dt.timedelta(days=1), 4: midnight - dt.timedelta(days=5)}
    rows = [(i, ts, int(ts.timestamp())) for i, ts in stamps.items()]
    if database.kind == "mysql":
        database.execute("SET time_zone = '+00:00'")
        rows = [(i, ts.replace(tzinfo=None), e) for i, ts, e in rows]
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)", rows)
    rivet_project.write_config(config(database, f'table = "{table}"\nmode = "time_window"\n'
                                                'time_column = "ts"\ndays_window = 2'))
    summary = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert sorted(exported_ids(rivet_project)) == [1, 3]
    assert summary["window_start"] == midnight.isoformat().replace("+00:00", ".000000Z")
    rivet_project.write_config(config(database, f'table = "{table}"\nmode = "time_window"\n'
                                                'time_column = "epoch"\ntime_column_type = '
                                                '"unix"\ndays_window = 2', name="unix"))
    rivet_project.run("run").assert_success()
    assert sorted(exported_ids(rivet_project, "unix")) == [1, 3]

# --------------------------------------------------------------------------------- chunked


def test_chunked_export_covers_every_row_once_in_chunk_files(rivet_project, database, events):
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "chunked"\n'
                                                'chunk_column = "id"\nchunk_size = 300'))
    summary = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert summary["chunks"] == {"total": 4, "completed": 4, "skipped_completed": 0,
                                 "failed": 0}
    assert sorted(exported_ids(rivet_project)) == list(range(1, 1001))
    names = sorted(f["name"] for f in summary["files"])
    assert [n.rsplit("_", 1)[1] for n in names] == [f"chunk{i:06d}.parquet" for i in range(4)]


def test_chunked_uses_the_primary_key_of_a_table_and_runs_in_parallel(rivet_project, database,
                                                                      events):
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "chunked"\n'
                                                'chunk_size = 100\nparallel = 3'))
    summary = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert any("primary key 'id'" in w for w in summary["warnings"])
    assert sorted(exported_ids(rivet_project)) == list(range(1, 1001))
    assert summary["chunks"]["completed"] == 10


def test_sparse_keys_and_null_keys(rivet_project, database):
    table = database.table("sparse")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id bigint, k bigint)")
    keys = [*range(1, 51), *range(10**12, 10**12 + 50), None, None]
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                         [(i, k) for i, k in enumerate(keys)])
    rivet_project.write_config(config(database, f'table = "{table}"\nmode = "chunked"\n'
                                                'chunk_column = "k"\nchunk_size = 30'))
    summary = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert summary["chunks"]["total"] <= 6  # not 10**12 / 30 windows
    assert sorted(exported_ids(rivet_project)) == list(range(len(keys)))


def test_chunk_by_days_and_chunk_count(rivet_project, database, events):
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "chunked"\n'
                                                'chunk_column = "day"\nchunk_by_days = 3'))
    summary = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert summary["chunks"]["total"] == 4
    assert sorted(exported_ids(rivet_project)) == list(range(1, 1001))
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "chunked"\n'
                                                'chunk_column = "id"\nchunk_count = 7',
                                      name="counted"))
    summary = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert summary["chunks"]["total"] == 7
    assert sorted(exported_ids(rivet_project, "counted")) == list(range(1, 1001))


@pytest.fixture
def flaky(database):
    """A table whose rows fail to read while a control row says so (a fixable failure
    that does not change the export's query)."""
    control, data = database.table("control"), database.table("flaky")
    for t in (control, data):
        database.execute(f"DROP TABLE IF EXISTS {t}")
    database.execute(f"CREATE TABLE {control} (bad bigint)")
    database.execute(f"CREATE TABLE {data} (id bigint PRIMARY KEY)")
    database.executemany(f"INSERT INTO {data} VALUES (%s)", [(i,) for i in range(1, 501)])
    database.execute(f"INSERT INTO {control} VALUES (250)")
    if database.kind == "postgres":
        query = (f"SELECT id, 1 / (id - (SELECT bad FROM {control})) AS boom FROM {data}")
    else:
        # MariaDB returns NULL for 1/0 unless strict; a subquery error is portable instead.
        query = (f"SELECT id, (SELECT 1 UNION SELECT 2 FROM {control} WHERE bad = d.id) "
                 f"AS boom FROM {data} d")
    return control, query


def test_checkpointed_run_resumes_only_unfinished_chunks(rivet_project, database, flaky):
    control, query = flaky
    rivet_project.write_config(config(database, f'query = "{query}"\nmode = "chunked"\n'
                                                'chunk_column = "id"\nchunk_size = 100\n'
                                                'chunk_checkpoint = true\n'
                                                '[exports.tuning]\nmax_retries = 0'))
    failed = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    export = failed.json()["exports"][0]
    assert export["chunks"]["completed"] == 4 and "--resume" in export["hint"]
    files_before = {p.name: p.stat().st_mtime_ns
                    for p in (rivet_project.path / "output" / "ev").glob("*.parquet")}
    assert len(files_before) == 4
    # Without --resume a new run is refused while one is unfinished.
    refused = rivet_project.run("run").assert_failed(ExitCode.RUN_FAILED)
    assert "--resume" in refused.err
    database.execute(f"UPDATE {control} SET bad = -1")
    resumed = rivet_project.run("run", "--resume", "--json").assert_success().json()
    chunk_summary = resumed["exports"][0]["chunks"]
    assert chunk_summary == {"total": 5, "completed": 5, "skipped_completed": 4, "failed": 0}
    assert resumed["exports"][0]["run_id"] == export["run_id"]
    after = {p.name: p.stat().st_mtime_ns
             for p in (rivet_project.path / "output" / "ev").glob("*.parquet")}
    assert {k: after[k] for k in files_before} == files_before  # completed chunks untouched
    assert sorted(exported_ids(rivet_project)) == list(range(1, 501))
    shown = rivet_project.run("state", "chunks", "-e", "ev", "--json").json()
    assert shown["chunk_run"]["status"] == "completed"
    assert [t["attempts"] for t in shown["tasks"]] == [1, 1, 2, 1, 1]


def test_resume_refuses_a_changed_plan(rivet_project, database, flaky):
    control, query = flaky
    text = config(database, f'query = "{query}"\nmode = "chunked"\nchunk_column = "id"\n'
                            'chunk_size = 100\nchunk_checkpoint = true\n'
                            '[exports.tuning]\nmax_retries = 0')
    rivet_project.write_config(text)
    rivet_project.run("run").assert_failed(ExitCode.RUN_FAILED)
    rivet_project.write_config(text.replace("chunk_size = 100", "chunk_size = 50"))
    outcome = rivet_project.run("run", "--resume").assert_failed(ExitCode.RUN_FAILED)
    assert "chunk plan changed" in outcome.err and "reset-chunks" in outcome.err
    rivet_project.run("state", "reset-chunks", "-e", "ev").assert_success()
    database.execute(f"UPDATE {control} SET bad = -1")
    rivet_project.run("run").assert_success()


def test_resume_without_an_interrupted_run_says_so(rivet_project, database, events):
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "chunked"\n'
                                                'chunk_size = 500\nchunk_checkpoint = true'))
    outcome = rivet_project.run("run", "--resume").assert_failed(ExitCode.RUN_FAILED)
    assert "no interrupted chunk run" in outcome.err

# ------------------------------------------------------------------- locks, retries, logs


def test_a_second_concurrent_run_of_one_export_is_refused(rivet_project, database, events):
    rivet_project.write_config(config(database, f'table = "{events}"'))
    rivet_project.run("state", "show").assert_success()  # creates the state store
    db = sqlite3.connect(rivet_project.path / ".rivet_state.db")
    import socket
    db.execute("INSERT INTO locks VALUES ('ev', 'other-run', ?, ?, '2026-01-01')",
               (os.getpid(), socket.gethostname()))
    db.commit()
    outcome = rivet_project.run("run").assert_failed(ExitCode.RUN_FAILED)
    assert "already running" in outcome.err and "other-run" in outcome.err
    assert exported_ids(rivet_project) == []
    db.execute("UPDATE locks SET pid = 999999999")  # the holder died: the lock is taken over
    db.commit()
    rivet_project.run("run").assert_success()
    assert state(rivet_project, "SELECT count(*) FROM locks") == [(0,)]


def test_lost_connection_is_retried_on_a_fresh_connection(rivet_project, database):
    if database.kind != "postgres":
        pytest.skip("backend termination is exercised on PostgreSQL")
    import uuid

    import attrs
    import psycopg

    # Our own application_name, so the killer never touches another run's connection.
    app = f"rivet_retry_{uuid.uuid4().hex[:8]}"
    db = attrs.evolve(database, url=f"{database.url}?application_name={app}")
    query = "SELECT g AS id, pg_sleep(0.002) IS NULL AS z FROM generate_series(1, 1500) g"
    rivet_project.write_config(config(db, f'query = "{query}"\n'
                                          '[exports.tuning]\nmax_retries = 2\n'
                                          'retry_backoff_ms = 10\nbatch_size = 100'))
    killed: list[int] = []

    def killer() -> None:
        with psycopg.connect(database.url, autocommit=True) as conn:
            for _ in range(1000):
                rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name "
                                    "= %s AND state = 'active' AND (query LIKE 'FETCH%%'"
                                    " OR query LIKE 'COPY%%')", (app,)).fetchall()
                if rows:
                    conn.execute("SELECT pg_terminate_backend(%s)", (rows[0][0],))
                    killed.append(rows[0][0])
                    return
                time.sleep(0.01)

    thread = threading.Thread(target=killer)
    thread.start()
    outcome = rivet_project.run("run", "--json")
    thread.join()
    outcome.assert_success()
    export = outcome.json()["exports"][0]
    assert killed and export["retries"] == 1 and export["rows"] == 1500
    assert sorted(exported_ids(rivet_project)) == list(range(1, 1501))
    journal = rivet_project.run("journal", "-e", "ev", "--json").json()["events"]
    assert [e["event"] for e in journal].count("retry") == 1


@pytest.mark.parametrize("retry_timeouts", [False, True])
def test_statement_timeout_is_retried_only_when_asked(rivet_project, database, retry_timeouts):
    sleep = ("SELECT 1 AS id FROM pg_sleep(3)" if database.kind == "postgres"
             else "SELECT SLEEP(3) AS id")
    rivet_project.write_config(config(database, f'query = "{sleep}"\n'
                                                '[exports.tuning]\nmax_retries = 1\n'
                                                'retry_backoff_ms = 10\n'
                                                'statement_timeout_s = 0.5\n'
                                                f'retry_timeouts = {str(retry_timeouts).lower()}'))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    export = outcome.json()["exports"][0]
    assert export["retries"] == (1 if retry_timeouts else 0)
    assert "statement_timeout_s" in outcome.err


def test_permanent_error_fails_at_once_without_retries(rivet_project, database):
    rivet_project.write_config(config(database, 'query = "SELECT nope FROM nowhere_at_all"\n'
                                                '[exports.tuning]\nmax_retries = 5\n'
                                                'retry_backoff_ms = 5000'))
    started = time.monotonic()
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    assert time.monotonic() - started < 5
    assert outcome.json()["exports"][0]["retries"] == 0


def test_journal_and_metrics_show_each_step(rivet_project, database, events):
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "incremental"\n'
                                                'cursor_column = "id"\nmax_file_size = 2048\n'
                                                '[exports.tuning]\nbatch_size = 100',
                                      fmt="csv"))
    run_id = rivet_project.run("run", "--json").json()["exports"][0]["run_id"]
    events_ = rivet_project.run("journal", "-e", "ev", "--json").json()["events"]
    kinds = [e["event"] for e in events_ if e["run_id"] == run_id]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.index("cursor_advanced") > max(i for i, k in enumerate(kinds)
                                                if k == "file_committed")
    assert kinds.count("file_committed") > 1
    metrics = rivet_project.run("metrics", "--json").json()["runs"]
    assert metrics[0]["run_id"] == run_id and metrics[0]["status"] == "success"
    text = rivet_project.run("metrics").out
    assert run_id in text


# --------------------------------------------------------------- statements the runner builds


def test_a_literal_percent_in_the_query_survives_every_mode(rivet_project, database, events):
    """The runner's statements bind parameters; a ``%`` in the user's query (LIKE 'n1%')
    must not be taken for a placeholder (it was: the second incremental run failed with
    "only '%s' ... are allowed as placeholders" on PostgreSQL and a ValueError traceback
    message on MySQL)."""
    query = f"SELECT id, updated_at, day FROM {events} WHERE note LIKE 'n1%'"
    expected = sorted(i for i in range(1, 1001) if str(i).startswith("1"))
    for mode, keys in [("incremental", 'cursor_column = "id"'),
                       ("chunked", 'chunk_column = "id"\nchunk_size = 300'),
                       ("time_window", 'time_column = "updated_at"\ndays_window = 100000')]:
        name = f"pct_{mode}"
        rivet_project.write_config(config(database, f'query = "{query}"\nmode = "{mode}"\n'
                                                    f'{keys}', name=name))
        first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
        assert first["rows"] == len(expected), mode
        again = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
        assert again["rows"] == (0 if mode == "incremental" else len(expected)), mode
    assert sorted(exported_ids(rivet_project, "pct_incremental")) == expected


def test_a_permanent_chunk_error_is_not_claimed_again(rivet_project, database, flaky):
    """A chunk that fails with a permanent error (division by zero) is tried once, not
    max_retries + 1 times: it was claimed 4 times and the summary counted 4 failures."""
    _control, query = flaky
    rivet_project.write_config(config(database, f'query = "{query}"\nmode = "chunked"\n'
                                                'chunk_column = "id"\nchunk_size = 100\n'
                                                'chunk_checkpoint = true\n'
                                                '[exports.tuning]\nretry_backoff_ms = 10'))
    failed = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    export = failed.json()["exports"][0]
    assert export["chunks"] == {"total": 5, "completed": 4, "skipped_completed": 0,
                                "failed": 1}
    assert export["retries"] == 0
    shown = rivet_project.run("state", "chunks", "-e", "ev", "--json").json()
    assert [t["attempts"] for t in shown["tasks"]] == [1, 1, 1, 1, 1]


def test_chunked_table_export_is_planned_from_the_catalog_without_reading_the_table(
        rivet_project, database, events, caplog):
    """A ``table`` export the catalog knows is planned by min/max and a NULL probe (short,
    index-assisted statements), never a COUNT over the whole table; without ``chunk_size``
    the catalog's bytes per row size the chunks."""
    database.execute(f"ANALYZE {events}" if database.kind == "postgres"
                     else f"ANALYZE TABLE {events}")
    rivet_project.write_config(config(database, f'table = "{events}"\nmode = "chunked"\n'
                                                'chunk_column = "id"'))
    outcome = rivet_project.run("-vv", "run", "--json").assert_success()
    summary = outcome.json()["exports"][0]
    assert sorted(exported_ids(rivet_project)) == list(range(1, 1001))
    assert any(w.startswith("chunk_size not set: ") and "from the catalog" in w
               for w in summary["warnings"])
    assert "chunk key bounds: SELECT MIN(" in caplog.text
    assert "chunk key range" not in caplog.text  # the full-table aggregate
    assert summary["chunks"]["total"] == 1  # 1000 small rows: far below 32 MiB


def test_chunked_without_catalog_statistics_counts_the_keys(rivet_project, database, events,
                                                          caplog):
    """A query export has no catalog estimate: the one aggregate statement plans it."""
    rivet_project.write_config(config(
        database, f'query = "SELECT * FROM {events} WHERE id > 500"\nmode = "chunked"\n'
                  'chunk_column = "id"\nchunk_size = 100'))
    outcome = rivet_project.run("-vv", "run", "--json").assert_success()
    assert "chunk key range: SELECT MIN(" in caplog.text
    assert outcome.json()["exports"][0]["chunks"]["total"] == 5
