"""A result's columns, mapped: each one's :class:`~rivet_core.api.ColumnInfo` for the schema
and the type report, and the :class:`ColumnPlan` that builds its arrays, with the export's
``[exports.columns]`` overrides applied.

The mapping rules are :mod:`rivet_mysql.typemap`'s, the builders
:mod:`rivet_mysql.builders`'. An override is a checked cast of the natural array, or, where
:func:`~rivet_mysql.typemap.rescue_for` says so, built straight from the server's text by
another builder. A column without a faithful mapping fails the read before any row, in one
error naming them all (:func:`unsupported`). :func:`build_column` is what both read paths
call per column of a batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from rivet_core.api import (
    ColumnInfo,
    UnsupportedTypeError,
    apply_overrides,
    unsupported_with_fixes,
)
from rivet_mysql import builders, typemap
from rivet_mysql.builders import Builder, TextColumn, ZeroDates


class ColumnPlan:
    """How one result column is decoded: its builder, the natural Arrow type and the written
    one (an override that is not built directly is a checked cast of the natural array)."""

    __slots__ = ("build", "direct", "name", "natural", "target")

    def __init__(self, name: str, build: Builder, natural: pa.DataType | None,
                 target: pa.DataType, direct: bool) -> None:
        self.name = name
        self.build = build
        self.natural = natural
        self.target = target
        self.direct = direct


def build_column(values: TextColumn, plan: ColumnPlan) -> pa.Array:
    """One column of a batch as an Arrow array of type ``plan.target``."""
    if plan.direct or plan.natural is None:
        return plan.build(values, plan.target, plan.name)
    array = plan.build(values, plan.natural, plan.name)
    if plan.natural == plan.target:
        return array
    return builders.checked_cast(array, plan.target, plan.name, override=True)


def map_columns(fields: list[typemap.MyField], overrides: Mapping[str, pa.DataType],
                zero_dates: ZeroDates, label: str
                ) -> tuple[list[ColumnInfo], list[ColumnPlan]]:
    """The mapped columns and the plans of the mapped ones. A column without an Arrow type
    raises the one :class:`~rivet_core.api.UnsupportedTypeError` naming them all."""
    keyed = [typemap.map_field(field) for field in fields]
    keys = [key for key, _ in keyed]
    mapped = apply_overrides([natural for _, natural in keyed], overrides, label,
                             rescue=lambda i, target: typemap.rescue_for(keys[i], target))
    columns: list[ColumnInfo] = []
    plan: list[ColumnPlan] = []
    for (key, natural), (column, rescue) in zip(keyed, mapped, strict=True):
        columns.append(column)
        if column.arrow_type is None or key is None:
            continue
        direct = rescue is not None
        build = (builders.direct_builder(key, column.arrow_type) if direct
                 else builders.builder_for(key, zero_dates))
        plan.append(ColumnPlan(column.name, build, natural.arrow_type, column.arrow_type,
                               direct))
    error = unsupported(columns, keys, label)
    if error is not None:
        raise error
    return columns, plan


def unsupported(columns: list[ColumnInfo], keys: list[str | None],
                label: str) -> UnsupportedTypeError | None:
    """One error naming every column without an Arrow type, or None if all are mapped. A
    rounded floating-point column can take an override (lossy); anything else is converted
    in SQL."""
    def override_fix(name: str) -> str:
        ident = typemap.sql_ident(name)
        return (f"select CAST({ident} AS DOUBLE) AS {ident} (exact), or accept the rounded "
                f'text with an override such as {name} = "float64" (reported as lossy)')

    return unsupported_with_fixes(
        columns, label, overridable=[key in typemap.ROUNDED for key in keys],
        override_fix=override_fix,
        sql_fix=lambda name: f"convert it in SQL, e.g. CAST({typemap.sql_ident(name)} AS CHAR)")


__all__ = ["ColumnPlan", "build_column", "map_columns", "unsupported"]
