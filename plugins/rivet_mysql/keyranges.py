"""How much a ConnectorX read may hold, and a table export split into primary-key ranges.

ConnectorX has no back-pressure: it reads a statement as fast as the server sends it, and
holds what the writer has not taken yet. A table export is therefore read in key ranges of
:data:`RANGE_BYTES` (:func:`key_ranges`), another statement only when the server estimates
at most :data:`QUERY_ROWS` rows, and batches are sized by the table's average row length
(:func:`batch_rows`).

Pure arithmetic: the statistics it works from are read by :mod:`rivet_mysql.cxplan`.
"""

from __future__ import annotations

import math

BATCH_BYTES = 16 << 20
"""Arrow bytes a ConnectorX batch aims at when ``max_batch_memory_mb`` is not set: each
connection holds a few batches in flight, so wide rows must shrink the batch."""


def batch_rows(batch_size: int, max_batch_bytes: int | None, row_bytes: int | None) -> int:
    """Rows per ConnectorX batch: ``batch_size``, fewer when the table's average row length
    says such a batch would exceed ``max_batch_bytes`` (or :data:`BATCH_BYTES`)."""
    rows = max(1, batch_size)
    if row_bytes:
        rows = min(rows, max(1, (max_batch_bytes or BATCH_BYTES) // row_bytes))
    return rows


RANGE_BYTES = 16 << 20
"""Table bytes (by the server's average row length) one key range aims at. ConnectorX reads
a statement's rows as fast as the server sends them, whatever the consumer's pace (its
stream has no back-pressure), so a range is the most it can hold ahead: a bounded range
keeps memory flat, and keeps each statement short. 16 MiB: with 32 MiB the narrow benchmark
table (10M rows) peaked at 317-322 MB RSS, over the 300 MB bound; with 16 MiB, 288-291 MB."""

MIN_RANGE_ROWS = 10_000
QUERY_ROWS = 1_000_000
"""Most rows (the server's EXPLAIN estimate) a query that cannot be split into key ranges
may have to be read over ConnectorX; a bigger one is read over pymysql, which holds only
the batch in hand."""


def range_rows(row_bytes: int | None) -> int:
    """Rows per key range for a table whose average row is ``row_bytes`` long."""
    return max(MIN_RANGE_ROWS, RANGE_BYTES // max(row_bytes or 1, 1))


def key_ranges(lo: int, hi: int, *, estimated_rows: int, parallel: int,
               rows_per_range: int) -> list[tuple[int, int | None]]:
    """Split the keys ``lo..hi`` (inclusive) into ranges of about ``rows_per_range`` rows
    each (at least ``parallel``), assuming the rows are spread evenly over the keys. The
    first range is open below and the last open above, so a row inserted outside the bounds
    seen at planning time is still read."""
    span = hi - lo + 1
    count = max(parallel, math.ceil(max(estimated_rows, 1) / max(rows_per_range, 1)))
    count = max(1, min(count, span))
    width = math.ceil(span / count)
    bounds = [lo + i * width for i in range(count) if lo + i * width <= hi]
    ranges: list[tuple[int, int | None]] = []
    for index, start in enumerate(bounds):
        end = bounds[index + 1] if index + 1 < len(bounds) else None
        ranges.append((start, end))
    if ranges:
        ranges[0] = (-(2**63), ranges[0][1]) if lo > -(2**63) else ranges[0]
    return ranges
