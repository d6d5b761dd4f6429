"""The key set behind the ``unique_columns`` quality gate: it counts duplicate keys over any
number of rows, exactly (within the hash odds below), in bounded memory.

What a key is:

- A single integer, date, time, timestamp or duration column is its own key: the value's
  64 bits are compared, so the count is exact and a duplicate can be shown.
- Any other key (a string, a float, a decimal, several columns) is compared by its 64-bit
  row hash (:func:`rivet_core.rowhash.hash_columns`). Equal keys always hash equal, so a
  collision can only make two different keys look equal: it can add a duplicate that is not
  there, never hide one that is. For ``n`` distinct keys the chance of any collision is
  about ``n**2 / 2**65`` (the birthday bound): 2.7e-6 for 10 million keys, 2.7e-4 for 100
  million. The row hash reduces nanoseconds to microseconds, so in a composite key two
  timestamps a few nanoseconds apart also look equal. No example of a duplicated hashed key
  can be shown.
- A row whose key holds a NULL is skipped, as SQL's ``UNIQUE`` does (NULLs never collide);
  the skipped rows are counted.

Memory: keys are held as ``uint64`` Arrow arrays while the key sets sharing a
:class:`MemoryBudget` hold less than its limit; past it a key set appends its keys to its
spill file. The count is taken at the end. When every batch of an exact key was strictly
increasing and the batches' ranges do not overlap (a table read in key order, sequentially
or in disjoint ranges), there is nothing to compare. Otherwise keys that fit a quarter of the
budget are counted in memory; more are split by 8 bits of their (mixed) value into up to 256
partition files, again until each fits a quarter of the budget (counting needs the keys plus
about twice their size), and each partition is counted on its own: exact keys are sorted
and adjacent equal keys counted, hashed keys are counted with a hash table. An attempt that
may be retried observes into a :meth:`KeySet.fork`, merged into the run's set only when it
succeeds.

This module holds no gate logic and no messages; :mod:`rivet_core.quality` does.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from pathlib import Path

import attrs
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from rivet_core.rowhash import hash_columns, unsupported_reason

DEFAULT_MEMORY_BUDGET = 64 << 20
"""Bytes of keys the key sets of one check hold in memory before they spill (8 Mi keys)."""

_BITS = 8
_FANOUT = 1 << _BITS
_LEVELS = 64 // _BITS
_MIX = pa.scalar(0x9E3779B97F4A7C15, pa.uint64())
"""An odd multiplier: multiplying by it is a bijection of uint64 that spreads consecutive
integers over the top bits (Fibonacci hashing), so dense ids still fill every partition."""
_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Partitions counted at once (each within a quarter of the budget divided by this)."""
_MIN_BUDGET = 1 << 20
"""A smaller budget is raised to this: below it, spilling only multiplies files and calls."""
_MAX_RUNS = 100_000
"""Beyond this many increasing runs of an exact key, stop tracking them and compare keys:
the run list must stay small whatever the batch size."""


@attrs.frozen(kw_only=True)
class KeyCount:
    """What a key set found."""

    rows: int
    """Rows whose key has no NULL: the rows compared."""
    null_rows: int
    """Rows skipped because their key holds a NULL."""
    duplicates: int
    """``rows`` minus the number of distinct keys."""
    example: pa.Scalar | None
    """A duplicated key, typed as its column; None when there is none or keys are hashed."""
    exact: bool
    """Keys were compared by value (True) or by 64-bit hash (False)."""
    spilled_bytes: int
    """Bytes of keys written to disk during the run (0 when they fitted in memory)."""
    peak_bytes: int
    """Most bytes of keys held in memory at once by the key sets sharing the budget, the
    final sort included."""


