"""Running whole exports at once: the bounded pool behind ``rivet run --parallel-exports N``.

:class:`ExportPool` starts N worker threads; each takes the next planned export in config
order and runs it whole (:func:`rivet_core.runner.lifecycle.run_export`), then the next one,
so exports start in config order, at most N at a time, and their results come back in
config order. An export that fails fails alone: its failure is its result.

**Overlap** (``overlap=True``; :func:`~rivet_core.runner.lifecycle.run_exports` asks for it
whenever a run has more exports than it runs at once, ``--parallel-exports 1`` included):
at most N exports *read* at once, on one more thread than N, and they take their turns to
read in config order (:class:`_Turns`). An export takes a reading slot before its first
statement on the source (:class:`_Slot`; what comes before, the lock, the journal and the
destination probe, never touches the source) and gives it back once it has read all it
will read, if that was little
(:meth:`~rivet_core.runner.export.ExportRun.read_finished`: at most 32 MiB of Arrow data,
no ``--reconcile``), else when it ends. So while a small export encodes its last row
group, commits its file, writes its manifest and records its run, the next one already
describes and reads, and the one after it prepares: the source still sees N exports'
statements at a time at most, and what the finishing export holds is small. Everything
else stays per export: its lock, its commit order, its state transactions, its result.

The main thread only waits. A stop signal (SIGTERM/SIGINT) reaches it alone, as
``KeyboardInterrupt``: it sets the invocation's stop event, which every writing thread
checks between batches, so each running export aborts its open files and is recorded as
failed ("interrupted"), and no further export starts. The main thread then waits up to
:data:`STOP_GRACE_S` for them; an export still running after that (a step that does not
check the event, such as a ``--reconcile`` count on the source) is reported as failed, and
the next run of that export records its run as abandoned.

What the running exports share is safe to share: the state store serialises its one
connection under a lock, the secret registry and the crash points have locks of their own,
``logging`` handlers lock each record, and progress goes through one
:class:`~rivet_core.runner.progress.ProgressBoard`. Everything else (sources, destination,
format, file writers, the result) belongs to one export.

Not here: what one export does (:mod:`rivet_core.runner.lifecycle`), how progress is drawn
(:mod:`rivet_core.runner.progress`), the limits on N (the config loader and the planner's
``parallel-connections`` rule).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs

from rivet_core.naming import new_run_id
from rivet_core.redact import redact
from rivet_core.runner.progress import ProgressBoard
from rivet_core.runner.results import ExportResult, RunContext
from rivet_core.state.store import utc_now

if TYPE_CHECKING:
    from rivet_core.plan import ExportPlan

log = logging.getLogger("rivet.runner")

STOP_GRACE_S = 30.0
"""How long, after a stop signal, the exports still running get to abort and record their
runs before the invocation reports them and ends."""


class RunOne(Protocol):
    """How the pool runs one export: :func:`rivet_core.runner.lifecycle.run_export`."""

    def __call__(self, plan: ExportPlan, ctx: RunContext, *, board: ProgressBoard | None,
                 started: Callable[[ExportResult], None] | None) -> ExportResult: ...


class ExportPool:
    """``workers`` threads running the ``plans`` whole, in config order of start."""

    def __init__(self, plans: Sequence[ExportPlan], ctx: RunContext, *, workers: int,
                 run_one: RunOne, overlap: bool = False) -> None:
        self.plans = list(plans)
        self.ctx = ctx
        self.workers = max(1, min(workers, len(self.plans)))
        self.run_one = run_one
        self.board = ProgressBoard(enabled=ctx.progress)
        self.overlap = overlap and len(self.plans) > self.workers
        """One more thread than ``workers``: an export that has read all it will read, and
        little, hands its reading slot on while it finishes (see the module)."""
        self._reading = _Turns(self.workers, ctx.stop)
        """The reading slots, taken in config order."""
        self._lock = threading.Lock()
        self._next = 0
        """The index of the next export to start."""
        self._results: list[ExportResult | None] = [None] * len(self.plans)
        """Each started export's result, at its config index (set as soon as its run
        exists, so an export that does not stop in time can still be reported)."""

    def run(self) -> list[ExportResult]:
        """Run every export (or, after a stop signal, those already started); their results
        in config order."""
        # Each worker sets its event as it ends. The main thread waits on those, not with
        # Thread.join: a KeyboardInterrupt landing in join() marks the joined thread as
        # stopped while it still runs (CPython 3.11, the bpo-45274 fix), and a later join
        # would then return at once.
        ended = [threading.Event() for _ in range(self.workers + self.overlap)]
        threads = [threading.Thread(target=self._worker, args=(done,),
                                    name=f"rivet-export-{i}", daemon=True)
                   for i, done in enumerate(ended)]
        try:
            try:
                for thread in threads:
                    thread.start()
                for done in ended:
                    done.wait()  # a signal interrupts the wait on the main thread
            except KeyboardInterrupt:
                self.ctx.stop.set()
                self._wait_for_the_stop(threads, ended)
        finally:
            self.board.close()
        return [result for result in self._results if result is not None]

    def _worker(self, ended: threading.Event) -> None:
        try:
            while True:
                with self._lock:
                    # Taken under the lock with the stop check: no export starts after a
                    # stop.
                    if self.ctx.stop.is_set() or self._next == len(self.plans):
                        return
                    index, self._next = self._next, self._next + 1
                self._run(index)
        finally:
            ended.set()

    def _run(self, index: int) -> None:
        plan = self.plans[index]
        slot = _Slot(self._reading, index)

        def started(result: ExportResult) -> None:
            self._results[index] = result

        ctx = (attrs.evolve(self.ctx, read_slot=slot.take, read_done=slot.give_back)
               if self.overlap else self.ctx)
        try:
            self._results[index] = self.run_one(plan, ctx, board=self.board,
                                                started=started)
        except Exception as exc:
            # run_export turns every failure into its result; this is a bug in it, and the
            # other exports go on.
            log.exception("export %s failed unexpectedly", plan.name)
            result = self._results[index] or ExportResult(
                export=plan.name, run_id=new_run_id(utc_now()), mode=plan.config.mode)
            result.status = "failed"
            result.error = redact(f"{type(exc).__name__}: {exc}")
            result.hint = "this is a bug in Rivet or a plugin; please report it"
            result.finished_at = result.finished_at or utc_now()
            self._results[index] = result
        finally:
            slot.give_back()

    def _wait_for_the_stop(self, threads: list[threading.Thread],
                           ended: list[threading.Event]) -> None:
        """After a stop signal: give the running exports :data:`STOP_GRACE_S` to abort their
        files and record their runs; report those that did not as failed."""
        deadline = time.monotonic() + STOP_GRACE_S
        for thread, done in zip(threads, ended, strict=True):
            # A thread without an id has not reached its first claim, and the stop event,
            # set before this check, keeps it from making one.
            if thread.ident is not None:
                done.wait(max(0.0, deadline - time.monotonic()))
        for result in self._results:
            if result is not None and result.finished_at is None:
                log.error("export %s had not stopped %.0f s after the signal; leaving it",
                          result.export, STOP_GRACE_S)
                result.status = "failed"
                result.error = (f"interrupted by a signal; the export had not stopped "
                                f"{STOP_GRACE_S:.0f} s later, so its run was left unfinished")
                result.hint = ("the next run of this export records the run as abandoned; "
                               "`rivet validate` shows whether its destination holds a "
                               "file it did not record")
                result.finished_at = utc_now()


class _Turns:
    """The reading slots of a run, handed out in config order: export ``i`` reads only
    once every export before it has taken its slot (or ended without reading), so a later
    export whose preparation was quicker never reads ahead of an earlier one."""

    def __init__(self, slots: int, stop: threading.Event) -> None:
        self._free = slots
        self._turn = 0
        """The config index of the next export allowed to take a slot."""
        self._passed: set[int] = set()
        """Exports after the turn that ended without reading: the turn skips them."""
        self._stop = stop
        self._cond = threading.Condition()

    def take(self, index: int) -> None:
        with self._cond:
            while not (self._turn == index and self._free > 0):
                if self._stop.is_set():
                    raise KeyboardInterrupt
                self._cond.wait(0.1)
            self._free -= 1
            self._advance(index + 1)

    def give_back(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    def pass_turn(self, index: int) -> None:
        """Export ``index`` ends without having read."""
        with self._cond:
            if self._turn == index:
                self._advance(index + 1)
            elif self._turn < index:
                self._passed.add(index)
            self._cond.notify_all()

    def _advance(self, turn: int) -> None:
        while turn in self._passed:
            self._passed.discard(turn)
            turn += 1
        self._turn = turn
        self._cond.notify_all()


class _Slot:
    """One export's claim on a reading slot: taken before its first statement on the
    source (:meth:`take`, waiting for its turn and a free slot), given back once
    (:meth:`give_back`: when its reading is done, or when it ends). An export that never
    reads passes its turn."""

    def __init__(self, turns: _Turns, index: int) -> None:
        self._turns = turns
        self._index = index
        self._lock = threading.Lock()
        self._held = False
        self._done = False

    def take(self) -> None:
        """Wait for this export's turn and a slot, unless it holds one or has given it back
        (a statement after its reading is done, rare, does not wait). A stop signal while
        waiting ends the export as interrupted."""
        with self._lock:
            if self._held or self._done:
                return
            self._turns.take(self._index)
            self._held = True

    def give_back(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            held, self._held = self._held, False
        if held:
            self._turns.give_back()
        else:
            self._turns.pass_turn(self._index)
