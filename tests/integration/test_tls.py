"""TLS against real TLS servers: ``rivet run`` for every source, ``[source.tls]`` mode and
situation, judged by what each server saw of every data connection.

The suite starts its own PostgreSQL and MariaDB instances (tests/servers/tls.py): one per
certificate (``good``: names 127.0.0.1, signed by the test CA; ``wrong-host``: names only
``wrong.example``, same CA; ``wrong-ca``: names 127.0.0.1, signed by an unrelated CA) and one
without TLS. A situation is a server plus what the client is given:

| situation | server | client |
|---|---|---|
| good | good certificate | `ca_file` = the test CA |
| wrong-host | wrong-host certificate | `ca_file` = the test CA |
| wrong-ca | wrong-ca certificate | `ca_file` = the test CA |
| no-ca-file | good certificate | no `ca_file`; the system store lacks the test CA |
| system-store | good certificate | no `ca_file`; `SSL_CERT_FILE` is the test CA |
| no-tls | TLS off | `ca_file` = the test CA |

(`ca_file` is written only for the verifying modes: with `require` it is a config error.)
Every accepted run must show, on the server, each connection encrypted exactly when the mode
promises it, the fast paths' connections included (PostgreSQL's COPY connections;
ConnectorX's, recognised by their statements); every refused run must fail at once
(permanent, no retry) with a TLS hint, before the server accepted a login.

``RIVET_TLS_FULL_MATRIX=1`` adds the other read paths (PostgreSQL's cursor, MySQL's pymysql)
and parallel table reads to every accepted cell.
"""

from __future__ import annotations

import csv
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers.tls import (
    PASSWORD,
    USER,
    MariadbInstance,
    Pki,
    PostgresInstance,
    Seen,
    make_pki,
    running,
    scratch_directory,
)

from rivet_core.errors import ExitCode

MODES = ("none", "disable", "require", "verify-ca", "verify-full")
SITUATIONS = ("good", "wrong-host", "wrong-ca", "no-ca-file", "system-store", "no-tls")
SERVER_OF = {"good": "good", "wrong-host": "wrong-host", "wrong-ca": "wrong-ca",
             "no-ca-file": "good", "system-store": "good", "no-tls": "plain"}
FULL = os.environ.get("RIVET_TLS_FULL_MATRIX") == "1"
PASSWORD_ENV = "RIVET_TLS_PASSWORD"
ROWS = 3


def expected(mode: str, situation: str) -> str:
    """What the docs' table says a run does: ``tls``, ``plaintext`` or ``refused``."""
    if situation == "no-tls":
        return "plaintext" if mode in ("none", "disable") else "refused"
    if mode == "disable":
        return "plaintext"
    if mode in ("none", "require"):
        return "tls"
    if situation in ("wrong-ca", "no-ca-file"):
        return "refused"
    if situation == "wrong-host" and mode == "verify-full":
        return "refused"
    return "tls"


def cells() -> list[Any]:
    return [pytest.param(source, mode, situation, id=f"{source}-{mode}-{situation}")
            for source in ("postgres", "mysql") for mode in MODES for situation in SITUATIONS]


# ------------------------------------------------------------------------------ servers


@pytest.fixture(scope="module")
def tls_base() -> Iterator[Path]:
    base = scratch_directory()
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(tls_base: Path) -> Pki:
    return make_pki(tls_base / "pki")


@pytest.fixture(scope="module")
def servers(tls_base: Path, pki: Pki) -> Iterator[dict[tuple[str, str], Any]]:
    """PostgreSQL and MariaDB, each with the good, wrong-host and wrong-ca certificates
    and without TLS, all started at once; each holds the table ``tls_rows`` whose rows name
    the server."""
    found: dict[tuple[str, str], Any] = {}
    for name, cert in (("good", "good"), ("wrong-host", "wrong-host"),
                       ("wrong-ca", "wrong-ca"), ("plain", None)):
        found["postgres", name] = PostgresInstance(tls_base, name, pki, cert)
        found["mysql", name] = MariadbInstance(tls_base, name, pki, cert)
    with running(list(found.values())):
        for (kind, name), server in found.items():
            if kind == "postgres":
                server.execute("CREATE TABLE tls_rows (id int PRIMARY KEY, server text)")
            else:
                server.execute("CREATE TABLE tls_rows (id INT PRIMARY KEY, "
                               "server VARCHAR(40))")
            server.execute(f"INSERT INTO tls_rows VALUES (1, '{name}'), (2, '{name}'), "
                           f"(3, '{name}')")
        yield found


