"""Splitting a chunked export into key ranges: boundary detection and the pure planning rules.

Detection runs one aggregate statement over the chunk column (min, max, count, NULL count),
or, for a ``table`` export whose table the catalog has an estimate for, two short ones (min
and max; is there a NULL key) with the count taken from the catalog: no statement reads the
whole table to plan it. Without ``chunk_size``, the catalog's bytes per row also size the
chunks (:func:`size_from_catalog`) so each reads about :data:`CHUNK_TARGET_BYTES` of table.
Ranges are half-open ``[lo, hi)`` and together cover ``[min, max]`` without gaps, so a row is
in exactly one chunk. When keys are sparse (fewer than half the ``chunk_size``-wide windows
would hold rows on average), a second statement counts rows per window and the plan merges
neighbouring windows until each chunk holds about ``chunk_size`` rows: no thousands of empty
chunks. Rows whose key is NULL get a chunk of their own (``key IS NULL``) rather than being
dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

import attrs

DEFAULT_CHUNK_SIZE = 100_000
"""Keys per chunk without ``chunk_size`` when the catalog cannot say how wide rows are."""
CHUNK_TARGET_BYTES = 32 << 20
"""Table data one chunk reads when its size comes from the catalog: a fraction of a second
of server work per statement on either database, whatever the row width."""
MIN_CATALOG_CHUNK = 1_000
MAX_CATALOG_CHUNK = 250_000
"""At most this many keys per chunk: a chunk statement stays short on MariaDB too, whose
range estimates can run at twice the real rows (over 1,000,000 estimated rows a query is
not read over ConnectorX, see docs/sources.md)."""
# More windows than this for a date split makes the planner look for empty ones to skip.
_DAY_WINDOWS_WITHOUT_HISTOGRAM = 1000


@attrs.frozen(kw_only=True)
class Chunk:
    """One unit of a chunked export: rows with ``lo <= key < hi`` (both None: NULL keys)."""

    idx: int
    lo: Any
    hi: Any
    expected_rows: int | None = None

    @property
    def null_keys(self) -> bool:
        return self.lo is None and self.hi is None

    def label(self) -> str:
        if self.null_keys:
            return f"chunk {self.idx} [NULL keys]"
        return f"chunk {self.idx} [{self.lo}..{self.hi})"


@attrs.frozen(kw_only=True)
class KeyStats:
    lo: Any
    hi: Any
    count: int
    nulls: int
    estimated: bool = False
    """``count`` is the catalog's estimate and ``nulls`` only says whether there are any."""


