"""Turning SIGTERM into an orderly stop, so open write targets are aborted.

By default SIGTERM kills Python without running ``except``/``finally`` blocks, so an
in-flight multipart upload would be left open and a local temp file left behind.
:func:`stop_on_signals` makes SIGTERM (and SIGINT, which Python already maps) raise
:class:`KeyboardInterrupt` in the main thread: the runner's ``except BaseException`` path
aborts the open target (discarding every uploaded part) and the CLI exits with 130.

A second signal during that cleanup is logged and ignored, so the abort requests finish.
SIGKILL cannot be caught: see docs/destinations.md for what it leaves and how to clean up.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger("rivet.runner")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM/SIGINT raise ``KeyboardInterrupt`` once (main thread only;
    elsewhere this is a no-op, as Python only delivers signals to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            log.warning("%s received while stopping; still aborting open uploads",
                        signal.Signals(signum).name)
            return
        stopping = True
        log.warning("%s received: aborting the open file and stopping",
                    signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
