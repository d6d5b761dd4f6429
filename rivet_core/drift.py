"""Schema and shape drift: how a run's columns differ from the previous run's. Pure logic.

Two kinds of drift, both decided by comparing this run with a record of the previous one:

* **schema drift** — columns added, removed, retyped (Arrow type text, so a decimal's
  precision/scale and a timestamp's unit and zone count), or with a changed nullability.
  Columns are matched by name; an order change is reported apart, as information. Meta
  columns (``_rivet_*``) are left out: they come from the config, not the source.
* **shape drift** — the longest value (in bytes) of each string/binary column grew by more
  than a factor since the previous run (:class:`WidthTracker`, :func:`shape_drift`).

A schema record (:func:`schema_record`) is the JSON the run manifest already holds under
``schema`` (:func:`rivet_core.runner.manifest.schema_json` writes the same list), so the
destination's last manifest can stand in for a lost state store. Records read back are
untrusted: :func:`schema_from_record` accepts any JSON value and either returns columns or
raises ``ValueError`` with a short printable reason.

Not here: where records are stored, when the comparison runs, and what the
:data:`DriftPolicy` does with the answer (the runner's job).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias, cast

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from rivet_core.config import models

DriftPolicy = models.DriftPolicy
"""``on_schema_drift``: ``warn`` logs the drift and records the new schema; ``continue``
records it silently; ``fail`` fails the export before its first file and keeps the old
record."""

META_PREFIX = "_rivet_"
SOURCE_TYPE_KEY = b"rivet.source_type"
MAX_LISTED = 10
"""Columns a summary names per kind of change; the rest are counted."""


@attrs.frozen(kw_only=True)
class ColumnShape:
    """One column as a schema record keeps it."""

    name: str
    type: str
    """The Arrow type as pyarrow prints it: ``decimal128(12, 2)``, ``timestamp[us, tz=UTC]``."""
    nullable: bool
    source_type: str | None = None
    """The source's own type name (field metadata ``rivet.source_type``); informational,
    not compared."""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable,
                "source_type": self.source_type}


def columns(schema: pa.Schema) -> list[ColumnShape]:
    """The columns of an Arrow schema, in order."""
    shapes = []
    for field in schema:
        source_type = (field.metadata or {}).get(SOURCE_TYPE_KEY)
        shapes.append(ColumnShape(
            name=field.name, type=str(field.type), nullable=field.nullable,
            source_type=None if source_type is None else source_type.decode("utf-8",
                                                                             "replace")))
    return shapes


def schema_record(schema: pa.Schema) -> list[dict[str, Any]]:
    """The JSON-able record of a schema: per column, in order, ``name``, ``type``,
    ``nullable`` and ``source_type`` (the manifest's ``schema`` list, key for key)."""
    return [column.as_dict() for column in columns(schema)]


# ------------------------------------------------------------------- reading records


def _quote(value: Any, limit: int = 60) -> str:
    """A JSON value as an error message quotes it: short and printable, whatever it is."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return f"an array of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"an object of {len(value)} key(s)"
    return type(value).__name__


def schema_from_record(record: Any) -> list[ColumnShape]:
    """The columns of a schema record read back from JSON (state store or manifest).

    Keys other than ``name``, ``type``, ``nullable`` and ``source_type`` are ignored, and
    ``source_type`` may be missing, so later writers can add to an entry. Anything else that
    is not what :func:`schema_record` writes raises ``ValueError`` naming the first problem."""
    if not isinstance(record, list):
        raise ValueError(f"schema is {_quote(record)}, expected an array of columns")
    shapes: list[ColumnShape] = []
    seen: set[str] = set()
    for index, entry in enumerate(record):
        where = f"schema[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is {_quote(entry)}, expected an object of name, type, "
                             "nullable")
        name, type_, nullable = entry.get("name"), entry.get("type"), entry.get("nullable")
        source_type = entry.get("source_type")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name is {_quote(name)}, expected a non-empty string")
        if not isinstance(type_, str) or not type_:
            raise ValueError(f"{where}.type is {_quote(type_)}, expected a non-empty string")
        if not isinstance(nullable, bool):
            raise ValueError(f"{where}.nullable is {_quote(nullable)}, expected true or false")
        if source_type is not None and not isinstance(source_type, str):
            raise ValueError(f"{where}.source_type is {_quote(source_type)}, expected a "
                             "string or null")
        if name in seen:
            raise ValueError(f"{where}.name {_quote(name)} names a column twice")
        seen.add(name)
        shapes.append(ColumnShape(name=name, type=type_, nullable=nullable,
                                  source_type=source_type))
    return shapes


def manifest_schema(manifest: Any) -> list[ColumnShape] | None:
    """The schema a run manifest (parsed JSON) records, or ``None`` when it records none
    (a run that ended before its first batch). Whatever the run's status: the columns are
    the last the source showed at this destination. ``ValueError`` when malformed."""
    if not isinstance(manifest, dict):
        raise ValueError(f"manifest is {_quote(manifest)}, not a JSON object")
    record = manifest.get("schema")
    return None if record is None else schema_from_record(record)


# ------------------------------------------------------------------------ comparing


def _name(text: str) -> str:
    """A column name as a summary shows it: bare when unambiguous, else quoted."""
    if text.isprintable() and not any(c.isspace() or c in ",()→:'\"" for c in text):
        return text
    return repr(text)


def _type(text: str) -> str:
    """An Arrow type as a summary shows it: as pyarrow prints it, escaped if a record read
    back holds something unprintable."""
    return text if text.isprintable() else repr(text)


def _listed(items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    if len(items) > MAX_LISTED:
        shown.append(f"… {len(items) - MAX_LISTED} more")
    return ", ".join(shown)


def _nullability(nullable: bool) -> str:
    return "nullable" if nullable else "not null"


@attrs.frozen(kw_only=True)
class SchemaDrift:
    """How the current columns differ from the previous ones, each list in current order
    (removed columns in previous order)."""

    added: tuple[tuple[str, str], ...] = ()
    """(name, type) of columns only the current run has."""
    removed: tuple[tuple[str, str], ...] = ()
    """(name, type) of columns only the previous run had."""
    retyped: tuple[tuple[str, str, str], ...] = ()
    """(name, old type, new type)."""
    nullability: tuple[tuple[str, bool, bool], ...] = ()
    """(name, old nullable, new nullable)."""
    reordered: bool = False
    """The columns both runs have come in another order. Informational: not a change."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.retyped or self.nullability)

    def summary(self) -> str:
        """One line for people: ``2 added (x int64, y string), 1 retyped (amount:
        decimal128(10, 2) → decimal128(12, 2))``."""
        parts = []
        if self.added:
            parts.append(f"{len(self.added)} added ("
                         + _listed([f"{_name(n)} {_type(t)}" for n, t in self.added]) + ")")
        if self.removed:
            parts.append(f"{len(self.removed)} removed ("
                         + _listed([f"{_name(n)} {_type(t)}" for n, t in self.removed]) + ")")
        if self.retyped:
            parts.append(f"{len(self.retyped)} retyped (" + _listed(
                [f"{_name(n)}: {_type(o)} → {_type(t)}" for n, o, t in self.retyped]) + ")")
        if self.nullability:
            parts.append(f"{len(self.nullability)} nullability changed (" + _listed(
                [f"{_name(n)}: {_nullability(o)} → {_nullability(t)}"
                 for n, o, t in self.nullability]) + ")")
        if self.reordered:
            parts.append("columns reordered")
        return ", ".join(parts) if parts else "unchanged"

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "added": [{"name": n, "type": t} for n, t in self.added],
            "removed": [{"name": n, "type": t} for n, t in self.removed],
            "retyped": [{"name": n, "old": o, "new": t} for n, o, t in self.retyped],
            "nullability": [{"name": n, "old": o, "new": t} for n, o, t in self.nullability],
            "reordered": self.reordered,
            "summary": self.summary(),
        }