@pytest.fixture
def tls_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pki: Pki) -> None:
    """The password in the environment, and a "system" CA store that lacks the test CA
    (the unrelated CA alone, so the machine's own store cannot matter)."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    (tmp_path / "no-certs").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.other_ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-certs"))


# ------------------------------------------------------------------------------ helpers


def source_toml(server: Any, *, mode: str, ca_file: Path | None, app: str,
                read_path: str | None = None, url: str | None = None) -> str:
    lines = ["[source]", f'type = "{server.kind}"']
    if url is not None:
        lines.append(f'url = "{url}"')
    else:
        lines += ['host = "127.0.0.1"', f"port = {server.port}", f'user = "{USER}"',
                  f'password_env = "{PASSWORD_ENV}"', 'database = "test"']
    lines.append(f'application_name = "{app}"')
    if read_path is not None:
        lines.append(f'read_path = "{read_path}"')
    if mode != "none":
        lines += ["[source.tls]", f'mode = "{mode}"']
        if ca_file is not None:
            lines.append(f'ca_file = "{ca_file}"')
    return "\n".join(lines) + "\n"


def export_toml(parallel: int = 1) -> str:
    return (f'[[exports]]\nname = "rows"\ntable = "tls_rows"\nformat = "csv"\n'
            f"parallel = {parallel}\n"
            '[exports.destination]\ntype = "local"\npath = "./output/{run_id}"\n')


class Observed:
    """One run and what the server saw of it."""

    def __init__(self, project: Any, server: Any, app: str, outcome: Any) -> None:
        self.outcome = outcome
        self.summary = outcome.json() if outcome.out.strip() else None
        self.export = self.summary["exports"][0] if self.summary else {}
        self.project = project
        self.server = server
        self.app = app

    def rows(self) -> list[dict[str, str]]:
        files = self.project.files()
        assert len(files) == 1, files
        with open(files[0], newline="") as handle:
            return list(csv.DictReader(handle))


def run(project: Any, server: Any, source: str, *, parallel: int = 1) -> tuple[Any, list[Seen]]:
    """``rivet run --json`` in-process; the outcome and the server's view of the run."""
    project.write_config(source + export_toml(parallel))
    mark = server.mark() if server.kind == "mysql" else 0
    outcome = project.run("run", "--json")
    app = source.split('application_name = "', 1)[1].split('"', 1)[0]
    seen = server.seen(mark) if server.kind == "mysql" else server.seen(app)
    return outcome, seen


def assert_accepted(outcome: Any, seen: list[Seen], server: Any, *, tls: bool,
                    project: Any, name: str) -> None:
    outcome.assert_success()
    export = outcome.json()["exports"][0]
    assert export["rows"] == ROWS
    with open(project.files()[0], newline="") as handle:
        assert {row["server"] for row in csv.DictReader(handle)} == {name}
    # Every connection of the run, as the server saw it: the control connection, and the
    # fast path's (COPY, ConnectorX) when the read took it.
    path = "; ".join(export["read_paths"])
    fast = path.startswith(("binary COPY", "ConnectorX"))
    assert len(seen) >= (2 if fast else 1), seen
    assert all(s.encrypted == tls for s in seen), seen
    if server.kind == "mysql":
        assert all(s.detail != "Socket" for s in seen), seen
        if path.startswith("ConnectorX"):
            assert any(s.fast for s in seen), seen
    else:
        assert path.startswith(("binary COPY", "server-side cursor")), path


def assert_refused(outcome: Any, seen: list[Seen]) -> None:
    outcome.assert_failed(ExitCode.RUN_FAILED)
    export = outcome.json()["exports"][0]
    assert export["status"] == "failed"
    assert export["retries"] == 0, export
    text = f"{export['error']} {export['hint']}".lower()
    assert "tls" in text and export["hint"], export
    assert seen == [], seen


# ------------------------------------------------------------------------------- matrix


@pytest.mark.parametrize(("source", "mode", "situation"), cells())
def test_every_mode_refuses_or_connects_as_the_docs_table_says(
        rivet_project, servers, pki, tls_env, monkeypatch, source, mode, situation):
    name = SERVER_OF[situation]
    server = servers[source, name]
    if situation == "system-store":
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    verifying = mode in ("verify-ca", "verify-full")
    ca_file = pki.ca if verifying and situation not in ("no-ca-file", "system-store") else None
    want = expected(mode, situation)
    variants = [None]
    if FULL and want != "refused":
        variants += ["cursor" if source == "postgres" else "pymysql", "parallel"]
    for variant in variants:
        app = f"t{uuid.uuid4().hex[:10]}"
        read_path = variant if variant in ("cursor", "pymysql") else None
        toml = source_toml(server, mode=mode, ca_file=ca_file, app=app, read_path=read_path)
        outcome, seen = run(rivet_project, server, toml,
                            parallel=2 if variant == "parallel" else 1)
        if want == "refused":
            assert_refused(outcome, seen)
        else:
            assert_accepted(outcome, seen, server, tls=want == "tls", project=rivet_project,
                            name=name)
        shutil.rmtree(rivet_project.path / "output", ignore_errors=True)


