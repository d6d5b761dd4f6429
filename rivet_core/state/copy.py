"""``rivet state migrate``: copy every record of one state store into another, whatever their
backends, through the :class:`~rivet_core.state.base.StateStore` interface alone.

The copy is one transaction on each side: the source's is held while it is read (a SQLite
source is then locked against runs starting), the target's commits everything or nothing.
Ids, times and JSON travel as stored, so the manifest, the journal and every cursor read back
the same. Run locks are not copied: they belong to the processes of the source.
"""

from __future__ import annotations

from rivet_core.errors import StateError
from rivet_core.state.base import StateStore, StateTx
from rivet_core.state.records import COPIED_TABLES


def _live_locks(store: StateStore, tx: StateTx) -> list[str]:
    return [row[0] for row in store.dump("locks") if tx.live_lock(row[0]) is not None]


def copy_state(source: StateStore, target: StateStore, *, force: bool = False
               ) -> dict[str, int]:
    """Copy every record of ``source`` into ``target``; the rows copied per table.

    Refused while a run holds a lock in either store, and when ``target`` holds any record
    unless ``force``, which replaces what it holds."""
    with source.transaction() as read, target.transaction() as write:
        for store, tx in ((source, read), (target, write)):
            running = _live_locks(store, tx)
            if running:
                raise StateError(
                    f"state database {store.location}: export(s) {', '.join(running)} are "
                    "running; their state must not change while they run",
                    hint="wait for the runs to finish (or stop them), then migrate")
        held = {table: n for table, n in target.counts().items() if n}
        if held and not force:
            raise StateError(
                f"state database {target.location} is not empty ("
                + ", ".join(f"{n} {table}" for table, n in held.items()) + ")",
                hint="migrate into an empty schema (`[state] schema`), or pass --force to "
                     "replace what it holds")
        if held:
            write.clear()
        copied = {table: write.load(table, source.dump(table)) for table in COPIED_TABLES}
        landed = target.counts()
        short = [t for t in COPIED_TABLES if landed[t] != copied[t]]
        if short:
            raise StateError(f"state database {target.location}: the copy of "
                             f"{', '.join(short)} did not land whole; nothing was copied")
    return copied
