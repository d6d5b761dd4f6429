"""SQLite failures as Rivet errors: :data:`ERRORS` and :func:`wrap_error`.

sqlite3 (Python 3.11+) names the failure's result code on the exception
(``sqlite_errorname``: ``SQLITE_BUSY``, ``SQLITE_BUSY_SNAPSHOT``...), and the code decides:

- transient (the runner retries on a fresh connection): ``SQLITE_BUSY*`` and
  ``SQLITE_LOCKED*`` ("database is locked": a writer holds the file longer than
  ``tuning.lock_timeout_s``), and ``SQLITE_INTERRUPT``, which only the source's own
  statement timeout causes (so it is marked a timeout, retried only with
  ``tuning.retry_timeouts``);
- permanent: everything else (a syntax error, a missing table, a file that cannot be opened
  or is not a database).

sqlite3's own errors carry no code (a wrong number of parameters, a closed cursor); they are
permanent, unless the message says the database is locked.
"""

from __future__ import annotations

import sqlite3

from rivet_core.api import ErrorTable, SourceError

ERRORS = ErrorTable(
    code_label="code",
    transient_prefixes=("SQLITE_BUSY", "SQLITE_LOCKED"),
    transient_codes=frozenset({"SQLITE_INTERRUPT"}),
    timeout_codes=frozenset({"SQLITE_INTERRUPT"}),
    transient_text=("database is locked", "database table is locked"),
    hints={
        "SQLITE_BUSY": "another connection holds a write lock on the file; raise "
                       "tuning.lock_timeout_s, or put the database in WAL mode (PRAGMA "
                       "journal_mode = WAL), where readers never wait for writers",
        "SQLITE_LOCKED": "another connection of the same process holds a lock on the table; "
                         "run the export when it is done",
        "SQLITE_INTERRUPT": "the statement ran longer than tuning.statement_timeout_s; raise "
                            "it or make the query cheaper (an index on the filter column)",
        "SQLITE_CANTOPEN": "check [source] path: the file must exist and be readable (a "
                           "database in WAL mode also needs its -shm file or a writable "
                           "directory)",
        "SQLITE_NOTADB": "[source] path is not a SQLite database file",
        "SQLITE_READONLY": "the source opens the database read-only; the query must not "
                           "write",
    },
)
"""How SQLite's failures are classified and worded."""


def wrap_error(exc: sqlite3.Error, label: str) -> SourceError:
    """A sqlite3 failure as a Rivet error: its message and its result code's name."""
    code = getattr(exc, "sqlite_errorname", None)
    return ERRORS.error(label, code, str(exc))
