"""Turning SIGTERM into an orderly stop, so open write targets are aborted.

By default SIGTERM kills Python without running ``except``/``finally`` blocks, so an
in-flight multipart upload would be left open and a local temp file left behind.
:func:`stop_on_signals`, installed by the CLI for the whole command, makes SIGTERM (and
SIGINT) set a stop event and raise :class:`KeyboardInterrupt` in the main thread. Worker
threads (parallel chunks, read-ahead) see the event within a fraction of a second, even
while waiting for a slow read; every writer aborts its open target (discarding every
uploaded part), the interrupted export is recorded as failed, no further export starts, the
summary is printed and the CLI exits with 130.

A second signal during that cleanup is logged and ignored, so the abort requests finish.
SIGKILL cannot be caught: see docs/destinations.md for what it leaves and how to clean up.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger("rivet.runner")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Steps:
    """The main thread's open :func:`uninterrupted` blocks, and a stop they delayed."""

    depth = 0
    delayed = False


@contextmanager
def uninterrupted() -> Iterator[None]:
    """One step of the commit order that must not be split (a file's commit and its
    record): a stop signal landing inside sets the stop event at once, but its
    ``KeyboardInterrupt`` is raised only when the block ends. Other threads are never
    interrupted by a signal, so there this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Steps.depth += 1
    try:
        yield
    finally:
        _Steps.depth -= 1
        if _Steps.depth == 0 and _Steps.delayed:
            _Steps.delayed = False
            raise KeyboardInterrupt


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Within the block, SIGTERM/SIGINT set the yielded event, which every thread that
    writes checks between batches, and raise ``KeyboardInterrupt`` once in the main thread
    (the only one Python delivers signals to). Outside the main thread this only yields an
    event nobody sets."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("%s received while stopping; still aborting open uploads",
                        signal.Signals(signum).name)
            return
        stop.set()
        log.warning("%s received: aborting the open files and stopping",
                    signal.Signals(signum).name)
        if _Steps.depth:
            _Steps.delayed = True  # raised when the commit step ends
            return
        raise KeyboardInterrupt

    def unraisable(info: sys.UnraisableHookArgs) -> None:
        # The interrupt can land in a finalizer (a driver's __del__), where Python reports
        # and drops it; the stop event still carries it to every loop that checks.
        if info.exc_type is KeyboardInterrupt and stop.is_set():
            return
        previous_hook(info)

    previous_hook = sys.unraisablehook
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    sys.unraisablehook = unraisable
    try:
        yield stop
    finally:
        sys.unraisablehook = previous_hook
        for sig, old in previous.items():
            signal.signal(sig, old)
