"""What a run produces and shares: the result of one export, its committed files, and the
context every export of one invocation shares. Plain data, no I/O."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from rivet_core.state.store import StateStore, iso, utc_now

if TYPE_CHECKING:
    from rivet_core.runner.sourcepool import SourcePool
    from rivet_core.runner.timings import Timings
    from rivet_core.sealed import SealedExport, SealedPlan


@attrs.frozen(kw_only=True)
class FileResult:
    name: str
    uri: str
    rows: int
    bytes: int
    sha256: str
    chunk: int | None = None


@attrs.define(kw_only=True)
class ExportResult:
    """What happened to one export in one run; printed as the summary and as JSON."""

    export: str
    run_id: str
    mode: str
    status: str = "running"
    rows: int = 0
    files: list[FileResult] = attrs.field(factory=list)
    started_at: dt.datetime = attrs.field(factory=utc_now)
    finished_at: dt.datetime | None = None
    peak_rss_mb: float | None = None
    retries: int = 0
    destination: str = ""
    error: str | None = None
    hint: str | None = None
    note: str | None = None
    warnings: list[str] = attrs.field(factory=list)
    cursor_before: str | None = None
    cursor_after: str | None = None
    window_start: str | None = None
    chunks: dict[str, int] | None = None
    resumed: bool = False
    read_paths: list[str] = attrs.field(factory=list)
    quality: list[dict[str, Any]] = attrs.field(factory=list)
    """Every quality gate's outcome (gate, severity, passed, observed, expected, message)."""
    schema_drift: dict[str, Any] | None = None
    """How the schema differs from the last successful run's (None: nothing to compare)."""
    reconcile: dict[str, Any] | None = None
    """``--reconcile``: source_rows, exported_rows, match."""
    validation: dict[str, Any] | None = None
    """``--validate``: passed, and what each re-read found."""
    untrusted: bool = False
    """The run failed a trust check (a gate, drift, reconcile): exit code 7."""

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def duration_ms(self) -> int:
        end = self.finished_at or utc_now()
        return int((end - self.started_at).total_seconds() * 1000)

    def as_dict(self) -> dict[str, Any]:
        return {
            "export": self.export,
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "rows": self.rows,
            "files": [attrs.asdict(f) for f in self.files],
            "bytes": self.bytes,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at) if self.finished_at else None,
            "duration_ms": self.duration_ms,
            "peak_rss_mb": self.peak_rss_mb,
            "retries": self.retries,
            "destination": self.destination,
            "cursor_before": self.cursor_before,
            "cursor_after": self.cursor_after,
            "window_start": self.window_start,
            "chunks": self.chunks,
            "resumed": self.resumed,
            "read_paths": self.read_paths,
            "quality": self.quality,
            "schema_drift": self.schema_drift,
            "reconcile": self.reconcile,
            "validation": self.validation,
            "error": self.error,
            "hint": self.hint,
            "note": self.note,
            "warnings": self.warnings,
        }


@attrs.frozen(kw_only=True)
class RunContext:
    """What every export of one invocation shares."""

    config_dir: Path
    state: StateStore
    progress: bool | None = None
    """Force progress on or off; None = only when stderr is a terminal."""
    resume: bool = False
    """``rivet run --resume``: continue an interrupted checkpointed chunk run."""
    sleep: Callable[[float], None] = time.sleep
    reconcile: bool = False
    """``rivet run --reconcile``: count the source's rows and compare before certifying."""
    validate: bool = False
    """``rivet run --validate``: re-read every committed file before certifying."""
    stop: threading.Event = attrs.field(factory=threading.Event)
    """Set when the invocation must stop (SIGTERM/SIGINT): every thread that writes checks
    it between batches, aborts its open file and stops."""
    sealed: SealedPlan | None = None
    """``rivet apply``: the sealed plan being run. Its modes take their chunk boundaries,
    starting cursor and window start from it instead of deciding them now."""
    timings: Timings | None = None
    """``rivet run --timings`` (or ``-vv``): where each export's phases are recorded."""
    sources: SourcePool | None = None
    """The sources kept open between the exports of the invocation (set by
    :func:`~rivet_core.runner.lifecycle.run_exports`); None: every export opens and closes
    its own."""
    read_slot: Callable[[], None] | None = None
    """Called by an export before each source it takes: the first call waits for one of
    the run's reading slots (:mod:`rivet_core.runner.pool`), later ones return at once.
    Set per export by the pool; None outside it."""
    read_done: Callable[[], None] | None = None
    """Called by an export once it will read nothing more from its source and what it read
    is small: its reading slot goes to the next export while this one encodes, commits and
    records its file (:mod:`rivet_core.runner.pool`). Set per export by the pool; None
    outside it."""

    def sealed_export(self, name: str) -> SealedExport | None:
        """What the applied plan sealed for export ``name`` (None outside ``rivet apply``)."""
        return self.sealed.export(name) if self.sealed is not None else None
