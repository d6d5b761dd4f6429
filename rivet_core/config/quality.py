"""The ``[exports.quality]`` table: its models, the structure hooks for their shorthand forms,
and its load-time checks. No pyarrow here (config loading stays light); the engine that
checks the rows is :mod:`rivet_core.quality`."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import Any, Literal

import attrs
import cattrs

from rivet_core.config.converter import join, toml_kind
from rivet_core.config.fields import doc
from rivet_core.config.values import parse_duration

Severity = Literal["fail", "warn"]
Add = Callable[..., None]

_SEVERITY_DOC = "`fail` or `warn`; default: the quality table's `severity`."

# ---------------------------------------------------------------------------------- config


@attrs.frozen(kw_only=True)
class CountGate:
    """``row_count_min`` / ``row_count_max``: an integer, or a table ``{ value, severity }``."""

    value: int = doc("Number of rows, inclusive.")
    severity: Severity | None = doc(_SEVERITY_DOC, default=None)


@attrs.frozen(kw_only=True)
class RatioGate:
    """One entry of ``null_ratio_max``: a number, or a table ``{ value, severity }``."""

    value: float = doc("Largest share of NULLs allowed, from 0 to 1 inclusive.")
    severity: Severity | None = doc(_SEVERITY_DOC, default=None)


@attrs.frozen(kw_only=True)
class UniqueKey:
    """One entry of ``unique_columns``: a column name, an array of names (a composite key),
    or a table ``{ columns, severity }``."""

    columns: list[str] = doc("The key's columns; several make a composite key.")
    severity: Severity | None = doc(_SEVERITY_DOC, default=None)


@attrs.frozen(kw_only=True)
class BoundsGate:
    """One entry of ``bounds``: a table ``{ min, max, severity }``."""

    min: Any = doc(
        "Smallest value allowed, inclusive: a number (or a decimal string such as "
        "`\"0.01\"`) for a numeric column; a TOML date or datetime, or an ISO 8601 string, "
        "for a date or timestamp column.",
        default=None,
    )
    max: Any = doc("Largest value allowed, inclusive; written as `min`.", default=None)
    severity: Severity | None = doc(_SEVERITY_DOC, default=None)


@attrs.frozen(kw_only=True)
class FreshnessGate:
    """``freshness``: a table ``{ column, max_age, severity }``."""

    column: str = doc("A date or timestamp column.")
    max_age: str | int = doc(
        "Oldest the newest value may be at the run's start: `\"26h\"`, `\"90m\"`, `\"2d\"` "
        "or seconds."
    )
    severity: Severity | None = doc(_SEVERITY_DOC, default=None)


@attrs.frozen(kw_only=True)
class QualityConfig:
    """``[exports.quality]``: checks on the rows read, judged before the files are
    committed. Each gate takes its plain value or a table with that value and `severity`."""

    severity: Severity = doc(
        "What a failed gate does unless it says otherwise: `fail` fails the export before "
        "its files are committed; `warn` reports it and carries on.",
        default="fail",
    )
    row_count_min: CountGate | None = doc(
        "Fewest rows allowed, inclusive (checked on an empty result too): `1`, or "
        "`{ value = 1, severity = \"warn\" }`.",
        default=None,
    )
    row_count_max: CountGate | None = doc(
        "Most rows allowed, inclusive; written as `row_count_min`.", default=None
    )
    null_ratio_max: dict[str, RatioGate] = doc(
        "Column → largest share of NULLs, 0..1: `{ email = 0.05 }`, or "
        "`{ email = { value = 0.05, severity = \"warn\" } }`. Passes on zero rows.",
        factory=dict,
    )
    unique_columns: list[UniqueKey] = doc(
        "Keys no two rows may share: a column name, or an array of names for a composite "
        "key (`[\"id\", [\"order_id\", \"line_no\"]]`), or `{ columns = [...], severity = "
        "\"warn\" }`. Rows whose key holds a NULL are skipped, as SQL's UNIQUE does.",
        factory=list,
    )
    bounds: dict[str, BoundsGate] = doc(
        "Column → `{ min = ..., max = ... }` (either or both, inclusive) for numeric, date "
        "and timestamp columns: `{ amount = { min = 0 }, created_at = { min = "
        "\"2000-01-01\" } }`. Timestamps compare in UTC.",
        factory=dict,
    )
    freshness: FreshnessGate | None = doc(
        "`{ column = \"updated_at\", max_age = \"26h\" }`: the newest value must be at most "
        "`max_age` old when the run starts. Fails when there is no non-NULL value.",
        default=None,
    )

    def has_fail_gates(self) -> bool:
        """Whether a failed gate can fail the export: some gate's severity is ``fail``."""
        gates = [self.row_count_min, self.row_count_max, *self.null_ratio_max.values(),
                 *self.unique_columns, *self.bounds.values(), self.freshness]
        return any(gate is not None and (gate.severity or self.severity) == "fail"
                   for gate in gates)


