"""`rivet run` into S3 (moto server), GCS (the suite's XML-API server) and Azure Blob
(Azurite), end to end.

Sources are parametrized: the PostgreSQL cases run now; the MariaDB cases run as soon as a
``mysql`` source plugin is installed (they skip, saying so, until then). Objects are read
back over plain HTTP (tests/servers: BucketReader, ContainerReader), never through obstore.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from servers import BucketReader, http, scrubbed_env
from servers.azurite import (
    ACCOUNT,
    ACCOUNT_KEY,
    AZURE_KEY_ENV,
    ContainerReader,
    azure_destination,
    container_sas,
)
from servers.clouds import S3_ENV, Cloud

from rivet_core.errors import ExitCode
from rivet_core.plugins import build_registry

PG_URL = os.environ.get("RIVET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("RIVET_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


@pytest.fixture(params=["s3", "gcs", "azure"])
def cloud(request) -> Cloud:
    """Every object-store destination, each with a fresh bucket or container."""
    return request.getfixturevalue(request.param)


def root(cloud: Cloud) -> str:
    """The URL of the bucket or container, as a destination's location starts."""
    if cloud.kind == "azure":
        return f"{cloud.endpoint}/{cloud.bucket}"  # an Azure blob's own URL
    return f"{cloud.kind.replace('gcs', 'gs')}://{cloud.bucket}"


RUN_ENV = {**S3_ENV, **AZURE_KEY_ENV}
"""The credentials a ``rivet run`` subprocess needs for any ``cloud``."""


# ------------------------------------------------------------------------------ sources


@dataclass
class SourceDb:
    name: str
    toml: str
    table: str
    fetch: object
    """``fetch(sql) -> list[tuple]``"""


def _pg_source(pg, pg_schema) -> SourceDb:
    pg.execute("""
        DROP TABLE IF EXISTS items;
        CREATE TABLE items (id bigint PRIMARY KEY, label text, amount numeric(12,2),
                            at timestamptz);
        INSERT INTO items SELECT g, md5(g::text), (g % 100000) / 100.0,
               TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '1 second'
        FROM generate_series(1, 60000) g;
    """)
    return SourceDb(name="postgres", toml=f'type = "postgres"\nurl = "{PG_URL}"',
                    table=f"{pg_schema}.items",
                    fetch=lambda sql: pg.execute(sql).fetchall())


def _mysql_source(database: str) -> SourceDb:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True,
                           database=database)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS items")
    cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, label text, "
                "amount decimal(12,2), at datetime(6))")
    cur.execute("INSERT INTO items SELECT seq, md5(seq), (seq % 100000) / 100.0, "
                "TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_60000")

    def fetch(sql: str) -> list[tuple]:
        cur.execute(sql)
        return list(cur.fetchall())

    url = MYSQL_URL.rsplit("/", 1)[0] + f"/{database}"
    return SourceDb(name="mysql", toml=f'type = "mysql"\nurl = "{url}"',
                    table=f"{database}.items", fetch=fetch)


@pytest.fixture(params=["postgres", "mysql"])
def source(request) -> SourceDb:
    if request.param not in build_registry().sources:
        pytest.skip(f"the {request.param!r} source plugin is not installed")
    if request.param == "postgres":
        return _pg_source(request.getfixturevalue("pg"), request.getfixturevalue("pg_schema"))
    return _mysql_source(request.getfixturevalue("mysql_db"))


def config(source_toml: str, query: str, destination: str, *, fmt: str = '"parquet"',
           extra: str = "", name: str = "items") -> str:
    return f"""
[source]
{source_toml}

[[exports]]
name = "{name}"
query = "{query}"
format = {fmt}
{extra}
[exports.destination]
{destination}
"""


def objects(cloud: Cloud, prefix: str) -> dict[str, int]:
    """Data objects under ``prefix`` (the manifest directory excluded)."""
    return {k[len(prefix):]: v for k, v in cloud.reader.list(prefix).items()
            if "/_rivet/" not in "/" + k[len(prefix):]}


