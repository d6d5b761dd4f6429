"""The state store interface: what the runner and the ``rivet state`` commands may ask of any
backend. :class:`StateStore` reads and opens transactions; :class:`StateTx` is every write,
each inside one open transaction.

Two backends implement it: SQLite (:mod:`rivet_core.state.store`, one file beside the config)
and PostgreSQL (:mod:`rivet_core.state.postgres`, one schema shared by many machines). Both
pass the same conformance suite (``tests/conformance/test_state_store.py``). Not here: SQL
(:mod:`rivet_core.state.sql`), which backend a project uses (:mod:`rivet_core.state.backend`).

The guarantees every backend gives:

- a transaction is all or nothing: a block that raises leaves no trace of its writes, and a
  committed one is durable before :meth:`StateStore.transaction` returns;
- a run lock (:meth:`StateTx.acquire_lock`) is held by exactly one live process at a time,
  on whatever machine, and is free again once that process is gone;
- a chunk is handed to one claimant at a time (:meth:`StateTx.claim_chunk`), however many
  processes claim from the same chunk run at once.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Collection, Iterable, Iterator
from types import TracebackType
from typing import Any, ClassVar

from rivet_core.errors import StateError
from rivet_core.state.records import (
    ChunkRun,
    ChunkTask,
    CursorRecord,
    FileRecord,
    JournalEvent,
    LockRecord,
    RunRecord,
)


class StateNotFound(StateError):
    """There is no state store where one was to be read, and none was to be created."""


class StateTx(abc.ABC):
    """The write operations, all inside one open transaction."""

    # ----------------------------------------------------------------- files and runs

    @abc.abstractmethod
    def record_file(self, record: FileRecord) -> None:
        """A committed file enters the manifest (after the destination committed it)."""

    @abc.abstractmethod
    def record_run(self, record: RunRecord) -> None:
        """A finished run's metrics: the last state write of a run (replaces an earlier
        record of the same run id)."""

    @abc.abstractmethod
    def journal(self, run_id: str, export_name: str, event: str, **data: Any) -> None:
        """Append one event to the journal; ``data`` is stored as redacted JSON."""

    @abc.abstractmethod
    def record_schema(self, export_name: str, run_id: str, columns: list[dict[str, Any]],
                      widths: dict[str, int]) -> None:
        """The schema (and text widths) of the export's latest successful run: what the
        next run's drift check compares with."""

    # ---------------------------------------------------------------------- cursors

    @abc.abstractmethod
    def set_cursor(self, export_name: str, value: str, run_id: str) -> None:
        """Store the export's incremental cursor (typed JSON)."""

    @abc.abstractmethod
    def reset_cursor(self, export_name: str) -> bool:
        """Forget the export's cursor; whether there was one."""

    # -------------------------------------------------------------- chunk checkpoints

    @abc.abstractmethod
    def create_chunk_run(self, run: ChunkRun, tasks: list[ChunkTask]) -> None:
        """Record a chunk run and its tasks, every task ``pending`` with no attempts."""

    @abc.abstractmethod
    def claim_chunk(self, run_id: str, max_attempts: int,
                    skip: Collection[int] = ()) -> ChunkTask | None:
        """Move the first claimable task (pending, or failed with attempts left, and not in
        ``skip``) to running, counting the attempt; None when none is left. Concurrent
        claimants never get the same task."""

    @abc.abstractmethod
    def claim_chunk_at(self, run_id: str, idx: int, max_attempts: int) -> ChunkTask | None:
        """Move task ``idx`` to running, counting the attempt, if it is pending, or failed
        or running with fewer than ``max_attempts`` attempts; None otherwise (completed, or
        out of attempts). Taking over a *running* task is for a queue that hands a chunk
        again only once the worker that held it is gone (``rivet worker``)."""

    @abc.abstractmethod
    def lock_chunk_run(self, run_id: str) -> str | None:
        """Lock the chunk run's record until this transaction ends, so concurrent callers
        take turns; its status, or None if there is no such run."""

    @abc.abstractmethod
    def complete_chunk(self, run_id: str, idx: int, *, rows: int, files: int,
                       bytes_: int) -> None:
        """Mark a running task completed; :class:`StateError` if it is not running any more
        (its state was changed by someone other than the run)."""

    @abc.abstractmethod
    def replace_chunk_files(self, export_name: str, run_id: str, idx: int,
                            records: list[FileRecord], *, rows: int) -> None:
        """``rivet repair``: a completed chunk's file records become ``records``, and its
        task's totals theirs."""

    @abc.abstractmethod
    def fail_chunk(self, run_id: str, idx: int, error: str) -> None:
        """Mark a running task failed with the (redacted) error."""

    @abc.abstractmethod
    def reopen_tasks(self, run_id: str) -> int:
        """For a resume: tasks left running by a dead process, and failed ones, go back to
        pending (completed tasks never move). Attempts are kept as history. Returns how
        many moved."""

    @abc.abstractmethod
    def finish_chunk_run(self, run_id: str, planned: int) -> None:
        """Mark a chunk run completed; :class:`StateError` unless its ``planned`` tasks are
        all there and all completed."""

    @abc.abstractmethod
    def delete_chunk_runs(self, export_name: str) -> int:
        """Remove the export's chunk runs and their tasks; how many runs."""

    # ------------------------------------------------------------------------- locks

    @abc.abstractmethod
    def live_lock(self, export_name: str) -> LockRecord | None:
        """The export's run lock if a process that is alive holds it (as far as the backend
        can tell: see :attr:`StateStore.sees_remote_holders`)."""

    @abc.abstractmethod
    def acquire_lock(self, export_name: str, run_id: str) -> LockRecord | None:
        """Take the export's run lock for ``run_id``; returns the current holder instead
        if a live process has it. A lock whose holder is gone is taken over. If the
        transaction rolls back, the lock is not held."""

    @abc.abstractmethod
    def release_lock(self, export_name: str, run_id: str) -> None:
        """Give up (or, for a holder that is gone, remove) the lock ``run_id`` holds; it is
        free once the transaction commits."""

    def refuse_while_running(self, export_name: str) -> None:
        """Raise :class:`StateError` if a live run holds the export: only that run may
        change the export's cursor and chunk state while it runs."""
        holder = self.live_lock(export_name)
        if holder is not None:
            raise StateError(
                f"export {export_name!r} is running (run {holder.run_id}, pid {holder.pid} "
                f"on {holder.host}, since {holder.acquired_at}); its state cannot change "
                "until that run ends",
                hint="wait for the run to finish, or stop it first (SIGTERM lets it abort "
                     "its open files)")

    # ---------------------------------------------------------------- whole-store copy

    @abc.abstractmethod
    def load(self, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
        """Insert rows as :meth:`StateStore.dump` yields them (columns of
        :data:`~rivet_core.state.records.STATE_TABLES`, ids kept); how many."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Delete every row of every table (``rivet state migrate --force``)."""


class StateStore(abc.ABC):
    """Durable state. The runner and the CLI use only the methods here and those of
    :class:`StateTx`. Every backend failure surfaces as a
    :class:`~rivet_core.errors.StateError` naming the store (its password masked) with a
    hint; the transaction it interrupted is rolled back. One store may be shared by the
    threads of a parallel export: its methods are thread-safe."""

    backend: ClassVar[str]
    """``"sqlite"`` or ``"postgresql"``."""
    sees_remote_holders: ClassVar[bool]
    """Whether :meth:`StateTx.live_lock` knows if a holder on another host is alive. SQLite
    cannot (it asks the local process table), so a lock of another host counts as live
    until an operator removes it; PostgreSQL can (the holder's session holds it)."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the state lives, fit to print: a file path, or a URL with the password
        masked and the schema."""

    @property
    @abc.abstractmethod
    def schema_version(self) -> int:
        """The version of the backend's own migrations the store is at."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[StateTx]:
        """A transaction: committed when the block ends, rolled back if it raises."""

    # -------------------------------------------------------------------------- reads

    @abc.abstractmethod
    def files(self, export_name: str | None = None, *, run_id: str | None = None,
              limit: int = 50) -> list[FileRecord]:
        """The newest ``limit`` file records (newest first)."""

    @abc.abstractmethod
    def runs(self, export_name: str | None = None, *, limit: int = 20) -> list[RunRecord]:
        """The newest ``limit`` run records by start time (newest first)."""

    @abc.abstractmethod
    def cursor(self, export_name: str) -> CursorRecord | None:
        """The export's stored cursor."""

    @abc.abstractmethod
    def cursors(self) -> list[CursorRecord]:
        """Every stored cursor, by export name."""

    @abc.abstractmethod
    def export_schema(self, export_name: str
                      ) -> tuple[str, list[dict[str, Any]], dict[str, int]] | None:
        """``(run_id, columns, widths)`` of the export's latest successful run, or None."""

    @abc.abstractmethod
    def chunk_run(self, export_name: str, *, status: str | None = None,
                  run_id: str | None = None) -> ChunkRun | None:
        """The export's latest chunk run (optionally only one with ``status``, or the one
        ``run_id`` names)."""

    @abc.abstractmethod
    def chunk_tasks(self, run_id: str) -> list[ChunkTask]:
        """The tasks of a chunk run, by index."""

    @abc.abstractmethod
    def journal(self, *, export_name: str | None = None, run_id: str | None = None,
                limit: int = 1000) -> list[JournalEvent]:
        """The last ``limit`` journal events, oldest first."""

    @abc.abstractmethod
    def unfinished_runs(self, export_name: str) -> list[str]:
        """Runs that journaled a start but never recorded their metric (the process died)."""

    @abc.abstractmethod
    def lock(self, export_name: str) -> LockRecord | None:
        """The export's recorded lock, whether or not its holder is alive."""

    # ---------------------------------------------------------------- whole-store copy

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Rows per table of :data:`~rivet_core.state.records.STATE_TABLES`."""

    @abc.abstractmethod
    def dump(self, table: str) -> Iterator[tuple[Any, ...]]:
        """Every row of ``table``, in insertion order, as :meth:`StateTx.load` takes them."""

    # ---------------------------------------------------------------------- lifecycle

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection(s). A run lock ends with its release, or with the process
        that holds it (PostgreSQL: also with this store's connection)."""

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
