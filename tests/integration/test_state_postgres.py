"""The PostgreSQL state store under real commands: ``rivet run`` with ``RIVET_STATE_URL`` (or
``[state]``) keeps all its state in PostgreSQL and none beside the config, the read commands
read it back from there, ``rivet state migrate`` moves a SQLite state over, and the store's
password shows nowhere.

The state of each test lives in a schema of its own on the test server, dropped after it;
what is stored is checked there with psycopg, not through Rivet.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from rivet_core.errors import ExitCode, StateError
from rivet_core.state.postgres import PostgresStateStore

STATE_FILES = ".rivet_state.db*"


@pytest.fixture
def state_schema(pg_url: str) -> Iterator[str]:
    name = f"rivet_se_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def items(pg, pg_schema) -> str:
    pg.execute("DROP TABLE IF EXISTS state_items")
    pg.execute("CREATE TABLE state_items (id bigint PRIMARY KEY, v text)")
    pg.execute("INSERT INTO state_items SELECT g, 'v' || g FROM generate_series(1, 500) g")
    return f"{pg_schema}.state_items"


def config(pg_url: str, table: str, *, state: str = "", mode: str = "incremental") -> str:
    keys = ('cursor_column = "id"' if mode == "incremental" else
            'chunk_column = "id"\nchunk_size = 100\nchunk_checkpoint = true\nparallel = 2')
    return f"""
[source]
type = "postgres"
url = "{pg_url}"

{state}

[[exports]]
name = "t"
table = "{table}"
mode = "{mode}"
{keys}
format = "csv"
[exports.destination]
type = "local"
path = "./out"
"""


def state_rows(pg_url: str, schema: str, sql: str) -> list[tuple]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return conn.execute(sql).fetchall()


def test_a_run_with_rivet_state_url_keeps_its_state_in_postgres_and_advances_its_cursor(
        rivet_project, pg, pg_url, items, state_schema, monkeypatch):
    monkeypatch.setenv("RIVET_STATE_URL", pg_url)
    rivet_project.write_config(config(pg_url, items,
                                      state=f'[state]\nschema = "{state_schema}"'))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert first["rows"] == 500
    assert not list(rivet_project.path.glob(STATE_FILES))
    assert state_rows(pg_url, state_schema, "SELECT export_name, value FROM cursors") == [
        ("t", '{"type": "int", "value": "500"}')]

    shown = rivet_project.run("state", "show", "--json").assert_success().json()
    assert shown["exports"][0]["cursor_raw"] == '{"type": "int", "value": "500"}'
    assert shown["exports"][0]["last_run"]["run_id"] == first["run_id"]
    events = rivet_project.run("journal", "--json").assert_success().json()["events"]
    assert next(e["event"] for e in events if e["run_id"] == first["run_id"]) == "run_started"
    assert any(e["event"] == "cursor_advanced" for e in events)
    files = rivet_project.run("state", "files", "--json").assert_success().json()["files"]
    assert [f["file_name"] for f in files] == [p.name for p in rivet_project.files("out")]
    rivet_project.run("validate").assert_success()

    pg.execute("INSERT INTO state_items SELECT g, 'w' FROM generate_series(501, 620) g")
    second = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert second["rows"] == 120
    assert state_rows(pg_url, state_schema, "SELECT value FROM cursors") == [
        ('{"type": "int", "value": "620"}',)]
    metrics = rivet_project.run("metrics", "--json").assert_success().json()
    assert [r["run_id"] for r in metrics["runs"]] == [second["run_id"], first["run_id"]]
    assert not list(rivet_project.path.glob(STATE_FILES))


def test_a_checkpointed_chunked_run_claims_its_chunks_in_the_store_its_config_names(
        rivet_project, pg_url, items, state_schema, monkeypatch):
    """``[state] url_env`` wins over ``RIVET_STATE_URL``, which is then said to be unused."""
    monkeypatch.setenv("STATE_DB", pg_url)
    monkeypatch.setenv("RIVET_STATE_URL", "postgresql://nobody@127.0.0.1:1/elsewhere")
    rivet_project.write_config(config(
        pg_url, items, mode="chunked",
        state=f'[state]\nurl_env = "STATE_DB"\nschema = "{state_schema}"'))
    outcome = rivet_project.run("run").assert_success()
    assert "RIVET_STATE_URL is set but not used" in outcome.err
    chunks = rivet_project.run("state", "chunks", "-e", "t", "--json").assert_success().json()
    assert chunks["chunk_run"]["status"] == "completed"
    assert [(t["idx"], t["status"], t["attempts"]) for t in chunks["tasks"]] == [
        (i, "completed", 1) for i in range(5)]
    assert state_rows(pg_url, state_schema, "SELECT SUM(rows) FROM chunk_tasks") == [(500,)]
    assert not list(rivet_project.path.glob(STATE_FILES))


def test_a_live_run_lock_in_postgres_refuses_runs_and_even_a_forced_unlock(
        rivet_project, pg_url, items, state_schema, monkeypatch):
    """PostgreSQL sees that the holder's session lives, wherever it runs: `unlock --force`
    cannot take a live run's lock, and the lock is free the moment the holder lets go."""
    monkeypatch.setenv("RIVET_STATE_URL", pg_url)
    rivet_project.write_config(config(pg_url, items,
                                      state=f'[state]\nschema = "{state_schema}"'))
    holder = PostgresStateStore(pg_url, state_schema)
    try:
        with holder.transaction() as tx:
            assert tx.acquire_lock("t", "20260101T000000Z-other0") is None
        refused = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
        assert "already running" in refused.json()["exports"][0]["error"]
        unlock = rivet_project.run("state", "unlock", "-e", "t", "--force")
        unlock.assert_failed(ExitCode.RUN_FAILED)
        assert "still running" in unlock.err
        reset = rivet_project.run("state", "reset", "-e", "t").assert_failed(ExitCode.RUN_FAILED)
        assert "is running" in reset.err
    finally:
        holder.close()  # as if the holder's process died: its session ends
    rivet_project.run("run").assert_success()


