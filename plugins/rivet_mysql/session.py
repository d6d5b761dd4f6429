"""The session a pymysql read runs in, and how it is left as it was found.

Steps 1-3 and 5 of a read on the source's own connection:

1. ``SELECT @@session.time_zone, @@session.<timeout>, @@session.lock_wait_timeout,
   @@session.innodb_lock_wait_timeout``: the session values Rivet is about to change
   (:meth:`Session.save`). ``<timeout>`` is ``max_statement_time`` (seconds) on MariaDB and
   ``max_execution_time`` (milliseconds) on MySQL, chosen from the server's version string.
2. ``SET SESSION time_zone = '+00:00'`` plus, when configured, the statement timeout and
   ``lock_wait_timeout`` / ``innodb_lock_wait_timeout`` (whole seconds, at least 1). The
   zone makes ``TIMESTAMP`` text UTC whatever the server's or the session's zone.
3. ``START TRANSACTION READ ONLY``: a query that writes fails. No ``WITH CONSISTENT
   SNAPSHOT``: the read is one statement, and one statement reads one snapshot anyway
   (2 and 3 are :meth:`Session.start`).
5. ``COMMIT`` (or ``ROLLBACK`` after a server error), then ``SET SESSION`` of the values
   saved in step 1 (:meth:`Session.end`).

The ConnectorX path runs steps 2-3 on its own connections (:meth:`Session.settings`), which
end with the read, so nothing needs restoring there. Not here: the query (step 4), which
connection, and what happens when a step fails (:mod:`.source`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pymysql.connections import Connection

from rivet_core.api import ReadOptions
from rivet_mysql import driver

SESSION_ZONE = "+00:00"


class Session:
    """The session values a read changes, and the statements that set and restore them."""

    def __init__(self, mariadb: bool, options: ReadOptions) -> None:
        self.timeout_var = "max_statement_time" if mariadb else "max_execution_time"
        self.names = ["time_zone"]
        self.values: list[Any] = [SESSION_ZONE]
        if options.statement_timeout_s > 0:
            self.names.append(self.timeout_var)
            self.values.append(options.statement_timeout_s if mariadb
                               else max(1, round(options.statement_timeout_s * 1000)))
        if options.lock_timeout_s > 0:
            seconds = max(1, math.ceil(options.lock_timeout_s))
            self.names += ["lock_wait_timeout", "innodb_lock_wait_timeout"]
            self.values += [seconds, seconds]
        self.saved: list[Any] | None = None

    def settings(self) -> list[tuple[str, Any]]:
        """The variables the read sets, with their values."""
        return list(zip(self.names, self.values, strict=True))

    def save_sql(self) -> str:
        return "SELECT " + ", ".join(f"@@session.{name}" for name in self.names)

    def remember(self, row: Sequence[Any]) -> None:
        saved: list[Any] = []
        for name, value in zip(self.names, row, strict=True):
            text = value.decode() if isinstance(value, bytes) else str(value)
            if name == "time_zone":
                saved.append(text)
            elif name == "max_statement_time":
                saved.append(float(text))
            else:
                saved.append(int(float(text)))
        self.saved = saved

    def set_sql(self, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        # Variable names are ours, values are bound: SET takes expressions.
        return ("SET " + ", ".join(f"SESSION {name} = %s" for name in self.names),
                tuple(values))

    def save(self, conn: Connection[Any]) -> None:
        """Step 1 on ``conn``."""
        row = driver.execute(conn, self.save_sql())
        assert row is not None
        self.remember(row)

    def start(self, conn: Connection[Any]) -> None:
        """Steps 2-3 on ``conn``."""
        driver.execute(conn, *self.set_sql(self.values))
        driver.execute(conn, "START TRANSACTION READ ONLY")

    def end(self, conn: Connection[Any], *, commit: bool) -> None:
        """Step 5 on ``conn``."""
        driver.execute(conn, "COMMIT" if commit else "ROLLBACK")
        if self.saved is not None:
            driver.execute(conn, *self.set_sql(self.saved))


__all__ = ["SESSION_ZONE", "Session"]