class MemoryBudget:
    """The bytes of keys that the key sets of one check, and of its forks, may hold in
    memory together. Thread-safe."""

    def __init__(self, limit: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.limit = max(limit, _MIN_BUDGET)
        self._lock = threading.Lock()
        self._used = 0
        self.peak = 0
        """Most bytes held at once, transient working memory included."""

    def charge(self, nbytes: int) -> bool:
        """Count ``nbytes`` more held; True when the holders are now over the limit."""
        with self._lock:
            self._used += nbytes
            self.peak = max(self.peak, self._used)
            return self._used > self.limit

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._used -= nbytes

    @contextlib.contextmanager
    def working(self, nbytes: int) -> Iterator[None]:
        """Count ``nbytes`` used for the duration of a step (a sort, a split)."""
        self.charge(nbytes)
        try:
            yield
        finally:
            self.release(nbytes)


def key_problem(columns: Sequence[str], schema: pa.Schema) -> str | None:
    """Why a key over ``columns`` cannot be checked on rows of ``schema``, or None."""
    for name in columns:
        found = len(schema.get_all_field_indices(name))
        if found != 1:
            return (f"no column {name!r} in the result" if not found
                    else f"the result has {found} columns named {name!r}")
    if len(columns) == 1 and _storage(schema.field(columns[0]).type) is not None:
        return None
    for name in columns:
        reason = unsupported_reason(schema.field(name).type)
        if reason:
            return f"column {name!r}: {reason}"
    return None


def _storage(typ: pa.DataType) -> pa.DataType | None:
    """The integer type holding the bits of a value of ``typ`` when the value can be its own
    key, else None."""
    if pat.is_integer(typ):
        return typ
    if pat.is_date32(typ) or pat.is_time32(typ):
        return pa.int32()
    if pat.is_date64(typ) or pat.is_time64(typ) or pat.is_timestamp(typ) or (
            pat.is_duration(typ)):
        return pa.int64()
    return None


class KeySet:
    """The keys of one ``unique_columns`` entry. :meth:`add` may be called from several
    threads at once; :meth:`count` once, after the last :meth:`add` and :meth:`merge`."""

    def __init__(self, columns: Sequence[str], schema: pa.Schema, *,
                 budget: MemoryBudget | None = None, spill_dir: Path | None = None) -> None:
        problem = key_problem(columns, schema)
        if problem:
            raise ValueError(problem)
        self.columns = list(columns)
        self._schema = schema
        self._type = schema.field(self.columns[0]).type
        self._storage = _storage(self._type) if len(self.columns) == 1 else None
        self._signed = self._storage is not None and pat.is_signed_integer(self._storage)
        self._budget = budget if budget is not None else MemoryBudget()
        self._spill_parent = spill_dir
        self._lock = threading.Lock()
        self._rows = 0
        self._null_rows = 0
        self._memory: list[pa.Array] = []
        self._memory_bytes = 0
        self._spilled = 0
        self._directory: Path | None = None
        """Where this set spills; created on first need."""
        self._files: list[Path] = []
        """Spill files holding keys: this set's own, and those of merged forks."""
        self._directories: list[Path] = []
        """Directories to delete on close: this set's own, and those of merged forks."""
        # Exact keys only: [low, high] of each strictly increasing run of keys, and each
        # thread's latest run, which its next batch extends when it continues upwards.
        self._runs: list[list[int]] | None = [] if self.exact else None
        self._last_run: dict[int, int] = {}
        self._names = itertools.count()
        self._counted: KeyCount | None = None
        self._closed = False

    @property
    def exact(self) -> bool:
        """Keys are compared by value, not by hash."""
        return self._storage is not None

    def fork(self) -> KeySet:
        """An empty key set for the same key, sharing this one's budget, to :meth:`merge`
        into this one later."""
        return KeySet(self.columns, self._schema, budget=self._budget,
                      spill_dir=self._spill_parent)

    def add(self, batch: pa.RecordBatch) -> None:
        """Take the keys of ``batch``'s rows."""
        columns = [batch.column(name) for name in self.columns]
        null_rows = 0
        valid = None
        if any(column.null_count for column in columns):
            valid = reduce(pc.and_, [pc.is_valid(column) for column in columns])
            null_rows = batch.num_rows - (pc.sum(valid).as_py() or 0)
        span: tuple[int, int] | None = None
        increasing = True
        if self._storage is not None:
            keys = self._ordered(columns[0])
            if valid is not None:
                keys = keys.filter(valid)
            if self._runs is not None and len(keys):
                low, high = pc.min_max(keys).values()
                span = (low.as_py(), high.as_py())
                increasing = len(keys) < 2 or bool(
                    pc.all(pc.greater(keys.slice(1), keys.slice(0, len(keys) - 1))).as_py())
            if self._signed:
                keys = keys.view(pa.uint64())
        else:
            keys = hash_columns(batch, self.columns)
            if valid is not None:
                keys = keys.filter(valid)
        if keys.get_total_buffer_size() > 2 * keys.nbytes + 4096:
            # A slice of a larger buffer would pin all of it; hold a copy of our part.
            keys = pa.concat_arrays([keys])
        with self._lock:
            if self._closed or self._counted is not None:
                raise RuntimeError("key set is closed or already counted")
            self._rows += len(keys)
            self._null_rows += null_rows
            self._track_run(span, increasing)
            if len(keys):
                self._memory.append(keys)
                self._memory_bytes += 8 * len(keys)
                if self._budget.charge(8 * len(keys)):
                    self._spill()

    def _ordered(self, column: pa.Array) -> pa.Array:
        """``column`` as int64 (signed types) or uint64, values ordered as the column's."""
        assert self._storage is not None
        if not column.type.equals(self._storage):
            column = column.view(self._storage)
        wide = pa.int64() if self._signed else pa.uint64()
        return column if column.type.equals(wide) else column.cast(wide)

    def _track_run(self, span: tuple[int, int] | None, increasing: bool) -> None:
        if self._runs is None or span is None:
            return
        if not increasing or len(self._runs) >= _MAX_RUNS:
            self._runs = None
            return
        thread = threading.get_ident()
        last = self._last_run.get(thread)
        if last is not None and self._runs[last][1] < span[0]:
            self._runs[last][1] = span[1]
        else:
            self._last_run[thread] = len(self._runs)
            self._runs.append([span[0], span[1]])

    def merge(self, other: KeySet) -> None:
        """Take every key of ``other``, a :meth:`fork` of this set that is done adding;
        ``other`` is left empty and closed."""
        if other._budget is not self._budget or other.columns != self.columns:
            raise ValueError("only a fork of this key set can be merged into it")
        with self._lock, other._lock:
            if self._closed or other._closed or self._counted is not None:
                raise RuntimeError("key set is closed or already counted")
            self._rows += other._rows
            self._null_rows += other._null_rows
            self._spilled += other._spilled
            self._memory += other._memory
            self._memory_bytes += other._memory_bytes
            self._files += other._files
            self._directories += other._directories
            if self._runs is not None and other._runs is not None and (
                    len(self._runs) + len(other._runs) <= _MAX_RUNS):
                self._runs += other._runs
                self._last_run.clear()
            else:
                self._runs = None
            other._memory, other._memory_bytes = [], 0
            other._files, other._directories, other._directory = [], [], None
            other._closed = True
            if self._budget.charge(0):
                self._spill()

    def _spill(self) -> None:
        """Append the keys held in memory to this set's spill file."""
        if not self._memory:
            return
        path = self._own_directory() / "keys"
        if path not in self._files:
            self._files.append(path)
        with path.open("ab") as out:
            for keys in self._memory:
                out.write(_data(keys))
        self._spilled += self._memory_bytes
        self._budget.release(self._memory_bytes)
        self._memory.clear()
        self._memory_bytes = 0

    def _own_directory(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="rivet-unique-",
                                                    dir=self._spill_parent))
            self._directories.append(self._directory)
        return self._directory

    def count(self) -> KeyCount:
        """Count the duplicates among every key added and merged. The keys are consumed:
        later calls return the same count, and :meth:`add` is refused."""
        with self._lock:
            if self._counted is not None:
                return self._counted
            if self._closed:
                raise RuntimeError("key set is closed")
            duplicates, example = 0, None
            if not self._disjoint_runs():
                if not self._files and self._memory_bytes <= self._budget.limit // 4:
                    duplicates, example = self._count_keys(self._memory)
                else:
                    duplicates, example = self._count_spilled()
            self._budget.release(self._memory_bytes)
            self._memory.clear()
            self._memory_bytes = 0
            self._counted = KeyCount(
                rows=self._rows, null_rows=self._null_rows, duplicates=duplicates,
                example=None if example is None else self._value(example), exact=self.exact,
                spilled_bytes=self._spilled, peak_bytes=self._budget.peak)
            return self._counted

    def _disjoint_runs(self) -> bool:
        if self._runs is None:
            return False
        runs = sorted(self._runs)
        return all(before[1] < after[0] for before, after in itertools.pairwise(runs))

    def _count_spilled(self) -> tuple[int, int | None]:
        self._spill()
        sources = [_Segment(path, 0, path.stat().st_size) for path in self._files]
        with _Reader() as reader:
            parts = self._split(reader, sources, 0)
            for path in self._files:
                path.unlink()
            self._files = []
            # Partitions are independent and Arrow releases the GIL: count a few at once.
            with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
                counted = list(pool.map(lambda part: self._count_part(reader, part, 1), parts))
            if parts:
                reader.forget(parts[0][0].path)
        duplicates = sum(found for found, _ in counted)
        return duplicates, next((one for _, one in counted if one is not None), None)

    def _count_keys(self, arrays: list[pa.Array]) -> tuple[int, int | None]:
        """Duplicates among keys that fit in memory, and one duplicated key (exact keys)."""
        keys = pa.concat_arrays(arrays) if arrays else pa.array([], pa.uint64())
        if len(keys) < 2:
            return 0, None
        # The keys (a copy, or mapped from a file) and a sort order and a sorted copy, or a
        # hash table of about that size.
        with self._budget.working(3 * keys.nbytes):
            return self._duplicates(keys)

    def _duplicates(self, keys: pa.Array) -> tuple[int, int | None]:
        if self.exact:
            descents = pc.sum(pc.less(keys.slice(1), keys.slice(0, len(keys) - 1))).as_py()
            if (descents or 0) * 100 <= len(keys):
                # Nearly in order (a table read roughly by its key): the merge sort is quick.
                ordered = keys.take(pc.array_sort_indices(keys))
                equal = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
                duplicates = pc.sum(equal).as_py() or 0
                if not duplicates:
                    return 0, None
                return duplicates, ordered[pc.index(equal, True).as_py()].as_py()
        # In no order (hashes always): a hash table beats a sort.
        duplicates = len(keys) - len(pc.unique(keys))
        if not duplicates or not self.exact:
            return duplicates, None
        counts = pc.value_counts(keys)
        repeated = counts.filter(pc.greater(counts.field("counts"), 1))
        return duplicates, repeated[0]["values"].as_py()

    def _count_part(self, reader: _Reader, segments: list[_Segment], level: int
                    ) -> tuple[int, int | None]:
        """Duplicates among the keys of one partition (the keys of ``segments``), whose
        keys agree on their top ``level * 8`` mixed bits."""
        size = sum(segment.length for segment in segments)
        if level == _LEVELS:
            # Every mixed bit agrees, so every key is the same key.
            first = int.from_bytes(reader.read(segments[0])[:8], "little")
            return size // 8 - 1, first
        if size <= self._budget.limit // (4 * _WORKERS):
            data = b"".join(reader.read(segment) for segment in segments)
            return self._count_keys([_keys(data)])
        parts = self._split(reader, segments, level)
        duplicates, example = 0, None
        for part in parts:
            found, one = self._count_part(reader, part, level + 1)
            duplicates += found
            example = one if example is None else example
        reader.forget(parts[0][0].path)
        return duplicates, example

    def _split(self, reader: _Reader, segments: list[_Segment], level: int
               ) -> list[list[_Segment]]:
        """Group the keys of ``segments`` by the 8 bits of their mixed value below the
        ``level * 8`` they agree on, into one new file: the segments of each group."""
        shift = pa.scalar(64 - _BITS * (level + 1), pa.uint64())
        mask = pa.scalar(_FANOUT - 1, pa.uint64())
        every = pa.array(range(_FANOUT), pa.uint8())
        path = self._own_directory() / f"part-{next(self._names)}"
        groups: list[list[_Segment]] = [[] for _ in range(_FANOUT)]
        position = 0
        with path.open("wb") as out:
            for keys in self._chunks(reader, segments):
                mixed = pc.multiply(keys, _MIX) if self.exact else keys
                digits = pc.bit_wise_and(pc.shift_right(mixed, shift), mask).cast(pa.uint8())
                order = pc.array_sort_indices(digits)
                out.write(_data(keys.take(order)))
                starts = pc.search_sorted(digits.take(order), every).to_pylist()
                for digit, (start, end) in enumerate(
                        itertools.pairwise([*starts, len(keys)])):
                    if end > start:
                        groups[digit].append(_Segment(path, position + 8 * start,
                                                      8 * (end - start)))
                position += 8 * len(keys)
        return [group for group in groups if group]

    def _chunks(self, reader: _Reader, segments: list[_Segment]) -> Iterator[pa.Array]:
        """The keys of ``segments``, a bounded chunk at a time."""
        chunk = max(8, (self._budget.limit // (8 * _WORKERS)) // 8 * 8)
        # The chunk, its mixed value, the digits, the sort order and the grouped copy.
        with self._budget.working(4 * chunk + chunk // 8):
            pending: list[bytes] = []
            held = 0
            for segment in segments:
                for offset in range(0, segment.length, chunk):
                    piece = _Segment(segment.path, segment.offset + offset,
                                     min(chunk, segment.length - offset))
                    pending.append(reader.read(piece))
                    held += piece.length
                    if held >= chunk:
                        yield _keys(b"".join(pending))
                        pending, held = [], 0
            if pending:
                yield _keys(b"".join(pending))

    def _value(self, key: int) -> pa.Scalar:
        """A key as a value of the key's column."""
        keys = pa.array([key], pa.uint64())
        if self._signed:
            keys = keys.view(pa.int64())
        assert self._storage is not None
        keys = keys.cast(self._storage)
        if not self._type.equals(self._storage):
            keys = keys.view(self._type)
        return keys[0]

    def close(self) -> None:
        """Drop the keys and delete the spill files. Safe to call twice."""
        with self._lock:
            self._closed = True
            self._budget.release(self._memory_bytes)
            self._memory.clear()
            self._memory_bytes = 0
            for directory in self._directories:
                shutil.rmtree(directory, ignore_errors=True)
            self._directories, self._files, self._directory = [], [], None


@attrs.frozen
class _Segment:
    """A run of keys in a file: ``length`` bytes from ``offset``."""

    path: Path
    offset: int
    length: int


class _Reader:
    """Reads segments of spill files, from any thread, through one descriptor per file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[Path, int] = {}

    def read(self, segment: _Segment) -> bytes:
        with self._lock:
            fd = self._files.get(segment.path)
            if fd is None:
                fd = self._files[segment.path] = os.open(segment.path, os.O_RDONLY)
        data = os.pread(fd, segment.length, segment.offset)
        if len(data) != segment.length:
            raise OSError(f"spill file {segment.path} is shorter than written")
        return data

    def forget(self, path: Path) -> None:
        """Close and delete a file whose keys are all counted."""
        with self._lock:
            fd = self._files.pop(path, None)
        if fd is not None:
            os.close(fd)
        path.unlink()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()


def _keys(data: bytes) -> pa.Array:
    return pa.Array.from_buffers(pa.uint64(), len(data) // 8, [None, pa.py_buffer(data)])


def _data(keys: pa.Array) -> pa.Buffer:
    """The bytes of a uint64 array without nulls, as written to a spill file."""
    buffer = keys.buffers()[1]
    return buffer.slice(keys.offset * 8, len(keys) * 8)