# ---------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_with_parts_reads_back_equal_to_the_source(rivet_project, cloud, source, fmt):
    sql = f"SELECT id, label, amount, at FROM {source.table} ORDER BY id"
    # 512 KiB: the 60 000 rows make about 1.5 MB of Parquet, so several parts either way.
    rivet_project.write_config(config(source.toml, sql, cloud.toml(),
                                      fmt=f'"{fmt}"', extra='max_file_size = "512KB"'))
    summary = rivet_project.run("run", "--json").assert_success().json()
    (export,) = summary["exports"]
    assert export["destination"] == f"{root(cloud)}/items"
    stored = objects(cloud, "items/")
    assert sorted(stored) == sorted(f["name"] for f in export["files"])
    assert len(stored) > 1 and all("_part" in n for n in stored)
    rows = []
    for name in sorted(stored):
        data = cloud.reader.read(f"items/{name}")
        assert len(data) == stored[name]
        if fmt == "parquet":
            table = pq.read_table(io.BytesIO(data))
            rows += list(zip(*(table.column(i).to_pylist() for i in range(4)), strict=True))
        else:
            reader = csv.reader(io.StringIO(data.decode(), newline=""))
            assert next(reader) == ["id", "label", "amount", "at"]
            rows += [(int(i), label, Decimal(a), at) for i, label, a, at in reader]
    expected = source.fetch(sql)
    assert len(rows) == len(expected) == 60000
    for got, want in zip(rows, expected, strict=True):
        assert got[:3] == tuple(want[:3])
        if fmt == "parquet":
            assert got[3] == want[3]
    rivet_project.run("validate").assert_success()


def test_file_larger_than_a_part_is_one_multipart_object(rivet_project, cloud, pg_url):
    sql = "SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 400000) g"
    rivet_project.write_config(config(f'type = "postgres"\nurl = "{pg_url}"', sql,
                                      cloud.toml("big"), fmt='"csv"'))
    summary = rivet_project.run("run", "--json").assert_success().json()
    (file,) = summary["exports"][0]["files"]
    assert file["bytes"] > 12 << 20  # three 5 MiB parts at least
    data = cloud.reader.read(f"big/{file['name']}")
    assert len(data) == file["bytes"]
    lines = data.decode().splitlines()
    assert lines[1] == "1,\"c4ca4238a0b923820dcc509a6f75849b\"" and len(lines) == 400001
    assert cloud.reader.open_uploads() == []


def test_prefix_is_joined_with_exactly_one_slash(rivet_project, gcs, pg_url):
    rivet_project.write_config(config(f'type = "postgres"\nurl = "{pg_url}"',
                                      "SELECT 1 AS x", gcs.toml("//exports//{export}/")))
    summary = rivet_project.run("run", "--json").assert_success().json()
    name = summary["exports"][0]["files"][0]["name"]
    keys = set(gcs.reader.list())
    assert f"exports/items/{name}" in keys
    assert "exports/items/_rivet/items/manifest.json" in keys


# ------------------------------------------------------------------- manifests

