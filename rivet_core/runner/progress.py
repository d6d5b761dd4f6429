"""Progress on stderr for long exports, and peak memory sampling.

Progress is a single self-overwriting line on stderr, and only when stderr is a terminal:
piped or logged runs stay quiet and rely on the summary. With an estimate of the rows (a
``full`` export: :func:`rivet_core.runner.preflight.progress_estimate`) or a chunk plan (a
chunked export: chunks completed of planned), the line also shows a percentage and the time
left; the line itself is :func:`progress_line`, pure.

Exports running at once (``rivet run --parallel-exports N``) share a :class:`ProgressBoard`:
on a terminal, one line per running export, redrawn in place as a block; forced on
elsewhere (``--progress``), each export's line printed as a plain line now and then.

:class:`PeakMemory` samples the process's resident memory: with exports running at once,
the peak one export reports is the whole process's during its run, not its own share.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from rivet_core.config.values import format_bytes

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """Resident set size now (Linux ``/proc``; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Samples RSS every 100 ms in a daemon thread while the block runs."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak = current_rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rivet-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())

    @property
    def peak_mb(self) -> float:
        return round(self.peak / (1 << 20), 1)


def duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(export: str, *, rows: int, bytes_written: int, elapsed: float,
                  detail: str = "", estimated_rows: int | None = None,
                  chunks: Mapping[str, int] | None = None) -> str:
    """The progress line. ``chunks`` (``total``, ``completed``, ``skipped_completed``: the
    chunked mode's summary) gives the percentage when it has chunks; else
    ``estimated_rows`` does, never past 99 % (an estimate is not a count), and once the rows
    pass it the line says so instead. The time left is extrapolated from this invocation's
    pace, once it has done something."""
    elapsed = max(elapsed, 1e-6)
    line = (f"{export}: {rows:,} rows  {rows / elapsed:,.0f} rows/s  "
            f"{format_bytes(bytes_written)}  {elapsed:,.0f}s")
    if chunks and chunks.get("total"):
        total, done = chunks["total"], chunks.get("completed", 0)
        now_done = done - chunks.get("skipped_completed", 0)
        line += f"  chunks {done}/{total} {100 * done // total}%"
        if now_done > 0 and done < total:
            line += f"  ETA {duration(elapsed / now_done * (total - done))}"
    elif estimated_rows:
        estimate = f"{estimated_rows:,}"
        if rows < estimated_rows:
            line += f"  {min(99, 100 * rows // estimated_rows)}% of ~{estimate}"
            if rows:
                line += f"  ETA {duration(elapsed / rows * (estimated_rows - rows))}"
        else:
            line += f"  past the estimate of ~{estimate}"
    if detail:
        line += f"  {detail}"
    return line


class Progress:
    """Rows, rows/s and bytes of the export in flight, redrawn at most twice a second; with
    an estimate or a chunk plan, the percentage done and the time left. With a ``board``
    (exports running at once), the board draws the line with the others', and decides
    whether progress is shown."""

    def __init__(self, export: str, stream: TextIO | None = None, *,
                 enabled: bool | None = None,
                 chunks: Callable[[], Mapping[str, int] | None] | None = None,
                 board: ProgressBoard | None = None) -> None:
        self.export = export
        self.stream = stream or sys.stderr
        self.board = board
        if board is not None:
            self.enabled = board.enabled
        else:
            self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._last = 0.0
        self._drawn = False
        self.rows = 0
        self.bytes = 0
        self.detail = ""
        self.estimated_rows: int | None = None
        """Set once known (:func:`~rivet_core.runner.preflight.progress_estimate`)."""
        self.chunks = chunks
        """Reads the chunk summary (planned and completed) at each redraw."""

        if board is not None:
            board.add(self)

    def update(self, rows: int, bytes_written: int, detail: str = "") -> None:
        self.rows, self.bytes, self.detail = rows, bytes_written, detail
        if self.board is not None:
            self.board.update(self)
            return
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.5:
            self._last = now
            self._draw(now)

    def line(self, now: float) -> str:
        """The progress line as of ``now`` (a :func:`time.monotonic` reading)."""
        return progress_line(self.export, rows=self.rows, bytes_written=self.bytes,
                             elapsed=now - self.started, detail=self.detail,
                             estimated_rows=self.estimated_rows,
                             chunks=self.chunks() if self.chunks else None)

    def _draw(self, now: float) -> None:
        self.stream.write("\r\x1b[2K" + self.line(now))
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self.board is not None:
            self.board.remove(self)
            return
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


class ProgressBoard:
    """The progress of the exports running at once, one line each, shared by their threads.

    On a terminal the lines are a block redrawn in place at most twice a second (the cursor
    goes back up to the block's first line, each line is rewritten, what is left of a longer
    block is cleared); a line is cut to the terminal's width, so none wraps and the block's
    height stays known. Forced on elsewhere (``--progress`` into a pipe or a file), each
    export's line is printed as a plain line at most every ``plain_interval`` seconds, since
    cursor movement would only garble a log. Off, it draws nothing."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None,
                 interval: float = 0.5, plain_interval: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.enabled = self.live if enabled is None else enabled
        self.interval = interval
        self.plain_interval = plain_interval
        self._lock = threading.Lock()
        self._running: list[Progress] = []
        self._printed: dict[int, float] = {}
        """When each export's plain line was last printed (by ``id`` of its Progress)."""
        self._height = 0
        """Lines of the block on the screen now."""
        self._last = 0.0

    def add(self, progress: Progress) -> None:
        with self._lock:
            self._running.append(progress)

    def update(self, progress: Progress) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if self.live:
                if now - self._last >= self.interval:
                    self._draw(now)
            elif now - self._printed.get(id(progress), progress.started) \
                    >= self.plain_interval:
                self._printed[id(progress)] = now
                self.stream.write(progress.line(now) + "\n")
                self.stream.flush()

    def remove(self, progress: Progress) -> None:
        """The export ended: its line leaves the block."""
        with self._lock:
            if progress in self._running:
                self._running.remove(progress)
            self._printed.pop(id(progress), None)
            if self._height:
                self._draw(time.monotonic())

    def close(self) -> None:
        """Clear the block (the summary follows)."""
        with self._lock:
            self._running.clear()
            if self._height:
                self._draw(time.monotonic())

    def _draw(self, now: float) -> None:
        width = _columns(self.stream) - 1
        text = f"\r\x1b[{self._height}A" if self._height else "\r"
        for progress in self._running:
            text += "\x1b[2K" + progress.line(now)[:width] + "\n"
        self.stream.write(text + "\x1b[J")
        self.stream.flush()
        self._height = len(self._running)
        self._last = now


def _columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (80 when it cannot be told)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80
