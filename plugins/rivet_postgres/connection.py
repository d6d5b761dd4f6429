"""How the postgres source reaches the server and opens a read: the libpq keywords of its
connections, and the transaction every read runs in.

The control connection (psycopg, :mod:`rivet_postgres.source`) and the COPY connections
(:mod:`rivet_postgres.copyreader`) are opened with the same keywords: the connection
settings, ``application_name`` and ``connect_timeout`` from ``[source]``, UTF-8; URL query
parameters (``sslmode``, ``options``...) are libpq keywords and override Rivet's.

Every read begins with the same statements on every connection it uses
(:func:`begin_statements`): ``BEGIN READ ONLY``, then ``SET LOCAL`` timeouts and
``TimeZone = 'UTC'``. Every setting is transaction-scoped, so nothing leaks into a pooled
session.

Not here: how long a connection lives (the source's slot, the COPY pool).
"""

from __future__ import annotations

from collections.abc import Mapping

from rivet_core.api import ConnectionParams, ReadOptions
from rivet_postgres.config import PostgresConfig


def keywords(params: ConnectionParams, config: PostgresConfig) -> dict[str, str | int | None]:
    """The libpq keywords of a connection (None: not set)."""
    values: dict[str, str | int | None] = {
        "host": params.host, "port": params.port, "user": params.user,
        "dbname": params.database, "password": params.password,
        "application_name": config.application_name,
        "connect_timeout": config.connect_timeout_s,
        "client_encoding": "UTF8", "sslmode": params.tls_mode,
        "sslrootcert": params.ca_file,
    }
    values.update(params.query)
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


__all__ = ["begin_statements", "conninfo", "keywords"]