def test_manifest_describes_the_run_and_success_marker_vouches_for_it(
        rivet_project, cloud, pg_url):
    sql = ("SELECT g AS id, (g * 1.5)::numeric(10,2) AS amount FROM generate_series(1, 5000) g")
    rivet_project.write_config(config(f'type = "postgres"\nurl = "{pg_url}"', sql,
                                      cloud.toml()))
    summary = rivet_project.run("run", "--json").assert_success().json()
    (export,) = summary["exports"]
    manifest_bytes = cloud.reader.read("items/_rivet/items/manifest.json")
    manifest = json.loads(manifest_bytes)
    assert manifest["run_id"] == export["run_id"] and manifest["status"] == "success"
    assert manifest["files"] == [{k: f[k] for k in ("name", "rows", "bytes", "sha256")}
                                 for f in export["files"]]
    assert manifest["totals"] == {"files": 1, "rows": 5000, "bytes": export["bytes"]}
    assert manifest["schema"] == [
        {"name": "id", "type": "int32", "nullable": True, "source_type": "integer"},
        {"name": "amount", "type": "decimal128(10, 2)", "nullable": True,
         "source_type": "numeric(10,2)"},
    ]
    assert manifest["destination"] == {"kind": cloud.kind, "uri": export["destination"]}
    assert manifest["source"]["engine"] == "postgres" and manifest["cursor"] is None
    marker = json.loads(cloud.reader.read("items/_rivet/items/_SUCCESS"))
    import hashlib

    assert marker == {"run_id": export["run_id"],
                      "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
    report = rivet_project.run("validate", "--json").assert_success().json()
    assert report["ok"] and report["exports"][0]["status"] == "passed"


def test_exports_sharing_a_prefix_keep_their_own_manifests(rivet_project, cloud, pg_url):
    destination = cloud.toml("shared")
    rivet_project.write_config(f"""
[source]
type = "postgres"
url = "{pg_url}"

[[exports]]
name = "a"
query = "SELECT 1 AS one"
format = "csv"
[exports.destination]
{destination}

[[exports]]
name = "b"
query = "SELECT 2 AS two"
format = "csv"
[exports.destination]
{destination}
""")
    rivet_project.run("run").assert_success()
    keys = set(cloud.reader.list("shared/_rivet/"))
    assert keys == {f"shared/_rivet/{e}/{f}" for e in "ab" for f in ("manifest.json",
                                                                      "_SUCCESS")}
    assert json.loads(cloud.reader.read("shared/_rivet/a/manifest.json"))["export"] == "a"
    report = rivet_project.run("validate", "--json").assert_success().json()
    assert [e["status"] for e in report["exports"]] == ["passed", "passed"]


# --------------------------------------------------------------------- failures

def test_transient_http_errors_are_retried_by_the_client(rivet_project, gcs, pg_url):
    http("POST", f"{gcs.endpoint}/_test/fault?status=503&count=3&method=PUT"
                 f"&bucket={gcs.bucket}")
    sql = "SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 300000) g"
    rivet_project.write_config(config(f'type = "postgres"\nurl = "{pg_url}"', sql,
                                      gcs.toml(), fmt='"csv"'))
    summary = rivet_project.run("run", "--json").assert_success().json()
    (file,) = summary["exports"][0]["files"]
    assert len(gcs.reader.read(f"items/{file['name']}")) == file["bytes"]
    assert summary["exports"][0]["retries"] == 0  # absorbed per request, not per export


def test_persistent_server_errors_fail_the_run_as_transient_and_leave_nothing(
        rivet_project, gcs, pg_url):
    http("POST", f"{gcs.endpoint}/_test/fault?status=503&count=1000&method=PUT"
                 f"&bucket={gcs.bucket}")
    try:
        sql = "SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 300000) g"
        dest = gcs.toml() + "max_retries = 1\nretry_timeout_s = 5\n"
        rivet_project.write_config(config(
            f'type = "postgres"\nurl = "{pg_url}"', sql, dest, fmt='"csv"',
            extra="[exports.tuning]\nmax_retries = 1\nretry_backoff_ms = 10\n"))
        outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    finally:
        http("DELETE", f"{gcs.endpoint}/_test/fault")
    (export,) = outcome.json()["exports"]
    assert "503" in export["error"] and export["retries"] == 1
    assert objects(gcs, "items/") == {}
    assert gcs.reader.open_uploads() == []


def test_permission_error_fails_at_once_naming_the_credential_source(
        rivet_project, gcs, pg_url, gcs_credentials):
    http("POST", f"{gcs.endpoint}/_test/fault?status=403&count=1&bucket={gcs.bucket}")
    rivet_project.write_config(config(f'type = "postgres"\nurl = "{pg_url}"',
                                      "SELECT 1 AS x", gcs.toml()))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    (export,) = outcome.json()["exports"]
    assert "access denied" in export["error"]
    assert f"credentials: service account file {gcs_credentials}" in export["error"]
    assert export["retries"] == 0


def test_default_google_chain_is_named_in_errors(rivet_project, gcs_endpoint, gcs_bucket,
                                                 gcs_credentials, pg_url, monkeypatch):
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", gcs_credentials)
    http("POST", f"{gcs_endpoint}/_test/fault?status=401&count=1&bucket={gcs_bucket}")
    rivet_project.write_config(config(
        f'type = "postgres"\nurl = "{pg_url}"', "SELECT 1 AS x",
        f'type = "gcs"\nbucket = "{gcs_bucket}"\nendpoint = "{gcs_endpoint}"\n'
        "allow_http = true"))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    assert "credentials: the default Google chain" in outcome.json()["exports"][0]["error"]
    rivet_project.run("run").assert_success()  # the same chain works once the fault is gone


def test_s3_secret_never_appears_in_output_or_state(rivet_project, moto_endpoint, pg_url,
                                                    monkeypatch):
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    secret = S3_ENV["RIVET_T_S3_SECRET"]
    missing_bucket = f"missing-{uuid.uuid4().hex[:8]}"
    rivet_project.write_config(config(
        f'type = "postgres"\nurl = "{pg_url}"', "SELECT 1 AS x",
        f'type = "s3"\nbucket = "{missing_bucket}"\nendpoint = "{moto_endpoint}"\n'
        'allow_http = true\nregion = "us-east-1"\naccess_key_env = "RIVET_T_S3_KEY"\n'
        'secret_key_env = "RIVET_T_S3_SECRET"\nmax_retries = 0'))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    assert "NoSuchBucket" in outcome.out or "not found" in outcome.out
    assert secret not in outcome.out + outcome.err
    assert secret.encode() not in (rivet_project.path / ".rivet_state.db").read_bytes()


def test_anonymous_s3_sends_unsigned_requests(rivet_project, moto_endpoint, s3_bucket,
                                              pg_url):
    rivet_project.write_config(config(
        f'type = "postgres"\nurl = "{pg_url}"', "SELECT 1 AS x",
        f'type = "s3"\nbucket = "{s3_bucket}"\nendpoint = "{moto_endpoint}"\n'
        'allow_http = true\nregion = "us-east-1"\nanonymous = true'))
    rivet_project.run("run").assert_success()
    assert BucketReader(moto_endpoint, s3_bucket).list("items/_rivet/items/_SUCCESS")


# ------------------------------------------------------------------------- kills

def _start_run(project, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rivet_core.cli.main", "run", "-c", "rivet.toml"],
        cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=scrubbed_env(env))


def _wait_for_upload(process: subprocess.Popen[bytes], reader: BucketReader) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if reader.open_uploads():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("no multipart upload started")


BIG = "SELECT g AS id, md5(g::text) AS h, md5((g * 7)::text) AS k FROM generate_series(1, 600000) g"


def test_sigterm_mid_upload_leaves_no_object_and_no_open_upload(rivet_project, cloud,
                                                                 pg_url):
    rivet_project.write_config(config(f'type = "postgres"\nurl = "{pg_url}"', BIG,
                                      cloud.toml(), fmt='"csv"'))
    process = _start_run(rivet_project, RUN_ENV)
    _wait_for_upload(process, cloud.reader)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, err.decode()
    assert b"SIGTERM received" in err
    # No data object. Nothing was committed, so the destination is as it was: no manifest
    # either (the run is recorded failed in the state store).
    assert list(cloud.reader.list()) == []
    staged = cloud.reader.open_uploads()
    if cloud.kind == "azure":
        # Azure has no call to drop staged blocks: the killed file's stay uncommitted (no
        # reader lists or reads them) until Azure discards them after a week.
        assert len(staged) == 1 and staged[0].startswith("items/items_"), staged
    else:
        assert staged == []  # the abort discarded the multipart upload
    # A rerun completes and the destination validates.
    rerun = _start_run(rivet_project, RUN_ENV)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    assert len(objects(cloud, "items/")) == 1
    rivet_project.run("validate").assert_success()


def test_sigkill_before_the_first_commit_leaves_the_previous_run_certified(
        rivet_project, gcs, pg_url):
    project_config = config(f'type = "postgres"\nurl = "{pg_url}"', "SELECT 1 AS x",
                            gcs.toml(), fmt='"csv"')
    rivet_project.write_config(project_config)
    rivet_project.run("run").assert_success()
    rivet_project.run("validate").assert_success()
    rivet_project.write_config(project_config.replace("SELECT 1 AS x", BIG))
    process = _start_run(rivet_project, {})
    _wait_for_upload(process, gcs.reader)
    process.kill()
    process.wait(30)
    # The killed run's object never became visible; its open upload is the residual risk
    # a bucket lifecycle rule cleans up (docs/destinations.md).
    assert len(objects(gcs, "items/")) == 1
    assert len(gcs.reader.open_uploads()) == 1
    # It never committed, so the marker is retired only at a first commit that never came:
    # the previous run is still whole and still vouched for.
    assert "items/_rivet/items/_SUCCESS" in gcs.reader.list()
    rivet_project.run("validate").assert_success()


# -------------------------------------------------------------------- Azure specifics

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "destinations.md")


def _azure(endpoint: str, container: str, **changes: str | None) -> str:
    """Azurite destination lines with keys replaced (a value) or dropped (None)."""
    lines = dict(line.split(" = ", 1)
                 for line in azure_destination(endpoint, container).splitlines())
    for key, value in changes.items():
        if value is None:
            lines.pop(key, None)
        else:
            lines[key] = value
    return "\n".join(f"{key} = {value}" for key, value in lines.items())


def test_the_azurite_example_of_the_destinations_page_runs_and_validates(
        rivet_project, azurite_endpoint, azure_container, pg_url, monkeypatch):
    with open(DOCS, encoding="utf-8") as page:
        blocks = re.findall(r"```toml\n(.*?)```", page.read(), re.DOTALL)
    (example,) = [b for b in blocks if "devstoreaccount1" in b and "[source]" in b]
    port = urllib.parse.urlsplit(azurite_endpoint).port
    text = (example.replace("127.0.0.1:10000", f"127.0.0.1:{port}")
            .replace('container = "exports"', f'container = "{azure_container}"')
            .replace("postgresql://postgres@127.0.0.1:5432/test", pg_url))
    assert f'"{azure_container}"' in text and f":{port}/" in text
    monkeypatch.setenv("AZURITE_ACCOUNT_KEY", ACCOUNT_KEY)
    rivet_project.write_config(text)
    summary = rivet_project.run("run", "--json").assert_success().json()
    (export,) = summary["exports"]
    assert export["destination"].startswith(f"{azurite_endpoint}/{azure_container}/rivet/")
    report = rivet_project.run("validate", "--json").assert_success().json()
    assert report["exports"][0]["status"] == "passed"
    (name,) = [f["name"] for f in export["files"]]
    prefix = export["destination"].split(f"/{azure_container}/", 1)[1]
    data = ContainerReader(azurite_endpoint, azure_container).read(f"{prefix}/{name}")
    table = pq.read_table(io.BytesIO(data))
    assert table.to_pylist() == [{"id": 1, "greeting": "hello, blob"}]


def test_azure_sas_token_writes_and_validates(rivet_project, azurite_endpoint,
                                              azure_container, pg_url, monkeypatch):
    # With the leading "?" the portal shows.
    monkeypatch.setenv("RIVET_T_AZURE_SAS", "?" + container_sas(azure_container))
    rivet_project.write_config(config(
        f'type = "postgres"\nurl = "{pg_url}"', "SELECT 1 AS x",
        _azure(azurite_endpoint, azure_container, account_key_env=None,
               sas_token_env='"RIVET_T_AZURE_SAS"')))
    rivet_project.run("run").assert_success()
    rivet_project.run("validate").assert_success()
    reader = ContainerReader(azurite_endpoint, azure_container)
    assert "items/_rivet/items/_SUCCESS" in reader.list()


def test_azure_sas_without_write_permission_fails_at_once_and_its_signature_never_shows(
        rivet_project, azurite_endpoint, azure_container, pg_url, monkeypatch):
    token = container_sas(azure_container, "rl")
    signature = dict(field.split("=", 1) for field in token.split("&"))["sig"]
    monkeypatch.setenv("RIVET_T_AZURE_SAS", token)
    rivet_project.write_config(config(
        f'type = "postgres"\nurl = "{pg_url}"', "SELECT 1 AS x",
        _azure(azurite_endpoint, azure_container, account_key_env=None,
               sas_token_env='"RIVET_T_AZURE_SAS"')))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    (export,) = outcome.json()["exports"]
    assert "access denied" in export["error"] and export["retries"] == 0
    assert "credentials: SAS token from environment variable RIVET_T_AZURE_SAS" in \
        export["error"]
    assert f"container {azure_container!r}" in export["hint"]
    state = (rivet_project.path / ".rivet_state.db").read_bytes()
    for form in (token, signature, urllib.parse.unquote(signature)):
        assert form not in outcome.out + outcome.err
        assert form.encode() not in state
    assert ContainerReader(azurite_endpoint, azure_container).list() == {}


