"""TLS settings without a server: what each mode means in the resolved settings, the
drivers' parameters built from them, the URL keywords that may not override them, and how
TLS failures are classified and worded. The connections themselves are proven against real
TLS servers in tests/integration/test_tls.py."""

from __future__ import annotations

import logging
import ssl
import tomllib
import uuid
from pathlib import Path

import pytest
from rivet_mysql import cxread, driver
from rivet_mysql.config import MysqlConfig
from rivet_mysql.errors import NOT_ENCRYPTED, connectorx_tls_error
from rivet_postgres.config import PostgresConfig, url_tls
from rivet_postgres.connection import keywords, tls_keywords
from rivet_postgres.errors import tls_error

from rivet_core.config.connection import ConnectionParams, TLSConfig
from rivet_core.errors import SourceError, TransientSourceError

ROOT = Path(__file__).resolve().parents[2]


def params(mode: str | None = None, ca: str | None = None, host: str = "db.example",
           origin: str = "[source.tls]") -> ConnectionParams:
    return ConnectionParams(host=host, port=5432, user="u", password=None, database="d",
                            query={}, tls_mode=mode, ca_file=ca, tls_origin=origin)


# ------------------------------------------------------------------ resolved settings


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("/var/run/postgresql", True), ("db.example", False),
    ("10.0.0.5", False), ("localhost.example", False),
])
def test_loopback_hosts_and_unix_sockets_count_as_this_machine(host, local):
    assert params(host=host).local() is local


def test_no_tls_settings_to_another_machine_is_warned_about_once(caplog):
    host = f"db-{uuid.uuid4().hex[:8]}.example"  # a message no earlier test logged
    with caplog.at_level(logging.WARNING, logger="rivet.source"):
        for _ in range(3):
            params(host=host).warn_if_unverified("postgres")
            params(host="127.0.0.1").warn_if_unverified("postgres")
            params("disable", host=host).warn_if_unverified("postgres")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert f"no [source.tls] for {host}" in warnings[0]
    assert "not checked" in warnings[0]


@pytest.mark.parametrize(("mode", "ca", "summary"), [
    (None, None, "prefer (no [source.tls]): encrypted only if the server offers TLS"),
    ("disable", None, "disable: plaintext"),
    ("require", None, "require: encrypted, never plaintext; the certificate is not checked"),
    ("verify-ca", "/ca.pem", "verify-ca: encrypted, never plaintext; certificate chain "
                             "checked against the CA file /ca.pem"),
    ("verify-full", "/ca.pem", "certificate chain and host name 'db.example' checked against "
                               "the CA file /ca.pem"),
])
def test_the_summary_says_what_each_mode_encrypts_and_checks(mode, ca, summary):
    assert summary in params(mode, ca).tls_summary()


@pytest.mark.parametrize("mode", ["disable", "require"])
def test_ca_file_with_a_mode_that_checks_no_certificate_is_a_config_error(mode, tmp_path):
    for config_cls in (PostgresConfig, MysqlConfig):
        config = config_cls(host="h", user="u", database="d",
                            tls=TLSConfig(mode=mode, ca_file="ca.pem"))
        issues = dict(config.config_issues(tmp_path))
        assert "verify-ca" in issues["tls.ca_file"], issues


def test_tls_failures_are_permanent_and_name_the_check_and_the_trusted_cas():
    error = params("verify-full", "/etc/rivet/ca.pem").tls_failure(
        "host", "certificate names wrong.example", "cannot connect")
    assert type(error) is SourceError
    assert error.message == ("cannot connect: TLS certificate host name check failed "
                             "(certificate names wrong.example)")
    assert "'db.example'" in (error.hint or "") and "/etc/rivet/ca.pem" in (error.hint or "")
    url = params("verify-ca", origin="sslmode in the URL").tls_failure("chain", "", "x")
    assert "sslmode=verify-ca in the URL" in (url.hint or "")
    assert "system CA store" in (url.hint or "")


# ------------------------------------------------------------------ PostgreSQL


@pytest.mark.parametrize(("query", "tls", "mode", "ca"), [
    ({}, None, None, None),
    ({"sslmode": "prefer"}, None, None, None),
    ({"sslmode": "allow"}, None, None, None),
    ({"sslmode": "require"}, None, "require", None),
    ({"sslmode": "verify-full", "sslrootcert": "/ca.pem"}, None, "verify-full", "/ca.pem"),
    ({"sslmode": "verify-ca", "sslrootcert": "system"}, None, "verify-ca", None),
    ({"sslmode": "verify-full"}, TLSConfig(mode="verify-full"), None, None),
    ({}, TLSConfig(mode="require"), None, None),
])
def test_url_sslmode_is_the_mode_only_when_source_tls_is_absent(query, tls, mode, ca):
    got = url_tls(query, tls)
    assert (got.mode, got.ca_file) == (mode, ca)


