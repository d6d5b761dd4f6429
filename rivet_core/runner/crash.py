"""Test-only crash points: make a real ``rivet run`` process die abruptly at a named step.

Set ``RIVET_CRASH_AT=<point>`` (or ``<point>:<n>`` to die at the n-th time the point is
reached, counting from 1) and the process calls ``os._exit(86)`` there: no exception, no
``finally``, no cleanup — as close to ``kill -9`` at that instant as a test can aim. Used by
the crash tests to prove what a rerun does after each step of the commit order; never set
it in production.

Points: ``after_source_read`` (first batch read and written, file not committed),
``after_file_commit`` (file visible, manifest row not recorded), ``after_manifest_row``
(file recorded, cursor not advanced), ``after_cursor_commit`` (cursor stored, run metric not
recorded), ``mid_chunk`` (a chunk's first batch written, its file not committed),
``after_chunk_file`` (a chunk's files committed, the chunk not marked completed),
``after_chunk_complete`` (a chunk marked completed).
"""

from __future__ import annotations

import os
import threading

ENV = "RIVET_CRASH_AT"
EXIT_CODE = 86
POINTS = frozenset({
    "after_source_read", "after_file_commit", "after_manifest_row", "after_cursor_commit",
    "mid_chunk", "after_chunk_file", "after_chunk_complete",
})

_lock = threading.Lock()
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Die here if ``RIVET_CRASH_AT`` names this point (and its count is reached)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] >= int(nth or 1):
            os._exit(EXIT_CODE)