def test_azure_missing_container_is_named_and_the_account_key_never_shows(
        rivet_project, azurite_endpoint, pg_url, monkeypatch):
    for name, value in AZURE_KEY_ENV.items():
        monkeypatch.setenv(name, value)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    rivet_project.write_config(config(
        f'type = "postgres"\nurl = "{pg_url}"', "SELECT 1 AS x",
        _azure(azurite_endpoint, missing, max_retries="0")))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    (export,) = outcome.json()["exports"]
    assert f"container {missing!r} not found" in export["error"]
    assert "create the container" in export["hint"]
    assert "RequestId" not in export["error"]
    assert ACCOUNT_KEY not in outcome.out + outcome.err
    assert ACCOUNT_KEY.encode() not in (rivet_project.path / ".rivet_state.db").read_bytes()


def test_azure_configured_credentials_and_endpoint_win_over_the_environment(
        rivet_project, azure, pg_url, monkeypatch):
    # What obstore would otherwise pick up by itself: a bearer token (its first choice of
    # credential), another account key, an emulator switch and another endpoint.
    monkeypatch.setenv("AZURE_STORAGE_TOKEN", "not-a-token")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", base64.b64encode(b"wrong" * 8).decode())
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:9/elsewhere")
    rivet_project.write_config(config(f'type = "postgres"\nurl = "{pg_url}"',
                                      "SELECT 1 AS x", azure.toml()))
    rivet_project.run("run").assert_success()
    assert "items/_rivet/items/_SUCCESS" in azure.reader.list()


def test_default_azure_chain_reads_the_environment_and_is_named_in_errors(
        rivet_project, azurite_endpoint, azure_container, pg_url, monkeypatch):
    wrong = base64.b64encode(b"not the key" * 6).decode()
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", wrong)
    rivet_project.write_config(config(
        f'type = "postgres"\nurl = "{pg_url}"', "SELECT 1 AS x",
        _azure(azurite_endpoint, azure_container, account_name=None, account_key_env=None,
               max_retries="0")))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    error = outcome.json()["exports"][0]["error"]
    assert "access denied" in error and "credentials: the default Azure chain" in error
    assert wrong not in outcome.out + outcome.err
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY)
    rivet_project.run("run").assert_success()
    rivet_project.run("validate").assert_success()


def test_doctor_probes_an_azure_container_names_the_key_variable_and_leaves_nothing(
        rivet_project, azure, pg_url):
    rivet_project.write_config(config(f'type = "postgres"\nurl = "{pg_url}"',
                                      "SELECT 1 AS x", azure.toml("landing/{export}")))
    outcome = rivet_project.run("doctor", "--json").assert_success()
    found = {(c["subject"], c["check"]): c for c in outcome.json()["checks"]}
    assert all(c["status"] == "OK" for c in found.values()), found
    assert found[("items", "write")]["detail"] == \
        "a probe object was written, read back and deleted"
    assert found[("items", "credentials")]["detail"] == \
        "account key from environment variable RIVET_T_AZURE_KEY"
    assert ACCOUNT_KEY not in outcome.out + outcome.err
    assert azure.reader.list() == {} and azure.reader.open_uploads() == []