Columns: TypeAlias = Sequence[ColumnShape] | Sequence[Mapping[str, Any]] | pa.Schema
"""What :func:`compare` takes on either side: an Arrow schema, its columns, or a schema
record (validated by :func:`schema_from_record`)."""


def _by_name(shapes: Columns, ignore_prefix: str | None) -> dict[str, ColumnShape]:
    listed: Sequence[ColumnShape]
    if isinstance(shapes, pa.Schema):
        listed = columns(shapes)
    elif all(isinstance(shape, ColumnShape) for shape in shapes):
        listed = cast(Sequence[ColumnShape], shapes)
    else:
        listed = schema_from_record(shapes)
    found: dict[str, ColumnShape] = {}
    for column in listed:
        if ignore_prefix and column.name.startswith(ignore_prefix):
            continue
        if column.name in found:
            raise ValueError(f"column {column.name!r} appears twice: columns are matched by "
                             "name")
        found[column.name] = column
    return found


def compare(previous: Columns, current: Columns, *,
            ignore_prefix: str | None = META_PREFIX) -> SchemaDrift:
    """How ``current`` differs from ``previous``, columns matched by name. Columns whose
    name starts with ``ignore_prefix`` are left out on both sides (``None`` or ``""``
    compares every column). ``ValueError`` for a malformed record or a name twice."""
    old = _by_name(previous, ignore_prefix)
    new = _by_name(current, ignore_prefix)
    common_old = [name for name in old if name in new]
    common_new = [name for name in new if name in old]
    return SchemaDrift(
        added=tuple((c.name, c.type) for c in new.values() if c.name not in old),
        removed=tuple((c.name, c.type) for c in old.values() if c.name not in new),
        retyped=tuple((name, old[name].type, new[name].type) for name in common_new
                      if old[name].type != new[name].type),
        nullability=tuple((name, old[name].nullable, new[name].nullable)
                          for name in common_new if old[name].nullable != new[name].nullable),
        reordered=common_old != common_new,
    )


