"""One reused database connection: opened on first use, replaced when found dead.

A source keeps one connection between reads (connecting costs round trips and, on a busy
server, a backend), and, reset, between the exports of a run
(:meth:`~rivet_core.sources.SqlSource.reset_session`). A connection can die while idle
(server restart, idle timeout, a pooler dropping it); :meth:`ConnectionSlot.first_use`
notices on the first statement of a read and replaces it once, which cannot repeat work
because nothing of the read has run yet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from rivet_core.runner.timings import phase

C = TypeVar("C")
T = TypeVar("T")


class ConnectionSlot(Generic[C]):
    """Holds at most one connection of a source.

    ``connect`` opens a new one (raising the source's own error), ``alive`` tells whether
    one is still usable (not closed, not broken), ``close`` closes one (its failures are
    ignored: the connection is being thrown away), and ``on_discard`` forgets what the
    source cached about the connection (type OIDs, session facts)."""

    def __init__(self, connect: Callable[[], C], *, alive: Callable[[C], bool],
                 close: Callable[[C], object],
                 on_discard: Callable[[], object] | None = None) -> None:
        self._connect = connect
        self._alive = alive
        self._close = close
        self._on_discard = on_discard
        self.current: C | None = None

    def adopt(self, conn: C | None) -> None:
        """Hold ``conn`` (one kept elsewhere, e.g. a pool's) as if it had been reused."""
        self.current = conn

    def get(self) -> C:
        """The connection, opened now if there is none or the one held is dead."""
        if self.current is not None and not self._alive(self.current):
            self.discard()
        if self.current is None:
            with phase("connect"):
                self.current = self._connect()
        return self.current

    def discard(self) -> None:
        """Close and forget the connection (no-op without one)."""
        conn, self.current = self.current, None
        if conn is not None:
            with contextlib.suppress(Exception):
                self._close(conn)
        if self._on_discard is not None:
            self._on_discard()

    def first_use(self, action: Callable[[C], T], *,
                  lost: tuple[type[BaseException], ...]) -> T:
        """Run the first statement of a read. If a *reused* connection fails with one of
        ``lost`` and is dead afterwards, it died while idle: replace it and run ``action``
        once more. A fresh connection's failure, or one that leaves the connection alive (a
        syntax error, a permission), is raised."""
        reused = self.current is not None and self._alive(self.current)
        conn = self.get()
        try:
            return action(conn)
        except lost:
            if not reused or self._alive(conn):
                raise
        self.discard()
        return action(self.get())
