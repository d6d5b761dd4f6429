"""A described result's columns, mapped: each one's :class:`~rivet_core.api.ColumnInfo` for the
schema and the type report, and the :class:`~rivet_postgres.builders.ColumnPlan` its values
are built by, with the export's ``[exports.columns]`` overrides applied.

Pure logic over what :mod:`rivet_postgres.describe` read from the server: the mapping rules
are :mod:`rivet_postgres.typemap`'s; an override is a checked cast of the natural type, or,
for a scalar ``numeric``, built straight from the loaded ``Decimal`` values
(:func:`~rivet_postgres.typemap.rescue_for`). A column without a faithful mapping fails the
read before any row, in one error naming them all (:func:`unsupported`). Also the error for
an array value a list cannot hold, which the loader raises without knowing its column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from rivet_core.api import (
    ColumnInfo,
    SourceError,
    UnsupportedTypeError,
    apply_overrides,
    unsupported_with_fixes,
)
from rivet_postgres import typemap
from rivet_postgres.builders import ColumnPlan
from rivet_postgres.loaders import ArrayShapeError


def map_columns(names: Sequence[str], resolved: Sequence[typemap.Resolved],
                type_names: Sequence[str], money_scale: int | None,
                overrides: Mapping[str, pa.DataType], label: str
                ) -> tuple[list[ColumnInfo], list[ColumnPlan]]:
    """The mapped columns and the plans of the mapped ones. A column without an Arrow type
    raises the one :class:`~rivet_core.api.UnsupportedTypeError` naming them all."""
    naturals = [typemap.map_column(name, column, type_name, money_scale)
                for name, column, type_name in zip(names, resolved, type_names, strict=True)]
    mapped = apply_overrides(naturals, overrides, label,
                             rescue=lambda i, target: typemap.rescue_for(resolved[i], target))
    columns: list[ColumnInfo] = []
    plan: list[ColumnPlan] = []
    for natural, column_type, (column, rescue) in zip(naturals, resolved, mapped,
                                                      strict=True):
        columns.append(column)
        if column.arrow_type is not None:
            plan.append(ColumnPlan(column.name, column_type.key, column_type.array,
                                   natural.arrow_type, column.arrow_type, rescue is not None))
    error = unsupported(columns, list(resolved), label)
    if error is not None:
        raise error
    return columns, plan


def unsupported(columns: list[ColumnInfo], resolved: list[typemap.Resolved],
                label: str) -> UnsupportedTypeError | None:
    """One error naming every column without an Arrow type, or None if all are mapped. A
    scalar numeric too wide for decimal256 can take an override; anything else is cast in
    SQL."""
    return unsupported_with_fixes(
        columns, label, overridable=[r.key == "numeric" and not r.array for r in resolved],
        override_fix=lambda name: f'add an [exports.columns] override such as {name} = '
                                  f'"decimal(76,20)" or "string" (a value needing more '
                                  f'digits fails, it is never rounded)',
        sql_fix=lambda name: f"cast in SQL, e.g. {typemap.sql_ident(name)}::text")


def array_shape_error(plan: Sequence[ColumnPlan], label: str,
                      exc: ArrayShapeError) -> SourceError:
    """An array value the loader refused, naming the array columns it can be in."""
    names = [col.name for col in plan if col.array] or ["?"]
    which = (f"column {names[0]!r}" if len(names) == 1
             else "one of the columns " + ", ".join(map(repr, names)))
    return SourceError(
        f"{label}: {which} holds {exc}; Rivet exports one-dimensional arrays with "
        f"lower bound 1 as Arrow lists",
        hint=f"cast the column to text in SQL (e.g. {typemap.sql_ident(names[0])}::text) "
             f"or unnest it")


__all__ = ["array_shape_error", "map_columns", "unsupported"]