def test_state_migrate_copies_the_sqlite_state_and_runs_go_on_from_it_in_postgres(
        rivet_project, pg, pg_url, items, state_schema, monkeypatch):
    rivet_project.write_config(config(pg_url, items))
    rivet_project.run("run").assert_success()
    pg.execute("INSERT INTO state_items SELECT g, 'w' FROM generate_series(501, 510) g")
    rivet_project.run("run").assert_success()
    target = pg_url.replace("postgres@", "postgres:pw4migrate@")

    copied = rivet_project.run("state", "migrate", "--to", target, "--schema", state_schema,
                               "--json").assert_success()
    report = copied.json()
    assert report["copied"]["runs"] == 2 and report["copied"]["cursors"] == 1
    assert report["copied"]["files"] == 2 and report["copied"]["journal"] > 4
    assert "pw4migrate" not in copied.out and "REDACTED" in report["target"]
    text = rivet_project.run("state", "migrate", "--to", target, "--schema", state_schema)
    text.assert_failed(ExitCode.RUN_FAILED)
    assert "not empty" in text.err and "--force" in text.err and "pw4migrate" not in text.err
    again = rivet_project.run("state", "migrate", "--to", target, "--schema", state_schema,
                              "--force").assert_success()
    assert "runs 2" in again.out and "pw4migrate" not in again.out

    monkeypatch.setenv("RIVET_STATE_URL", pg_url)
    rivet_project.write_config(config(pg_url, items,
                                      state=f'[state]\nschema = "{state_schema}"'))
    before = (rivet_project.path / ".rivet_state.db").read_bytes()
    pg.execute("INSERT INTO state_items SELECT g, 'x' FROM generate_series(511, 515) g")
    resumed = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert resumed["rows"] == 5  # from the migrated cursor, not from the start
    assert (rivet_project.path / ".rivet_state.db").read_bytes() == before
    runs = rivet_project.run("metrics", "--json").assert_success().json()["runs"]
    assert len(runs) == 3


