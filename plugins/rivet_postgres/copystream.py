"""A binary COPY read started from a described cursor: the columns' decoding on this
connection, the statements (one COPY of the query, or ctid ranges of a table read by
several connections under one exported snapshot), and the stream handing their batches
over.

For a ranged read the control connection's transaction (REPEATABLE READ) exports its
snapshot with ``pg_export_snapshot()``; each COPY connection imports it, and once all have,
the source ends the exporting transaction. A single read closes the cursor and its
transaction first: the COPY connection runs the query in its own. Either way each COPY
connection runs the read's prologue (:func:`~rivet_postgres.connection.begin_statements`).

Not here: the statements' text (:mod:`.copyplan`), converting batches
(:mod:`.copyconvert`), the connections and threads (:mod:`.copyreader`), the choice of path
(:mod:`.source`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import pyarrow as pa
from psycopg import pq

from rivet_core.api import BatchStream, ColumnInfo, Query, ReadOptions, SourceError, schema_of
from rivet_postgres import copyconvert, copyplan, copyreader
from rivet_postgres.columns import array_shape_error
from rivet_postgres.connection import begin_statements
from rivet_postgres.describe import Opened
from rivet_postgres.dialect import DIALECT
from rivet_postgres.errors import wrap_error
from rivet_postgres.loaders import ArrayShapeError

if TYPE_CHECKING:
    from rivet_postgres.source import PostgresSource


def fast_columns(conn: psycopg.Connection[Any], opened: Opened) -> list[copyplan.FastColumn]:
    """How each column of the described result travels over COPY; a ``WIRE`` column is
    decoded by the loader the cursor would use for it (the same decoding)."""
    columns = []
    for oid, plan in zip(opened.oids, opened.plan, strict=True):
        carry, send = copyplan.carry_for(plan)
        load = None
        if carry is copyplan.Carry.WIRE:
            loader_cls = conn.adapters.get_loader(oid, pq.Format.BINARY)
            if loader_cls is None:
                raise SourceError(f"no binary loader for column {plan.name!r}")
            load = loader_cls(oid, conn).load
        columns.append(copyplan.FastColumn(plan, carry, send, load))
    return columns


def table_blocks(conn: psycopg.Connection[Any], table: str) -> tuple[str, int] | None:
    """(quoted name, size in blocks) of a plain table, or None for anything a ctid range
    cannot split (a view, a partitioned or foreign table)."""
    query = DIALECT.table_blocks(table)
    row = conn.execute(query.sql, query.params).fetchone()
    if row is None or row[0] not in ("r", "m"):
        return None
    return str(row[1]), int(row[2])


def start(source: PostgresSource, conn: psycopg.Connection[Any], opened: Opened,
          columns: list[copyplan.FastColumn], query: Query, options: ReadOptions, *,
          ranged: bool) -> CopyBatchStream:
    """The COPY read of the described ``opened`` cursor on the control connection ``conn``
    (ranges of ``query.table`` when ``ranged`` and the table spans more than one)."""
    pool = source.copy_pool()
    schema = schema_of(opened.columns)
    max_bytes = options.max_batch_bytes
    batch_bytes = min(copyconvert.BATCH_HINT_BYTES, max_bytes or copyconvert.BATCH_HINT_BYTES)
    throttle_s = options.throttle_ms / 1000
    plans = opened.plan
    layout = copyconvert.copy_layout(columns)

    def convert(raw: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        copyconvert.check_schema(raw.schema, columns)
        try:
            batch = copyconvert.convert_batch(raw, columns, schema)
        except ArrayShapeError as exc:
            raise array_shape_error(plans, query.label, exc) from None
        return copyconvert.slices(batch, options.batch_size, max_bytes)

    try:
        settings = source.copy_conninfo()
        table = table_blocks(conn, query.table) if ranged and query.table else None
        if table is not None and (ranges := copyplan.BlockRanges(table[1])).spans_several():
            name, blocks = table
            (snapshot,) = conn.execute("SELECT pg_export_snapshot()").fetchone() or ("",)
            opened.cursor.close()  # CLOSE; the transaction (and snapshot) stays open

            def statement(block_range: tuple[int, int | None]) -> str:
                return copyplan.select_sql(copyplan.range_sql(name, block_range), columns)

            workers = max(1, min(options.parallel, -(-blocks // ranges.first)))
            reader = copyreader.RangedCopy(
                pool, settings, ranges, statement, layout=layout, workers=workers,
                begin=begin_statements(options, repeatable_read=True, snapshot=snapshot),
                batch_bytes=batch_bytes, convert=convert, label=query.label,
                throttle_s=throttle_s, on_imported=source.end_snapshot_transaction)
            noun = "connection" if workers == 1 else "connections"
            path = (f"binary COPY, {workers} {noun} over ctid ranges of {name} "
                    f"({blocks:,} blocks, statements sized to about "
                    f"{copyplan.RANGE_TARGET_S:g} s each)")
            stream = CopyBatchStream(source, opened.columns, reader, label=query.label)
        else:
            sql = query.sql
            if query.params:
                sql = copyplan.render_params(conn, query.sql, query.params)
            source.close_cursor(opened.cursor)
            single = copyreader.SingleCopy(
                pool, settings, copyplan.select_sql(sql, columns), layout=layout,
                begin=begin_statements(options),
                batch_bytes=batch_bytes, convert=convert, label=query.label,
                throttle_s=throttle_s)
            path = "binary COPY"
            stream = CopyBatchStream(source, opened.columns, single, label=query.label)
    except psycopg.Error as exc:
        error = wrap_error(exc, query.label)
        source.close_cursor(opened.cursor)
        raise error from None
    except BaseException:
        source.close_cursor(opened.cursor)
        raise
    stream.read_path = path
    return stream


class CopyBatchStream(BatchStream):
    """Batches of a binary COPY read (one statement, or ctid ranges over several
    connections). Iterate once; ``close()`` stops the readers and ends the transactions;
    ``cancel()`` stops the statements from another thread."""

    def __init__(self, source: PostgresSource, columns: list[ColumnInfo],
                 reader: copyreader.SingleCopy | copyreader.RangedCopy, *,
                 label: str) -> None:
        self.columns = columns
        self.schema = schema_of(columns)
        self.label = label
        self._source = source
        self._reader = reader
        self._open = True

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._reader
        finally:
            self.close()

    def cancel(self) -> None:
        self._reader.cancel()

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._reader.close()
            finally:
                self._source.end_copy(self)


__all__ = ["CopyBatchStream", "fast_columns", "start"]
