"""The server-side cursor read path: the batches of a declared cursor.

Steps 4-5 of a cursor read (steps 1-3 are :mod:`rivet_postgres.describe`'s), run by the
toolkit's fetch loop (:class:`~rivet_core.api.FetchingBatchStream`):

4. ``FETCH FORWARD <n> FROM "_rivet"`` (binary results) until a short fetch, one Arrow
   batch per fetch built by :func:`~rivet_postgres.builders.build_column`, sleeping
   ``throttle_ms`` between fetches. When a batch's Arrow size exceeds ``max_batch_bytes``
   (:data:`CURSOR_BATCH_BYTES` when unset), later fetches ask for half as many rows.
5. ``CLOSE "_rivet"; COMMIT`` as soon as the last rows are in hand (before the last batch
   is handed over, so the snapshot is released early). On any error, or when the stream is
   closed early, ``ROLLBACK``; a connection that cannot roll back is discarded.

The source ends the transaction: the stream tells it how the read ended.

A text or bytea value of :data:`LARGE_VALUE_BYTES` or more is not built into Arrow from the
Python object psycopg loaded (pyarrow's builder copies it and holds a second copy while it
grows): it is taken from the fetch's own result (libpq's ``PGresult``, read through the
libpq psycopg uses), in place when the batch is that one row (the array keeps the result
alive), else with its column assembled in one copy. Besides, the value is in libpq's input
buffer (which keeps its size until the connection is closed) and in the Python object psycopg
loaded (until the fetched rows are dropped).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
import pyarrow as pa
from psycopg import pq

from rivet_core.api import ColumnInfo, FetchingBatchStream, ReadOptions, SourceError
from rivet_postgres import copybin
from rivet_postgres.builders import ColumnPlan, build_column
from rivet_postgres.columns import array_shape_error
from rivet_postgres.errors import wrap_error
from rivet_postgres.loaders import ArrayShapeError

if TYPE_CHECKING:
    from rivet_postgres.source import PostgresSource

CURSOR_BATCH_BYTES = 64 << 20
"""Arrow bytes of a cursor batch past which the next fetches ask for half as many rows,
when the export sets no ``max_batch_memory_mb``: wide rows still shrink the fetches, so
memory does not grow with the width of the rows."""


LARGE_VALUE_BYTES = 1 << 20
"""A text or bytea value with this many characters or bytes or more is taken from the
result in place (module docstring)."""
_IN_PLACE_KEYS = frozenset({"text", "varchar", "bpchar", "name", "citext", "enum", "xml",
                            "json", "bytea"})
"""Types whose binary wire format is the value's own bytes, loaded by psycopg unchanged."""

ValueAt = Callable[[int, int, int], tuple[int, int]]
"""(address, length) of a result's value, given the result's pointer, a row and a column."""


@functools.cache
def _value_at() -> ValueAt | None:
    """libpq's ``PQgetvalue`` and ``PQgetlength``, or None when psycopg's libpq cannot be
    loaded here (the values are then built from the Python objects)."""
    try:
        libpq = copybin.libpq()
    except (copybin.Unavailable, OSError):
        return None
    get_value, get_length = libpq.PQgetvalue, libpq.PQgetlength
    get_value.restype = ctypes.c_void_p
    get_length.restype = ctypes.c_int
    get_value.argtypes = get_length.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]

    def value_at(result: int, row: int, column: int) -> tuple[int, int]:
        return get_value(result, row, column) or 0, get_length(result, row, column)

    return value_at


class CursorBatchStream(FetchingBatchStream):
    """Batches of one server-side cursor. Iterate once; ``close()`` rolls back if the
    stream did not run to its end."""

    default_max_batch_bytes = CURSOR_BATCH_BYTES

    def __init__(self, source: PostgresSource, cursor: psycopg.ServerCursor[Any],
                 columns: list[ColumnInfo], plan: list[ColumnPlan], options: ReadOptions,
                 label: str) -> None:
        super().__init__(columns, options, label)
        self.cursor = cursor
        self._source = source
        self._plan = plan
        self._result: pq.abc.PGresult | None = None
        """The result of the last fetch, until its batch is built (the cursor lets go of
        it when it is closed, which the last fetch does before its batch is built)."""

    def fetch(self, rows: int) -> Sequence[tuple[Any, ...]]:
        error: SourceError
        try:
            fetched = self.cursor.fetchmany(rows)
            self._result = self.cursor.pgresult
            return fetched
        except psycopg.Error as exc:
            error = wrap_error(exc, self.label)
        except ArrayShapeError as exc:
            error = array_shape_error(self._plan, self.label, exc)
        self.open = False
        self.abandon()
        raise error

    def to_batch(self, rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True))
        result, self._result = self._result, None
        if self.cursor.connection.info.encoding != "utf-8":  # the bytes are not Arrow's text
            result = None
        arrays = [
            self._in_place(result, index, values, col) or build_column(values, col)
            for index, (values, col) in enumerate(zip(columns, self._plan, strict=True))
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    @staticmethod
    def _in_place(result: pq.abc.PGresult | None, index: int, values: Sequence[Any],
                  plan: ColumnPlan) -> pa.Array | None:
        """Column ``index`` with each of its large values in place in ``result`` (the
        fetch's, in UTF-8), the values between them built as usual; None when it has no
        large value (or its type or the result do not allow it)."""
        if (plan.key not in _IN_PLACE_KEYS or plan.array or plan.direct
                or plan.natural != plan.target or not _is_variable(plan.target)
                or not any(v is not None and len(v) >= LARGE_VALUE_BYTES for v in values)):
            return None
        value_at = _value_at()
        if value_at is None or result is None or result.ntuples != len(values):
            return None
        address = result.pgresult_ptr  # type: ignore[attr-defined]  # in every pq implementation
        if not address:
            return None
        pieces = []
        start = 0
        for row, value in enumerate(values):
            if value is None or len(value) < LARGE_VALUE_BYTES:
                continue
            if row > start:
                pieces.append(build_column(values[start:row], plan))
            data, length = value_at(address, row, index)
            offsets = pa.array([0, length], pa.int64() if _is_large(plan.target)
                               else pa.int32()).buffers()[1]
            # The buffer's base keeps psycopg's result (freed with it) alive.
            pieces.append(pa.Array.from_buffers(plan.target, 1, [
                None, offsets, pa.foreign_buffer(data, length, base=result)]))
            start = row + 1
        if start < len(values):
            pieces.append(build_column(values[start:], plan))
        return pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)

    def cancel(self) -> None:
        """Ask the server to stop the FETCH in flight (libpq's cancel request is safe from
        any thread)."""
        with contextlib.suppress(Exception):
            self.cursor.connection.cancel()

    def finish(self) -> None:
        self._source.end_cursor(self, ok=True)

    def abandon(self) -> None:
        self._source.end_cursor(self, ok=False)


def _is_large(typ: pa.DataType) -> bool:
    return pa.types.is_large_string(typ) or pa.types.is_large_binary(typ)


def _is_variable(typ: pa.DataType) -> bool:
    return (_is_large(typ) or pa.types.is_string(typ) or pa.types.is_binary(typ))


__all__ = ["CURSOR_BATCH_BYTES", "LARGE_VALUE_BYTES", "CursorBatchStream"]
