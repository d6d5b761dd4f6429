"""A result's columns as the source reads them: each declared type mapped
(:mod:`rivet_sqlite_jsonl.typemap`), the export's ``[exports.columns]`` applied with the
toolkit's :func:`~rivet_core.api.apply_overrides`, and how each column's values are built
(:mod:`rivet_sqlite_jsonl.values`). Decided before the statement runs, so a column without a
type is an :class:`~rivet_core.api.UnsupportedTypeError` before the first row. No I/O here.

An override of a column SQLite cannot type (an expression) builds the values straight as
the type it names (a :class:`~rivet_core.api.Rescue`), checking each of them; an override of
a typed column is pyarrow's safe cast of the mapped values, the same for every source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import attrs
import pyarrow as pa

from rivet_core.api import (
    ColumnInfo,
    Fidelity,
    ReadOptions,
    Rescue,
    SourceError,
    apply_overrides,
    unsupported_with_fixes,
)
from rivet_sqlite_jsonl.typemap import OVERRIDE_EXAMPLES, map_column
from rivet_sqlite_jsonl.values import ValueProblem, build, builder_for


@attrs.frozen
class ColumnPlan:
    """How one result column is read: the Arrow type its values are built as, and the
    column it becomes (an ``[exports.columns]`` override may cast it further)."""

    info: ColumnInfo
    read_as: pa.DataType

    def array(self, values: Sequence[Any], label: str) -> pa.Array:
        """The column's values as an array of its type, or a SourceError naming the column
        and the first value that is not of it."""
        target = self.info.arrow_type
        try:
            array = build(values, self.read_as)
            # An override of a typed column: pyarrow's safe cast, which fails on a value
            # that does not convert exactly.
            return array if array.type == target else array.cast(target)
        except (ValueProblem, pa.ArrowInvalid) as exc:
            raise SourceError(
                f"{label}: column {self.info.name!r} ({self.info.source_type}): {exc}",
                hint="fix the stored value, or convert it in the query and give the result "
                     "its type in [exports.columns]") from None


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def plan_columns(declared: list[tuple[str, str]], options: ReadOptions,
                 label: str) -> list[ColumnPlan]:
    """Each result column mapped, with the export's overrides applied; an
    :class:`~rivet_core.api.UnsupportedTypeError` (naming every column without a type and
    the ``[exports.columns]`` key that fixes it) if any is left unmapped."""
    naturals = [map_column(name, decl) for name, decl in declared]

    def rescue(index: int, target: pa.DataType) -> Rescue | None:
        # A column SQLite cannot type is built straight as the type the override names;
        # every value is checked against it as for a declared type.
        if naturals[index].arrow_type is None and builder_for(target) is not None:
            return Rescue(Fidelity.EXACT, f"[exports.columns] override: values read as "
                                          f"{target}; a value of another kind fails the read")
        return None

    applied = apply_overrides(naturals, options.column_types, label, rescue=rescue)
    columns = [info for info, _ in applied]
    error = unsupported_with_fixes(
        columns, label, overridable=[n.arrow_type is None for n in naturals],
        override_fix=lambda name: (f"set its type in [exports.columns]: {_toml_key(name)} = "
                                   f"{OVERRIDE_EXAMPLES}"),
        sql_fix=lambda name: (f"change the [exports.columns] type of {name!r} to one its "
                              f"declared type converts to, or remove it"))
    if error is not None:
        raise error
    return [ColumnPlan(info, info.arrow_type if how is not None else natural.arrow_type)
            for (info, how), natural in zip(applied, naturals, strict=True)]
