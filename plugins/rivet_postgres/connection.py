"""How the postgres source reaches the server and opens a read: the libpq keywords of its
connections, and the transaction every read runs in.

The control connection (psycopg, :mod:`rivet_postgres.source`) and the COPY connections
(:mod:`rivet_postgres.copyreader`) are opened with the same keywords: the connection
settings, ``application_name`` and ``connect_timeout`` from ``[source]``, UTF-8; URL query
parameters (``options``...) are libpq keywords and override those. The TLS keywords come
last and from the resolved TLS mode only (:func:`tls_keywords`; a URL's own ``sslmode`` was
read into that mode by :mod:`rivet_postgres.config`), so nothing else can weaken them:
``sslmode`` is always set, which also keeps ``PGSSLMODE`` from the environment out.

Every read begins with the same statements on every connection it uses
(:func:`begin_statements`): ``BEGIN READ ONLY``, then ``SET LOCAL`` timeouts and
``TimeZone = 'UTC'``. Every setting is transaction-scoped, so nothing leaks into a pooled
session.

Not here: how long a connection lives (the source's slot, the COPY pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rivet_core.api import ConnectionParams, ReadOptions, SourceError
from rivet_postgres.config import PostgresConfig

if TYPE_CHECKING:
    import psycopg


def tls_keywords(params: ConnectionParams) -> dict[str, str]:
    """libpq's TLS keywords for the resolved mode, with Rivet's meaning of each mode.

    No TLS settings: ``prefer`` (libpq's default, written out). ``require``: encrypted, no
    check. ``verify-ca`` / ``verify-full``: the chain is checked against ``ca_file``, or
    the system CA bundle (libpq's ``sslrootcert=system`` is not used for it: libpq allows
    that value with ``verify-full`` only). GSSAPI encryption is turned off whenever TLS is
    required, since a GSS-encrypted session would skip TLS and its checks."""
    mode = params.tls_mode
    if mode is None:
        return {"sslmode": "prefer"}
    if mode == "disable":
        return {"sslmode": "disable"}
    values = {"sslmode": mode, "gssencmode": "disable"}
    if params.tls_verified():
        root = params.trust_file()
        if root is None and mode == "verify-full":
            root = "system"  # libpq's own idea of the system store
        if root is None:
            raise SourceError(
                "postgres source: tls.mode = \"verify-ca\" checks the chain against the "
                "system CA store, and no system CA bundle file was found",
                hint="set tls.ca_file to the CA that signed the server's certificate (or "
                     "SSL_CERT_FILE to a bundle)")
        values["sslrootcert"] = root
    return values


def check_encrypted(conn: psycopg.Connection[Any], params: ConnectionParams,
                    label: str) -> None:
    """Refuse (close, raise the TLS error) a connection libpq reports as unencrypted when
    the mode requires TLS: the keywords ask for it, and this makes sure of it."""
    if params.tls_required() and not conn.pgconn.ssl_in_use:
        conn.close()
        raise params.tls_failure("not-encrypted", "libpq reports no TLS", label)


def keywords(params: ConnectionParams, config: PostgresConfig) -> dict[str, str | int | None]:
    """The libpq keywords of a connection (None: not set)."""
    values: dict[str, str | int | None] = {
        "host": params.host, "port": params.port, "user": params.user,
        "dbname": params.database, "password": params.password,
        "application_name": config.application_name,
        "connect_timeout": config.connect_timeout_s,
        "client_encoding": "UTF8",
    }
    values.update(params.query)
    values.update(tls_keywords(params))
    return values


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(values: Mapping[str, str | int | None]) -> str:
    """A libpq ``key=value`` connection string (values quoted, None left out)."""
    return " ".join(f"{key}={_conninfo_value(str(value))}" for key, value in values.items()
                    if value is not None)


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def begin_statements(options: ReadOptions, *, repeatable_read: bool = False,
                     snapshot: str | None = None) -> list[str]:
    """The statements that open a read, the same on the control connection and on every
    COPY connection. REPEATABLE READ when a snapshot is exported to (or imported by) the
    COPY connections of a ranged read; the snapshot id is the server's own
    ``pg_export_snapshot()`` text."""
    statements = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if repeatable_read
                  else "BEGIN READ ONLY"]
    if snapshot is not None:
        statements.append(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    # Integers formatted by us, never user text: SET takes no bind parameters.
    if options.statement_timeout_s > 0:
        statements.append(
            f"SET LOCAL statement_timeout = {_milliseconds(options.statement_timeout_s)}")
    if options.lock_timeout_s > 0:
        statements.append(f"SET LOCAL lock_timeout = {_milliseconds(options.lock_timeout_s)}")
    statements.append("SET LOCAL TimeZone = 'UTC'")
    return statements


__all__ = ["begin_statements", "check_encrypted", "conninfo", "keywords", "tls_keywords"]
