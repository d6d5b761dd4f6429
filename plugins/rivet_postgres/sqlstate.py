"""Which PostgreSQL failures are worth a retry on a fresh connection, and what to tell the user.

Functions of the SQLSTATE and the message, and :func:`wrap_error`, which turns a psycopg (or
socket) exception into a :class:`~rivet_core.errors.SourceError` with them.
"""

from __future__ import annotations

import psycopg

from rivet_core.errors import SourceError, source_error
from rivet_core.redact import redact

TRANSIENT_CLASSES = frozenset({"08"})
"""connection_exception: the link broke; a new connection may work."""

TRANSIENT_CODES = frozenset({
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
})

# libpq reports failures while connecting without a SQLSTATE; the server's FATAL text is the
# only way to tell a wrong password (retrying cannot help) from a server that is restarting.
_PERMANENT_TEXT = (
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
)
_TRANSIENT_TEXT = (
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
)

_HINTS = {
    "57014": "the statement ran longer than tuning.statement_timeout_s; raise it or make the "
             "query cheaper (an index on the filter, smaller chunks)",
    "55P03": "another session holds a conflicting lock; raise tuning.lock_timeout_s or run "
             "at a quieter time",
    "42501": "grant the export role SELECT on every table and function the query uses",
    "25006": "Rivet reads in a READ ONLY transaction; the query must not write",
    "53300": "the server has no free connection slots; lower parallelism or use a pooler",
}


def classify(sqlstate: str | None, message: str, *, connection_lost: bool = False) -> bool:
    """True when the failure is transient (a retry on a fresh connection may succeed).

    ``sqlstate`` decides when the server sent one: connection classes, shutdowns, too many
    connections, serialization failures, deadlocks and timeouts are transient; syntax (42),
    permission (42501), authentication (28) and anything unrecognised are permanent.
    Without a SQLSTATE the message decides; ``connection_lost`` (the driver's
    ``OperationalError``) counts as transient unless the text names a permanent cause such
    as a rejected password or a missing database."""
    if sqlstate:
        return sqlstate[:2] in TRANSIENT_CLASSES or sqlstate in TRANSIENT_CODES
    text = message.lower()
    if any(pattern in text for pattern in _PERMANENT_TEXT):
        return False
    if any(pattern in text for pattern in _TRANSIENT_TEXT):
        return True
    return connection_lost


def reason_for(sqlstate: str | None, message: str) -> str | None:
    """``"timeout"`` when the server cancelled the statement for running past
    ``statement_timeout`` (57014 is also a cancel by request, which is not a timeout)."""
    if sqlstate == "57014" and "statement timeout" in message.lower():
        return "timeout"
    return None


def hint_for(sqlstate: str | None, message: str) -> str | None:
    """What the user can do about a failure, when there is something specific to say."""
    if sqlstate in _HINTS:
        return _HINTS[sqlstate]
    if sqlstate and sqlstate.startswith("28"):
        return "check the user name and password of the source connection"
    if "connection refused" in message.lower():
        return "check the host and port, and that the server accepts TCP connections"
    return None


def to_error(label: str, sqlstate: str | None, message: str, *,
             connection_lost: bool) -> SourceError:
    """The Rivet error for a failed statement, classified, hinted and redacted."""
    return source_error(
        redact(error_text(label, message, sqlstate)),
        transient=classify(sqlstate, message, connection_lost=connection_lost),
        hint=hint_for(sqlstate, message), reason=reason_for(sqlstate, message))


def wrap_error(exc: BaseException, label: str) -> SourceError:
    """A psycopg failure (or a socket's) as a Rivet error: the server's first line, its
    SQLSTATE; without one, an operational failure is a lost connection."""
    sqlstate = getattr(exc, "sqlstate", None) or None
    lost = sqlstate is None and isinstance(exc, psycopg.OperationalError | OSError)
    return to_error(label, sqlstate, str(exc), connection_lost=lost)


def error_text(label: str, message: str, sqlstate: str | None) -> str:
    """``label: first line of the server's message (SQLSTATE xxxxx)`` — not yet redacted."""
    lines = message.strip().splitlines()
    first = lines[0].strip() if lines else "unknown error"
    return f"{label}: {first}" + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
