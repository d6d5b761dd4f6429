"""What ``rivet init`` finds in a database: :func:`survey` reads, through a source and its
dialect, every table's size, primary key, indexed and generated columns, and the mapping of
every column (a zero-row describe of ``SELECT * FROM <table>``, the probe of ``rivet check
--type-report``), and settles how a scaffold's export reads the table so that it runs as
written: the ``table`` key when the name is plain, a quoted query otherwise, with a cast
for each column that has no faithful Arrow type.

Every statement is one of the dialect's (:class:`~rivet_core.dialect.SupportsCatalog`,
:class:`~rivet_core.dialect.SupportsPrimaryKey`,
:class:`~rivet_core.dialect.SupportsIntrospection`), run with
:meth:`~rivet_core.backends.Source.fetch_rows` in the source's read-only transaction. A
dialect that lacks a piece yields fewer findings, never a failure: :attr:`Survey.missing`
says what could not be found out and why.

Not here: which mode each table should get, and the TOML (:mod:`rivet_core.scaffold`, pure).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

from rivet_core.backends import ReadOptions, Source
from rivet_core.dialect import (
    Dialect,
    Query,
    SupportsCatalog,
    SupportsIntrospection,
    SupportsPrimaryKey,
)
from rivet_core.errors import RivetError, UnsupportedTypeError, UsageError
from rivet_core.redact import redact
from rivet_core.types import ColumnInfo, Fidelity

_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
"""A name every database reads the same unquoted (no case folding, no quoting needed), as
the ``table`` config key requires."""

SURVEY_OPTIONS = ReadOptions(statement_timeout_s=60, lock_timeout_s=5)
"""Catalog statements are short; a table locked by a migration is skipped after 5 s rather
than waited for."""

UNSIZED_KINDS = frozenset({"view", "foreign table"})
"""Kinds whose catalog row says nothing of the rows they return."""


@attrs.frozen(kw_only=True)
class ColumnFacts:
    """One column of a table, as the catalog and a zero-row describe see it."""

    name: str
    source_type: str
    arrow_type: str | None
    fidelity: str
    note: str = ""
    nullable: bool | None = None
    """None when the dialect cannot list columns."""
    indexed: bool | None = None
    """Leads a usable index; None when the dialect cannot say."""
    generated: str | None = None
    """How the database fills it (see :meth:`SupportsIntrospection.column_traits`)."""
    kind: str | None = None
    """``timestamp`` or ``integer`` (from the Arrow type), the kinds a cursor or a chunk
    key can be; None otherwise."""

    def flagged(self) -> bool:
        """What the type report marks ``✗``."""
        return self.fidelity in (Fidelity.LOSSY.value, Fidelity.UNSUPPORTED.value)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class TableFacts:
    """One table (or view) and how a scaffold reads it."""

    schema: str | None
    name: str
    kind: str
    estimated_rows: int | None
    total_bytes: int | None
    primary_key: list[str]
    columns: list[ColumnFacts]
    table_key: str | None
    """The ``table`` config key (``schema.name``) when both parts are plain names and the
    table can be read as ``SELECT *``; None when the export needs :attr:`query`."""
    query: str
    """The SQL the export reads: ``SELECT * FROM <table>``, or the column list with casts."""
    casts: dict[str, str]
    """Column → the expression it is read as (its type has no faithful Arrow mapping)."""
    left_out: list[str]
    """Columns with no faithful mapping and no cast: not in :attr:`query`."""
    error: str | None = None
    """Why the table cannot be read (the describe failed); the scaffold skips it."""
    notes: list[str] = attrs.field(factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def column(self, name: str) -> ColumnFacts | None:
        return next((c for c in self.columns if c.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "table": self.name, "kind": self.kind,
            "estimated_rows": self.estimated_rows, "total_bytes": self.total_bytes,
            "primary_key": self.primary_key,
            "columns": [c.as_dict() for c in self.columns],
            "flagged": [{"column": c.name, "source_type": c.source_type,
                         "fidelity": c.fidelity, "note": c.note,
                         "read_as": self.casts.get(c.name),
                         "left_out": c.name in self.left_out}
                        for c in self.columns if c.flagged()],
            "error": self.error, "notes": self.notes,
        }


@attrs.frozen(kw_only=True)
class Survey:
    """Everything :func:`survey` found."""

    source_type: str
    location: str
    """Where the source connected, safe to print."""
    dialect: str
    schema: str | None
    tables: list[TableFacts]
    missing: list[str]
    """What the dialect could not tell, one sentence each."""


def survey(source: Source, dialect: Dialect, *, source_type: str, schema: str | None,
           tables: Sequence[str] = ()) -> Survey:
    """Survey the tables of ``schema`` (None: those the dialect lists by default), or only
    ``tables`` (``name`` or ``schema.name``). A table named but not found is a usage error
    listing what there is."""
    missing = _missing_pieces(dialect)
    listed = _list_tables(source, dialect, schema, tables)
    found = [_table(source, dialect, row) for row in listed]
    return Survey(source_type=source_type, location=source.display_name(),
                  dialect=dialect.name, schema=schema, tables=found, missing=missing)


def _missing_pieces(dialect: Dialect) -> list[str]:
    missing = []
    if not isinstance(dialect, SupportsCatalog):
        missing.append(f"dialect {dialect.name!r} cannot list tables (no SupportsCatalog): "
                       "name them with --table; sizes and nullability are unknown")
    if not isinstance(dialect, SupportsPrimaryKey):
        missing.append(f"dialect {dialect.name!r} cannot name primary keys (no "
                       "SupportsPrimaryKey): no table is chunked by its key")
    if not isinstance(dialect, SupportsIntrospection):
        missing.append(f"dialect {dialect.name!r} cannot list indexed columns nor cast "
                       "unmapped ones (no SupportsIntrospection): no cursor or chunk "
                       "candidates, and columns without a faithful type are left out")
    return missing


def _list_tables(source: Source, dialect: Dialect, schema: str | None,
                 wanted: Sequence[str]) -> list[dict[str, Any]]:
    if not isinstance(dialect, SupportsCatalog):
        if not wanted:
            raise UsageError(f"dialect {dialect.name!r} cannot list tables",
                             hint="name the tables to export with --table")
        return [_named(name, schema) for name in wanted]
    rows = source.fetch_rows(dialect.tables(schema), SURVEY_OPTIONS)
    if not wanted:
        return rows
    chosen = []
    for name in wanted:
        want_schema, _, want_name = name.rpartition(".")
        match = [r for r in rows if r["table_name"] == want_name
                 and (not want_schema or r["table_schema"] == want_schema)]
        if not match:
            where = f"schema {schema!r}" if schema else "the database"
            names = ", ".join(sorted({r["table_name"] for r in rows})[:20]) or "none"
            raise UsageError(f"table {name!r} not found in {where}",
                             hint=f"tables there: {names}")
        chosen.append(match[0])
    return chosen


def _named(name: str, schema: str | None) -> dict[str, Any]:
    table_schema, _, table_name = name.rpartition(".")
    return {"table_schema": table_schema or schema, "table_name": table_name,
            "table_kind": "table", "estimated_rows": None, "total_bytes": None}


def _table(source: Source, dialect: Dialect, row: dict[str, Any]) -> TableFacts:
    schema, name = row["table_schema"], row["table_name"]
    kind = row.get("table_kind") or "table"
    reference = (f"{dialect.quote(schema)}.{dialect.quote(name)}" if schema
                 else dialect.quote(name))
    notes: list[str] = []
    rows = _count(row.get("estimated_rows"))
    size = _count(row.get("total_bytes"))
    if kind in UNSIZED_KINDS or (rows is None and size == 0):
        # A partitioned table's parent holds no rows itself: its size is unknown here.
        rows = size = None

    def fetch(query: Query) -> list[dict[str, Any]]:
        try:
            return source.fetch_rows(query, SURVEY_OPTIONS)
        except RivetError as exc:
            notes.append(f"{query.label}: {redact(exc.message)}")
            return []

    key: list[str] = []
    if isinstance(dialect, SupportsPrimaryKey):
        key = [r["column_name"] for r in fetch(dialect.primary_key(reference))]
    nullable: dict[str, bool] = {}
    if isinstance(dialect, SupportsCatalog):
        nullable = {r["column_name"]: bool(r["is_nullable"])
                    for r in fetch(dialect.columns(reference))}
    traits: dict[str, dict[str, Any]] = {}
    if isinstance(dialect, SupportsIntrospection):
        traits = {r["column_name"]: r for r in fetch(dialect.column_traits(reference))}

    table_key: str | None = f"{schema}.{name}" if schema else name
    if not all(_PLAIN.match(part) for part in (schema or "_", name)):
        table_key = None
    mapped: list[ColumnInfo] = []
    error: str | None = None
    if table_key is not None:
        mapped, error = _describe(source, f"SELECT * FROM {table_key}")
    if table_key is None or error is not None:
        table_key = None  # a reserved word, or a name the database folds: quote it
        mapped, error = _describe(source, f"SELECT * FROM {reference}")
    query = f"SELECT * FROM {table_key or reference}"
    casts: dict[str, str] = {}
    left_out: list[str] = []
    if error is None and any(c.fidelity is Fidelity.UNSUPPORTED for c in mapped):
        table_key = None
        query, casts, left_out, error = _cast_unmapped(source, dialect, reference, mapped)
    columns = [ColumnFacts(
        name=c.name, source_type=c.source_type,
        arrow_type=None if c.arrow_type is None else str(c.arrow_type),
        fidelity=c.fidelity.value, note=c.note, nullable=nullable.get(c.name),
        indexed=_flag(traits[c.name]["indexed"]) if c.name in traits else None,
        generated=traits[c.name]["generated"] if c.name in traits else None,
        kind=_kind(c)) for c in mapped]
    return TableFacts(
        schema=schema, name=name, kind=kind, estimated_rows=rows,
        total_bytes=size,
        primary_key=key, columns=columns, table_key=table_key, query=query, casts=casts,
        left_out=left_out, error=error, notes=notes)


def _describe(source: Source, sql: str) -> tuple[list[ColumnInfo], str | None]:
    """The mapped columns of ``sql`` (unsupported ones included), or why it failed."""
    try:
        return source.describe(Query(sql=sql, label="describe"), SURVEY_OPTIONS), None
    except UnsupportedTypeError as exc:
        if exc.columns:
            return list(exc.columns), None
        return [], redact(exc.message)
    except RivetError as exc:
        return [], redact(exc.message)


def _cast_unmapped(source: Source, dialect: Dialect, reference: str,
                   mapped: list[ColumnInfo]
                   ) -> tuple[str, dict[str, str], list[str], str | None]:
    """The query reading every column, each unsupported one through the dialect's faithful
    cast, checked by describing it; a column no cast maps is left out."""
    casts: dict[str, str] = {}
    if isinstance(dialect, SupportsIntrospection):
        for column in mapped:
            if column.fidelity is Fidelity.UNSUPPORTED:
                expression = dialect.faithful_cast(column.name, column.source_type)
                if expression is not None:
                    casts[column.name] = expression
    left_out = [c.name for c in mapped
                if c.fidelity is Fidelity.UNSUPPORTED and c.name not in casts]

    def select() -> str:
        items = [f"{casts[c.name]} AS {dialect.quote(c.name)}" if c.name in casts
                 else dialect.quote(c.name) for c in mapped if c.name not in left_out]
        return f"SELECT {', '.join(items)} FROM {reference}"

    checked, error = _describe(source, select())
    if error is not None and casts:  # the database refused a cast: leave the columns out
        left_out += list(casts)
        casts = {}
        checked, error = _describe(source, select())
    if error is None:
        still = {c.name for c in checked if c.fidelity is Fidelity.UNSUPPORTED}
        if still:
            left_out += [name for name in casts if name in still]
            casts = {name: sql for name, sql in casts.items() if name not in still}
    if len(left_out) == len(mapped):
        return select(), casts, left_out, "no column has a faithful Arrow type"
    return select(), casts, left_out, error


def _kind(column: ColumnInfo) -> str | None:
    import pyarrow as pa

    if column.arrow_type is None or column.fidelity is Fidelity.UNSUPPORTED:
        return None
    if pa.types.is_timestamp(column.arrow_type):
        return "timestamp"
    if pa.types.is_integer(column.arrow_type):
        return "integer"
    return None


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _count(value: Any) -> int | None:
    if value is None:
        return None
    number = int(value)
    return number if number >= 0 else None
