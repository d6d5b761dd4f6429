"""Binary COPY on psycopg connections decoded in C (:mod:`rivet_postgres.copybin`): the
connections, one COPY read, and a table read split into ctid ranges over several
connections sharing one snapshot.

Each read runs ``COPY (<query>) TO STDOUT (FORMAT binary)`` and decodes the stream into
Arrow record batches without the GIL, so a reader thread overlaps with the runner's
encoding. What the batches are turned into is :mod:`rivet_postgres.copyconvert`'s business
(through the ``convert`` callback); which statements a read runs is decided in
:mod:`rivet_postgres.copystream`.

Every connection here belongs to the source alone, which opens it
(:meth:`~rivet_postgres.source.PostgresSource.open_connection`: the same TLS keywords and
the same check that TLS is in use as the control connection). Each read runs inside the same
transaction prologue as the cursor path (``BEGIN ... READ ONLY`` and ``SET LOCAL``
timeouts and ``TimeZone``), so the session keeps its own settings; a pooled connection
found dead when its read begins is replaced once (the toolkit's
:meth:`~rivet_core.api.ConnectionSlot.first_use`); a connection whose read failed or was
abandoned is closed, never reused.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import psycopg
import pyarrow as pa

from rivet_core.api import ConnectionSlot
from rivet_postgres.copybin import CopyError, Layout, copy_batches
from rivet_postgres.copyplan import BlockRanges
from rivet_postgres.errors import wrap_error

_QUEUE_DEPTH_PER_WORKER = 1
_BATCH_ROWS = 1 << 20
"""Rows per decoded batch at most; the byte target usually ends a batch first."""
_ERRORS = (psycopg.Error, CopyError, OSError, pa.ArrowException)
RETIRE_ROW_BYTES = 16 << 20
"""A connection that carried a row this large (Arrow bytes) is closed after its read, not
pooled: libpq's input buffer keeps the size of the largest message until the connection
closes, so a pooled one would hold a copy's worth of memory for the rest of the run."""


Connect = Callable[[str], "psycopg.Connection[Any]"]
"""Opens a checked autocommit connection for a connection string, or raises the source's
error."""


