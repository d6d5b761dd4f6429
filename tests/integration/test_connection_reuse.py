"""The exports of one run share the source's connections (rivet_core.runner.sourcepool), on
the real PostgreSQL and MariaDB: consecutive exports are served by the same server session,
nothing one export's statements set in that session reaches the next, a connection that
saw a failure is never reused, and a run of 200 exports holds one connection and flat
memory."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest


def pg_config(url, exports, *, source_lines="", top=""):
    """``exports``: (name, query, extra export lines)."""
    text = f'{top}\n[source]\ntype = "postgres"\nurl = "{url}"\n{source_lines}\n'
    for name, query, lines in exports:
        text += export(name, query, lines)
    return text


def export(name, query, lines):
    """One export; ``lines`` may open tables (``[exports.tuning]``), so they come last."""
    return (f'\n[[exports]]\nname = "{name}"\nquery = """{query}"""\nformat = "parquet"\n'
            f'destination = {{ type = "local", path = "./output/{{export}}" }}\n{lines}\n')


def mysql_config(url, exports):
    text = f'[source]\ntype = "mysql"\nurl = "{url}"\nread_path = "pymysql"\n'
    for name, query, lines in exports:
        text += export(name, query, lines)
    return text


def column(project, export, name):
    """The values of column ``name`` in the files of ``export``."""
    files = project.files(f"output/{export}")
    assert files, f"{export} wrote no file"
    return [v for f in files for v in pq.read_table(f).column(name).to_pylist()]


def only(project, export, name):
    (value,) = set(column(project, export, name))
    return value


PG_SESSION = ("SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS timeout, "
              "current_setting('work_mem') AS work_mem")


def test_consecutive_postgres_exports_share_one_session(rivet_project, pg_url):
    rivet_project.write_config(pg_config(pg_url, [
        (f"e{i}", PG_SESSION, "") for i in range(1, 4)]))
    rivet_project.run("run").assert_success()
    pids = {only(rivet_project, f"e{i}", "pid") for i in range(1, 4)}
    assert len(pids) == 1, f"each export on its own server session: {pids}"


def test_a_session_setting_of_one_export_does_not_reach_the_next(rivet_project, pg, pg_url):
    default_work_mem = pg.execute("SHOW work_mem").fetchone()[0]
    assert default_work_mem != "7MB"
    # e1 reads with a 7 s statement timeout and changes work_mem for the rest of its
    # session (set_config(..., false) outlives the read's transaction, which commits);
    # e2 has no timeout of its own and must see the session as a fresh one.
    rivet_project.write_config(pg_config(pg_url, [
        ("e1", PG_SESSION + ", set_config('work_mem', '7MB', false) AS changed",
         "[exports.tuning]\nstatement_timeout_s = 7"),
        ("e2", PG_SESSION, "[exports.tuning]\nstatement_timeout_s = 0"),
    ]))
    rivet_project.run("run").assert_success()
    assert only(rivet_project, "e1", "timeout") == "7s"
    assert only(rivet_project, "e1", "changed") == "7MB"
    assert only(rivet_project, "e2", "pid") == only(rivet_project, "e1", "pid")
    assert only(rivet_project, "e2", "timeout") == "0"
    assert only(rivet_project, "e2", "work_mem") == default_work_mem


def test_a_failed_export_does_not_poison_the_connection_of_the_next(rivet_project, pg_url):
    # e2 fails on the server midway (row 500 cannot be cast, and the error names its
    # session's pid): that session is closed, so no later export is served by it.
    failing = ("SELECT pg_backend_pid() AS pid, CASE WHEN g < 500 THEN g "
               "ELSE ('pid ' || pg_backend_pid())::int END AS x FROM generate_series(1, 1000) g")
    rivet_project.write_config(pg_config(pg_url, [
        ("e1", PG_SESSION, ""),
        ("e2", failing, "[exports.tuning]\nbatch_size = 100\nmax_retries = 0"),
        ("e3", PG_SESSION, ""),
        ("e4", PG_SESSION, ""),
    ]))
    outcome = rivet_project.run("run", "--json").assert_failed(1)
    exports = {e["export"]: e for e in outcome.json()["exports"]}
    assert {name: e["status"] for name, e in exports.items()} == {
        "e1": "success", "e2": "failed", "e3": "success", "e4": "success"}
    (failed_pid,) = (int(pid) for pid in re.findall(r'"pid (\d+)"', exports["e2"]["error"]))
    assert failed_pid not in {only(rivet_project, name, "pid") for name in ("e3", "e4")}
    assert only(rivet_project, "e3", "work_mem") == only(rivet_project, "e1", "work_mem")


def test_parallel_exports_each_keep_a_session_of_their_own(rivet_project, pg_url):
    slow = PG_SESSION + ", pg_sleep(0.3)::text AS slept"
    rivet_project.write_config(pg_config(pg_url, [(f"e{i}", slow, "") for i in range(1, 7)]))
    rivet_project.run("run", "--parallel-exports", "2").assert_success()
    pids = [only(rivet_project, f"e{i}", "pid") for i in range(1, 7)]
    # Two exports at a time: two sessions serve all six, never more.
    assert len(set(pids)) == 2, pids


def test_two_hundred_exports_use_one_connection_and_flat_memory(rivet_project, pg_url):
    query = ("SELECT pg_backend_pid() AS pid, g AS id, md5(g::text) AS v "
             "FROM generate_series(1, 200) g")
    rivet_project.write_config(pg_config(pg_url, [(f"e{i:03d}", query, "")
                                                  for i in range(200)]))
    outcome = rivet_project.run("run", "--json").assert_success()
    exports = outcome.json()["exports"]
    assert len(exports) == 200
    assert len({only(rivet_project, f"e{i:03d}", "pid") for i in range(200)}) == 1
    # Peak RSS (of this test process) after 20 exports and after 200: flat, loosely.
    early = max(e["peak_rss_mb"] for e in exports[:20])
    late = max(e["peak_rss_mb"] for e in exports[180:])
    assert late - early < 25, f"peak RSS grew from {early} MiB to {late} MiB"


# ------------------------------------------------------------------ MariaDB


MY_SESSION = ("SELECT CONNECTION_ID() AS id, "
              "CAST(@@session.max_statement_time AS CHAR) AS timeout, "
              "CAST(@rivet_t_leak AS CHAR) AS leaked")


def test_consecutive_mysql_exports_share_one_session_reset_between(rivet_project,
                                                                  mysql_db_url):
    # e1 reads with a 7 s statement timeout and sets a user variable in its session; e2
    # (no timeout of its own) is served by the same session and sees neither.
    rivet_project.write_config(mysql_config(mysql_db_url, [
        ("e1", MY_SESSION + ", (@rivet_t_leak := 42) AS set_it",
         "[exports.tuning]\nstatement_timeout_s = 7"),
        ("e2", MY_SESSION, "[exports.tuning]\nstatement_timeout_s = 0"),
        ("e3", MY_SESSION, ""),
    ]))
    rivet_project.run("run").assert_success()
    assert float(only(rivet_project, "e1", "timeout")) == 7
    assert only(rivet_project, "e2", "id") == only(rivet_project, "e1", "id")
    assert only(rivet_project, "e3", "id") == only(rivet_project, "e1", "id")
    assert float(only(rivet_project, "e2", "timeout")) == 0
    assert only(rivet_project, "e2", "leaked") is None


def test_a_failed_mysql_export_does_not_poison_the_connection_of_the_next(
        rivet_project, mysql_db_url):
    rivet_project.write_config(mysql_config(mysql_db_url, [
        ("e1", MY_SESSION, ""),
        ("e2", "SELECT CONNECTION_ID() AS id, no_such_column FROM DUAL",
         "[exports.tuning]\nmax_retries = 0"),
        ("e3", MY_SESSION, ""),
    ]))
    outcome = rivet_project.run("-vv", "run", "--json").assert_failed(1)
    status = {e["export"]: e["status"] for e in outcome.json()["exports"]}
    assert status == {"e1": "success", "e2": "failed", "e3": "success"}
    # e2's source was closed, not given back: if it had been e1's session, e3 cannot be
    # served by it (with a turn to read taken early, e2 may also have had one of its own).
    if "export e2: reusing the mysql source connection" in outcome.err:
        assert only(rivet_project, "e3", "id") != only(rivet_project, "e1", "id")
    # e3 reads in a clean session either way.
    assert only(rivet_project, "e3", "leaked") is None
    assert float(only(rivet_project, "e3", "timeout")) == float(
        only(rivet_project, "e1", "timeout"))


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_an_export_after_a_reused_session_reads_correct_data(rivet_project, pg_url,
                                                             mysql_db_url, kind):
    """Reuse changes nothing in what is read: the same query gives the same rows whether
    its export runs first (fresh session) or after others (reused session)."""
    query = "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'"
    exports = [(f"e{i}", query, "") for i in range(1, 4)]
    rivet_project.write_config(pg_config(pg_url, exports) if kind == "postgres"
                               else mysql_config(mysql_db_url, exports))
    rivet_project.run("run").assert_success()
    for i in range(1, 4):
        assert sorted(column(rivet_project, f"e{i}", "a")) == [1, 2]
        assert sorted(column(rivet_project, f"e{i}", "b")) == ["x", "y"]


def test_a_reset_keeps_built_in_type_names_and_forgets_user_types(pg):
    """Between exports the source forgets what a user type could have changed (it may be
    renamed or dropped and its OID reused), but keeps the names of built-in types, so an
    export of built-in columns only asks for no type name again."""
    from rivet_postgres.describe import FIRST_USER_OID, TypeCache

    pg.execute("CREATE TYPE mood AS ENUM ('calm', 'loud')")
    (mood,) = pg.execute("SELECT 'mood'::regtype::oid::int").fetchone()
    assert mood >= FIRST_USER_OID
    cache = TypeCache()
    shapes = [(20, -1), (1700, 786438), (mood, -1)]
    assert cache.names(pg, shapes) == ["bigint", "numeric(12,2)", "mood"]
    cache.forget_session()
    assert set(cache._names) == {(20, -1), (1700, 786438)}
    pg.execute("ALTER TYPE mood RENAME TO feeling")
    assert cache.names(pg, shapes) == ["bigint", "numeric(12,2)", "feeling"]
