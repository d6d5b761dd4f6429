"""`rivet doctor`: every check OK on a reachable source and local, S3 and GCS destinations,
with nothing left behind; FAIL (exit 1) with a hint on a missing bucket, an unwritable
directory and a missing SELECT grant, naming the relation; a destination that cannot be
probed is a warning."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from servers.clouds import S3_ENV

from rivet_core.errors import ExitCode

CONFIG = """
[source]
type = "{kind}"
url = "{url}"
{exports}
"""
EXPORT = """
[[exports]]
name = "{name}"
query = "{query}"
format = "csv"
[exports.destination]
{destination}
"""


def config(kind: str, url: str, *exports: tuple[str, str, str]) -> str:
    return CONFIG.format(kind=kind, url=url, exports="".join(
        EXPORT.format(name=name, query=query, destination=destination)
        for name, query, destination in exports))


def checks(outcome) -> dict[tuple[str, str], dict]:
    return {(c["subject"], c["check"]): c for c in outcome.json()["checks"]}


@pytest.fixture
def pg_table(pg) -> str:
    pg.execute("DROP TABLE IF EXISTS doctor_t; CREATE TABLE doctor_t (id int, v text)")
    return "doctor_t"


def test_every_check_passes_on_local_and_cloud_and_nothing_is_left(rivet_project, pg_url,
                                                                   pg_schema, pg_table,
                                                                   cloud):
    query = f"SELECT * FROM {pg_schema}.{pg_table}"
    rivet_project.write_config(config(
        "postgres", pg_url, ("to_disk", query, 'type = "local"\npath = "./out/{export}"'),
        ("to_cloud", query, cloud.toml("landing/{export}"))))
    outcome = rivet_project.run("doctor", "--json").assert_success()
    found = checks(outcome)
    assert all(c["status"] == "OK" for c in found.values()), found
    for name in ("connect", "server version", "server time zone", "read-only transaction",
                 "TLS"):
        assert ("source", name) in found
    assert found[("to_disk", "SELECT")]["detail"].startswith("the query can be read")
    assert found[("to_cloud", "write")]["detail"] == \
        "a probe object was written, read back and deleted"
    credentials = found[("to_cloud", "credentials")]["detail"]
    if cloud.kind == "s3":
        assert "RIVET_T_S3_KEY / RIVET_T_S3_SECRET" in credentials
        assert S3_ENV["RIVET_T_S3_SECRET"] not in outcome.out
    else:
        assert credentials.startswith("service account file ")
    assert "GiB free" in found[("to_disk", "free space")]["detail"]
    assert cloud.reader.list() == {} and cloud.reader.open_uploads() == []
    assert not (rivet_project.path / "out").exists()

    text = rivet_project.run("doctor").assert_success().out
    assert "[OK]   source: connect: connected to postgresql://postgres@" in text
    assert text.rstrip().endswith("0 warning(s), 0 failed")


def test_mysql_source_reports_its_server_and_session(rivet_project, mysql_db_url, my):
    my.execute("DROP TABLE IF EXISTS doctor_t")
    my.execute("CREATE TABLE doctor_t (id INT)")
    rivet_project.write_config(config("mysql", mysql_db_url, (
        "t", "SELECT * FROM doctor_t", 'type = "local"\npath = "./out"')))
    found = checks(rivet_project.run("doctor", "--json").assert_success())
    assert "MariaDB" in found[("source", "server version")]["detail"]
    assert "accepted the source's read-only transaction" in \
        found[("source", "read-only transaction")]["detail"]
    assert found[("source", "TLS")]["detail"].startswith("not encrypted (the server is on")


def test_a_missing_bucket_fails_with_a_hint(rivet_project, pg_url, moto_endpoint,
                                            monkeypatch):
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    destination = (f'type = "s3"\nbucket = "no-such-{uuid.uuid4().hex[:8]}"\n'
                   f'endpoint = "{moto_endpoint}"\nallow_http = true\n'
                   'region = "us-east-1"\naccess_key_env = "RIVET_T_S3_KEY"\n'
                   'secret_key_env = "RIVET_T_S3_SECRET"\nmax_retries = 0')
    rivet_project.write_config(config("postgres", pg_url, ("x", "SELECT 1 AS a",
                                                           destination)))
    outcome = rivet_project.run("doctor").assert_failed(ExitCode.RUN_FAILED)
    failed = [line for line in outcome.out.splitlines() if line.startswith("[FAIL]")]
    assert failed == [line for line in failed if line.startswith("[FAIL] x: list: ")]
    assert len(failed) == 1 and "not found" in failed[0], outcome.out
    assert "NoSuchBucket" in failed[0]
    assert "hint: create the bucket, or fix `bucket`/`endpoint`" in outcome.out
    assert "some checks failed" in outcome.err


def test_an_unwritable_directory_fails_and_leaves_nothing(rivet_project, pg_url):
    (rivet_project.path / "blocker").write_text("a file, not a directory\n")
    rivet_project.write_config(config("postgres", pg_url, (
        "x", "SELECT 1 AS a", 'type = "local"\npath = "./blocker/out"')))
    outcome = rivet_project.run("doctor", "--json").assert_failed(ExitCode.RUN_FAILED)
    found = checks(outcome)
    assert found[("x", "write")]["status"] == "FAIL"
    assert "cannot create directory" in found[("x", "write")]["detail"]
    assert found[("x", "write")]["hint"]
    assert outcome.json()["summary"]["fail"] == 1
    assert (rivet_project.path / "blocker").read_text() == "a file, not a directory\n"


@pytest.fixture
def limited_role(pg_url: str, pg_schema: str) -> Iterator[str]:
    """A login role that may read ``granted_t`` but not ``secret_t``: its URL."""
    import psycopg

    role = f"rivet_doc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute("DROP TABLE IF EXISTS granted_t, secret_t; "
                     "CREATE TABLE granted_t (id int); CREATE TABLE secret_t (id int)")
        conn.execute(f'CREATE ROLE "{role}" LOGIN; GRANT USAGE ON SCHEMA "{pg_schema}" TO '
                     f'"{role}"; GRANT SELECT ON granted_t TO "{role}"')
    try:
        yield pg_url.replace("postgres@", f"{role}@", 1)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


def test_a_missing_select_grant_names_the_relation(rivet_project, pg_schema, limited_role):
    local = 'type = "local"\npath = "./out/{export}"'
    rivet_project.write_config(config(
        "postgres", limited_role, ("fine", f"SELECT * FROM {pg_schema}.granted_t", local),
        ("denied", f"SELECT g.id FROM {pg_schema}.granted_t g JOIN {pg_schema}.secret_t s "
                   "USING (id)", local)))
    outcome = rivet_project.run("doctor", "--json").assert_failed(ExitCode.RUN_FAILED)
    found = checks(outcome)
    assert found[("fine", "SELECT")]["status"] == "OK"
    denied = found[("denied", "SELECT")]
    assert denied["status"] == "FAIL"
    assert denied["detail"].startswith("no access to table secret_t: ")
    assert denied["hint"] == ("grant SELECT on table secret_t to the user Rivet connects "
                              f"as ({limited_role.split('//')[1].split('@')[0]})")
    assert [c for c in found.values() if c["status"] == "FAIL"] == [denied]


def test_a_destination_that_cannot_be_probed_is_a_warning(rivet_project, pg_url):
    rivet_project.write_config(config("postgres", pg_url, ("x", "SELECT 1 AS a",
                                                           'type = "stdout"')))
    outcome = rivet_project.run("doctor").assert_success()
    assert "[WARN] x: write: cannot probe stdout" in outcome.out
    assert "hint: its first run is the test" in outcome.out