def register_structure_hooks(converter: cattrs.Converter) -> None:
    """Teach ``converter`` the shorthand forms of the gates (``row_count_min = 1``,
    ``email = 0.05``, ``unique_columns = ["id"]``); their table forms keep the converter's
    own strictness (unknown keys, types)."""
    _shorthand(converter, CountGate, int, "an integer")
    _shorthand(converter, RatioGate, float, "a number")
    table = converter.get_structure_hook(UniqueKey)

    def unique_key(value: Any, _: Any) -> UniqueKey:
        if isinstance(value, dict):
            return table(value, UniqueKey)  # type: ignore[no-any-return]
        if isinstance(value, str):
            return UniqueKey(columns=[value])
        if isinstance(value, list):
            return UniqueKey(columns=converter.structure(value, list[str]))
        raise TypeError("expected a column name, an array of names or a table "
                        f"{{ columns = [...], severity = ... }}, got {_describe(value)}")

    converter.register_structure_hook(UniqueKey, unique_key)


def _shorthand(converter: cattrs.Converter, cls: type, plain: type, kind: str) -> None:
    """Structure ``cls`` from its table, or from a bare ``plain`` value (its ``value``)."""
    table = converter.get_structure_hook(cls)
    accepted = (int, float) if plain is float else (plain,)

    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, dict):
            return table(value, cls)
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise TypeError(f"expected {kind} or a table {{ value = ..., severity = ... }}, "
                            f"got {_describe(value)}")
        return cls(value=plain(value))

    converter.register_structure_hook(cls, hook)


def _describe(value: Any) -> str:
    if isinstance(value, dict | list):
        return toml_kind(type(value).__name__)
    return f"{toml_kind(type(value).__name__)} ({value!r})"


def check_quality_config(quality: QualityConfig, path: str, add: Add) -> None:
    """Report every problem of a quality table as ``add(toml_path, message, hint)``; the
    checks that need the query's result are :func:`schema_problems`."""
    if not (quality.row_count_min or quality.row_count_max or quality.null_ratio_max
            or quality.unique_columns or quality.bounds or quality.freshness):
        add(path, "names no gate", "set row_count_min, row_count_max, null_ratio_max, "
            "unique_columns, bounds or freshness, or remove the table")
    for name in ("row_count_min", "row_count_max"):
        count: CountGate | None = getattr(quality, name)
        if count is not None and count.value < 0:
            add(join(path, name), f"must be at least 0, got {count.value}")
    low, high = quality.row_count_min, quality.row_count_max
    if low is not None and high is not None and 0 <= high.value < low.value:
        add(join(path, "row_count_max"),
            f"must be at least row_count_min ({low.value:,}), got {high.value:,}")

    for column, ratio in quality.null_ratio_max.items():
        if not (math.isfinite(ratio.value) and 0 <= ratio.value <= 1):
            add(join(join(path, "null_ratio_max"), column),
                f"must be a ratio from 0 to 1, got {ratio.value}", "0.05 allows 5% NULLs")

    seen: dict[frozenset[str], int] = {}
    for index, key in enumerate(quality.unique_columns):
        where = join(join(path, "unique_columns"), index)
        if not key.columns:
            add(where, "names no column")
            continue
        twice = sorted({c for c in key.columns if key.columns.count(c) > 1})
        if twice:
            add(where, f"names {', '.join(repr(c) for c in twice)} more than once")
        columns = frozenset(key.columns)
        if columns in seen:
            add(where, f"repeats the key of unique_columns[{seen[columns]}]")
        seen.setdefault(columns, index)

    for column, bounds in quality.bounds.items():
        _check_bounds(bounds, join(join(path, "bounds"), column), add)

    if quality.freshness is not None:
        where = join(path, "freshness")
        if not quality.freshness.column:
            add(join(where, "column"), "must name a column")
        try:
            if parse_duration(quality.freshness.max_age) <= 0:
                add(join(where, "max_age"), "must be longer than zero")
        except ValueError as exc:
            add(join(where, "max_age"), str(exc))