def test_the_state_url_password_shows_nowhere(rivet_project, pg_url, items, state_schema,
                                              monkeypatch):
    secret = f"pw-{uuid.uuid4().hex[:12]}"
    # Trust authentication ignores the password: the run connects, and must still hide it.
    monkeypatch.setenv("RIVET_STATE_URL", pg_url.replace("postgres@", f"postgres:{secret}@"))
    rivet_project.write_config(config(pg_url, items,
                                      state=f'[state]\nschema = "{state_schema}"'))
    outcomes = [rivet_project.run("-vv", "run", "--json").assert_success(),
                rivet_project.run("state", "show").assert_success(),
                rivet_project.run("journal").assert_success()]
    monkeypatch.setenv("RIVET_STATE_URL", f"postgresql://rivet:{secret}@127.0.0.1:1/x")
    unreachable = rivet_project.run("state", "show").assert_failed(ExitCode.RUN_FAILED)
    assert "unreachable" in unreachable.err and "Traceback" not in unreachable.err
    assert "rivet:REDACTED@127.0.0.1:1/x" in unreachable.err
    for outcome in [*outcomes, unreachable]:
        assert secret not in outcome.out + outcome.err, outcome.argv
    stored = state_rows(pg_url, state_schema, "SELECT data FROM journal")
    assert stored and not any(secret in row[0] for row in stored)


def test_a_state_host_off_this_machine_without_tls_is_warned_about_once(rivet_project,
                                                                        monkeypatch):
    host = f"state-{uuid.uuid4().hex[:8]}.invalid"
    monkeypatch.setenv("RIVET_STATE_URL", f"postgresql://rivet@{host}/x?connect_timeout=2")
    rivet_project.write_config(config("postgresql://127.0.0.1/x", "t"))
    first = rivet_project.run("state", "show").assert_failed(ExitCode.RUN_FAILED)
    assert first.err.count("does not require TLS") == 1, first.err
    assert host in first.err and "unreachable" in first.err
    second = rivet_project.run("state", "show").assert_failed(ExitCode.RUN_FAILED)
    assert "does not require TLS" not in second.err
    monkeypatch.setenv("RIVET_STATE_URL",
                       f"postgresql://rivet@{host}/y?connect_timeout=2&sslmode=verify-full")
    encrypted = rivet_project.run("state", "show").assert_failed(ExitCode.RUN_FAILED)
    assert "does not require TLS" not in encrypted.err


def test_the_state_table_is_checked_like_the_rest_of_the_config(rivet_project, pg_url):
    rivet_project.write_config(config(pg_url, "t", state='[state]\nurl = "mysql://h/x"\n'
                                                         'url_env = "X"\nschema = "1bad"'))
    outcome = rivet_project.run("state", "show").assert_failed(ExitCode.CONFIG)
    for expected in ("state.url: expected a postgresql:// URL",
                     "state.url_env: give `url` or `url_env`, not both",
                     "state.schema: '1bad' is not a plain identifier"):
        assert expected in outcome.err, outcome.err
    check = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert "state.url: expected a postgresql:// URL" in check.err
    rivet_project.write_config(config(pg_url, "t", state='[state]\nshema = "x"'))
    misspelt = rivet_project.run("state", "show").assert_failed(ExitCode.CONFIG)
    assert "state.shema: unknown key" in misspelt.err and "schema" in misspelt.err
    schema = json.loads(rivet_project.run("schema", "config", config=False).out)
    assert set(schema["properties"]["state"]["properties"]) == {"url", "url_env", "schema"}


