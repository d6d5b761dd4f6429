"""Durable state: runs, the file manifest, cursors, chunk checkpoints, the journal, locks.

:class:`StateStore` is the interface the runner and the ``rivet state`` commands use; writes
go through :meth:`StateStore.transaction`, which yields a :class:`StateTx`. Two backends
implement it: SQLite (``.rivet_state.db`` beside the config, the default) and PostgreSQL
(``[state] url`` or ``RIVET_STATE_URL``, shared by many machines). :func:`open_store` opens
the one a project uses.

Modules: :mod:`~rivet_core.state.records` (the records and tables),
:mod:`~rivet_core.state.base` (the interface), :mod:`~rivet_core.state.sql` (the SQL both
backends share), :mod:`~rivet_core.state.store` (SQLite), :mod:`~rivet_core.state.postgres`
(PostgreSQL, imported only when used), :mod:`~rivet_core.state.migrations` (both schemas),
:mod:`~rivet_core.state.backend` (choosing and opening one), :mod:`~rivet_core.state.copy`
(``rivet state migrate``).
"""

from __future__ import annotations

from rivet_core.state.backend import (
    STATE_URL_ENV,
    StateLocation,
    open_existing_store,
    open_location,
    open_store,
    resolve_location,
)
from rivet_core.state.base import StateNotFound, StateStore, StateTx
from rivet_core.state.records import (
    ChunkRun,
    ChunkTask,
    CursorRecord,
    FileRecord,
    JournalEvent,
    LockRecord,
    RunRecord,
)
from rivet_core.state.store import STATE_FILE, SQLiteStateStore

__all__ = [
    "STATE_FILE",
    "STATE_URL_ENV",
    "ChunkRun",
    "ChunkTask",
    "CursorRecord",
    "FileRecord",
    "JournalEvent",
    "LockRecord",
    "RunRecord",
    "SQLiteStateStore",
    "StateLocation",
    "StateNotFound",
    "StateStore",
    "StateTx",
    "open_existing_store",
    "open_location",
    "open_store",
    "resolve_location",
]
