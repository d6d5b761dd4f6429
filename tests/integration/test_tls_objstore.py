"""S3, GCS and Azure destinations at an https endpoint whose certificate a private CA signed.

moto, the suite's GCS server and Azurite speak plain HTTP, so each gets an https front of its own
(tests/servers/tls.py: a TLS-terminating relay in its own process) presenting a certificate
from the suite's test CA. What arrived is read back over plain HTTP from the server behind
the front, never through obstore. The "system" CA store of every test is a bundle holding
only a bystander CA that signed nothing here (``SSL_CERT_FILE``), so the machine's own CAs
cannot matter (obstore adds ``ca_file`` to the system store rather than replacing it).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from servers import BucketReader, gcs_service_account, new_bucket
from servers.azurite import AZURE_KEY_ENV, ContainerReader, azure_destination, new_container
from servers.tls import Pki, https_front, make_pki, scratch_directory

from rivet_core.errors import ExitCode

PG_URL = os.environ.get("RIVET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    path = scratch_directory()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(base: Path) -> Pki:
    return make_pki(base / "pki")


@pytest.fixture(autouse=True)
def system_store_without_the_test_cas(monkeypatch: pytest.MonkeyPatch, base: Path,
                                      tmp_path: Path) -> None:
    bystander = base / "bystander"
    if not bystander.exists():
        make_pki(bystander)
    (tmp_path / "no-certs").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(bystander / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-certs"))
    monkeypatch.setenv("RIVET_T_S3_KEY", "testing")
    monkeypatch.setenv("RIVET_T_S3_SECRET", "testing-secret")
    for name, value in AZURE_KEY_ENV.items():
        monkeypatch.setenv(name, value)


def front(pki: Pki, cert: str, upstream: str):  # type: ignore[no-untyped-def]
    return https_front(*pki.pair(cert), upstream)


def destination(kind: str, bucket: str, endpoint: str, *, ca_file: Path | None,
                credentials: Path | None = None) -> str:
    lines = [f'type = "{kind}"', f'bucket = "{bucket}"', f'endpoint = "{endpoint}"',
             'prefix = "tls"', "max_retries = 1"]
    if kind == "azure":
        lines = [line for line in azure_destination(endpoint, bucket).splitlines()
                 if not line.startswith(("allow_http", "part_size"))]
        lines += ['prefix = "tls"', "max_retries = 1"]
    elif kind == "s3":
        lines += ['region = "us-east-1"', 'access_key_env = "RIVET_T_S3_KEY"',
                  'secret_key_env = "RIVET_T_S3_SECRET"']
    elif kind == "gcs":
        lines.append(f'credentials_file = "{credentials}"')
    if ca_file is not None:
        lines.append(f'ca_file = "{ca_file}"')
    return "\n".join(lines)


def config(destination_toml: str) -> str:
    return (f'[source]\ntype = "postgres"\nurl = "{PG_URL}"\n\n'
            '[[exports]]\nname = "tls"\nformat = "csv"\n'
            "query = \"SELECT 42 AS answer, 'over https' AS how\"\n"
            f"[exports.destination]\n{destination_toml}\n")


@pytest.fixture(params=["s3", "gcs", "azure"])
def store(request) -> tuple[str, str, str]:
    """(kind, plain-HTTP endpoint behind the front, a fresh bucket or container)."""
    if request.param == "azure":
        endpoint = request.getfixturevalue("azurite_endpoint")
        return "azure", endpoint, new_container(endpoint)
    endpoint = request.getfixturevalue(f"{'moto' if request.param == 's3' else 'gcs'}"
                                       "_endpoint")
    return request.param, endpoint, new_bucket(endpoint)


def test_https_endpoint_signed_by_the_ca_file_receives_the_export(
        rivet_project, pki, store, tmp_path):
    kind, plain, bucket = store
    # Azurite's endpoint names the account in its path; the front relays to the server.
    parts = urlsplit(plain)
    with front(pki, "good", f"http://{parts.netloc}") as https:
        credentials = gcs_service_account(https, tmp_path) if kind == "gcs" else None
        rivet_project.write_config(config(destination(kind, bucket, https + parts.path,
                                                      ca_file=pki.ca, credentials=credentials)))
        rivet_project.run("run").assert_success()
    reader = (ContainerReader if kind == "azure" else BucketReader)(plain, bucket)
    (data,) = [k for k in reader.list("tls/") if k.endswith(".csv")]
    rows = list(csv.DictReader(io.StringIO(reader.read(data).decode())))
    assert rows == [{"answer": "42", "how": "over https"}]


@pytest.mark.parametrize(("cert", "ca_file", "words"), [
    ("good", None, "not signed by a trusted CA"),
    ("wrong-ca", "ca", "not signed by a trusted CA"),
    ("wrong-host", "ca", "does not name the endpoint's host"),
])
def test_a_certificate_that_fails_a_check_is_a_tls_error_not_retried(
        rivet_project, pki, moto_endpoint, cert, ca_file, words):
    bucket = new_bucket(moto_endpoint)
    with front(pki, cert, moto_endpoint) as https:
        rivet_project.write_config(config(destination(
            "s3", bucket, https, ca_file=pki.ca if ca_file else None)))
        outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    export = outcome.json()["exports"][0]
    assert export["retries"] == 0
    assert "TLS certificate check failed" in export["error"], export
    assert words in export["error"], export
    assert "(trusted: the system CAs" in export["error"], export
    assert BucketReader(moto_endpoint, bucket).list("tls/") == {}


def test_a_ca_file_that_is_not_pem_is_a_config_problem_named_as_such(
        rivet_project, pki, moto_endpoint, tmp_path):
    bogus = tmp_path / "not-a-ca.pem"
    bogus.write_text("not a certificate\n")
    bucket = new_bucket(moto_endpoint)
    with front(pki, "good", moto_endpoint) as https:
        rivet_project.write_config(config(destination("s3", bucket, https, ca_file=bogus)))
        outcome = rivet_project.run("run", "--json").assert_failed()
    export = outcome.json()["exports"][0]
    assert "ca_file" in f"{export['error']} {export['hint']}"
