"""The objstore plugin's pure parts: cheap import, prefix joining, error classification."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from obstore.exceptions import GenericError, PermissionDeniedError
from rivet_objstore.config import S3Options, split_prefix
from rivet_objstore.destination import map_error
from rivet_objstore.store import StoreHandle, build_s3

from rivet_core.backends import DestinationContext
from rivet_core.errors import DestinationError, TransientDestinationError

HANDLE = StoreHandle(store=None, scheme="s3", bucket="b", prefix="p",
                     credential_source="access key from environment variables K / S")


def test_importing_the_plugin_does_not_import_obstore():
    code = "import sys, rivet_objstore; rivet_objstore.rivet_destinations(); " \
           "assert 'obstore' not in sys.modules, 'obstore imported at plugin load'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("prefix", "parts"), [
    ("", []), ("/", []), ("a", ["a"]), ("/a//b/", ["a", "b"]), ("a/b/c", ["a", "b", "c"]),
])
def test_prefix_segments_ignore_extra_slashes(prefix, parts):
    assert split_prefix(prefix) == parts


def test_rendered_prefix_is_joined_with_one_slash(monkeypatch):
    monkeypatch.setenv("K", "key")
    monkeypatch.setenv("S", "secret-value")
    context = DestinationContext(export="orders", run_id="r", config_dir=Path("."),
                                 started_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    options = S3Options(bucket="b", prefix="/raw//{export}/{date}/", access_key_env="K",
                        secret_key_env="S")
    assert build_s3(options, context).prefix == "raw/orders/2026-01-02"


def test_server_errors_after_client_retries_are_transient():
    exc = GenericError("Generic S3 error: Error performing PUT http://h/b/k in 2s, after 5 "
                       "retries - Server returned non-2xx status code: 503 Service "
                       "Unavailable: <Error/>\n\nDebug source:\n...")
    assert isinstance(map_error(exc, "uploading", HANDLE), TransientDestinationError)


def test_debug_dump_field_names_do_not_make_an_error_transient():
    exc = GenericError("Generic S3 error: Error performing PUT http://h/b/k - Server returned "
                       "non-2xx status code: 400 Bad Request: <Error/>\n\nDebug source:\n"
                       "RetryError { retry_timeout: 180s }")
    error = map_error(exc, "uploading", HANDLE)
    assert type(error) is DestinationError
    assert "Debug source" not in error.message


@pytest.mark.parametrize("exc", [
    PermissionDeniedError("The operation lacked the necessary privileges: status code: 403"),
    GenericError("Server returned non-2xx status code: 403 Forbidden: <Code>AccessDenied"),
    GenericError("Error getting credentials from the metadata endpoint 169.254.169.254"),
])
def test_auth_failures_are_permanent_and_name_the_credential_source(exc):
    error = map_error(exc, "uploading", HANDLE)
    assert type(error) is DestinationError
    assert "access denied" in error.message
    assert "credentials: access key from environment variables K / S" in error.message


@pytest.mark.parametrize(("keys", "key"), [
    ({"session_token_env": "T"}, "session_token_env"),
    ({"anonymous": True, "access_key_env": "K", "secret_key_env": "S"}, "anonymous"),
    ({"part_size": "6GB"}, "part_size"),
    ({"max_retries": -1}, "max_retries"),
    ({"request_timeout_s": 0}, "request_timeout_s"),
])
def test_s3_cross_field_rules(keys, key, monkeypatch):
    monkeypatch.setenv("K", "k")
    monkeypatch.setenv("S", "s")
    monkeypatch.setenv("T", "t")
    issues = S3Options(bucket="b", **keys).config_issues(Path("."))
    assert key in [k for k, _ in issues], issues


RUSTLS_DUMP = ("Generic S3 error: Error performing PUT https://127.0.0.1:9/b/k in 2ms - HTTP "
               "error: error sending request\n\nDebug source:\nGeneric {{ source: RetryError("
               "RetryErrorImpl {{ inner: Http(HttpError {{ kind: Connect, source: reqwest::"
               "Error {{ error: Custom {{ kind: InvalidData, error: InvalidCertificate(\n"
               "    {kind},\n) }} }} }}) }}) }}")


@pytest.mark.parametrize(("kind", "words"), [
    ("UnknownIssuer", "not signed by a trusted CA"),
    ("NotValidForNameContext {\n expected: IpAddress(V4(..)) }",
     "does not name the endpoint's host"),
    ("ExpiredContext { time: .. }", "has expired"),
])
def test_certificate_failures_are_permanent_tls_errors_naming_the_cas_trusted(kind, words):
    # obstore words them "error sending request", which reads as a transient network error.
    handle = StoreHandle(store=None, scheme="s3", bucket="b", prefix="p", credential_source="x",
                         trust="the system CAs and the CA file /etc/rivet/minio-ca.pem")
    error = map_error(GenericError(RUSTLS_DUMP.format(kind=kind)), "uploading", handle)
    assert type(error) is DestinationError
    assert error.message.startswith("uploading: TLS certificate check failed: ")
    assert words in error.message
    assert "(trusted: the system CAs and the CA file /etc/rivet/minio-ca.pem)" in error.message
    assert "ca_file" in (error.hint or "")


def test_ca_file_must_exist_and_suits_https_endpoints_only(tmp_path):
    missing = S3Options(bucket="b", endpoint="https://minio:9000", ca_file="ca.pem")
    assert ("ca_file", "file 'ca.pem' does not exist") in missing.config_issues(tmp_path)
    (tmp_path / "ca.pem").write_text("")
    plain = S3Options(bucket="b", endpoint="http://minio:9000", allow_http=True,
                      ca_file="ca.pem")
    assert [k for k, _ in plain.config_issues(tmp_path)] == ["ca_file"]
    assert S3Options(bucket="b", endpoint="https://minio:9000",
                     ca_file="ca.pem").config_issues(tmp_path) == []
