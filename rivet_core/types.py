"""Source type → Arrow type helpers shared by source plugins.

Holds the vocabulary of a type mapping (:class:`Fidelity`, :class:`ColumnInfo`), the parsing
of ``[exports.columns]`` override strings, and the rules every source applies the same way:
how an override changes a mapped column (:func:`apply_override`), how overrides naming no
column are found (:func:`unmatched_overrides`), and the one error that names every column
without a faithful mapping (:func:`unsupported_error`, :func:`unsupported_with_fixes`). A
source's mapping table is made of :class:`TypeRow` s, which also give the rows of the type
tables in docs/types.md (:data:`DocRow`). The per-database catalogs live in their plugins;
nothing here talks to a database.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping

import attrs
import pyarrow as pa

from rivet_core.errors import UnsupportedTypeError


class Fidelity(enum.Enum):
    """How faithfully a column's values survive the trip into Arrow."""

    EXACT = "exact"
    """Every value arrives unchanged, in an Arrow type of the same meaning (a type without
    an Arrow equivalent arrives as its exact text, marked by a logical type)."""
    WIDENED = "widened"
    """Every value arrives unchanged, in a wider Arrow type (oid → int64, uint32 → int64)."""
    LOSSY = "lossy"
    """Some values may change (rounding, dropped zone). Never a default mapping: only an
    ``[exports.columns]`` override asking for it produces one."""
    UNSUPPORTED = "unsupported"
    """No faithful mapping; the export fails before writing unless an override is given."""


@attrs.frozen(kw_only=True)
class ColumnInfo:
    """One result column: what the database calls it and where it lands in Arrow."""

    name: str
    source_type: str
    arrow_type: pa.DataType | None
    fidelity: Fidelity
    note: str = ""
    logical_type: str | None = None
    """Meaning carried in a plain Arrow type (``json``, ``uuid``, ``interval``, ``enum``)."""
    override: str | None = None
    """The ``[exports.columns]`` type applied to this column, as Arrow names it."""

    def field(self) -> pa.Field:
        if self.arrow_type is None:
            raise ValueError(f"column {self.name!r} has no Arrow type")
        metadata = {b"rivet.source_type": self.source_type.encode()}
        if self.logical_type:
            metadata[b"rivet.logical_type"] = self.logical_type.encode()
        return pa.field(self.name, self.arrow_type, nullable=True, metadata=metadata)

    def as_dict(self) -> dict[str, str | None]:
        """The column as the type report's JSON shows it."""
        return {
            "name": self.name,
            "source_type": self.source_type,
            "arrow_type": None if self.arrow_type is None else str(self.arrow_type),
            "fidelity": self.fidelity.value,
            "logical_type": self.logical_type,
            "override": self.override,
            "note": self.note,
        }


DocRow = tuple[str, str, str, str]
"""(source type, Arrow type, fidelity, logical type) as the type tables in docs/types.md have
them."""


@attrs.frozen(kw_only=True)
class TypeRow:
    """One row of a source's mapping table: a source type and where it lands in Arrow.
    ``arrow_type`` is None where the column's metadata or the session decides it (a
    ``numeric(p,s)``, a ``money``), or where there is no faithful mapping."""

    name: str
    """The type as the type report and the docs name it."""
    arrow_type: pa.DataType | None
    fidelity: Fidelity
    logical_type: str | None = None
    note: str = ""
    arrow_text: str = ""
    """How the docs spell an Arrow type the metadata or the session decides."""

    def doc_row(self, source_type: str | None = None) -> DocRow:
        """The row of docs/types.md (``source_type``: the type as the docs spell it, when
        not :attr:`name`)."""
        arrow = self.arrow_text or (str(self.arrow_type) if self.arrow_type else "—")
        return (source_type or self.name, arrow, self.fidelity.value,
                self.logical_type or "—")


_NAMED_TYPES: dict[str, pa.DataType] = {str(t): t for t in (
    pa.null(), pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(),
    pa.uint16(), pa.uint32(), pa.uint64(), pa.float32(), pa.float64(), pa.string(),
    pa.binary(), pa.date32(), pa.time64("us"), pa.timestamp("us"),
    pa.timestamp("us", tz="UTC"))}