@pytest.mark.parametrize(("query", "tls", "words"), [
    ({"sslmode": "disable"}, TLSConfig(mode="verify-full"),
     'sslmode=disable in the URL conflicts with tls.mode = "verify-full"'),
    ({"sslmode": "prefer"}, TLSConfig(mode="verify-full"), "sslmode=prefer in the URL"),
    ({"sslrootcert": "/x.pem"}, TLSConfig(mode="verify-ca"), "tls.ca_file"),
    ({"requiressl": "1"}, None, "requiressl"),
    ({"sslmode": "require", "sslrootcert": "/x.pem"}, None, "verify-ca or verify-full"),
    ({"sslmode": "verify-ful"}, None, "not a libpq sslmode"),
    ({"gssencmode": "prefer"}, TLSConfig(mode="require"), "gssencmode=prefer"),
    ({"sslmode": "verify-ca", "gssencmode": "require"}, None, "gssencmode=require"),
])
def test_url_tls_keywords_that_contradict_or_weaken_the_mode_are_refused(query, tls, words):
    with pytest.raises(ValueError, match=words):
        url_tls(query, tls)


def test_a_url_conflict_is_a_config_issue_on_url_and_on_url_env(tmp_path, monkeypatch):
    tls = TLSConfig(mode="verify-full")
    inline = PostgresConfig(url="postgresql://u@h/d?sslmode=disable", tls=tls)
    assert [k for k, _ in inline.config_issues(tmp_path)] == ["url"]
    monkeypatch.setenv("RIVET_T_URL", "postgresql://u@h/d?sslmode=disable")
    from_env = PostgresConfig(url_env="RIVET_T_URL", tls=tls)
    assert from_env.config_issues(tmp_path) == []
    (issue,) = from_env.reference_issues(tmp_path)
    assert issue[0] == "url_env" and "tls.mode" in issue[1]


def test_resolved_postgres_settings_take_tls_from_the_url_and_hand_libpq_none_of_it(tmp_path):
    config = PostgresConfig(url="postgresql://u@h/d?sslmode=require&options=-c%20x%3Dy")
    resolved = config.resolve(tmp_path, default_port=5432)
    assert (resolved.tls_mode, resolved.tls_origin) == ("require", "sslmode in the URL")
    assert resolved.query == {"options": "-c x=y"}


@pytest.mark.parametrize(("mode", "ca", "expected"), [
    (None, None, {"sslmode": "prefer"}),
    ("disable", None, {"sslmode": "disable"}),
    ("require", None, {"sslmode": "require", "gssencmode": "disable"}),
    ("verify-ca", "/ca.pem",
     {"sslmode": "verify-ca", "gssencmode": "disable", "sslrootcert": "/ca.pem"}),
    ("verify-full", "/ca.pem",
     {"sslmode": "verify-full", "gssencmode": "disable", "sslrootcert": "/ca.pem"}),
])
def test_libpq_tls_keywords_follow_the_mode(mode, ca, expected):
    assert tls_keywords(params(mode, ca)) == expected


def test_without_a_ca_file_libpq_verifies_against_the_system_bundle(monkeypatch, tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert tls_keywords(params("verify-ca"))["sslrootcert"] == str(bundle)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: ssl.DefaultVerifyPaths(
        None, None, "SSL_CERT_FILE", "", "SSL_CERT_DIR", ""))
    assert tls_keywords(params("verify-full"))["sslrootcert"] == "system"
    with pytest.raises(SourceError, match="no system CA bundle"):
        tls_keywords(params("verify-ca"))


def test_url_keywords_cannot_override_the_tls_keywords():
    config = PostgresConfig(host="h", user="u", database="d")
    resolved = ConnectionParams(host="h", port=5432, user="u", password=None, database="d",
                                query={"gssencmode": "prefer", "options": "-c a=b"},
                                tls_mode="require")
    values = keywords(resolved, config)
    assert values["sslmode"] == "require" and values["gssencmode"] == "disable"
    assert values["options"] == "-c a=b"


@pytest.mark.parametrize(("message", "words"), [
    ('connection failed: connection to server at "127.0.0.1", port 5 failed: server '
     'certificate for "wrong.example" (and 1 other name) does not match host name '
     '"127.0.0.1"', "host name check failed"),
    ('connection to server at "h", port 5 failed: SSL error: certificate verify failed',
     "chain check failed"),
    ('connection to server at "h", port 5 failed: server does not support SSL, but SSL was '
     "required", "TLS required, but the server does not offer it"),
    ('connection to server at "h", port 5 failed: root certificate file "/x" does not exist',
     "TLS CA file cannot be used"),
])
def test_libpq_tls_failures_are_permanent_tls_errors(message, words):
    error = tls_error(Exception(message), "cannot connect", params("verify-full", "/ca.pem"))
    assert error is not None and type(error) is SourceError
    assert words in error.message and error.hint


