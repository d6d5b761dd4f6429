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
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
import pyarrow as pa

from rivet_core.api import ColumnInfo, FetchingBatchStream, ReadOptions, SourceError
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

    def fetch(self, rows: int) -> Sequence[tuple[Any, ...]]:
        error: SourceError
        try:
            return self.cursor.fetchmany(rows)
        except psycopg.Error as exc:
            error = wrap_error(exc, self.label)
        except ArrayShapeError as exc:
            error = array_shape_error(self._plan, self.label, exc)
        self.open = False
        self.abandon()
        raise error

    def to_batch(self, rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True))
        arrays = [
            build_column(values, col)
            for values, col in zip(columns, self._plan, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def cancel(self) -> None:
        """Ask the server to stop the FETCH in flight (libpq's cancel request is safe from
        any thread)."""
        with contextlib.suppress(Exception):
            self.cursor.connection.cancel()

    def finish(self) -> None:
        self._source.end_cursor(self, ok=True)

    def abandon(self) -> None:
        self._source.end_cursor(self, ok=False)


__all__ = ["CURSOR_BATCH_BYTES", "CursorBatchStream"]
