"""`rivet init`: a live database surveyed into a commented config that `rivet check` accepts
and `rivet run` runs as written, on PostgreSQL and MariaDB; `--discover` as JSON; no
secret in anything it prints or writes; a third-party source degrades, naming what its
dialect lacks."""

from __future__ import annotations

import sqlite3
import tomllib
import uuid
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest

from rivet_core.errors import ExitCode

PASSWORD = "Init-S3cret-Pw"
"""In the PostgreSQL URL: the test server trusts local connections, so it is ignored."""
URL_ENV = "RIVET_T_INIT_URL"
SMALL_LIMITS = ("--big-rows", "1000", "--chunk-size", "1000")


def _pg_seed(conn, schema: str) -> None:
    conn.execute(f"""
        SET search_path TO "{schema}";
        CREATE TABLE small_t (id serial PRIMARY KEY, name text);
        INSERT INTO small_t (name) SELECT 'n' || g FROM generate_series(1, 50) g;
        CREATE TABLE big_t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
        INSERT INTO big_t (v) SELECT 'v' || g FROM generate_series(1, 3000) g;
        CREATE TABLE events (code text PRIMARY KEY, updated_at timestamptz NOT NULL,
                             payload jsonb);
        CREATE INDEX ON events (updated_at);
        INSERT INTO events SELECT 'c' || g, now() - interval '1 hour' - g * interval '1 s',
                                  '{{"g": 1}}' FROM generate_series(1, 2000) g;
        CREATE TABLE shapes (id int PRIMARY KEY, p point, amount numeric(10, 2));
        INSERT INTO shapes VALUES (1, point(1, 2), 1.50), (2, NULL, NULL);
        ANALYZE small_t, big_t, events, shapes;
    """)


def _my_seed(cursor) -> None:
    for statement in (
        "CREATE TABLE small_t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO small_t (name) SELECT CONCAT('n', seq) FROM seq_1_to_50",
        "CREATE TABLE big_t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO big_t (v) SELECT CONCAT('v', seq) FROM seq_1_to_3000",
        "CREATE TABLE events (code VARCHAR(20) PRIMARY KEY, updated_at DATETIME(6) NOT NULL "
        "DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), INDEX (updated_at))",
        "INSERT INTO events (code, updated_at) SELECT CONCAT('c', seq), "
        "UTC_TIMESTAMP(6) - INTERVAL 1 HOUR - INTERVAL seq SECOND FROM seq_1_to_2000",
        "CREATE TABLE shapes (id INT PRIMARY KEY, f FLOAT, amount DECIMAL(10,2))",
        "INSERT INTO shapes VALUES (1, 1.5, 1.50), (2, NULL, NULL)",
        "ANALYZE TABLE small_t, big_t, events, shapes",
    ):
        cursor.execute(statement)
        if cursor.description:
            cursor.fetchall()


@pytest.fixture(scope="module")
def pg_init(pg_url: str) -> Iterator[tuple[str, str]]:
    """A schema of its own (the survey lists every table of it): (URL with a password,
    schema)."""
    import psycopg

    schema = f"rivet_init_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        _pg_seed(conn, schema)
    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    assert PASSWORD in url
    try:
        yield url, schema
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def my_init(mysql_url: str) -> Iterator[tuple[str, str]]:
    """A database of its own: (its URL, its name)."""
    from urllib.parse import urlsplit, urlunsplit

    import pymysql

    from rivet_core.config.connection import ConnectionParams

    params = ConnectionParams.from_url(mysql_url, default_port=3306)

    def connect(database: str | None = None):
        return pymysql.connect(host=params.host, port=params.port, user=params.user,
                               password=params.password or "", database=database,
                               autocommit=True, charset="utf8mb4")

    name = f"rivet_init_{uuid.uuid4().hex[:8]}"
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    with connect(name) as conn, conn.cursor() as cursor:
        _my_seed(cursor)
    parts = urlsplit(mysql_url)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", "")), name
    finally:
        with connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=["postgres", "mysql"])
def live(request, monkeypatch) -> tuple[str, str]:
    """(source type, schema) with the URL in ``RIVET_T_INIT_URL``."""
    url, schema = request.getfixturevalue("pg_init" if request.param == "postgres"
                                          else "my_init")
    monkeypatch.setenv(URL_ENV, url)
    return request.param, schema


def _init(rivet_project, kind: str, schema: str, *extra: str):
    return rivet_project.run("init", "--type", kind, "--source-url-env", URL_ENV,
                             "--schema", schema, *SMALL_LIMITS, *extra)