def test_a_broken_tls_link_is_not_a_tls_check_failure():
    text = "consuming input failed: SSL SYSCALL error: EOF detected"
    assert tls_error(Exception(text), "x", params("require")) is None


# ------------------------------------------------------------------ MySQL


def test_pymysql_floor_is_a_version_that_refuses_plaintext_when_tls_is_asked():
    # pymysql 1.2.0 (#1234): an SSLContext makes TLS required; 1.1.x started TLS only when
    # the server advertised it, so a server (or an attacker) hiding the flag got plaintext.
    from importlib.metadata import version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [d for d in project["dependencies"] if d.lower().startswith("pymysql")]
    floor = tuple(int(p) for p in spec.split(">=")[1].split(",")[0].split("."))
    assert floor >= (1, 2, 0), spec
    assert tuple(int(p) for p in version("pymysql").split(".")[:3]) >= floor


@pytest.mark.parametrize(("mode", "ca", "verify", "hostname"), [
    ("require", None, ssl.CERT_NONE, False),
    ("verify-ca", "ca", ssl.CERT_REQUIRED, False),
    ("verify-ca", None, ssl.CERT_REQUIRED, False),
    ("verify-full", "ca", ssl.CERT_REQUIRED, True),
    ("verify-full", None, ssl.CERT_REQUIRED, True),
])
def test_pymysql_gets_an_ssl_context_that_checks_what_the_mode_says(
        mode, ca, verify, hostname, tmp_path):
    from servers.tls import make_pki

    pki = make_pki(tmp_path / "pki")
    arguments = driver.tls_arguments(params(mode, str(pki.ca) if ca else None))
    context = arguments["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (verify, hostname)
    if ca:
        (trusted,) = context.get_ca_certs()
        assert dict(x[0] for x in trusted["subject"])["commonName"] == "Rivet test CA"


def test_pymysql_disable_and_default_arguments():
    assert driver.tls_arguments(params("disable")) == {"ssl_disabled": True}
    assert driver.tls_arguments(params(None)) == {}


def test_connectorx_is_told_the_mode_and_never_the_socket(monkeypatch, tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert cxread.tls_query(params(None), encrypted=False) == {}
    assert cxread.tls_query(params(None), encrypted=True) == {"ssl-mode": "REQUIRED"}
    assert cxread.tls_query(params("disable"), encrypted=False) == {}
    assert cxread.tls_query(params("require"), encrypted=True) == {"ssl-mode": "REQUIRED"}
    assert cxread.tls_query(params("verify-ca"), encrypted=True) == {
        "ssl-mode": "VERIFY_CA", "ssl-ca": str(bundle)}
    url = cxread.connection_url(params("verify-full"), 10,
                                cxread.tls_query(params("verify-full"), encrypted=True))
    assert url.endswith(f"?tcp_connect_timeout_ms=10000&prefer_socket=false&"
                        f"ssl-mode=VERIFY_IDENTITY&ssl-ca={str(bundle).replace('/', '%2F')}")


def test_connectorx_checks_every_connection_is_encrypted_before_reading():
    statements = cxread.session_statements([("time_zone", "+00:00")],
                                           cxread.tls_check_statement(mariadb=True))
    assert statements[0].startswith("SET SESSION time_zone = IF((SELECT VARIABLE_VALUE FROM "
                                    "information_schema.SESSION_STATUS")
    assert NOT_ENCRYPTED in statements[0]
    assert "performance_schema.session_status" in cxread.tls_check_statement(mariadb=False)


def test_a_ca_file_sends_every_read_to_pymysql_which_trusts_that_file_alone():
    from rivet_mysql import cxplan

    config = MysqlConfig(host="h", user="u", database="d")
    reason = cxplan.unavailable(config, params("verify-full", "/ca.pem"))
    assert reason is not None and "tls.ca_file" in reason
    assert cxplan.unavailable(config, params("require")) is None


@pytest.mark.parametrize(("text", "words"), [
    (f"MySqlError {{ ERROR 1298 (HY000): Unknown or incorrect time zone: '{NOT_ENCRYPTED}' }}",
     "TLS required, but the connection is not encrypted"),
    ("timed out waiting for connection: TlsError { error:0A000086:SSL routines:"
     "tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:"
     "2123: (unable to get local issuer certificate) }", "chain check failed"),
    ("timed out waiting for connection: DriverError { TlsNotSupported }",
     "TLS required, but the server does not offer it"),
])
def test_connectorx_tls_failures_are_permanent_tls_errors(text, words):
    error = connectorx_tls_error(RuntimeError(text), "read", params("verify-full"))
    assert error is not None and not isinstance(error, TransientSourceError)
    assert words in error.message


def test_other_connectorx_failures_are_not_tls_errors():
    text = "MySqlError { ERROR 1146 (42S02): Table 'd.nope' doesn't exist }"
    assert connectorx_tls_error(RuntimeError(text), "read", params("require")) is None