"""The Arrow types a mapping table names, as pyarrow prints them."""


def type_table(text: str) -> dict[str, TypeRow]:
    """A source's mapping table, written as text: its rows by name.

    One row a line, cells separated by ``|``: the type's name, its Arrow type, the fidelity
    (``exact``, ``widened``...), the logical type and the note; empty trailing cells may be
    left out, and an indented line continues the note of the row above. The Arrow type is
    written as pyarrow prints it (``timestamp[us, tz=UTC]``); any other text there is how
    the docs spell a type the column's metadata decides (``decimal128(p, s)``), and ``—``
    says there is none."""
    rows: dict[str, TypeRow] = {}
    last: TypeRow | None = None
    for line in text.strip("\n").splitlines():
        if line[:1].isspace() and last is not None:
            last = rows[last.name] = attrs.evolve(last, note=f"{last.note} {line.strip()}")
            continue
        name, arrow, fidelity, logical, note = ([c.strip() for c in line.split("|")]
                                                + [""] * 3)[:5]
        known = _NAMED_TYPES.get(arrow)
        last = rows[name] = TypeRow(
            name=name, arrow_type=known, fidelity=Fidelity(fidelity),
            logical_type=logical or None, note=note,
            arrow_text="" if known is not None or arrow == "—" else arrow)
    return rows


def schema_of(columns: list[ColumnInfo]) -> pa.Schema:
    """The Arrow schema for a list of mapped columns (all nullable, source types as metadata)."""
    return pa.schema([column.field() for column in columns])


MAX_DECIMAL_PRECISION = 76
"""Widest Arrow decimal (decimal256)."""


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """decimal128 up to 38 digits, decimal256 beyond."""
    if precision <= 38:
        return pa.decimal128(precision, scale)
    return pa.decimal256(precision, scale)


_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?\)$")

