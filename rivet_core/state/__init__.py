"""Durable state: runs, the file manifest, cursors, chunk checkpoints, the journal, locks.

:class:`StateStore` (SQLite, ``.rivet_state.db`` beside the config) is what the runner and
the ``rivet state`` commands use; writes go through :meth:`StateStore.transaction`.
"""

from __future__ import annotations

from rivet_core.state.store import (
    ChunkRun,
    ChunkTask,
    CursorRecord,
    FileRecord,
    JournalEvent,
    LockRecord,
    RunRecord,
    StateStore,
    StateTx,
    open_store,
)

__all__ = [
    "ChunkRun",
    "ChunkTask",
    "CursorRecord",
    "FileRecord",
    "JournalEvent",
    "LockRecord",
    "RunRecord",
    "StateStore",
    "StateTx",
    "open_store",
]