def test_a_store_that_lost_its_lock_session_records_nothing_more(pg_url, state_schema):
    """The server frees the locks of a session it loses; the process that held them must
    not go on writing as if it still did, while another run may hold them."""
    from rivet_core.state.postgres import lock_ids, lock_key

    store = PostgresStateStore(pg_url, state_schema)
    other = PostgresStateStore(pg_url, state_schema)
    try:
        with store.transaction() as tx:
            assert tx.acquire_lock("e", "r1") is None
        classid, objid = lock_ids(lock_key(state_schema, "e"))
        with psycopg.connect(pg_url, autocommit=True) as admin:
            (pid,), = admin.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = "
                "%s::bigint::oid AND objid = %s::bigint::oid", (classid, objid)).fetchall()
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while True:
            with other.transaction() as tx:
                taken = tx.acquire_lock("e", "r2") is None
            if taken or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert taken
        with pytest.raises(StateError, match="lock of e was lost"), \
                store.transaction() as tx:
            tx.set_cursor("e", "1", "r1")
        assert other.cursor("e") is None
        with store.transaction() as tx:  # its locks gone, the store can still read and write
            assert tx.acquire_lock("e", "r1") is not None
    finally:
        store.close()
        other.close()


# ------------------------------------------------------------------ the pure rules, alone


def test_the_config_names_the_store_before_the_environment_and_sqlite_comes_last(tmp_path):
    from rivet_core.config.models import StateConfig
    from rivet_core.state import resolve_location

    env = {"RIVET_STATE_URL": "postgresql://env@h/e", "MINE": "postgresql://mine@h/m"}
    chosen = resolve_location(tmp_path, StateConfig(url="postgresql://cfg@h/c"), env)
    assert (chosen.url, chosen.origin) == ("postgresql://cfg@h/c", "[state] url")
    chosen = resolve_location(tmp_path, StateConfig(url_env="MINE", schema="s1"), env)
    assert (chosen.url, chosen.schema) == ("postgresql://mine@h/m", "s1")
    chosen = resolve_location(tmp_path, StateConfig(schema="s2"), env)
    assert (chosen.url, chosen.schema, chosen.origin) == (
        "postgresql://env@h/e", "s2", "RIVET_STATE_URL")
    for environ in ({}, {"RIVET_STATE_URL": ""}):
        chosen = resolve_location(tmp_path, None, environ)
        assert (chosen.backend, chosen.path) == ("sqlite", tmp_path / ".rivet_state.db")
    with pytest.raises(StateError, match="'MINE' is not set"):
        resolve_location(tmp_path, StateConfig(url_env="MINE"), {})
    shown = resolve_location(tmp_path, None, {"RIVET_STATE_URL": "postgresql://u:pw1234@h/d"})
    assert "pw1234" not in shown.display() + repr(shown)


@pytest.mark.parametrize(("params", "environ", "warned"), [
    ({"host": "db.example.com"}, {}, True),
    ({"host": "db.example.com", "sslmode": "prefer"}, {}, True),
    ({"host": "db.example.com", "sslmode": "require"}, {}, False),
    ({"host": "db.example.com"}, {"PGSSLMODE": "verify-full"}, False),
    ({"hostaddr": "10.1.2.3"}, {}, True),
    ({"host": "localhost,10.0.0.9"}, {}, True),
    ({"host": "127.0.0.1"}, {}, False),
    ({"host": "::1"}, {}, False),
    ({"host": "/var/run/postgresql"}, {}, False),
    ({}, {}, False),
    ({}, {"PGHOST": "db.example.com"}, True),
])
def test_a_state_url_is_exposed_when_it_leaves_this_machine_without_requiring_tls(
        params, environ, warned):
    from rivet_core.state.postgres import exposed

    assert exposed(params, environ) is warned


def test_lock_keys_differ_per_export_and_schema_and_map_onto_pg_locks_ids():
    from rivet_core.state.postgres import lock_ids, lock_key

    keys = {lock_key(schema, name) for schema in ("a", "b") for name in ("x", "y", "xy")}
    assert len(keys) == 6 and all(-(2**63) <= k < 2**63 for k in keys)
    assert lock_key("a", "x") == lock_key("a", "x")
    classid, objid = lock_ids(-1)
    assert (classid, objid) == (0xFFFFFFFF, 0xFFFFFFFF)
