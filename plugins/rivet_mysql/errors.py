"""MySQL / MariaDB failures as Rivet errors: which are worth a retry on a fresh connection,
which mean a timeout, and what to tell the user (:data:`ERRORS`), and the functions that
turn a pymysql or socket failure (:func:`wrap_error`) and a ConnectorX failure
(:func:`connectorx_error`) into a :class:`~rivet_core.api.SourceError` with them.

The error number decides when there is one: lost or refused connections, shutdowns, too
many connections, lock wait timeouts, deadlocks and statement timeouts are transient;
access denied, syntax, missing tables and anything unrecognised are permanent. Server
errors are below 2000; client errors (2000-2999) come from the driver (pymysql uses 2003
"can't connect", 2006 "gone away" and 2013 "lost connection" for socket failures). Without
a number the text decides, and a lost connection counts as transient.

TLS failures are permanent whatever the mode, with a hint naming the failed check and the
CAs trusted: the pymysql connection's are read by :func:`rivet_mysql.driver.tls_failure`,
ConnectorX's by :func:`connectorx_tls_error` (its handshake errors, and the refusal Rivet's
own check statement raises on a connection that came up unencrypted: :data:`NOT_ENCRYPTED`).

Not here: errors about values (a zero date, a number that does not fit), which the column
builders raise (:mod:`rivet_mysql.builders`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pymysql

from rivet_core.api import ConnectionParams, ErrorTable, SourceError, redact

ERRORS = ErrorTable(
    code_label="MySQL error",
    transient_codes=frozenset({
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
    }),
    # Any other number is permanent: access denied (1044, 1045, 1142, 1143, 1227), unknown
    # database, column or table (1049, 1054, 1146), syntax (1064), a write in the read-only
    # transaction (1792).
    timeout_codes=frozenset({1969, 3024}),
    transient_text=(
        "lost connection",
        "gone away",
        "connection reset",
        "broken pipe",
        "connection refused",
        "timed out",
        "too many connections",
    ),
    hints={
        1969: "the query ran longer than tuning.statement_timeout_s (max_statement_time); on "
              "MySQL the timeout covers the whole streamed read of one query, so raise it or "
              "split the export into smaller queries",
        3024: "the query ran longer than tuning.statement_timeout_s (max_execution_time); on "
              "MySQL the timeout covers the whole streamed read of one query, so raise it or "
              "split the export into smaller queries",
        1205: "another session holds a lock the query waits for; raise tuning.lock_timeout_s "
              "or run at a quieter time",
        1045: "check the user name and password of the source connection",
        1044: "grant the export user access to the database",
        1142: "grant the export user SELECT on every table the query reads",
        1143: "grant the export user SELECT on every column the query reads",
        1792: "Rivet reads in a READ ONLY transaction; the query must not write",
        1040: "the server has no free connection slots; lower parallelism or use a pooler",
        2003: "check the host and port, and that the server accepts TCP connections",
    },
)

NOT_ENCRYPTED = "rivet: this connection is not encrypted"
"""The value ConnectorX's TLS check statement sets the time zone to, and so the text of the
error the server answers, when a connection that must be encrypted is not."""
"""How MySQL's and MariaDB's failures are classified and worded."""


def server_error(exc: BaseException) -> bool:
    """Whether the server itself reported the failure (an error number below 2000), so the
    connection is still usable."""
    return bool(isinstance(exc, pymysql.err.MySQLError) and exc.args
                and isinstance(exc.args[0], int) and exc.args[0] < 2000)


def wrap_error(exc: BaseException, label: str) -> SourceError:
    """A pymysql failure (or a socket's) as a Rivet error: the server's first line, its
    error number."""
    args: tuple[Any, ...] = tuple(exc.args)
    code = args[0] if args and isinstance(args[0], int) and args[0] > 0 else None
    message = str(args[1]) if len(args) > 1 else str(exc) or type(exc).__name__
    lost = isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError))
    return ERRORS.error(label, code, message, connection_lost=lost)


_SERVER_ERROR = re.compile(r"ERROR (\d+) \(\w+\): (.*?)(?: \}|$)", re.DOTALL)
_LINK_WORDS = ("driver", "ioerror", "connection", "broken pipe", "timed out", "eof")
_BAD_DATE = re.compile(r"Couldn't convert the value `(?:Date|Bytes)\(\"'?([^'\"]*)'?\"\)`")


def connectorx_error(exc: BaseException, label: str, dates: Sequence[str] = ()) -> SourceError:
    """A ConnectorX failure as a Rivet error, classified by the server's error number, which
    ConnectorX reports only as text (``MySqlError { ERROR 1969 (70100): ... }``). ``dates``:
    the columns carried as native dates, named when ConnectorX refuses a zero or invalid
    date (its message does not say which column)."""
    text = str(exc)
    bad_date = _BAD_DATE.search(text) if dates else None
    if bad_date:
        names = ", ".join(repr(name) for name in dates)
        return SourceError(
            redact(f"{label}: column {names}: value {bad_date.group(1)!r} is a zero or "
                   f"invalid date, which no date or timestamp can hold"),
            hint='set zero_dates = "null" in [source] to export such values as NULL, or '
                 'filter them in SQL')
    found = _SERVER_ERROR.search(text)
    if found:
        code: int | None = int(found.group(1))
        message = found.group(2).strip()
        lost = False
    else:
        code = None
        message = f"ConnectorX: {text.strip().splitlines()[0] if text.strip() else exc!r}"
        lost = any(word in text.lower() for word in _LINK_WORDS)
    return ERRORS.error(label, code, message, connection_lost=lost)


def connectorx_tls_error(exc: BaseException, label: str,
                         params: ConnectionParams) -> SourceError | None:
    """A ConnectorX failure that is about TLS, as a permanent error with a TLS hint; None
    for any other failure."""
    text = str(exc)
    lowered = text.lower()
    if NOT_ENCRYPTED in text:
        return params.tls_failure("not-encrypted", "ConnectorX", label)
    if "tlsnotsupported" in lowered or "tls not supported" in lowered:
        return params.tls_failure("no-tls", "ConnectorX", label)
    reason = _TLS_REASON.search(text)
    if "certificate verify failed" in lowered:
        check = "host" if "mismatch" in lowered else "chain"
        return params.tls_failure(check, reason.group(1) if reason else "", label)
    if "tlserror" in lowered or "ssl routines" in lowered:
        return params.tls_failure("handshake", reason.group(1) if reason else "", label)
    return None


_TLS_REASON = re.compile(r"(?:certificate verify failed|ssl routines)[^(]*\(([^)]*)\)",
                         re.IGNORECASE)

__all__ = ["ERRORS", "NOT_ENCRYPTED", "connectorx_error", "connectorx_tls_error",
           "server_error", "wrap_error"]
