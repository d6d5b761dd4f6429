"""Reading ahead: pull a source's batches in a background thread while the caller encodes.

Decoding rows (in the source) and encoding files (Parquet, CSV) are both CPU work that
releases the GIL in large part; overlapping them keeps two cores busy. The queue is small,
so memory stays bounded by a few batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

_DONE = object()
_INTERRUPTED = object()


def prefetch(batches: Iterable[pa.RecordBatch], depth: int = 2, *,
             interrupt: threading.Event | None = None
             ) -> Generator[pa.RecordBatch | None, None, None]:
    """Yield ``batches`` while the next ``depth`` are already being read. An error raised
    by the reader is re-raised here; stopping early stops the reader after its current
    batch (the caller then closes the stream, from this thread).

    When ``interrupt`` is set while waiting for a batch, ``None`` is yielded at once: the
    caller stops and aborts its open file first, and only then closes this generator,
    which waits for the reader's batch in flight (raising here would wait first)."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    reader = threading.Thread(target=pump, name="rivet-prefetch", daemon=True)
    try:
        reader.start()
        while True:
            item = _take(handoff, interrupt)
            if item is _DONE:
                return
            if item is _INTERRUPTED:
                yield None
                continue
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        if reader.ident is not None:
            _join(reader)


def _take(handoff: queue.Queue[object], interrupt: threading.Event | None) -> object:
    if interrupt is None:
        return handoff.get()
    while True:
        if interrupt.is_set():
            return _INTERRUPTED
        try:
            return handoff.get(timeout=0.05)
        except queue.Empty:
            continue
        except KeyboardInterrupt:
            # The signal handler raised it here, in the waiting thread: hand it to the
            # caller as the interruption it is, before this generator waits for the reader.
            interrupt.set()
            return _INTERRUPTED


def _join(reader: threading.Thread) -> None:
    """Wait for the reader to leave the stream, even when a signal's KeyboardInterrupt lands
    in the wait (the caller closes the stream next, which must not race the reader); the
    interrupt is raised once the reader is out."""
    interrupted: KeyboardInterrupt | None = None
    while reader.is_alive():
        try:
            reader.join()
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted
