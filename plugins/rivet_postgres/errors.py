"""PostgreSQL failures as Rivet errors: which are worth a retry on a fresh connection, which
mean a timeout, and what to tell the user (:data:`ERRORS`), and :func:`wrap_error`, which
turns a psycopg, socket or binary COPY failure into a
:class:`~rivet_core.api.SourceError` with them.

With a SQLSTATE, the code decides: connection classes, shutdowns, too many connections,
serialization failures, deadlocks and timeouts are transient; syntax (42), permission
(42501), authentication (28) and anything unrecognised are permanent. libpq reports
failures while connecting without a SQLSTATE, so the server's text decides then: a rejected
password or a missing database is permanent (retrying cannot help), a server that is
restarting is transient, and any other operational failure counts as a lost connection.

A TLS failure while connecting (a certificate that does not chain or does not name the
host, a server without TLS, an unreadable CA file) is permanent, whatever the mode, and its
hint says which check failed and which CAs were trusted (:func:`tls_error`).

Not here: errors about values Arrow cannot hold, which the column builders raise
(:mod:`rivet_postgres.builders`).
"""

from __future__ import annotations

import psycopg

from rivet_core.api import ConnectionParams, ErrorTable, SourceError
from rivet_postgres.copybin import CopyError

ERRORS = ErrorTable(
    code_label="SQLSTATE",
    # connection_exception: the link broke; a new connection may work.
    transient_prefixes=("08",),
    transient_codes=frozenset({
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
        "57P05",  # idle_session_timeout: the server dropped the idle pooled connection
        "25P03",  # idle_in_transaction_session_timeout: dropped between two fetches
        "53300",  # too_many_connections
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57014",  # query_canceled (statement_timeout)
        "55P03",  # lock_not_available (lock_timeout): someone else's lock, gone later
    }),
    # 57014 is also a cancel by request, which is not a timeout.
    timeout_codes=frozenset({"57014"}),
    timeout_text="statement timeout",
    permanent_text=(
        "password authentication failed",
        "authentication failed",
        "no pg_hba.conf entry",
        "does not exist",
        "permission denied",
        "no password supplied",
        "server does not support ssl",
        "certificate",
        "invalid connection option",
        "invalid sslmode",
        "invalid integer value",
    ),
    transient_text=(
        "too many clients",
        "remaining connection slots",
        "the database system is starting up",
        "the database system is shutting down",
        "the database system is in recovery mode",
        "connection refused",
        "connection reset",
        "broken pipe",
        "no route to host",
        "network is unreachable",
        "could not translate host name",
        "temporary failure in name resolution",
        "timeout expired",
        "server closed the connection unexpectedly",
        "terminating connection",
        "ssl syscall error",
        "eof detected",
    ),
    hints={
        "57014": "the statement ran longer than tuning.statement_timeout_s; raise it or make "
                 "the query cheaper (an index on the filter, smaller chunks)",
        "55P03": "another session holds a conflicting lock; raise tuning.lock_timeout_s or "
                 "run at a quieter time",
        "42501": "grant the export role SELECT on every table and function the query uses",
        "25006": "Rivet reads in a READ ONLY transaction; the query must not write",
        "53300": "the server has no free connection slots; lower parallelism or use a pooler",
        "28": "check the user name and password of the source connection",
    },
    text_hints={
        "connection refused": "check the host and port, and that the server accepts TCP "
                              "connections",
    },
)
"""How PostgreSQL's failures are classified and worded."""


_TLS_CHECKS = (
    # libpq's words for each failed check, first match wins.
    ("does not match host name", "host"),
    ("certificate verify failed", "chain"),
    ("server does not support ssl", "no-tls"),
    ("root certificate file", "ca-file"),
    ("sslrootcert", "ca-file"),
    ("ssl error", "handshake"),
)


def tls_error(exc: BaseException, label: str, params: ConnectionParams) -> SourceError | None:
    """A TLS failure of a connection attempt as a permanent error with a TLS hint, or None
    when the failure is something else (``SSL SYSCALL error``: the link broke, which is
    transient)."""
    text = str(exc)
    lowered = text.lower()
    for fragment, check in _TLS_CHECKS:
        if fragment in lowered:
            # libpq prefixes "connection to server at ... failed:"; the reason follows.
            reason = text.rsplit(" failed: ", 1)[-1]
            return params.tls_failure(check, reason, label)
    return None


def wrap_error(exc: BaseException, label: str) -> SourceError:
    """A failure as a Rivet error: the server's first line and its SQLSTATE. A COPY read's
    failure says itself whether the connection was lost; otherwise an operational failure
    without a SQLSTATE is a lost connection."""
    if isinstance(exc, CopyError):
        return ERRORS.error(label, exc.sqlstate, str(exc), connection_lost=exc.lost)
    sqlstate = getattr(exc, "sqlstate", None) or None
    lost = sqlstate is None and isinstance(exc, psycopg.OperationalError | OSError)
    return ERRORS.error(label, sqlstate, str(exc), connection_lost=lost)


__all__ = ["ERRORS", "tls_error", "wrap_error"]
