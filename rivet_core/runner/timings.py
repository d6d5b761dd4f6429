"""Where the time of a run goes: the recorder behind ``rivet run --timings``.

A run's time is split into **phases**. The invocation has its own (``startup``, ``config``,
``plan``, ``state``, ``exports``, ``report``); each export has the phases of
:data:`EXPORT_PHASES` (connecting, describing the query, reading, encoding, committing
files, the state store, the destination probe, the run manifest), and ``other`` for the
rest of its wall time.

A phase is a context manager, :func:`phase`, timed on the monotonic clock. It is recorded
into the recorder *attached to the current thread* (:func:`attach`): the invocation's on the
main thread, an export's on the thread that runs it (``--parallel-exports`` runs several at
once, each on its own thread) and on the worker threads of a chunked export. Phases nest:
a connect that happens inside a read is counted as ``connect`` and not also as ``read``
(each phase's time is its own, exclusive of the phases inside it), so on one thread the
phases of an export add up to its wall time. Work a source does on threads of its own (it
reads ahead while the export encodes) is seen by the export as the time it waited for
rows: ``read``.

Off (no ``--timings``, no ``-vv``) nothing is attached, and :func:`phase` returns one shared
do-nothing context manager after a single thread-local lookup.

Not here: printing the timings (:mod:`rivet_core.cli.run_cmd`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rivet_core.state.store import StateStore, StateTx

EXPORT_PHASES = ("connect", "describe", "probe", "read", "encode", "commit", "state",
                 "manifest")
"""An export's phases, in the order they are shown; the rest of its wall time is
``other``."""

RUN_PHASES = ("startup", "config", "plan", "state", "exports", "report")
"""The invocation's phases, in the order they are shown."""

_local = threading.local()


