"""What a query returns, asked of the server before a row is produced: the server-side cursor
declared and described, and the types of its columns resolved through the catalog.

Steps 2-3 of a read (step 1, the transaction, is :mod:`rivet_postgres.connection`'s):

2. ``DECLARE "_rivet" NO SCROLL CURSOR FOR <sql>`` with the parameters bound (extended
   protocol), then Describe Portal: the columns' names, type OIDs and modifiers are known
   before any row is produced (:func:`declare`).
3. ``SELECT format_type(oid, typmod) ...`` for column types not seen before on this
   connection, so messages spell types as PostgreSQL does, and ``SELECT ... FROM pg_type``
   for OIDs that are not built in (enums, citext, arrays of user types and of domains),
   both cached per connection (:class:`TypeCache`). With a ``money`` column,
   ``SELECT scale('0'::money::numeric)`` reads the fractional digits of ``lc_monetary``
   (:func:`money_scale`). The first time a connection meets a non-built-in type, its
   loader is installed; psycopg fixes a cursor's loaders when it is described, so the
   caller then declares the cursor again (the query still has not produced a row).

Not here: mapping the described columns (:mod:`.columns`), reading rows (:mod:`.cursor`,
:mod:`.copystream`).
"""

from __future__ import annotations

from typing import Any

import attrs
import psycopg

from rivet_core.api import ColumnInfo, Query
from rivet_postgres import loaders, typemap
from rivet_postgres.builders import ColumnPlan

CURSOR_NAME = "_rivet"
MONEY_SCALE_SQL = "SELECT scale('0'::money::numeric)"
"""Fractional digits of ``lc_monetary``, exactly as ``money::numeric`` applies them."""

Shape = tuple[int, int]
"""A result column's type OID and type modifier."""


@attrs.frozen
class Opened:
    """A declared and described cursor: its mapped columns, their decoding plans and the
    type OIDs of the result columns."""

    cursor: psycopg.ServerCursor[Any]
    columns: list[ColumnInfo]
    plan: list[ColumnPlan]
    oids: list[int]


def new_cursor(conn: psycopg.Connection[Any]) -> psycopg.ServerCursor[Any]:
    """The read's cursor object (nothing is sent until :func:`declare`)."""
    return conn.cursor(CURSOR_NAME, binary=True, scrollable=False)


def declare(cursor: psycopg.ServerCursor[Any], query: Query) -> tuple[list[str], list[Shape]]:
    """Step 2: declare and describe the cursor; the names and shapes of its columns."""
    cursor.execute(query.sql, query.params or None)
    result = cursor.pgresult
    assert result is not None  # set by the Describe Portal of execute()
    names = [(result.fname(i) or b"?column?").decode() for i in range(result.nfields)]
    shapes = [(result.ftype(i), result.fmod(i)) for i in range(result.nfields)]
    return names, shapes


def money_scale(conn: psycopg.Connection[Any],
                resolved: list[typemap.Resolved]) -> int | None:
    """The scale of ``money`` columns when the result has one (else None: not asked)."""
    if not any(r.key == "money" for r in resolved):
        return None
    row = conn.execute(MONEY_SCALE_SQL).fetchone()
    return int(row[0]) if row else None


FIRST_USER_OID = 16384
"""PostgreSQL's ``FirstNormalObjectId``: OIDs below it belong to the system catalogs."""


class TypeCache:
    """What one connection has learnt about types: the names ``format_type`` gives, the
    ``pg_type`` rows of non-built-in types, and the loaders installed for them. OIDs of
    user types can be reused after DROP/CREATE, so this is kept per connection only
    (:meth:`clear` when the connection goes)."""

    def __init__(self) -> None:
        self._names: dict[Shape, str] = {}
        self._catalog: dict[int, typemap.CatalogType] = {}
        self._loaders: set[int] = set()

    def clear(self) -> None:
        self._names.clear()
        self._catalog.clear()
        self._loaders.clear()

    def forget_session(self) -> None:
        """The connection is reset for another export: forget what a user type could have
        changed (names, ``pg_type`` rows, loaders), keep the names of built-in types
        (OIDs below :data:`FIRST_USER_OID`, fixed for the server's life), so an export of
        built-in types alone asks for no name again."""
        self._names = {shape: name for shape, name in self._names.items()
                       if shape[0] < FIRST_USER_OID}
        self._catalog.clear()
        self._loaders.clear()

    def names(self, conn: psycopg.Connection[Any], shapes: list[Shape]) -> list[str]:
        """Each column's type as PostgreSQL spells it (``numeric(12,4)``)."""
        missing = sorted({shape for shape in shapes if shape not in self._names})
        if missing:
            rows = conn.execute(
                "SELECT format_type(t.oid, t.typmod) FROM unnest(%s::oid[], %s::int4[])"
                " WITH ORDINALITY AS t(oid, typmod, n) ORDER BY t.n",
                ([oid for oid, _ in missing], [mod for _, mod in missing]),
            ).fetchall()
            for shape, (name,) in zip(missing, rows, strict=True):
                self._names[shape] = name or f"oid {shape[0]}"
        return [self._names[shape] for shape in shapes]

    def resolve(self, conn: psycopg.Connection[Any],
                shapes: list[Shape]) -> list[typemap.Resolved]:
        """Read the ``pg_type`` rows the columns' OIDs lead to (domains and array elements
        followed), then reduce each column to a mapped type."""
        oids = [oid for oid, _ in shapes]
        for _ in range(8):  # each round follows one more domain / element level
            missing = typemap.unknown_oids(oids + list(self._catalog), self._catalog)
            if not missing:
                break
            rows = conn.execute(
                "SELECT oid::int8, typname::text, typtype::text, typbasetype::int8, typtypmod,"
                " CASE WHEN typcategory = 'A' THEN typelem::int8 ELSE 0 END"
                " FROM pg_type WHERE oid = ANY(%s::oid[])",
                (sorted(missing),),
            ).fetchall()
            for oid, name, kind, base, base_typmod, element in rows:
                self._catalog[oid] = typemap.CatalogType(
                    oid=oid, typname=name, typtype=kind, base_oid=base,
                    base_typmod=base_typmod, element_oid=element)
            for oid in missing - {row[0] for row in rows}:
                self._catalog[oid] = typemap.CatalogType(oid=oid, typname="?", typtype="?")
        return [typemap.resolve(oid, typmod, self._catalog) for oid, typmod in shapes]

    def install_loaders(self, conn: psycopg.Connection[Any], shapes: list[Shape],
                        resolved: list[typemap.Resolved]) -> bool:
        """Register the loaders non-built-in columns need; True if any was new (the cursor
        must then be declared again to use them)."""
        added = False
        for (oid, _), column in zip(shapes, resolved, strict=True):
            for type_oid, loader in loaders.dynamic_loaders(oid, column).items():
                if type_oid not in self._loaders:
                    conn.adapters.register_loader(type_oid, loader)
                    self._loaders.add(type_oid)
                    added = True
        return added


__all__ = ["CURSOR_NAME", "Opened", "TypeCache", "declare", "money_scale", "new_cursor"]