# ----------------------------------------------------------- the items, one by one


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_mysql_verify_without_ca_file_refuses_a_certificate_no_trusted_ca_signed(
        rivet_project, servers, tls_env, mode):
    # Item 1: pymysql was handed a dict it did not understand and checked nothing.
    server = servers["mysql", "wrong-host"]
    toml = source_toml(server, mode=mode, ca_file=None, app="item1")
    outcome, seen = run(rivet_project, server, toml)
    assert_refused(outcome, seen)
    export = outcome.json()["exports"][0]
    assert "certificate chain check failed" in export["error"], export
    assert "system CA store" in export["hint"], export


def test_mysql_session_the_server_reports_as_plaintext_is_refused_whatever_the_driver_did(
        servers, tls_env):
    # Item 2: pymysql 1.1 went on in plaintext when the server hid TLS; Rivet now asks the
    # server, on a real plaintext session here, and refuses it under a mode that needs TLS.
    from rivet_mysql import driver

    from rivet_core.api import ConnectionParams, SourceError

    server = servers["mysql", "plain"]
    plain = ConnectionParams(host="127.0.0.1", port=server.port, user=USER,
                             password=PASSWORD, database="test", query={}, tls_mode="disable")
    from rivet_mysql.config import MysqlConfig

    conn = driver.connect(plain, MysqlConfig(host="127.0.0.1", user=USER, database="test"))
    assert driver.check_encrypted(conn, plain, "probe") is False
    required = ConnectionParams(host="127.0.0.1", port=server.port, user=USER,
                                password=PASSWORD, database="test", query={},
                                tls_mode="require")
    with pytest.raises(SourceError, match="TLS required, but the connection is not encrypted"):
        driver.check_encrypted(conn, required, "probe")
    assert not conn.open


def test_postgres_session_libpq_reports_as_plaintext_is_refused(servers, tls_env):
    # Item 2's counterpart: the same check on PostgreSQL's connections.
    import psycopg
    from rivet_postgres.connection import check_encrypted

    from rivet_core.api import ConnectionParams, SourceError

    server = servers["postgres", "plain"]
    conn = psycopg.connect(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD,
                           dbname="test", sslmode="disable")
    required = ConnectionParams(host="127.0.0.1", port=server.port, user=USER,
                                password=PASSWORD, database="test", query={},
                                tls_mode="require")
    with pytest.raises(SourceError, match="TLS required, but the connection is not encrypted"):
        check_encrypted(conn, required, "probe")
    assert conn.closed


@pytest.mark.parametrize(("sslmode", "server_name"), [
    ("disable", "good"),     # exported in plaintext before
    ("prefer", "wrong-ca"),  # fell back to plaintext past a certificate libpq refused
])
def test_postgres_url_sslmode_that_contradicts_source_tls_is_a_config_error(
        rivet_project, servers, pki, monkeypatch, tls_env, sslmode, server_name):
    # Item 3: a URL from the environment must not downgrade [source.tls].
    server = servers["postgres", server_name]
    app = f"item3{sslmode}"
    monkeypatch.setenv("RIVET_TLS_URL", f"postgresql://{USER}:{PASSWORD}@127.0.0.1:"
                                        f"{server.port}/test?sslmode={sslmode}")
    rivet_project.write_config(
        f'[source]\ntype = "postgres"\nurl_env = "RIVET_TLS_URL"\napplication_name = "{app}"\n'
        f'[source.tls]\nmode = "verify-full"\nca_file = "{pki.ca}"\n' + export_toml())
    for command in ("run", "check"):
        outcome = rivet_project.run(command).assert_failed(ExitCode.CONFIG)
        assert "source.url_env" in outcome.err and f"sslmode={sslmode}" in outcome.err
        assert 'tls.mode = "verify-full"' in outcome.err
    assert server.seen(app) == []


