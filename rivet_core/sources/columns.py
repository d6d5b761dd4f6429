"""``[exports.columns]`` overrides applied to a source's mapped columns.

Every source maps each result column to its natural Arrow type first; an override then
changes the column as :func:`rivet_core.types.apply_override` defines, either by a cast of
the natural type or, where the source says it can (a :class:`~rivet_core.types.Rescue`), by
building the override's type straight from the loaded values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from rivet_core.errors import SourceError
from rivet_core.types import ColumnInfo, Rescue, apply_override, unmatched_overrides

if TYPE_CHECKING:
    import pyarrow as pa


def apply_overrides(naturals: Sequence[ColumnInfo], overrides: Mapping[str, pa.DataType],
                    label: str, *,
                    rescue: Callable[[int, pa.DataType], Rescue | None] = lambda i, t: None,
                    ) -> list[tuple[ColumnInfo, Rescue | None]]:
    """Each column with its override applied, and the rescue used for it (None: the natural
    type is kept or cast). ``rescue(index, target)`` says how the source would build
    ``target`` for column ``index`` directly, or None.

    An override naming no result column is a :class:`~rivet_core.errors.SourceError`
    listing the query's columns (names are case-sensitive): a typo would otherwise pass
    unnoticed."""
    names = [column.name for column in naturals]
    unknown = unmatched_overrides(names, overrides)
    if unknown:
        raise SourceError(
            f"{label}: [exports.columns] names {', '.join(map(repr, unknown))}, which the "
            f"query does not return (columns: {', '.join(names)})",
            hint="column names are case-sensitive; fix the name or drop the override")
    out: list[tuple[ColumnInfo, Rescue | None]] = []
    for index, natural in enumerate(naturals):
        if natural.name not in overrides:
            out.append((natural, None))
            continue
        target = overrides[natural.name]
        how = rescue(index, target)
        out.append((apply_override(natural, target, how), how))
    return out
