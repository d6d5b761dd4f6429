"""The base of SQL sources: connection settings, one reused connection, one read at a time.

A database source subclasses :class:`SqlSource`, names its URL scheme and default port, and
implements how to connect, how to tell a live connection, and the reads
(:meth:`~rivet_core.backends.Source.describe`, :meth:`~rivet_core.backends.Source.read`,
and :meth:`~rivet_core.backends.Source.fetch_rows` when the driver cannot type expression
columns). Settings are resolved on first use, so building a source touches nothing; every
message shows the connection without its password. A source whose plugin can reset a
connection's session (:meth:`SqlSource.reset_connection`) serves several exports of one run
(:meth:`SqlSource.reset_session`, :mod:`rivet_core.runner.sourcepool`).
"""

from __future__ import annotations

import abc
import contextlib
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from rivet_core.backends import BatchStream, Source
from rivet_core.config.connection import ConnectionConfig, ConnectionParams
from rivet_core.errors import SourceError
from rivet_core.redact import redact
from rivet_core.runner import timings
from rivet_core.sources.connection import ConnectionSlot

C = TypeVar("C")


class SqlSource(Source, Generic[C]):
    """A source reading one database over connections of type ``C``.

    ``config`` is the plugin's ``config_cls`` instance. When it holds the shared connection
    keys (a :class:`~rivet_core.config.connection.ConnectionConfig` subclass),
    :meth:`connection_params` resolves them and :meth:`display_name` shows them without
    the password; a source configured otherwise (a file path) overrides
    :meth:`display_name` and never calls :meth:`connection_params`."""

    kind: ClassVar[str]
    """The source's ``type`` name, for messages (``"postgres"``)."""
    scheme: ClassVar[str] = ""
    """URL scheme of :meth:`display_name` (``"postgresql"``)."""
    default_port: ClassVar[int] = 0

    def __init__(self, config: Any, *, config_dir: Path) -> None:
        self.config = config
        self.config_dir = config_dir
        self._params: ConnectionParams | None = None
        self.slot: ConnectionSlot[C] = ConnectionSlot(
            self.connect, alive=self.connection_alive, close=self.close_connection,
            on_discard=self.forget_connection)
        self.active: BatchStream | None = None
        """The stream of the read in progress, if any."""

    # ------------------------------------------------------------------ to implement

    @abc.abstractmethod
    def connect(self) -> C:
        """A new connection, or the source's error (use :meth:`connection_params`)."""

    @abc.abstractmethod
    def connection_alive(self, conn: C) -> bool:
        """Whether ``conn`` can still run a statement (not closed, not broken)."""

    @abc.abstractmethod
    def close_connection(self, conn: C) -> None:
        """Close ``conn`` (failures may raise: the caller ignores them)."""

    def forget_connection(self) -> None:
        """The connection was discarded: drop what was cached about it."""

    def reset_connection(self, conn: C) -> bool:
        """Make ``conn``, idle between reads, fit for another export of the run: end
        whatever session state a read's statements may have left (settings, variables,
        temporary objects) and forget what was cached about it. True when done; False (the
        default: a source that does not know how) closes the source instead of keeping it.
        Failures may raise: the source is then closed."""
        return False

    @staticmethod
    def phase(name: str) -> contextlib.AbstractContextManager[None]:
        """Time the block as phase ``name`` of the export being read (``rivet run
        --timings``: ``connect``, ``describe``, ``read``); nothing when timings are off."""
        return timings.phase(name)

    # ------------------------------------------------------------------ settings

    def connection_params(self) -> ConnectionParams:
        """The resolved connection settings (env vars and files read once); a bad setting is
        a :class:`~rivet_core.errors.SourceError` without the password."""
        if self._params is None:
            if not isinstance(self.config, ConnectionConfig):
                raise TypeError(f"{type(self).__name__}: connection_params() needs a config "
                                "holding the shared connection keys (ConnectionConfig)")
            try:
                params = self.config.resolve(self.config_dir, default_port=self.default_port)
            except (ValueError, KeyError, OSError) as exc:
                raise SourceError(redact(f"{self.kind} source: bad connection settings: "
                                         f"{exc}"),
                                  hint="run `rivet check` to see every config problem") from None
            self.check_params(params)
            self._params = params
        return self._params

    def check_params(self, params: ConnectionParams) -> None:
        """Refuse settings the driver cannot honour (raise a SourceError)."""

    def display_name(self) -> str:
        try:
            return self.connection_params().safe_url(self.scheme)
        except SourceError:
            return f"{self.scheme} (connection settings unresolved)"

    # ------------------------------------------------------------------ reads

    def begin_read(self) -> None:
        """Refuse a read, describe or small statement while a stream is open: the source
        has one connection, and a second statement would end the first read's
        transaction."""
        if self.active is not None:
            raise RuntimeError(f"{self.kind} source: a previous read is still open; close "
                               "its stream before starting another")

    def stream_started(self, stream: BatchStream) -> None:
        self.active = stream

    def stream_ended(self, stream: BatchStream) -> None:
        if self.active is stream:
            self.active = None

    def reset_session(self) -> bool:
        """Ready for another export of the run (:mod:`rivet_core.runner.sourcepool`): no
        read open, and the connection, if there is a live one, reset
        (:meth:`reset_connection`)."""
        if self.active is not None:
            return False
        conn = self.slot.current
        if conn is None:
            return True
        if not self.connection_alive(conn):
            self.slot.discard()
            return True
        return self.reset_connection(conn)

    def close(self) -> None:
        if self.active is not None:
            self.active.close()
            self.active = None
        self.slot.discard()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.display_name()}>"