class CopyConnection:
    """One connection: statements run one at a time, each read is one COPY."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self.broken = False
        self.largest_row = 0
        """The most Arrow bytes per row of a batch this connection read (see
        :data:`RETIRE_ROW_BYTES`)."""

    def begin(self, statements: Sequence[str]) -> CopyConnection:
        """Run ``statements`` (the read's prologue); this connection."""
        for statement in statements:
            self.execute(statement)
        return self

    def alive(self) -> bool:
        """Whether the connection can still run a statement."""
        return not (self.broken or self._conn.closed or self._conn.broken)

    def execute(self, sql: str) -> None:
        """A statement without a result (``BEGIN``, ``SET TRANSACTION SNAPSHOT``...)."""
        self._conn.execute(sql)

    def batches(self, sql: str, layout: Layout, batch_bytes: int
                ) -> Iterator[pa.RecordBatch]:
        """The batches of one COPY of ``sql``. Errors come unwrapped."""
        exhausted = False
        try:
            for batch in copy_batches(self._conn, sql, layout, batch_rows=_BATCH_ROWS,
                                      batch_bytes=max(1, batch_bytes)):
                self.largest_row = max(self.largest_row,
                                       batch.nbytes // max(1, batch.num_rows))
                yield batch
            exhausted = True
        finally:
            if not exhausted:
                # Failed or abandoned mid-COPY: stop the server, never reuse the session.
                self.broken = True
                self.cancel()

    def cancel(self) -> None:
        """Ask the server to stop the running statement (from any thread)."""
        with contextlib.suppress(Exception):
            self._conn.cancel()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


class CopyPool:
    """The source's COPY connections, by connection string (it carries the session
    settings), reused across reads. A connection that saw an error or an abandoned read
    is closed, never reused."""

    def __init__(self, connect: Connect) -> None:
        self.connect = connect
        self._idle: dict[str, list[CopyConnection]] = {}
        self._lock = threading.Lock()

    def take(self, conninfo: str) -> CopyConnection | None:
        """An idle connection of ``conninfo``, if any."""
        with self._lock:
            idle = self._idle.setdefault(conninfo, [])
            return idle.pop() if idle else None

    def release(self, conninfo: str, conn: CopyConnection) -> None:
        if conn.broken or conn.largest_row >= RETIRE_ROW_BYTES:
            conn.close()
            return
        with self._lock:
            self._idle.setdefault(conninfo, []).append(conn)

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


Convert = Callable[[pa.RecordBatch], Iterator[pa.RecordBatch]]
"""Turns one decoded batch into the batches the stream yields (converted, sliced)."""


class SingleCopy:
    """The batches of one COPY inside the ``begin`` transaction, read in the iterating
    thread; :meth:`cancel` stops the statement from any thread."""

    def __init__(self, pool: CopyPool, conninfo: str, sql: str, *, layout: Layout,
                 begin: Sequence[str], batch_bytes: int, convert: Convert, label: str,
                 throttle_s: float) -> None:
        self._pool = pool
        self._conninfo = conninfo
        self._sql = sql
        self._layout = layout
        self._begin = begin
        self._batch_bytes = batch_bytes
        self._convert = convert
        self._label = label
        self._throttle_s = throttle_s
        self._conn: CopyConnection | None = None
        self._batches = self._read()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self._batches

    def _read(self) -> Generator[pa.RecordBatch, None, None]:
        conn = self._conn = _begin(self._pool, self._conninfo, self._begin, self._label)
        finished = False
        try:
            for raw in conn.batches(self._sql, self._layout, self._batch_bytes):
                for batch in self._convert(raw):
                    yield batch
                    if self._throttle_s > 0:
                        time.sleep(self._throttle_s)
            conn.execute("COMMIT")
            finished = True
        except _ERRORS as exc:
            raise wrap_error(exc, self._label) from None
        finally:
            self._conn = None
            conn.broken = conn.broken or not finished
            self._pool.release(self._conninfo, conn)

    def cancel(self) -> None:
        """Ask the server to stop the COPY (from any thread); its connection is not
        reused."""
        conn = self._conn
        if conn is not None:
            conn.broken = True
            conn.cancel()

    def close(self) -> None:
        self._batches.close()


def _begin(pool: CopyPool, conninfo: str, begin: Sequence[str], label: str
           ) -> CopyConnection:
    """A connection with the read's transaction begun: a pooled one, or a new one. A pooled
    connection found dead here (server restart, idle timeout) is replaced once: nothing has
    run on it yet."""
    slot: ConnectionSlot[CopyConnection] = ConnectionSlot(
        lambda: CopyConnection(pool.connect(conninfo)), alive=CopyConnection.alive,
        close=CopyConnection.close)
    slot.adopt(pool.take(conninfo))
    try:
        return slot.first_use(lambda conn: conn.begin(begin), lost=_ERRORS)
    except _ERRORS as exc:
        slot.discard()
        raise wrap_error(exc, label) from None


_DONE = object()


class RangedCopy:
    """A table read as ctid ranges by ``workers`` connections, each inside the ``begin``
    transaction (REPEATABLE READ READ ONLY, importing one exported snapshot), so together
    they see the table as of one instant. Each range is its own short COPY statement
    (``statement`` of the range); ``ranges`` hands them out and sizes them from how long
    each took. Batches from all workers are interleaved into one stream (row order is not
    kept); a small queue bounds memory.

    ``on_imported`` is called once every worker has imported the snapshot (or failed), so
    the caller can end the transaction that exported it.
    """

    def __init__(self, pool: CopyPool, conninfo: str, ranges: BlockRanges,
                 statement: Callable[[tuple[int, int | None]], str], *,
                 layout: Layout, workers: int, begin: Sequence[str],
                 batch_bytes: int, convert: Convert,
                 label: str, throttle_s: float, on_imported: Callable[[], None]) -> None:
        self._pool = pool
        self._conninfo = conninfo
        self._ranges = ranges
        self._statement = statement
        self._workers = max(1, workers)
        self._begin = list(begin)
        self._batch_bytes = batch_bytes
        self._layout = layout
        self._convert = convert
        self._label = label
        self._throttle_s = throttle_s
        self._on_imported = on_imported
        self._out: queue.Queue[object] = queue.Queue(
            maxsize=_QUEUE_DEPTH_PER_WORKER * self._workers)
        self._stop = threading.Event()
        self._imported = threading.Barrier(self._workers, action=self._imported_action)
        self._active: list[CopyConnection] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _imported_action(self) -> None:
        self._on_imported()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        self._threads = [threading.Thread(target=self._run, name=f"rivet-copy-{i}",
                                          daemon=True) for i in range(self._workers)]
        for thread in self._threads:
            thread.start()
        running = self._workers
        try:
            while running:
                item = self._out.get()
                if item is _DONE:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield from self._convert(item)  # type: ignore[arg-type]
        finally:
            self.close()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        conn: CopyConnection | None = None
        finished = False
        try:
            try:
                conn = _begin(self._pool, self._conninfo, self._begin, self._label)
                with self._lock:
                    self._active.append(conn)
            finally:
                # Even a worker that failed must not leave the others waiting.
                with contextlib.suppress(threading.BrokenBarrierError):
                    self._imported.wait()
            while not self._stop.is_set():
                block_range = self._ranges.take()
                if block_range is None:
                    break
                started = time.monotonic()
                for raw in conn.batches(self._statement(block_range), self._layout,
                                        self._batch_bytes):
                    if not self._put(raw):
                        return
                    if self._throttle_s > 0:
                        time.sleep(self._throttle_s)
                self._ranges.took(block_range, time.monotonic() - started)
            if not self._stop.is_set():
                conn.execute("COMMIT")
                finished = True
            self._put(_DONE)
        except _ERRORS as exc:
            self._fail(wrap_error(exc, self._label))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._fail(exc)
        finally:
            if conn is not None:
                with self._lock:
                    self._active.remove(conn)
                conn.broken = conn.broken or not finished
                self._pool.release(self._conninfo, conn)

    def _fail(self, exc: BaseException) -> None:
        if not self._stop.is_set():
            self._put(exc)
        self._stop.set()

    def cancel(self) -> None:
        """Stop every worker's statement (from any thread, without waiting for them)."""
        self._stop.set()
        with self._lock:
            active = list(self._active)
        for conn in active:
            conn.cancel()

    def close(self) -> None:
        """Stop every worker: running statements are cancelled, their connections closed."""
        self.cancel()
        for thread in self._threads:
            thread.join()


__all__ = ["CopyPool", "RangedCopy", "SingleCopy"]
