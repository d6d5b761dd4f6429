"""The fetch loop of a server-side result, shared by SQL sources' batch streams.

A :class:`FetchingBatchStream` asks its driver for ``batch_size`` rows at a time and turns
each fetch into one Arrow batch. A fetch shorter than asked is the last: the stream ends the
read (commits, releases the snapshot) *before* handing over that batch, so the server's
transaction is as short as the read. When a batch's Arrow size passes ``max_batch_bytes``,
later fetches ask for half as many rows (never fewer than one), so wide rows do not grow
memory; the oversized batch itself is still delivered. ``throttle_ms`` pauses between
fetches. Closing the stream early (an error downstream, the consumer stopping) abandons the
read.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rivet_core.backends import BatchStream, ReadOptions
from rivet_core.types import ColumnInfo, schema_of

if TYPE_CHECKING:
    import pyarrow as pa


class FetchingBatchStream(BatchStream):
    """Batches of one server-side result. Subclasses implement :meth:`fetch`,
    :meth:`to_batch`, :meth:`finish` and :meth:`abandon`; iterate once."""

    default_max_batch_bytes: int | None = None
    """Byte cap on a batch when the export sets no ``max_batch_memory_mb`` (None: rows
    only)."""

    def __init__(self, columns: list[ColumnInfo], options: ReadOptions, label: str) -> None:
        self.columns = columns
        self.schema = schema_of(columns)
        self.label = label
        self.options = options
        self.open = True
        """Whether the read is still going (not finished, not abandoned)."""
        self._fetch_size = max(1, options.batch_size)

    @abc.abstractmethod
    def fetch(self, rows: int) -> Sequence[Any]:
        """Up to ``rows`` rows from the driver; fewer means the result is exhausted. A
        driver failure is raised as a Rivet error; before raising, the subclass ends the
        read as the failure requires and sets :attr:`open` to False."""

    @abc.abstractmethod
    def to_batch(self, rows: Sequence[Any]) -> pa.RecordBatch:
        """One Arrow batch of :attr:`schema` from fetched rows."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Every row is in: end the read successfully (close the cursor, commit)."""

    @abc.abstractmethod
    def abandon(self) -> None:
        """The read stops before its end: release the server side (roll back, or close the
        connection when the driver cannot stop a result midway). Never raises."""

    def batches(self) -> Iterator[pa.RecordBatch]:
        throttle_s = self.options.throttle_ms / 1000
        max_bytes = self.options.max_batch_bytes or self.default_max_batch_bytes
        try:
            while self.open:
                size = self._fetch_size
                rows = self.fetch(size)
                last = len(rows) < size
                if last:
                    self.open = False
                    self.finish()
                if rows:
                    batch = self.to_batch(rows)
                    if max_bytes is not None and batch.nbytes > max_bytes:
                        self._fetch_size = max(1, size // 2)
                    yield batch
                if not last and throttle_s > 0:
                    time.sleep(throttle_s)
        finally:
            # An error, or the consumer stopping early (GeneratorExit), ends up here.
            self.close()

    def close(self) -> None:
        if self.open:
            self.open = False
            self.abandon()
