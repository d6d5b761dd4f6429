"""The meta columns an export can append after its query's columns (``meta_columns``).

:class:`MetaColumns` is the config table, :func:`meta_fields` the columns it adds,
:func:`meta_problems` the result columns that keep them from being added, and
:class:`MetaAppender` adds them to each batch of a run. The row hash itself is
:mod:`rivet_core.rowhash`; its encoding is docs/row-hash.md.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from rivet_core.config.models import MetaColumns
from rivet_core.rowhash import hash_columns, unsupported_reason

EXPORTED_AT = "_rivet_exported_at"
ROW_HASH = "_rivet_row_hash"
RUN_ID = "_rivet_run_id"

ROW_HASH_ALGORITHM = "rivet-row-hash-1"
"""Names the encoding and hash of docs/row-hash.md, in the row hash field's metadata
(``rivet.row_hash``); a change to either gets a new name."""


_EXPORTED_AT_TYPE = pa.timestamp("us", tz="UTC")


def meta_fields(config: MetaColumns) -> list[pa.Field]:
    """The fields ``config`` appends, in order. None is nullable; each names itself in its
    metadata (``rivet.meta``), and the row hash names its algorithm (``rivet.row_hash``)."""
    fields = []
    if config.exported_at:
        fields.append(pa.field(EXPORTED_AT, _EXPORTED_AT_TYPE, nullable=False,
                               metadata={"rivet.meta": "exported_at"}))
    if config.row_hash:
        fields.append(pa.field(ROW_HASH, pa.int64(), nullable=False,
                               metadata={"rivet.meta": "row_hash",
                                         "rivet.row_hash": ROW_HASH_ALGORITHM}))
    if config.run_id:
        fields.append(pa.field(RUN_ID, pa.string(), nullable=False,
                               metadata={"rivet.meta": "run_id"}))
    return fields


def meta_problems(config: MetaColumns, source_schema: pa.Schema) -> list[str]:
    """Why ``config``'s columns cannot be added to results of ``source_schema``: a result
    column that already has a meta column's name, and with ``row_hash`` a column whose type
    has no row-hash encoding. Empty when they can."""
    problems = []
    for name in _clashes(config, source_schema):
        key = name.removeprefix("_rivet_")
        problems.append(
            f"meta_columns.{key}: the query already has a column named {name!r}; "
            f"rename it in the query (AS ...) or set meta_columns.{key} = false")
    if config.row_hash:
        problems.extend(f"meta_columns.row_hash: column {field.name!r} cannot be hashed: "
                        f"{reason}" for field in source_schema
                        if (reason := unsupported_reason(field.type)))
    return problems


def _clashes(config: MetaColumns, source_schema: pa.Schema) -> list[str]:
    names = set(source_schema.names)
    return [field.name for field in meta_fields(config) if field.name in names]


class MetaAppender:
    """Appends the meta columns of one run to each batch it writes.

    ``started_at`` (timezone-aware) is the value of every ``_rivet_exported_at``; the row
    hash covers the batch's own columns, all of them, before anything is appended. Safe to
    share between threads."""

    def __init__(self, config: MetaColumns, run_id: str, started_at: dt.datetime) -> None:
        if started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        self._config = config
        self._fields = meta_fields(config)
        self._exported_at = pa.scalar(started_at, type=_EXPORTED_AT_TYPE)
        self._run_id = pa.scalar(run_id, type=pa.string())
        # The constant columns of the longest batch so far; shorter batches take a slice.
        self._constants: tuple[int, dict[str, pa.Array]] = (0, {})

    def clashes(self, source_schema: pa.Schema) -> list[str]:
        """The meta columns ``source_schema`` already has a column named like, in order."""
        return _clashes(self._config, source_schema)

    def schema(self, source_schema: pa.Schema) -> pa.Schema:
        """``source_schema`` with the meta fields appended (its metadata kept). Raises
        ``ValueError`` with :func:`meta_problems` if they cannot be."""
        problems = meta_problems(self._config, source_schema)
        if problems:
            raise ValueError("; ".join(problems))
        return pa.schema([*source_schema, *self._fields], metadata=source_schema.metadata)

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with the meta columns appended, in :meth:`schema`'s layout."""
        schema = self.schema(batch.schema)
        constants = self._constant_columns(batch.num_rows)
        appended = []
        for field in self._fields:
            if field.name == ROW_HASH:
                appended.append(hash_columns(batch).view(pa.int64()))
            else:
                appended.append(constants[field.name])
        return pa.RecordBatch.from_arrays([*batch.columns, *appended], schema=schema)

    def _constant_columns(self, rows: int) -> dict[str, pa.Array]:
        length, arrays = self._constants
        if rows > length:
            values = {EXPORTED_AT: self._exported_at, RUN_ID: self._run_id}
            arrays = {field.name: pa.repeat(values[field.name], rows)
                      for field in self._fields if field.name in values}
            self._constants = (rows, arrays)
        return {name: array.slice(0, rows) for name, array in arrays.items()}


__all__ = ["EXPORTED_AT", "ROW_HASH", "ROW_HASH_ALGORITHM", "RUN_ID", "MetaAppender",
           "MetaColumns", "meta_fields", "meta_problems"]