def size_from_catalog(estimated_rows: int | None, data_bytes: int | None) -> int | None:
    """Keys per chunk so that a chunk of a dense key reads about :data:`CHUNK_TARGET_BYTES`
    of the table, or None when the catalog does not know the table's rows and bytes."""
    if not estimated_rows or not data_bytes or estimated_rows <= 0 or data_bytes <= 0:
        return None
    per_row = data_bytes / estimated_rows
    rows = int(CHUNK_TARGET_BYTES / per_row)
    step = 1_000 if rows >= 10_000 else 100
    rows = max(step, rows // step * step)  # a round number reads better in the plan
    return max(MIN_CATALOG_CHUNK, min(MAX_CATALOG_CHUNK, rows))


@attrs.frozen(kw_only=True)
class Bucket:
    """A non-empty window of the key histogram: its index from the origin, its row count,
    and the smallest and largest key in it."""

    index: int
    n: int
    lo: Any
    hi: Any


Histogram = Callable[[Any, int], list[Bucket]]
"""Fetches the non-empty windows of width ``width`` starting at ``origin``, in key order."""


def default_chunk_size(estimated_rows: int | None, data_bytes: int | None) -> int:
    """Keys per chunk when ``chunk_size`` is not set: from the catalog's rows and bytes of
    the table (:func:`size_from_catalog`) when it has them, else :data:`DEFAULT_CHUNK_SIZE`.
    The run and ``rivet check --preflight`` both size chunks with it."""
    return size_from_catalog(estimated_rows, data_bytes) or DEFAULT_CHUNK_SIZE


def _with_null_chunk(chunks: list[Chunk], stats: KeyStats) -> list[Chunk]:
    if stats.nulls:
        chunks.append(Chunk(idx=len(chunks), lo=None, hi=None,
                            expected_rows=None if stats.estimated else stats.nulls))
    return chunks


def plan_integer_chunks(stats: KeyStats, histogram: Histogram, *, chunk_size: int | None,
                        chunk_count: int | None) -> list[Chunk]:
    """Key ranges over an integer column."""
    if stats.count == 0:
        return _with_null_chunk([], stats)
    lo, hi = int(stats.lo), int(stats.hi)
    span = hi - lo + 1
    if chunk_count is not None:
        width = math.ceil(span / chunk_count)
        windows = math.ceil(span / width)
        chunks = [Chunk(idx=k, lo=lo + k * width, hi=min(lo + (k + 1) * width, hi + 1))
                  for k in range(windows)]
        return _with_null_chunk(chunks, stats)
    size = chunk_size or DEFAULT_CHUNK_SIZE
    windows = math.ceil(span / size)
    if stats.count / windows >= size / 2 or windows <= 2:
        chunks = [Chunk(idx=k, lo=lo + k * size, hi=min(lo + (k + 1) * size, hi + 1))
                  for k in range(windows)]
        return _with_null_chunk(chunks, stats)
    buckets = histogram(lo, size)
    return _with_null_chunk(merge_buckets(buckets, target_rows=size, first=lo, end=hi + 1),
                            stats)


def merge_buckets(buckets: list[Bucket], *, target_rows: int, first: Any, end: Any,
                  merge_non_empty: bool = True) -> list[Chunk]:
    """Contiguous chunks from histogram windows: each starts at its first row's key (the
    first at ``first``) and ends where the next begins (the last at ``end``). Windows are
    merged while the chunk stays within ``target_rows`` (or, without ``merge_non_empty``,
    only empty stretches are absorbed)."""
    starts: list[tuple[Any, int]] = []
    for bucket in buckets:
        if starts and (merge_non_empty and starts[-1][1] + bucket.n <= target_rows):
            starts[-1] = (starts[-1][0], starts[-1][1] + bucket.n)
        else:
            starts.append((bucket.lo, bucket.n))
    chunks = []
    for k, (start, rows) in enumerate(starts):
        lo = first if k == 0 else start
        hi = starts[k + 1][0] if k + 1 < len(starts) else end
        chunks.append(Chunk(idx=k, lo=lo, hi=hi, expected_rows=rows))
    return chunks


def as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise TypeError(f"chunk_by_days needs a date or timestamp column, got {value!r}")


def plan_day_chunks(stats: KeyStats, histogram: Histogram, *, days: int) -> list[Chunk]:
    """Ranges of ``days`` days over a date/timestamp column, bound as dates."""
    if stats.count == 0:
        return _with_null_chunk([], stats)
    first, last = as_date(stats.lo), as_date(stats.hi)
    end = last + dt.timedelta(days=1)
    windows = math.ceil((end - first).days / days)
    if windows <= _DAY_WINDOWS_WITHOUT_HISTOGRAM:
        chunks = [Chunk(idx=k, lo=first + dt.timedelta(days=k * days),
                        hi=min(first + dt.timedelta(days=(k + 1) * days), end))
                  for k in range(windows)]
        return _with_null_chunk(chunks, stats)
    # Chunks stay aligned to whole windows of `days` days from the first date.
    buckets = [Bucket(index=b.index, n=b.n, lo=first + dt.timedelta(days=b.index * days),
                      hi=None) for b in histogram(first, days)]
    return _with_null_chunk(
        merge_buckets(buckets, target_rows=0, first=first, end=end, merge_non_empty=False),
        stats)


def plan_hash(*, sql: str, chunk_column: str, chunk_size: int | None, chunk_count: int | None,
              chunk_by_days: int | None) -> str:
    """Fingerprint of what decides the chunk plan; a resume with a different one is refused."""
    material = json.dumps({"sql": sql, "column": chunk_column, "size": chunk_size,
                           "count": chunk_count, "days": chunk_by_days}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]
