"""Sources kept open between the exports of one run, so a schema of many small tables
connects once, not once per export.

:func:`~rivet_core.runner.lifecycle.run_exports` holds a :class:`SourcePool` for the
invocation. An export takes a source from it (an idle one built from the same ``[source]``
settings, else a new one) and gives it back when its read is done. What makes that safe:

- **Only a clean source goes back.** Giving back asks the source to reset its session
  (:class:`SupportsReuse`): it must be between reads (no stream open, no transaction), and
  it then discards everything the export's statements may have changed in the session
  (PostgreSQL ``DISCARD ALL``, MySQL ``COM_RESET_CONNECTION``) and what it cached about the
  connection. A source that cannot say so, or whose reset fails, is closed.
- **A failure never comes back.** After an error the runner closes the source instead of
  giving it back (:meth:`SourcePool.discard`), so a connection in an unknown state never
  serves the next export.
- **Each export still reads in its own transaction with its own settings.** The pool hands
  out sources, not transactions: every read begins its own read-only transaction with the
  export's own timeouts, as it does on a fresh connection.

At most ``limit`` idle sources are kept (one per export running at once): the others are
closed as they come back. The pool is closed at the end of the run.

Not here: when an export takes and gives back (:mod:`rivet_core.runner.export`,
:mod:`rivet_core.runner.unit`), a source's reset itself (the source plugins).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from rivet_core.backends import Source
from rivet_core.runner.timings import phase

log = logging.getLogger("rivet.runner")


@runtime_checkable
class SupportsReuse(Protocol):
    """A source that can serve several exports of one run, one after another (every
    :class:`~rivet_core.sources.SqlSource` is one; whether it accepts depends on its
    plugin's :meth:`~rivet_core.sources.SqlSource.reset_connection`)."""

    def reset_session(self) -> bool:
        """Make the source ready for another export: it is between reads, and every
        session state the last export's statements may have set is gone. True when it is
        ready; False (or an exception) when it is not, and it is then closed."""


class SourcePool:
    """Idle sources of one run, by the ``[source]`` settings they were built from."""

    def __init__(self, *, limit: int = 1) -> None:
        self.limit = max(0, limit)
        self._idle: list[tuple[Any, Source]] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self, key: Any, build: Callable[[], Source]) -> tuple[Source, bool]:
        """An idle source built for ``key`` (the settings object), else ``build()``; and
        whether it was an idle one."""
        with self._lock:
            for i, (owner, source) in enumerate(self._idle):
                if owner is key:
                    del self._idle[i]
                    return source, True
        return build(), False

    def give_back(self, key: Any, source: Source) -> None:
        """``source`` is done with: kept for the next export when it resets cleanly and
        there is room, else closed."""
        with self._lock:
            room = not self._closed and len(self._idle) < self.limit
        if room and self._reset(source):
            with self._lock:
                if not self._closed and len(self._idle) < self.limit:
                    self._idle.append((key, source))
                    return
        self.discard(source)

    def discard(self, source: Source) -> None:
        """Close ``source`` (after a failure: it never serves another export)."""
        try:
            source.close()
        except Exception:  # a connection being thrown away; nothing depends on it
            log.debug("closing a source failed", exc_info=True)

    def close(self) -> None:
        """Close every idle source; later give-backs close theirs."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for _, source in idle:
            self.discard(source)

    @staticmethod
    def _reset(source: Source) -> bool:
        if not isinstance(source, SupportsReuse):
            return False
        try:
            with phase("connect"):
                return bool(source.reset_session())
        except Exception:
            log.debug("source reset failed; it is closed", exc_info=True)
            return False


__all__ = ["SourcePool", "SupportsReuse"]
