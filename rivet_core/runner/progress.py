"""Progress on stderr for long exports, and peak memory sampling.

Progress is a single self-overwriting line on stderr, and only when stderr is a terminal:
piped or logged runs stay quiet and rely on the summary.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
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


class Progress:
    """Rows, rows/s and bytes of the export in flight, redrawn at most twice a second."""

    def __init__(self, export: str, stream: TextIO | None = None, *,
                 enabled: bool | None = None) -> None:
        self.export = export
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._last = 0.0
        self._drawn = False
        self.rows = 0
        self.bytes = 0
        self.detail = ""

    def update(self, rows: int, bytes_written: int, detail: str = "") -> None:
        self.rows, self.bytes, self.detail = rows, bytes_written, detail
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.5:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        line = (f"{self.export}: {self.rows:,} rows  {self.rows / elapsed:,.0f} rows/s  "
                f"{format_bytes(self.bytes)}  {elapsed:,.0f}s")
        if self.detail:
            line += f"  {self.detail}"
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
