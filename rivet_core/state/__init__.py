"""Durable state: runs, the file manifest, and (later) cursors, chunks and the journal.

:class:`StateStore` is the interface the runner uses; :class:`SqliteStateStore` is the
default backend (``.rivet_state.db`` beside the config).
"""

from __future__ import annotations

from rivet_core.state.store import FileRecord, RunRecord, SqliteStateStore, StateStore, open_store

__all__ = ["FileRecord", "RunRecord", "SqliteStateStore", "StateStore", "open_store"]