OVERRIDE_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "smallint": pa.int16(),
    "int32": pa.int32(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "int64": pa.int64(),
    "bigint": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "real": pa.float32(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "text": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "bytes": pa.binary(),
    "large_binary": pa.large_binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamp_utc": pa.timestamp("us", tz="UTC"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
    "uuid": pa.string(),
}


def parse_override(text: str) -> pa.DataType:
    """Parse an ``[exports.columns]`` value such as ``decimal(18,4)`` or ``string``.

    Raises ``ValueError`` with the accepted spellings when the text is not understood.
    """
    key = text.strip().lower()
    match = _DECIMAL.match(key)
    if match:
        precision = int(match.group(1))
        scale = int(match.group(2) or 0)
        if not 1 <= precision <= MAX_DECIMAL_PRECISION:
            raise ValueError(f"decimal precision must be 1..{MAX_DECIMAL_PRECISION}, "
                             f"got {precision}")
        if scale > precision:
            raise ValueError(f"decimal scale {scale} exceeds precision {precision}")
        return decimal_type(precision, scale)
    if key in OVERRIDE_TYPES:
        return OVERRIDE_TYPES[key]
    accepted = ", ".join(sorted(OVERRIDE_TYPES)) + ", decimal(p,s)"
    raise ValueError(f"unknown type {text!r}; accepted: {accepted}")


# ------------------------------------------------------------------------------ overrides


def castable(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether pyarrow has a cast from ``source`` to ``target`` (values may still fail it)."""
    try:
        pa.array([], type=source).cast(target)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def lossy_cast(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether pyarrow's *safe* cast from ``source`` to ``target`` can still change values
    without an error: decimals or wider floats into a float, floats into a decimal (the
    binary value is rounded to the scale), timestamps into dates or times, an instant into
    a wall-clock time or back (the zone is dropped or assumed), integers into booleans.
    Every other cast pyarrow allows either keeps each value or fails on it."""
    t = pa.types
    if t.is_floating(target) and (
            t.is_decimal(source)
            or (t.is_floating(source) and target.bit_width < source.bit_width)):
        return True
    if t.is_floating(source) and t.is_decimal(target):
        return True
    if t.is_timestamp(source) and (t.is_date(target) or t.is_time(target)):
        return True
    if t.is_timestamp(source) and t.is_timestamp(target):
        return (source.tz is None) != (target.tz is None)
    return t.is_integer(source) and t.is_boolean(target)


@attrs.frozen
class Rescue:
    """How a source builds an override's type straight from the loaded values of a column
    it could not map (or of a column whose natural type would fail first)."""

    fidelity: Fidelity
    note: str


def apply_override(column: ColumnInfo, target: pa.DataType,
                   rescue: Rescue | None = None) -> ColumnInfo:
    """The column as an ``[exports.columns]`` override makes it.

    With ``rescue``, the source builds ``target`` directly from the values it loaded, with
    the rescue's fidelity. Otherwise a mapped column is cast to ``target`` with pyarrow's
    safe cast: a value that does not fit fails the read, so the fidelity stays the mapped
    one, except for the casts :func:`lossy_cast` names, which are marked lossy. An unmapped
    column, like an impossible cast, stays unsupported with a note saying why."""
    override = str(target)
    if rescue is not None:
        return attrs.evolve(column, arrow_type=target, fidelity=rescue.fidelity,
                            logical_type=None, note=rescue.note, override=override)
    if column.arrow_type is not None and column.arrow_type == target:
        return attrs.evolve(column, override=override)
    if column.arrow_type is None:
        return attrs.evolve(column, note=f"override {target} cannot apply: {column.note}",
                            override=override)
    if not castable(column.arrow_type, target):
        return attrs.evolve(column, arrow_type=None, fidelity=Fidelity.UNSUPPORTED,
                            logical_type=None, override=override,
                            note=f"override {target} cannot apply: no cast from "
                                 f"{column.arrow_type}")
    if lossy_cast(column.arrow_type, target):
        return attrs.evolve(
            column, arrow_type=target, logical_type=None, override=override,
            fidelity=Fidelity.LOSSY,
            note=f"[exports.columns] override: {column.arrow_type} cast to {target}, which "
                 f"can change values (rounding, a dropped time or zone)",
        )
    return attrs.evolve(
        column, arrow_type=target, logical_type=None, override=override,
        note=f"[exports.columns] override: {column.arrow_type} cast to {target}; a value "
             f"that does not convert exactly fails the export",
    )


def unmatched_overrides(names: list[str], overrides: Mapping[str, object]) -> list[str]:
    """Override names that match no result column (a typo would otherwise go unnoticed)."""
    present = set(names)
    return sorted(name for name in overrides if name not in present)


def unsupported_error(columns: list[ColumnInfo], label: str,
                      fixes: list[str]) -> UnsupportedTypeError | None:
    """One error naming every column without an Arrow type, or None if all are mapped.

    ``fixes`` are the source's suggestions (an override, a cast in SQL), joined into the
    hint. The error carries every column, mapped or not, for the type report."""
    bad = [c for c in columns if c.arrow_type is None]
    if not bad:
        return None
    listed = "; ".join(f"{c.name!r} ({c.source_type}: {c.note})" for c in bad)
    noun = "column has" if len(bad) == 1 else "columns have"
    return UnsupportedTypeError(
        f"{label}: {len(bad)} {noun} no faithful Arrow mapping: {listed}",
        hint="; or ".join(fixes) or None,
        columns=columns,
    )


def unsupported_with_fixes(columns: list[ColumnInfo], label: str, *,
                           overridable: list[bool], override_fix: Callable[[str], str],
                           sql_fix: Callable[[str], str]) -> UnsupportedTypeError | None:
    """:func:`unsupported_error` with the two fixes a source can offer: ``overridable`` says
    of each column whether an ``[exports.columns]`` override can make it exportable;
    ``override_fix`` words that override for the first such column without an Arrow type,
    ``sql_fix`` the conversion in SQL for the first of the others (each given the column's
    name)."""
    bad = [(c.name, o) for c, o in zip(columns, overridable, strict=True)
           if c.arrow_type is None]
    fixes: list[str] = []
    for fix, wanted in ((override_fix, True), (sql_fix, False)):
        first = next((name for name, o in bad if o is wanted), None)
        if first is not None:
            fixes.append(fix(first))
    return unsupported_error(columns, label, fixes)