def test_postgres_url_sslmode_without_source_tls_means_what_source_tls_would(
        rivet_project, servers, pki, tls_env):
    # Item 3: alone, the URL's sslmode is the source's TLS mode, with Rivet's meaning, and
    # `check` says where the mode came from.
    server = servers["postgres", "wrong-host"]
    url = server.url(f"sslmode=verify-full&sslrootcert={pki.ca}")
    toml = source_toml(server, mode="none", ca_file=None, app="item3url", url=url)
    rivet_project.write_config(toml + export_toml())
    check = rivet_project.run("check").assert_success()
    assert "TLS: verify-full (from sslmode in the URL)" in check.out
    outcome, seen = run(rivet_project, server, toml)
    assert_refused(outcome, seen)
    assert "host name check failed" in outcome.json()["exports"][0]["error"]


def test_check_shows_the_effective_tls_mode_without_connecting(rivet_project, servers, pki,
                                                             tls_env):
    server = servers["postgres", "good"]
    for tls, shown in ((None, "TLS: prefer (no [source.tls])"),
                       ("disable", "TLS: disable: plaintext"),
                       ("verify-full", f"checked against the CA file {pki.ca}")):
        toml = source_toml(server, mode=tls or "none",
                           ca_file=pki.ca if tls == "verify-full" else None, app="check")
        rivet_project.write_config(toml + export_toml())
        result = rivet_project.run("check", "--json").assert_success().json()
        assert result["source"]["tls"]["mode"] == (tls or "prefer")
        assert shown in rivet_project.run("check").out
    assert server.seen("check") == []


def test_mysql_fast_path_reads_the_configured_port_not_the_socket_the_server_reports(
        rivet_project, tls_base, pki, tls_env):
    # Item 4: ConnectorX reconnected to 127.0.0.1 through @@socket, which here belongs to
    # another server (as with a tunnel to a remote database and a local MySQL).
    configured = MariadbInstance(tls_base, "tunnelled", pki, None)
    impostor = MariadbInstance(tls_base, "local", pki, None, socket_path=configured.socket)
    with running([configured]):
        configured.execute("CREATE TABLE tls_rows (id INT PRIMARY KEY, server VARCHAR(40))")
        configured.execute("INSERT INTO tls_rows VALUES (1, 'tunnelled'), (2, 'tunnelled'), "
                           "(3, 'tunnelled')")
        # The configured server keeps listening on its socket's inode; the path is taken
        # over by the impostor, which @@socket on the configured server still names.
        configured.socket.unlink()
        with running([impostor]):
            impostor.execute("CREATE TABLE tls_rows (id INT PRIMARY KEY, server VARCHAR(40))")
            impostor.execute("INSERT INTO tls_rows VALUES (1, 'local'), (2, 'local'), "
                             "(3, 'local')")
            mark = impostor.mark()
            rivet_project.write_config(
                source_toml(configured, mode="disable", ca_file=None, app="item4",
                            read_path="connectorx")  # three rows: auto reads them on pymysql
                + export_toml())
            outcome = rivet_project.run("run", "--json").assert_success()
            assert impostor.seen(mark) == []
    export = outcome.json()["exports"][0]
    assert export["read_paths"][0].startswith("ConnectorX"), export
    with open(rivet_project.files()[0], newline="") as handle:
        assert {row["server"] for row in csv.DictReader(handle)} == {"tunnelled"}


def test_mysql_certificate_failure_is_permanent_and_names_the_check_and_the_ca_file(
        rivet_project, servers, pki, tls_env):
    # Item 5: it was error 2003, retried as transient, hinted "check the host and port".
    server = servers["mysql", "wrong-ca"]
    toml = source_toml(server, mode="verify-ca", ca_file=pki.ca, app="item5")
    rivet_project.write_config(toml + "[source.tuning]\nmax_retries = 3\n" + export_toml())
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    export = outcome.json()["exports"][0]
    assert export["retries"] == 0
    assert "TLS certificate chain check failed" in export["error"]
    assert "2003" not in export["error"] and "host and port" not in export["hint"]
    assert f"the CA file {pki.ca}" in export["hint"]


@pytest.mark.parametrize("source", ["postgres", "mysql"])
def test_ca_file_with_require_is_a_config_error_on_both_sources(
        rivet_project, servers, pki, tls_env, source):
    # Item 5: PostgreSQL checked the chain under `require` with a CA file, MySQL ignored it.
    toml = source_toml(servers[source, "good"], mode="require", ca_file=pki.ca, app="ca")
    rivet_project.write_config(toml + export_toml())
    outcome = rivet_project.run("run").assert_failed(ExitCode.CONFIG)
    assert "source.tls.ca_file" in outcome.err and '"verify-ca"' in outcome.err
