"""Test infrastructure for TLS: a private PKI, PostgreSQL and MariaDB instances of the suite's
own (each in a temporary directory, on a free loopback port, as separate processes), and an
https front for the plain-HTTP object-store servers.

Not product code. What each server saw is read from the server itself, never from Rivet:

- PostgreSQL runs with ``log_connections``: each accepted connection is logged with its
  ``application_name`` and, when encrypted, ``SSL enabled (protocol=..., cipher=...)``. The
  log keeps connections that already ended (COPY connections last a read), which
  ``pg_stat_ssl`` cannot.
- MariaDB runs with its general log in ``mysql.general_log``: each connection's ``Connect``
  row says ``using SSL/TLS``, ``using TCP/IP`` or ``using Socket``, and every statement it
  ran is there too, so ConnectorX's connections are told apart by their
  ``/* rivet-cx <token> */`` statements.

Certificates (``make_pki``): a CA that signs ``good`` (names 127.0.0.1 and localhost) and
``wrong-host`` (names only ``wrong.example``), and an unrelated CA that signs ``wrong-ca``
(names 127.0.0.1). EC P-256 keys keep generation instant. Nothing here reaches a host other
than 127.0.0.1.

Each server runs under a small guard process (``python tls.py guard ...``) that stops it
when the test process goes away without stopping it (a hang killed by pytest-timeout, a
SIGKILL), so no server outlives its test run. Run as ``python tls.py proxy ...`` this
module is the https front.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import ipaddress
import os
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

USER = "rivet"
PASSWORD = "rivet-tls-secret"
DATABASE = "test"
CERTS = ("good", "wrong-host", "wrong-ca")
_ROOT = os.geteuid() == 0


# ---------------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Path
    """The CA that signed ``good`` and ``wrong-host``."""
    other_ca: Path
    """An unrelated CA; it signed ``wrong-ca``."""

    def pair(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) of ``good``, ``wrong-host`` or ``wrong-ca``."""
        return self.directory / f"{name}.pem", self.directory / f"{name}.key"


def make_pki(directory: Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: Any, issuer_key: Any, key: Any,
              extensions: list[tuple[Any, bool]]) -> Any:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=7)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    def authority(subject: str) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False)
        cert = build(subject, name, key, key, [
            (x509.BasicConstraints(ca=True, path_length=0), True), (usage, True),
            (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)])
        return cert, key

    def server(ca: tuple[Any, Any], names: list[Any]) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = build("rivet test server", ca[0].subject, ca[1], key, [
            (x509.SubjectAlternativeName(names), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), False)])
        return cert, key

    def write(stem: str, cert: Any, key: Any = None) -> None:
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            path = directory / f"{stem}.key"
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            path.chmod(0o600)

    directory.mkdir(parents=True, exist_ok=True)
    good_ca = authority("Rivet test CA")
    other_ca = authority("Unrelated test CA")
    write("ca", good_ca[0])
    write("other-ca", other_ca[0])
    local = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    write("good", *server(good_ca, local))
    write("wrong-host", *server(good_ca, [x509.DNSName("wrong.example")]))
    write("wrong-ca", *server(other_ca, local))
    return Pki(directory=directory, ca=directory / "ca.pem",
               other_ca=directory / "other-ca.pem")