# -------------------------------------------------------------------- shape drift


def _max_bytes(array: pa.Array | pa.ChunkedArray) -> int | None:
    """The longest value of a string/binary column in bytes; ``None`` for a column of
    another type. Nulls are not values: a column of nulls only has length 0."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        if not _is_text(kind.value_type):
            return None
        chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
        longest = 0
        for chunk in chunks:
            # Only the entries the (possibly sliced) indices use: a dictionary may hold more.
            lengths = pc.binary_length(_plain(chunk.dictionary))
            longest = max(longest, _scalar(pc.max(pc.take(lengths, chunk.indices))))
        return longest
    if not _is_text(kind):
        return None
    return _scalar(pc.max(pc.binary_length(_plain(array))))


def _is_text(kind: pa.DataType) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
            or pa.types.is_string_view(kind) or pa.types.is_binary_view(kind))


def _plain(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    # binary_length has no kernel for the view layouts.
    if pa.types.is_string_view(array.type) or pa.types.is_binary_view(array.type):
        return array.cast(pa.large_binary())
    return array


def _scalar(value: pa.Scalar) -> int:
    return 0 if value.as_py() is None else int(value.as_py())


class WidthTracker:
    """The longest value (bytes) of each string/binary column across the batches of a run.

    :meth:`observe` may be called from several threads at once; the measuring (vectorized)
    happens outside the lock, only the merge inside it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._widths: dict[str, int] = {}

    def observe(self, batch: pa.RecordBatch | pa.Table) -> None:
        measured = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            longest = _max_bytes(column)
            if longest is not None:
                measured[name] = longest
        with self._lock:
            for name, longest in measured.items():
                if longest > self._widths.get(name, -1):
                    self._widths[name] = longest

    def merge(self, other: WidthTracker) -> None:
        """Take in what ``other`` observed (e.g. a unit attempt that succeeded)."""
        if other is self:
            return
        observed = other.widths()
        with self._lock:
            for name, longest in observed.items():
                if longest > self._widths.get(name, -1):
                    self._widths[name] = longest

    def widths(self) -> dict[str, int]:
        """Column name → longest value in bytes so far (0 for a column seen only empty or
        null)."""
        with self._lock:
            return dict(self._widths)


def shape_drift(previous: Mapping[str, int], current: Mapping[str, int],
                factor: float = 2.0) -> list[str]:
    """One warning per column whose longest value is more than ``factor`` times the
    previous run's, sorted by column. ``factor`` 0 disables the check; a column the
    previous run did not measure, or measured at 0 bytes, gives no warning."""
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor >= 0):
        raise ValueError(f"shape drift factor {factor!r}: expected a number ≥ 0 (0 disables)")
    if factor == 0:
        return []
    warnings = []
    for name in sorted(current):
        before, now = previous.get(name) or 0, current[name]
        if before > 0 and now > before * factor:
            warnings.append(f"column {_name(name)}: longest value {now:,} bytes, was "
                            f"{before:,} in the previous run (more than {factor:g} times)")
    return warnings

