"""The pymysql read path: the batches of an unbuffered result.

Step 4 of a pymysql read (the session around it is :mod:`rivet_mysql.session`'s), run by the
toolkit's fetch loop (:class:`~rivet_core.api.FetchingBatchStream`): the query runs on an
unbuffered cursor, so the server streams rows and pymysql reads them only as Rivet asks,
``batch_size`` at a time, and the result set is never held in memory; each fetch becomes one
Arrow batch built by :func:`~rivet_mysql.columns.build_column`.

The source ends the read, told how it ended: every row read (commit and restore the
session), a server error in the middle of the result (roll back and restore), or anything
else, an early close included (the connection is closed: an unbuffered result cannot be
abandoned without reading it to its end, and the session's settings end with it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pymysql
from pymysql.cursors import SSCursor

from rivet_core.api import ColumnInfo, FetchingBatchStream, ReadOptions, SourceError
from rivet_mysql.columns import ColumnPlan, build_column
from rivet_mysql.errors import server_error, wrap_error
from rivet_mysql.session import Session

if TYPE_CHECKING:
    from rivet_mysql.source import MysqlSource


class UnbufferedBatchStream(FetchingBatchStream):
    """Batches of one unbuffered result. Iterate once; ``close()`` before the end closes the
    connection (the server stops sending when the socket goes away)."""

    def __init__(self, source: MysqlSource, cursor: SSCursor, session: Session,
                 columns: list[ColumnInfo], plan: list[ColumnPlan], options: ReadOptions,
                 label: str) -> None:
        super().__init__(columns, options, label)
        self.cursor = cursor
        self.session = session
        self._source = source
        self._plan = plan

    def fetch(self, rows: int) -> Sequence[tuple[Any, ...]]:
        try:
            return self.cursor.fetchmany(rows)
        except (pymysql.err.MySQLError, OSError) as exc:
            error = wrap_error(exc, self.label)
            self.open = False
            # The read's own failure is the one to report.
            with contextlib.suppress(SourceError):
                self._source.end_read(self, ok=False, error=server_error(exc))
            raise error from None

    def to_batch(self, rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True))
        arrays = [build_column(values, col)
                  for values, col in zip(columns, self._plan, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def cancel(self) -> None:
        """Stop the statement from another thread: ``KILL QUERY`` on a connection of its
        own (the read's connection is busy receiving rows)."""
        self._source.kill_query(self.cursor.connection)

    def finish(self) -> None:
        self._source.end_read(self, ok=True)

    def abandon(self) -> None:
        self._source.end_read(self, ok=False)


__all__ = ["UnbufferedBatchStream"]