# ------------------------------------------------------------------------------ helpers


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(what: str, attempt: Callable[[], object], process: subprocess.Popen[bytes],
          log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            attempt()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _guarded(command: list[str], *, stop: int = signal.SIGTERM, user: str | None = None,
             log: Path | None = None) -> subprocess.Popen[bytes]:
    """``command`` under a guard (:func:`_guard`): signalling the guard stops the server
    with ``stop``, and the guard stops it by itself if this process dies."""
    guard = [sys.executable, __file__, "guard", str(os.getpid()), str(int(stop)),
             user or "", *command]
    if log is None:
        return subprocess.Popen(guard, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(log, "ab") as handle:
        return subprocess.Popen(guard, stdout=handle, stderr=subprocess.STDOUT)


def _guard(argv: list[str]) -> int:
    parent, stop, user, command = int(argv[0]), int(argv[1]), argv[2] or None, argv[3:]
    child = subprocess.Popen(command, **({"user": user} if user else {}))
    stopping = threading.Event()

    def forward(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while child.poll() is None:
        # Reparented: the test process died without stopping the server.
        if stopping.is_set() or os.getppid() != parent:
            child.send_signal(stop)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
            break
        stopping.wait(0.2)
    return child.wait()


def _launch(server: Any, launch: Callable[[], subprocess.Popen[bytes]]) -> None:
    """Start ``server``'s process and wait until it answers; a port taken meanwhile (the
    free port was only free when probed) is replaced by another."""
    for attempt in range(3):
        server.process = launch()
        try:
            _wait(f"{server.kind} {server.name}", lambda: server.admin().close(),
                  server.process, server.log)
            return
        except RuntimeError:
            if attempt == 2 or "already in use" not in server.log.read_text(errors="replace"):
                raise
            server.port = free_port()


def _stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run(command: list[str], **kwargs: Any) -> None:
    done = subprocess.run(command, capture_output=True, check=False, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n"
                           f"{(done.stdout + done.stderr).decode(errors='replace')[-3000:]}")


def _binary(name: str, *candidates: str) -> str:
    for path in (shutil.which(name), *candidates):
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"{name} not found: install the database server packages "
                       "(.ci/run does)")


def _pg_bindir() -> Path:
    override = os.environ.get("RIVET_TEST_PG_BIN")
    if override:
        return Path(override)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    return Path(_binary("initdb")).parent


@dataclass(frozen=True)
class Seen:
    """One connection as the server saw it."""

    encrypted: bool
    detail: str
    """The cipher, or how the connection came in (``TCP/IP``, ``Socket``)."""
    fast: bool = False
    """MariaDB: the connection ran a ConnectorX statement (``/* rivet-cx``)."""


# ---------------------------------------------------------------------------- PostgreSQL


class PostgresInstance:
    """A PostgreSQL server of the suite's own: ``ssl = on`` with the given certificate, or
    ``ssl = off``. The role ``rivet`` authenticates with a password (scram-sha-256) over
    TCP; the test connects as the superuser over the instance's Unix socket."""

    kind = "postgres"

    def __init__(self, base: Path, name: str, pki: Pki, cert: str | None) -> None:
        self.name = name
        self.directory = base / f"pg-{name}"
        self.cert = cert
        self.pki = pki
        self.port = free_port()
        self.log = self.directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _as_postgres(self) -> dict[str, Any]:
        return {"user": "postgres"} if _ROOT else {}

    def _own(self, path: Path) -> None:
        if _ROOT:
            shutil.chown(path, "postgres", "postgres")

    def start(self) -> None:
        bindir = _pg_bindir()
        self.directory.mkdir(parents=True)
        self.directory.chmod(0o755)
        self._own(self.directory)
        settings = [
            "listen_addresses=127.0.0.1", f"unix_socket_directories={self.directory}",
            "shared_buffers=16MB", "max_connections=40", "fsync=off",
            "synchronous_commit=off", "full_page_writes=off", "log_connections=on",
            "logging_collector=off", "max_wal_senders=0", "wal_level=minimal",
            f"ssl={'on' if self.cert else 'off'}",
        ]
        if self.cert:
            for suffix in ("pem", "key"):
                target = self.directory / f"server.{suffix}"
                shutil.copy(self.pki.directory / f"{self.cert}.{suffix}", target)
                target.chmod(0o600)
                self._own(target)
            settings += [f"ssl_cert_file={self.directory / 'server.pem'}",
                         f"ssl_key_file={self.directory / 'server.key'}"]
        _run([str(bindir / "initdb"), "--no-sync", "-D", str(self.directory / "data"),
              "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
              "-E", "UTF8", "--locale=C"], **self._as_postgres())
        def launch() -> subprocess.Popen[bytes]:
            command = [str(bindir / "postgres"), "-D", str(self.directory / "data"),
                       "-p", str(self.port)]
            for setting in settings:
                command += ["-c", setting]
            # SIGINT: fast shutdown, which ends the sessions still open.
            return _guarded(command, stop=signal.SIGINT, log=self.log,
                            user="postgres" if _ROOT else None)

        _launch(self, launch)
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")

    def stop(self) -> None:
        _stop(self.process)

    def admin(self, database: str = "postgres") -> Any:
        """A superuser connection over the instance's Unix socket (autocommit)."""
        import psycopg

        return psycopg.connect(host=str(self.directory), port=self.port, user="postgres",
                               dbname=database, autocommit=True, connect_timeout=5)

    def url(self, query: str = "") -> str:
        return (f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"
                + (f"?{query}" if query else ""))

    def execute(self, sql: str) -> None:
        """Run ``sql`` in the test database as ``rivet`` (which then owns what it makes)."""
        with self.admin(DATABASE) as conn:
            conn.execute(f"SET ROLE {USER}")
            conn.execute(sql)

    def seen(self, application_name: str) -> list[Seen]:
        """Every connection authorized with ``application_name``, as logged."""
        pattern = re.compile(
            r"connection authorized: user=\S+ database=\S+ application_name="
            + re.escape(application_name)
            + r"(?: SSL enabled \(protocol=([^,]+), cipher=([^,]+),[^)]*\))?$")
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = pattern.search(line)
            if match:
                found.append(Seen(encrypted=match.group(1) is not None,
                                  detail=match.group(2) or "plaintext"))
        return found


# ------------------------------------------------------------------------------- MariaDB


class MariadbInstance:
    """A MariaDB server of the suite's own, with ``--ssl-cert``/``--ssl-key`` or
    ``--skip-ssl``. The user ``rivet`` has a password (from 127.0.0.1 and localhost); the
    test connects as root over the instance's Unix socket. ``socket`` may be given to put
    the socket file somewhere else."""

    kind = "mysql"

    def __init__(self, base: Path, name: str, pki: Pki, cert: str | None,
                 socket_path: Path | None = None) -> None:
        self.name = name
        self.directory = base / f"mariadb-{name}"
        self.cert = cert
        self.pki = pki
        self.port = free_port()
        self.socket = socket_path or self.directory / "mysqld.sock"
        self.log = self.directory / "error.log"
        self.process: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        # Its own tmpdir: concurrent bootstraps sharing /tmp remove each other's temporary
        # tables.
        (self.directory / "tmp").mkdir(parents=True)
        command = [_binary("mariadb-install-db"), "--no-defaults",
                   f"--datadir={self.directory / 'data'}", f"--tmpdir={self.directory / 'tmp'}",
                   "--auth-root-authentication-method=normal", "--skip-test-db",
                   "--innodb-log-file-size=4M"]
        if _ROOT:
            command.append("--user=root")
        _run(command)

    def start(self, *, install: bool = True) -> None:
        if install:
            self.install()
        self.log.touch()
        _launch(self, self._launch)
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            for host in ("127.0.0.1", "localhost"):
                cursor.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'{host}' "
                               f"IDENTIFIED BY '{PASSWORD}'")
                cursor.execute(f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'{host}'")

    def _launch(self) -> subprocess.Popen[bytes]:
        command = [_binary("mariadbd", "/usr/sbin/mariadbd"), "--no-defaults",
                   f"--datadir={self.directory / 'data'}", f"--port={self.port}",
                   f"--tmpdir={self.directory / 'tmp'}",
                   "--bind-address=127.0.0.1", f"--socket={self.socket}",
                   f"--pid-file={self.directory / 'mysqld.pid'}", f"--log-error={self.log}",
                   "--skip-log-bin", "--innodb-log-file-size=4M",
                   "--innodb-buffer-pool-size=8M", "--performance-schema=OFF",
                   "--skip-name-resolve", "--general-log=ON", "--log-output=TABLE",
                   "--max-connections=60"]
        if _ROOT:
            command.append("--user=root")
        if self.cert:
            cert, key = self.pki.pair(self.cert)
            command += [f"--ssl-cert={cert}", f"--ssl-key={key}"]
        else:
            command.append("--skip-ssl")
        return _guarded(command)

    def stop(self) -> None:
        _stop(self.process)

    def admin(self) -> Any:
        """A root connection over the instance's Unix socket (autocommit)."""
        import pymysql

        return pymysql.connect(unix_socket=str(self.socket), user="root", password="",
                               autocommit=True, connect_timeout=5, charset="utf8mb4")

    def url(self, query: str = "") -> str:
        return (f"mysql://{USER}@127.0.0.1:{self.port}/{DATABASE}"
                + (f"?{query}" if query else ""))

    def execute(self, sql: str) -> None:
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute(f"USE {DATABASE}")
            cursor.execute(sql)

    def mark(self) -> int:
        """A watermark: connections made after it have a larger thread id."""
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            return int(cursor.fetchone()[0])

    def seen(self, after: int) -> list[Seen]:
        """Every connection of ``rivet`` since the watermark, from the general log."""
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT thread_id, argument FROM mysql.general_log WHERE thread_id > %s "
                "AND command_type = 'Connect' AND argument LIKE %s ORDER BY thread_id",
                (after, f"{USER}@% on %"))
            connects = [(int(t), a.decode() if isinstance(a, bytes) else a)
                        for t, a in cursor.fetchall()]
            cursor.execute(
                "SELECT DISTINCT thread_id FROM mysql.general_log WHERE thread_id > %s "
                "AND argument LIKE %s", (after, "%/* rivet-cx %"))
            fast = {int(row[0]) for row in cursor.fetchall()}
        return [Seen(encrypted=argument.endswith("using SSL/TLS"),
                     detail=argument.rsplit(" using ", 1)[-1], fast=thread in fast)
                for thread, argument in connects]


# ----------------------------------------------------------------------------- lifecycle


@contextmanager
def running(servers: Sequence[PostgresInstance | MariadbInstance]) -> Iterator[None]:
    """Start ``servers`` at once (threads: each start is mostly waiting on a process) and
    stop them all at the end, even when one failed to start."""
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
        with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
            for future in [pool.submit(server.start) for server in servers]:
                future.result()
        yield


def scratch_directory() -> Path:
    """A temporary directory the ``postgres`` user can enter (pytest's are private to the
    user running the tests); removed by the caller."""
    path = Path(tempfile.mkdtemp(prefix="rivet-tls-"))
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------------------- https front


class _Front(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext, upstream: int) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.context = context
        self.upstream = upstream


class _Relay(socketserver.BaseRequestHandler):
    server: _Front

    def handle(self) -> None:
        try:
            client = self.server.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused the certificate: nothing to relay
        upstream = socket.create_connection(("127.0.0.1", self.server.upstream))
        pump = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        pump.start()
        _copy(client, upstream)
        pump.join()
        for end in (client, upstream):
            end.close()


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(1 << 16)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextmanager
def https_front(cert: Path, key: Path, upstream: str) -> Iterator[str]:
    """An https endpoint (certificate ``cert``) relaying to the plain-HTTP ``upstream``
    (``http://127.0.0.1:PORT``), as its own process; yields ``https://127.0.0.1:PORT``."""
    port = int(upstream.rsplit(":", 1)[1])
    process = subprocess.Popen(
        [sys.executable, __file__, "proxy", "--cert", str(cert), "--key", str(key),
         "--upstream", str(port), "--parent", str(os.getpid())], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"https front did not start: {line!r}")
        yield f"https://127.0.0.1:{int(line.split()[1])}"
    finally:
        _stop(process)


def _serve_front(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="https front for a plain-HTTP test server")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = _Front(context, args.upstream)

    def orphaned() -> None:
        while os.getppid() == args.parent:
            time.sleep(0.5)
        server.shutdown()

    threading.Thread(target=orphaned, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["proxy"]:
        _serve_front(sys.argv[2:])
    elif sys.argv[1:2] == ["guard"]:
        sys.exit(_guard(sys.argv[2:]))
