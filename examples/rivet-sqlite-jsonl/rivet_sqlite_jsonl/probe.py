"""The zero-row probe: each result column's name and declared type, without running the
statement.

``cursor.description`` in Python's sqlite3 holds names only. SQLite knows the declared type
of every result column that is a plain column reference (``sqlite3_column_decltype``),
which Python does not expose; a view does: ``pragma_table_info`` of a view lists its
columns with those declared types. So the probe creates a TEMP VIEW over the statement,
reads its ``pragma_table_info`` and drops it. A temp view lives in the connection's temp
schema, kept in memory (``PRAGMA temp_store = MEMORY``): nothing is written to the
database file, which is opened read-only anyway. Creating a view prepares the statement
but runs none of it.

SQLite refuses bound parameters in a view. The view only needs the result's shape, so every
``?`` becomes ``NULL`` (:func:`without_parameters`), which changes no declared type.
"""

from __future__ import annotations

import re
import sqlite3

PROBE_VIEW = "_rivet_probe"

_LEXEME = re.compile(r"""
      '(?:[^']|'')*'?          # a string literal ('' is a quote inside it)
    | "(?:[^"]|"")*"?          # a quoted identifier
    | `(?:[^`]|``)*`?          # a MySQL-style quoted identifier
    | \[[^\]]*\]?              # an MS Access-style quoted identifier
    | --[^\n]*                 # a line comment
    | /\*.*?(?:\*/|\Z)         # a block comment (SQLite lets the last one run to the end)
    | \?\d*                    # a parameter: ? or ?NNN
""", re.VERBOSE | re.DOTALL)


def without_parameters(sql: str) -> str:
    """``sql`` with every ``?`` parameter replaced by ``NULL``; a ``?`` inside a literal, a
    quoted name or a comment is left alone."""
    return _LEXEME.sub(lambda m: "NULL" if m.group().startswith("?") else m.group(), sql)


def declared_columns(conn: sqlite3.Connection, sql: str) -> list[tuple[str, str]]:
    """``(name, declared type)`` of each result column of ``sql`` (``""`` for an
    expression), in order. Raises ``sqlite3.Error`` for a statement SQLite cannot
    prepare, or one that is not a query."""
    conn.execute(f'CREATE TEMP VIEW "{PROBE_VIEW}" AS {without_parameters(sql)}')
    try:
        rows = conn.execute("SELECT name, type FROM temp.pragma_table_info(?)",
                            (PROBE_VIEW,)).fetchall()
    finally:
        conn.execute(f'DROP VIEW temp."{PROBE_VIEW}"')
    return [(str(name), str(declared)) for name, declared in rows]
