"""MySQL / MariaDB error numbers → transient or permanent, and what to tell the user.

Pure logic: turning a pymysql exception into a :class:`~rivet_core.errors.SourceError`
happens in :mod:`rivet_mysql.source`. Server errors are below 2000; client errors (2000-2999)
come from the driver (pymysql uses 2003 "can't connect", 2006 "gone away" and 2013 "lost
connection" for socket failures).
"""

from __future__ import annotations

from rivet_core.errors import SourceError, source_error
from rivet_core.redact import redact

TRANSIENT_CODES = frozenset({
    1040,  # ER_CON_COUNT_ERROR: too many connections
    1053,  # ER_SERVER_SHUTDOWN
    1077,  # ER_NORMAL_SHUTDOWN
    1152,  # ER_ABORTING_CONNECTION
    1158,  # ER_NET_READ_ERROR
    1159,  # ER_NET_READ_INTERRUPTED
    1160,  # ER_NET_ERROR_ON_WRITE
    1161,  # ER_NET_WRITE_INTERRUPTED
    1205,  # ER_LOCK_WAIT_TIMEOUT
    1213,  # ER_LOCK_DEADLOCK
    1317,  # ER_QUERY_INTERRUPTED (KILL QUERY, MySQL 5.7 max_execution_time)
    1927,  # ER_CONNECTION_KILLED (MariaDB)
    1969,  # ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
    3024,  # ER_QUERY_TIMEOUT (MySQL 8 max_execution_time)
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8: idle session dropped)
    2002,  # CR_CONNECTION_ERROR (socket)
    2003,  # CR_CONN_HOST_ERROR: can't connect (refused, unreachable)
    2005,  # CR_UNKNOWN_HOST (DNS)
    2006,  # CR_SERVER_GONE_ERROR
    2013,  # CR_SERVER_LOST
    2055,  # CR_SERVER_LOST_EXTENDED
})
"""Failures a retry on a fresh connection may cure."""

PERMANENT_CODES = frozenset({
    1044,  # ER_DBACCESS_DENIED_ERROR
    1045,  # ER_ACCESS_DENIED_ERROR (wrong user or password)
    1049,  # ER_BAD_DB_ERROR
    1054,  # ER_BAD_FIELD_ERROR
    1064,  # ER_PARSE_ERROR
    1142,  # ER_TABLEACCESS_DENIED_ERROR
    1143,  # ER_COLUMNACCESS_DENIED_ERROR
    1146,  # ER_NO_SUCH_TABLE
    1227,  # ER_SPECIFIC_ACCESS_DENIED_ERROR
    1792,  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
})
"""Listed for the reader; any code not in :data:`TRANSIENT_CODES` is permanent."""

_TRANSIENT_TEXT = (
    "lost connection",
    "gone away",
    "connection reset",
    "broken pipe",
    "connection refused",
    "timed out",
    "too many connections",
)

_HINTS = {
    1969: "the query ran longer than tuning.statement_timeout_s (max_statement_time); on "
          "MySQL the timeout covers the whole streamed read of one query, so raise it or "
          "split the export into smaller queries",
    3024: "the query ran longer than tuning.statement_timeout_s (max_execution_time); on "
          "MySQL the timeout covers the whole streamed read of one query, so raise it or "
          "split the export into smaller queries",
    1205: "another session holds a lock the query waits for; raise tuning.lock_timeout_s or "
          "run at a quieter time",
    1045: "check the user name and password of the source connection",
    1044: "grant the export user access to the database",
    1142: "grant the export user SELECT on every table the query reads",
    1143: "grant the export user SELECT on every column the query reads",
    1792: "Rivet reads in a READ ONLY transaction; the query must not write",
    1040: "the server has no free connection slots; lower parallelism or use a pooler",
    2003: "check the host and port, and that the server accepts TCP connections",
}


def classify(code: int | None, message: str, *, connection_lost: bool = False) -> bool:
    """True when the failure is transient (a retry on a fresh connection may succeed).

    The error number decides when there is one: lost or refused connections, shutdowns,
    too many connections, lock wait timeouts, deadlocks and statement timeouts are
    transient; access denied, syntax, missing tables and anything unrecognised are
    permanent. Without a number (a socket failure the driver did not number) the text
    decides, and ``connection_lost`` (the driver's ``OperationalError``) counts as
    transient."""
    if code:
        return code in TRANSIENT_CODES
    text = message.lower()
    if any(pattern in text for pattern in _TRANSIENT_TEXT):
        return True
    return connection_lost


TIMEOUT_CODES = frozenset({1969, 3024})
"""The server stopped the statement for running past its time limit."""


def reason_for(code: int | None) -> str | None:
    """``"timeout"`` for a statement the server stopped at its time limit."""
    return "timeout" if code in TIMEOUT_CODES else None


def hint_for(code: int | None) -> str | None:
    """What the user can do about a failure, when there is something specific to say."""
    return _HINTS.get(code) if code else None


def to_error(label: str, code: int | None, message: str, *,
             connection_lost: bool) -> SourceError:
    """The Rivet error for a failed statement, classified, hinted and redacted."""
    return source_error(redact(error_text(label, message, code)),
                        transient=classify(code, message, connection_lost=connection_lost),
                        hint=hint_for(code), reason=reason_for(code))


def error_text(label: str, message: str, code: int | None) -> str:
    """``label: first line of the server's message (MySQL error nnnn)`` — not yet redacted."""
    lines = message.strip().splitlines()
    first = lines[0].strip() if lines else "unknown error"
    return f"{label}: {first}" + (f" (MySQL error {code})" if code else "")