class Recorder:
    """The phase totals of one subject (the invocation, or one export). Thread-safe."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.wall: float | None = None
        """The subject's wall time, once it has ended (an export's)."""
        self._lock = threading.Lock()

    def add(self, phase: str, seconds: float) -> None:
        with self._lock:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
            self.counts[phase] = self.counts.get(phase, 0) + 1

    def ms(self, phase: str) -> float:
        return round(self.seconds.get(phase, 0.0) * 1000, 1)

    def other_ms(self) -> float:
        """Wall time not in any phase (never negative: phases of several threads of one
        export may add up to more than its wall time)."""
        if self.wall is None:
            return 0.0
        return round(max(0.0, self.wall - sum(self.seconds.values())) * 1000, 1)

    def as_dict(self) -> dict[str, Any]:
        phases = {name: self.ms(name) for name in EXPORT_PHASES}
        phases["other"] = self.other_ms()
        return {"export": self.name,
                "wall_ms": None if self.wall is None else round(self.wall * 1000, 1),
                "phases": phases}


class _Frame:
    __slots__ = ("inner", "name", "started")

    def __init__(self, name: str, started: float) -> None:
        self.name = name
        self.started = started
        self.inner = 0.0
        """Time spent in phases nested inside this one."""


class _Phase:
    """One timed phase on the current thread (see the module)."""

    __slots__ = ("frame", "name", "recorder", "stack")

    def __init__(self, recorder: Recorder, stack: list[_Frame], name: str) -> None:
        self.recorder = recorder
        self.stack = stack
        self.name = name

    def __enter__(self) -> None:
        self.frame = _Frame(self.name, time.perf_counter())
        self.stack.append(self.frame)

    def __exit__(self, *exc: object) -> None:
        frame = self.frame
        elapsed = time.perf_counter() - frame.started
        # Pop this frame (and anything a generator left open above it).
        while self.stack:
            if self.stack.pop() is frame:
                break
        self.recorder.add(frame.name, elapsed - frame.inner)
        if self.stack:
            self.stack[-1].inner += elapsed


_OFF = contextlib.nullcontext()


def phase(name: str) -> contextlib.AbstractContextManager[None]:
    """Time the block as phase ``name`` of the recorder attached to this thread (nothing
    when none is)."""
    recorder: Recorder | None = getattr(_local, "recorder", None)
    if recorder is None:
        return _OFF
    return _Phase(recorder, _local.stack, name)


def current() -> Recorder | None:
    """The recorder attached to this thread, if any (to attach it to a worker thread)."""
    return getattr(_local, "recorder", None)


@contextlib.contextmanager
def attach(recorder: Recorder | None) -> Iterator[None]:
    """Record this thread's phases into ``recorder`` for the block (None: record nothing),
    then give the thread back what it had."""
    saved = (getattr(_local, "recorder", None), getattr(_local, "stack", None))
    _local.recorder, _local.stack = recorder, []
    try:
        yield
    finally:
        _local.recorder, _local.stack = saved


class Timings:
    """The timings of one ``rivet run``: the invocation's phases and each export's."""

    def __init__(self, *, startup_s: float | None = None) -> None:
        self.run = Recorder()
        if startup_s is not None:
            self.run.add("startup", startup_s)
        self.started = time.perf_counter()
        self.exports: list[Recorder] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def export(self, name: str) -> Iterator[Recorder]:
        """Attach a new recorder of export ``name`` to this thread for the block; its wall
        time is the block's."""
        recorder = Recorder(name)
        with self._lock:
            self.exports.append(recorder)
        started = time.perf_counter()
        try:
            with attach(recorder):
                yield recorder
        finally:
            recorder.wall = time.perf_counter() - started

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``--timings`` (milliseconds)."""
        run = {f"{name}_ms": (self.run.ms(name) if name in self.run.seconds else None)
               for name in RUN_PHASES}
        total = time.perf_counter() - self.started + self.run.seconds.get("startup", 0.0)
        exports = [r.as_dict() for r in self.exports]
        return {**run, "total_ms": round(total * 1000, 1), "exports": exports,
                "per_export_median": median_export(exports)}


class _TimedState:
    """The state store with every call timed as phase ``state``."""

    def __init__(self, inner: StateStore) -> None:
        self._inner = inner

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateTx]:
        with phase("state"), self._inner.transaction() as tx:
            yield tx

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with phase("state"):
                return value(*args, **kwargs)

        return timed


def timed_state(store: StateStore) -> StateStore:
    """``store``, its reads and transactions (up to and including the commit) timed as
    phase ``state``: what a run with timings on uses."""
    return cast("StateStore", _TimedState(store))


def median_export(exports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The median wall time and the median of each phase over ``exports`` (as
    :meth:`Recorder.as_dict` gives them); None without exports."""
    import statistics

    if not exports:
        return None
    walls = [e["wall_ms"] for e in exports if e["wall_ms"] is not None]
    phases = {name: round(statistics.median(e["phases"][name] for e in exports), 1)
              for name in (*EXPORT_PHASES, "other")}
    return {"wall_ms": round(statistics.median(walls), 1) if walls else None,
            "phases": phases}


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``, 10 ms resolution); None where
    that cannot be told."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        started = int(fields[19]) / ticks
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def render(timings: dict[str, Any]) -> list[str]:
    """The text lines of ``--timings`` (from :meth:`Timings.as_dict`)."""
    shown = [(name, timings[f"{name}_ms"]) for name in RUN_PHASES
             if timings.get(f"{name}_ms") is not None]
    lines = ["timings: " + " · ".join(f"{name} {_ms(value)}" for name, value in shown)
             + f" · total {_ms(timings['total_ms'])}"]
    exports = timings["exports"]
    if not exports:
        return lines
    columns = ("wall", *EXPORT_PHASES, "other")
    rows = [(e["export"], [e["wall_ms"], *(e["phases"][c] for c in columns[1:])])
            for e in exports]
    median = timings["per_export_median"]
    if median is not None and len(exports) > 1:
        rows.append(("(median)", [median["wall_ms"], *(median["phases"][c]
                                                       for c in columns[1:])]))
    width = max(len("export"), *(len(name) for name, _ in rows))
    cells = [[_number(v) for v in values] for _, values in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines.append("  " + "export".ljust(width) + "".join(
        f"  {c.rjust(w)}" for c, w in zip(columns, widths, strict=True)) + "  (ms)")
    for (name, _), row in zip(rows, cells, strict=True):
        lines.append("  " + name.ljust(width) + "".join(
            f"  {v.rjust(w)}" for v, w in zip(row, widths, strict=True)))
    return lines


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _ms(value: float) -> str:
    return f"{_number(value)} ms"


__all__ = ["EXPORT_PHASES", "RUN_PHASES", "Recorder", "Timings", "attach", "current",
           "phase", "process_age", "render", "timed_state"]