def _check_bounds(bounds: BoundsGate, where: str, add: Add) -> None:
    if bounds.min is None and bounds.max is None:
        add(where, "sets neither min nor max")
        return
    parsed = {}
    for side in ("min", "max"):
        raw = getattr(bounds, side)
        if raw is None:
            continue
        try:
            parsed[side] = _loose_bound(raw)
        except ValueError as exc:
            add(join(where, side), str(exc))
    if len(parsed) == 2:
        (low_kind, low), (high_kind, high) = parsed["min"], parsed["max"]
        if low_kind != high_kind:
            add(where, f"min is {low_kind} and max is {high_kind}; both must be numbers or "
                "both dates/timestamps")
        elif low > high:
            add(where, f"min ({bounds.min}) is greater than max ({bounds.max})")


def _loose_bound(raw: Any) -> tuple[str, Any]:
    """A bound read without knowing its column: ``("a number", Decimal|int|float)`` or
    ``("a date or timestamp", aware datetime)``; ``ValueError`` saying why it is neither."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | dt.date):
        raise ValueError(f"must be a number, a date, a datetime or a string, got "
                         f"{_describe(raw)}")
    if isinstance(raw, int | float):
        return "a number", bound_number(raw)
    if isinstance(raw, dt.date):
        return "a date or timestamp", bound_instant(raw)
    try:
        return "a number", bound_number(raw)
    except ValueError:
        pass
    try:
        return "a date or timestamp", bound_instant(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is neither a number nor an ISO 8601 date or timestamp"
                         ) from None


def bound_number(raw: int | float | str) -> int | float | decimal.Decimal:
    if isinstance(raw, str):
        try:
            value = decimal.Decimal(raw.strip())
        except decimal.InvalidOperation:
            raise ValueError(f"{raw!r} is not a number") from None
        if not value.is_finite():
            raise ValueError(f"must be a finite number, got {raw!r}")
        return value
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueError(f"must be a finite number, got {raw}")
    return raw


def bound_instant(raw: str | dt.date) -> dt.datetime:
    """An aware UTC datetime: a naive datetime or a date is read as UTC (a date at
    midnight)."""
    text = raw
    try:
        if isinstance(raw, str):
            raw = dt.datetime.fromisoformat(raw.strip())
        if not isinstance(raw, dt.datetime):
            raw = dt.datetime(raw.year, raw.month, raw.day)
        if raw.tzinfo is None:
            raw = raw.replace(tzinfo=dt.UTC)
        return raw.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not an ISO 8601 date or timestamp in years "
                         "1..9999 (UTC)") from None


def gate_columns(quality: QualityConfig) -> dict[str, list[str]]:
    """Every column the gates name → the keys (relative to the quality table) naming it,
    in config order: ``{"email": ["null_ratio_max.email"], "id": ["unique_columns[0]"]}``."""
    named: dict[str, list[str]] = {}
    for column in quality.null_ratio_max:
        named.setdefault(column, []).append(join("null_ratio_max", column))
    for index, key in enumerate(quality.unique_columns):
        for column in dict.fromkeys(key.columns):
            named.setdefault(column, []).append(join("unique_columns", index))
    for column in quality.bounds:
        named.setdefault(column, []).append(join("bounds", column))
    if quality.freshness is not None:
        named.setdefault(quality.freshness.column, []).append("freshness.column")
    return named