def test_scaffold_passes_check_and_runs_without_an_edit(rivet_project, live):
    kind, schema = live
    outcome = _init(rivet_project, kind, schema).assert_success()
    text = rivet_project.config.read_text()
    assert PASSWORD not in text + outcome.out + outcome.err
    assert f'url_env = "{URL_ENV}"' in text and "next: review it, then rivet doctor" \
        in outcome.err
    exports = {e["name"]: e for e in tomllib.loads(text)["exports"]}
    assert set(exports) == {"small_t", "big_t", "events", "shapes"}
    assert exports["small_t"]["mode"] == "full"
    assert (exports["big_t"]["mode"], exports["big_t"]["chunk_column"],
            exports["big_t"]["chunk_size"]) == ("chunked", "id", 1000)
    assert (exports["events"]["mode"], exports["events"]["cursor_column"],
            exports["events"]["cursor_lag"]) == ("incremental", "updated_at", "5m")
    flagged = "p" if kind == "postgres" else "f"
    assert exports["shapes"]["mode"] == "full" and "CAST(" in exports["shapes"]["query"]
    assert f"{flagged} (" in text and "has no faithful Arrow type" in text
    assert text.count("[[exports]]") == 4 and "# chunked: big" in text.replace("#   ", "# ")

    rivet_project.run("check").assert_success()
    rivet_project.run("run").assert_success()
    # output/<export>/<run_id>/…: a directory per run, so a snapshot never sits beside an
    # earlier one.
    files = {path.parent.parent.name: path for path in rivet_project.files("output")}
    assert set(files) == {"small_t", "big_t", "events", "shapes"}
    chunks = [p for p in rivet_project.files("output") if p.parent.parent.name == "big_t"]
    assert len(chunks) == 3 and sum(pq.read_metadata(p).num_rows for p in chunks) == 3000
    shapes = pq.read_table(files["shapes"]).to_pydict()
    assert shapes[flagged][0] in ("(1,2)", 1.5)
    assert pq.read_metadata(files["events"]).num_rows == 2000
    # The next night: every export validates (no snapshot beside an earlier one).
    rivet_project.run("run").assert_success()
    rivet_project.run("validate").assert_success()


def test_discover_prints_the_findings_as_json_and_writes_nothing(rivet_project, pg_init,
                                                                 monkeypatch):
    url, schema = pg_init
    monkeypatch.setenv(URL_ENV, url)
    outcome = _init(rivet_project, "postgres", schema, "--discover").assert_success()
    assert not rivet_project.config.exists() and PASSWORD not in outcome.out
    found = outcome.json()
    assert found["thresholds"]["big_rows"] == 1000 and found["source"]["schema"] == schema
    tables = {t["table"]: t for t in found["tables"]}
    assert tables["big_t"]["estimated_rows"] == 3000 and tables["big_t"]["total_bytes"] > 0
    assert tables["big_t"]["primary_key"] == ["id"] and tables["big_t"]["chunk_key"] == "id"
    assert tables["big_t"]["suggestion"]["mode"] == "chunked"
    (cursor, *_) = tables["events"]["cursor_candidates"]
    assert cursor["column"] == "updated_at" and cursor["kind"] == "timestamp"
    assert {"indexed", "name suggests an update time", "not null"} <= set(cursor["reasons"])
    (flag,) = tables["shapes"]["flagged"]
    assert (flag["column"], flag["fidelity"]) == ("p", "unsupported")
    assert flag["read_as"] == 'CAST("p" AS text)'
    assert tables["small_t"]["suggestion"]["why"][0].startswith("full: small")


def test_an_existing_file_is_replaced_only_with_force(rivet_project, pg_init, monkeypatch):
    url, schema = pg_init
    monkeypatch.setenv(URL_ENV, url)
    rivet_project.write_config("# mine\n")
    outcome = _init(rivet_project, "postgres", schema, "--table", "small_t")
    outcome.assert_failed(ExitCode.USAGE)
    assert "--force" in outcome.err and rivet_project.config.read_text() == "# mine\n"
    _init(rivet_project, "postgres", schema, "--table", "small_t", "--force").assert_success()
    assert tomllib.loads(rivet_project.config.read_text())["exports"][0]["name"] == "small_t"


def test_stdout_scaffold_for_a_bucket_passes_check(rivet_project, pg_init, monkeypatch):
    url, schema = pg_init
    monkeypatch.setenv(URL_ENV, url)
    outcome = rivet_project.run("init", "-c", "-", "--type", "postgres", "--source-url-env",
                                URL_ENV, "--schema", schema, "--table", "events",
                                "--s3-bucket", "acme-exports", "--s3-region", "eu-west-1",
                                config=False).assert_success()
    assert "next: save it as rivet.toml" in outcome.err and PASSWORD not in outcome.out
    (export,) = tomllib.loads(outcome.out)["exports"]
    assert export["destination"] == {"type": "s3", "bucket": "acme-exports",
                                     "prefix": "{export}/{run_id}", "region": "eu-west-1"}
    rivet_project.write_config(outcome.out)
    rivet_project.run("check").assert_success()


def test_secrets_never_go_into_the_config(rivet_project, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    outcome = rivet_project.run("init", "--type", "postgres", "--source-url-env", URL_ENV)
    outcome.assert_failed(ExitCode.USAGE)
    assert f"{URL_ENV!r} is not set" in outcome.err
    outcome = rivet_project.run("init", "--type", "postgres", "--source-option",
                                f"url=postgresql://u:{PASSWORD}@h/db")
    outcome.assert_failed(ExitCode.USAGE)
    assert "must not hold a secret" in outcome.err and PASSWORD not in outcome.err
    assert not rivet_project.config.exists()


def test_a_third_party_source_gets_a_scaffold_and_says_what_its_dialect_lacks(
        rivet_project):
    pytest.importorskip("rivet_sqlite_jsonl")
    database = rivet_project.path / "shop.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",)])
    outcome = rivet_project.run("init", "--type", "sqlite", "--source-option",
                                "path=shop.sqlite", "--format", "jsonl").assert_success()
    assert "no SupportsIntrospection" in outcome.err
    text = rivet_project.config.read_text()
    assert "SupportsIntrospection" in text and 'path = "shop.sqlite"' in text
    rivet_project.run("run").assert_success()
    assert len(rivet_project.files("output")) == 1
