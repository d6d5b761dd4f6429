"""Quality gates: the ``[exports.quality]`` table and the engine that checks an export's rows
against it while they stream to the file.

The config part (the models, the hooks structuring their shorthand forms,
:func:`check_quality_config`, :func:`gate_columns`) does not use pyarrow.
:func:`schema_problems` checks the gates against the query's result schema before any file
is written. :class:`QualityCheck` watches every batch (:meth:`QualityCheck.observe`,
vectorized, safe from several threads) and judges the gates at the end
(:meth:`QualityCheck.results`). What to do with a failed gate (abort before
upload, mark the run) is the runner's business, not this module's.

Gates and their semantics:

- ``row_count_min`` / ``row_count_max``: inclusive bounds on the rows read, checked on zero
  rows too.
- ``null_ratio_max``: per column, NULLs / rows at most the value (0..1); with zero rows
  there is no ratio and the gate passes.
- ``unique_columns``: no two rows share a key (one column, or several for a composite key).
  Rows whose key holds a NULL are skipped, as SQL's ``UNIQUE`` does, and counted. A single
  integer, date, time, timestamp or duration column is compared by value, exactly; other
  keys by a 64-bit hash, where a collision can only report a duplicate that is not there,
  never hide one: about ``n**2 / 2**65`` for ``n`` distinct keys, 2.7e-6 for 10 million.
  Memory is bounded; see :mod:`rivet_core.quality_unique`.
- ``bounds``: per numeric, date or timestamp column, the smallest and largest non-NULL
  values within ``min`` / ``max`` (inclusive), compared in the column's own type:
  timestamps as instants in UTC (a timestamp without time zone, and a bound without an
  offset, are read as UTC). A float NaN is outside every bound.
- ``freshness``: the newest non-NULL value of a date or timestamp column is at most
  ``max_age`` older than the run's start (a date counts as its midnight, UTC). No rows, or
  only NULLs, fails: nothing shows the data is fresh.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import threading
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from rivet_core.config.converter import did_you_mean, join
from rivet_core.config.quality import (
    BoundsGate,
    CountGate,
    FreshnessGate,
    QualityConfig,
    RatioGate,
    Severity,
    UniqueKey,
    bound_instant,
    bound_number,
    gate_columns,
)
from rivet_core.config.values import parse_duration
from rivet_core.errors import PlanRejected
from rivet_core.quality_unique import (
    DEFAULT_MEMORY_BUDGET,
    KeyCount,
    KeySet,
    MemoryBudget,
    key_problem,
)


def schema_problems(quality: QualityConfig, schema: pa.Schema
                    ) -> list[tuple[str, str, str | None]]:
    """``(key, message, hint)`` for every gate that cannot run on rows of ``schema``: an
    unknown column, a bound or freshness column of the wrong type, a key column the row
    hash cannot encode. ``key`` is relative to the quality table. Call it before anything is
    written."""
    problems: list[tuple[str, str, str | None]] = []
    missing = set()
    for column, keys in gate_columns(quality).items():
        found = len(schema.get_all_field_indices(column))
        if found != 1:
            missing.add(column)
            message = (f"no column {column!r} in the query's result" if not found
                       else f"the query's result has {found} columns named {column!r}")
            hint = did_you_mean(column, schema.names) if not found else None
            problems += [(key, message, hint) for key in keys]
    for index, key in enumerate(quality.unique_columns):
        if key.columns and not missing & set(key.columns):
            problem = key_problem(key.columns, schema)
            if problem:
                problems.append((join("unique_columns", index), problem, None))
    for column, bounds in quality.bounds.items():
        if column in missing:
            continue
        typ = schema.field(column).type
        if not _bounded(typ):
            problems.append((join("bounds", column), f"column {column!r} is {typ}; bounds "
                             "apply to numeric, date and timestamp columns", None))
            continue
        for side in ("min", "max"):
            raw = getattr(bounds, side)
            if raw is None:
                continue
            try:
                _bound(raw, typ, side)
            except ValueError as exc:
                problems.append((join(join("bounds", column), side),
                                 f"column {column!r} is {typ}: {exc}", None))
    fresh = quality.freshness
    if fresh is not None and fresh.column not in missing:
        typ = schema.field(fresh.column).type
        if not (pat.is_date(typ) or pat.is_timestamp(typ)):
            problems.append(("freshness.column", f"column {fresh.column!r} is {typ}; "
                             "freshness needs a date or timestamp column", None))
    return problems


# ---------------------------------------------------------------------------------- values


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _bounded(typ: pa.DataType) -> bool:
    """Whether ``bounds`` can check a column of ``typ``."""
    return (pat.is_integer(typ) or pat.is_floating(typ) or pat.is_decimal(typ)
            or pat.is_date(typ) or pat.is_timestamp(typ))


def _bound(raw: Any, typ: pa.DataType, side: str) -> Any:
    """A configured bound as a value comparable with the column's min/max as this module
    measures them: a number for numeric columns, a ``date`` for date columns, an integer in
    the column's unit for timestamps (rounded inwards, so ``value >= min`` stays exact).
    ``ValueError`` when the bound is not a value of the column's kind."""
    temporal = isinstance(raw, dt.date)
    if pat.is_integer(typ) or pat.is_floating(typ) or pat.is_decimal(typ):
        if temporal or isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"the {side} bound must be a number, got {raw!r}")
        number = bound_number(raw)
        # A bound means the value written: 0.1 is the float nearest 0.1 in a float
        # column, and exactly 0.1 in a decimal one.
        if pat.is_floating(typ) and isinstance(number, decimal.Decimal):
            return float(number)
        if pat.is_decimal(typ) and isinstance(number, float):
            return decimal.Decimal(repr(number))
        return number
    if pat.is_date(typ):
        if isinstance(raw, str):
            try:
                return dt.date.fromisoformat(raw.strip())
            except ValueError:
                pass
        elif temporal and not isinstance(raw, dt.datetime):
            return raw
        raise ValueError(f"the {side} bound must be a date (\"2000-01-01\"), got {raw!r}")
    if pat.is_timestamp(typ):
        if not (temporal or isinstance(raw, str)):
            raise ValueError(f"the {side} bound must be a date or timestamp, got {raw!r}")
        micros = (bound_instant(raw) - _EPOCH) // dt.timedelta(microseconds=1)
        per_second = _PER_SECOND[typ.unit]
        if per_second >= 1_000_000:
            return micros * (per_second // 1_000_000)
        per_unit = 1_000_000 // per_second
        return -(-micros // per_unit) if side == "min" else micros // per_unit
    raise ValueError("bounds apply to numeric, date and timestamp columns")


def _timestamp_text(value: int, typ: pa.TimestampType) -> str:
    """ISO 8601 text of a timestamp held as ``value`` units since the epoch: UTC with its
    offset for a zoned column, without one for a naive column; nanoseconds kept."""
    per_second = _PER_SECOND[typ.unit]
    nanos = 0
    if per_second > 1_000_000:
        value, nanos = divmod(value, per_second // 1_000_000)
    else:
        value *= 1_000_000 // per_second
    try:
        moment = _EPOCH + dt.timedelta(microseconds=value)
    except OverflowError:
        return f"{value} {typ.unit} since 1970-01-01"
    moment = moment.replace(tzinfo=dt.UTC if typ.tz else None)
    if not nanos:
        return moment.isoformat()  # fractional digits only when there are any
    text = moment.isoformat(timespec="microseconds")
    return text[:26] + f"{nanos:03d}" + text[26:]


def _jsonable(value: Any, typ: pa.DataType) -> Any:
    """A measured value (or a typed scalar) as JSON: numbers stay numbers (decimals and
    non-finite floats become text), dates and timestamps become ISO 8601 text."""
    if isinstance(value, pa.Scalar):
        if not value.is_valid:
            return None
        if pat.is_timestamp(typ):
            return _timestamp_text(value.value, typ)
        if pat.is_time(typ) or pat.is_duration(typ):
            return str(value.cast(pa.string()))
        value = value.as_py()
    if value is None:
        return None
    if pat.is_timestamp(typ):
        return _timestamp_text(value, typ)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _age_text(seconds: float) -> str:
    """``93784`` → ``"1d 2h 3m 4s"``: durations for people."""
    sign = "-" if seconds < 0 else ""
    remaining = round(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count or (unit == "s" and not parts):
            parts.append(f"{count}{unit}")
    return sign + " ".join(parts)


def _ratio_text(value: float) -> str:
    return "0" if value == 0 else f"{value:.4g}"


# ---------------------------------------------------------------------------------- engine


@attrs.frozen(kw_only=True)
class GateResult:
    """The verdict of one gate."""

    gate: str
    """Which gate: ``row_count_min``, ``null_ratio_max[email]``, ``unique[order_id,line_no]``,
    ``bounds[amount]``, ``freshness[updated_at]``."""
    severity: Severity
    passed: bool
    observed: Any
    """What the rows showed, JSON-able (a number, ``None``, or a table of numbers/text)."""
    expected: str
    """The rule, as text: ``">= 1"``, ``"<= 0.05"``, ``"no duplicate keys"``."""
    message: str
    """One sentence naming the observed and the expected values."""

    @property
    def blocking(self) -> bool:
        """The gate failed with severity ``fail``: the export must not commit its files."""
        return not self.passed and self.severity == "fail"

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able data."""
        return attrs.asdict(self)


class _Bounds:
    """Running min/max of one column, in the domain :func:`_bound` converts bounds to.
    Without a column type (nothing was read) the bounds stay as configured, for display."""

    def __init__(self, column: str, typ: pa.DataType | None, gate: BoundsGate) -> None:
        self.column = column
        self.type = typ
        self.low = gate.min if typ is None or gate.min is None else _bound(gate.min, typ, "min")
        self.high = gate.max if typ is None or gate.max is None else _bound(gate.max, typ, "max")
        self.floating = typ is not None and pat.is_floating(typ)
        self.seen_low: Any = None
        self.seen_high: Any = None
        self.nans = 0

    def measure(self, array: pa.Array) -> tuple[Any, Any, int]:
        if pat.is_timestamp(array.type):
            array = array.view(pa.int64())
        low, high = (scalar.as_py() for scalar in pc.min_max(array).values())
        nans = (pc.sum(pc.is_nan(array)).as_py() or 0) if self.floating else 0
        return low, high, nans

    def merge(self, measured: tuple[Any, Any, int]) -> None:
        low, high, nans = measured
        if low is not None:
            self.seen_low = low if self.seen_low is None else min(self.seen_low, low)
            self.seen_high = high if self.seen_high is None else max(self.seen_high, high)
        self.nans += nans

    def text(self, value: Any) -> str:
        if self.type is None:  # a bound as configured: nothing was read
            return str(value)
        shown = _jsonable(value, self.type)
        return shown if isinstance(shown, str) else repr(shown)

    def expected(self) -> str:
        rules = []
        if self.low is not None:
            rules.append(f">= {self.text(self.low)}")
        if self.high is not None:
            rules.append(f"<= {self.text(self.high)}")
        return " and ".join(rules)

    def result(self, severity: Severity) -> GateResult:
        observed: dict[str, Any] = {"min": None, "max": None}
        if self.type is not None:
            observed = {"min": _jsonable(self.seen_low, self.type),
                        "max": _jsonable(self.seen_high, self.type)}
        if self.floating:
            observed["nan"] = self.nans
        where = f"column {self.column!r}"
        faults = []
        if self.seen_low is not None and self.low is not None and self.seen_low < self.low:
            faults.append(f"minimum {self.text(self.seen_low)} is below {self.text(self.low)}")
        if self.seen_high is not None and self.high is not None and (
                self.seen_high > self.high):
            faults.append(f"maximum {self.text(self.seen_high)} is above "
                          f"{self.text(self.high)}")
        if self.nans:
            faults.append(f"{self.nans:,} NaN value{'s' * (self.nans != 1)} "
                          "outside every bound")
        if faults:
            message = f"{where}: {'; '.join(faults)} (expected {self.expected()})"
        elif self.seen_low is None:
            message = (f"{where}: no non-NULL value, so none outside "
                       f"{self.expected()}")
        else:
            message = (f"{where}: values from {self.text(self.seen_low)} to "
                       f"{self.text(self.seen_high)}, within {self.expected()}")
        return GateResult(gate=f"bounds[{self.column}]", severity=severity, passed=not faults,
                          observed=observed, expected=self.expected(), message=message)


class _Freshness:
    """The newest value of one date or timestamp column."""

    def __init__(self, gate: FreshnessGate, typ: pa.DataType | None) -> None:
        self.column = gate.column
        self.type = typ
        self.max_age_text = str(gate.max_age)
        self.max_age = parse_duration(gate.max_age)
        self.newest: Any = None

    def measure(self, array: pa.Array) -> Any:
        if pat.is_timestamp(array.type):
            array = array.view(pa.int64())
        return pc.max(array).as_py()

    def merge(self, newest: Any) -> None:
        if newest is not None and (self.newest is None or newest > self.newest):
            self.newest = newest

    def result(self, severity: Severity, started_at: dt.datetime) -> GateResult:
        expected = f"newest value at most {self.max_age_text} old"
        where = f"column {self.column!r}"
        if self.newest is None or self.type is None:
            return GateResult(
                gate=f"freshness[{self.column}]", severity=severity, passed=False,
                observed={"newest": None, "age_seconds": None}, expected=expected,
                message=f"{where}: no non-NULL value, so nothing shows the data is fresh "
                        f"(expected the newest value at most {self.max_age_text} old)")
        if pat.is_timestamp(self.type):
            micros = (self.newest * 1_000_000) // _PER_SECOND[self.type.unit]
            age = (started_at - _EPOCH) / dt.timedelta(seconds=1) - micros / 1_000_000
        else:
            midnight = dt.datetime(self.newest.year, self.newest.month, self.newest.day,
                                   tzinfo=dt.UTC)
            age = (started_at - midnight) / dt.timedelta(seconds=1)
        newest = _jsonable(self.newest, self.type)
        passed = age <= self.max_age
        state = f"is {_age_text(-age)} in the future" if age < 0 else f"is {_age_text(age)} old"
        verdict = "within" if passed else "older than"
        return GateResult(
            gate=f"freshness[{self.column}]", severity=severity, passed=passed,
            observed={"newest": newest, "age_seconds": round(age, 3)}, expected=expected,
            message=f"{where}: newest value {newest} {state} at the run's start, {verdict} "
                    f"the maximum {self.max_age_text}")


_NOTHING_READ = KeyCount(rows=0, null_rows=0, duplicates=0, example=None, exact=True,
                         spilled_bytes=0, peak_bytes=0)


class QualityCheck:
    """The gates of one export, watching its batches.

    Build it once the result's schema is known (it raises
    :class:`~rivet_core.errors.PlanRejected` listing :func:`schema_problems`), or with
    ``schema=None`` when no stream was opened (every gate then sees zero rows). Feed every
    batch to :meth:`observe`, from any number of threads, then read :meth:`results` and
    :meth:`close` it (or use it as a context manager) to delete the uniqueness spill files.

    An attempt that may fail and be retried observes into a :meth:`fork`, which the run
    merges (:meth:`merge`) only when the attempt succeeds, so no row counts twice.

    ``memory_budget`` bounds the uniqueness keys held in memory by this check, all its
    ``unique_columns`` entries and all its forks together; past it keys spill to files
    under ``spill_dir`` (the system's temporary directory when None)."""

    def __init__(self, config: QualityConfig, schema: pa.Schema | None, *,
                 started_at: dt.datetime, spill_dir: Path | None = None,
                 memory_budget: int | MemoryBudget = DEFAULT_MEMORY_BUDGET) -> None:
        if started_at.tzinfo is None:
            raise ValueError("started_at must be an aware datetime")
        problems = [] if schema is None else schema_problems(config, schema)
        if problems:
            raise PlanRejected(
                "quality gates do not fit the query's result: "
                + "; ".join(f"quality.{key}: {message}" for key, message, _ in problems),
                hint=next((hint for _, _, hint in problems if hint), None))
        self.config = config
        self.schema = schema
        self.started_at = started_at.astimezone(dt.UTC)
        self._spill_dir = spill_dir
        self._budget = (memory_budget if isinstance(memory_budget, MemoryBudget)
                        else MemoryBudget(memory_budget))
        self._lock = threading.Lock()
        self._rows = 0
        self._nulls = dict.fromkeys(config.null_ratio_max, 0)
        self._bounds = [_Bounds(column, _type(schema, column), gate)
                        for column, gate in config.bounds.items()]
        fresh = config.freshness
        self._freshness = None if fresh is None else _Freshness(
            fresh, _type(schema, fresh.column))
        self._keys = [] if schema is None else [
            KeySet(key.columns, schema, budget=self._budget, spill_dir=spill_dir)
            for key in config.unique_columns]
        self._results: list[GateResult] | None = None

    def fork(self) -> QualityCheck:
        """An empty check of the same gates, sharing this one's memory budget, to observe
        one attempt and :meth:`merge` into this one if the attempt succeeds (or
        :meth:`close` if it does not)."""
        return QualityCheck(self.config, self.schema, started_at=self.started_at,
                            spill_dir=self._spill_dir, memory_budget=self._budget)

    def observe(self, batch: pa.RecordBatch) -> None:
        """Take one batch into every gate. Vectorized; safe to call from several threads."""
        if self._results is not None:
            raise RuntimeError("observe() after results()")
        if self.schema is None:
            raise RuntimeError("a QualityCheck built without a schema cannot observe rows")
        nulls = {column: batch.column(column).null_count for column in self._nulls}
        bounds = [gate.measure(batch.column(gate.column)) for gate in self._bounds]
        newest = (None if self._freshness is None
                  else self._freshness.measure(batch.column(self._freshness.column)))
        for keys in self._keys:
            keys.add(batch)
        with self._lock:
            if self._results is not None:
                raise RuntimeError("observe() after results()")
            self._rows += batch.num_rows
            for column, count in nulls.items():
                self._nulls[column] += count
            for gate, measured in zip(self._bounds, bounds, strict=True):
                gate.merge(measured)
            if self._freshness is not None:
                self._freshness.merge(newest)

    def merge(self, other: QualityCheck) -> None:
        """Add everything a :meth:`fork` observed; ``other`` is left empty and closed."""
        if other._budget is not self._budget:
            raise ValueError("only a fork of this check can be merged into it")
        with self._lock, other._lock:
            if self._results is not None:
                raise RuntimeError("merge() after results()")
            self._rows += other._rows
            for column, count in other._nulls.items():
                self._nulls[column] += count
            for mine, theirs in zip(self._bounds, other._bounds, strict=True):
                mine.merge((theirs.seen_low, theirs.seen_high, theirs.nans))
            if self._freshness is not None and other._freshness is not None:
                self._freshness.merge(other._freshness.newest)
            for keys, more in zip(self._keys, other._keys, strict=True):
                keys.merge(more)
            other._rows = 0
            other._results = []

    @property
    def rows(self) -> int:
        """Rows observed (and merged) so far."""
        return self._rows

    @property
    def key_memory_peak(self) -> int:
        """Most bytes of uniqueness keys held in memory at once by this check and its
        forks, the final sort included."""
        return self._budget.peak

    def results(self) -> list[GateResult]:
        """Every gate's verdict, in config order. The first call judges the gates (and
        sorts the uniqueness keys when needed); later calls return the same list."""
        with self._lock:
            if self._results is None:
                self._results = self._judge()
            return list(self._results)

    def _severity(self, gate: CountGate | RatioGate | UniqueKey | BoundsGate | FreshnessGate
                  ) -> Severity:
        return gate.severity or self.config.severity

    def _judge(self) -> list[GateResult]:
        config, rows = self.config, self._rows
        out = []
        if config.row_count_min is not None:
            low = config.row_count_min.value
            passed = rows >= low
            out.append(GateResult(
                gate="row_count_min", severity=self._severity(config.row_count_min),
                passed=passed, observed=rows, expected=f">= {low}",
                message=f"row count {rows:,} "
                        + (f"meets the minimum {low:,}" if passed
                           else f"is below the minimum {low:,}")))
        if config.row_count_max is not None:
            high = config.row_count_max.value
            passed = rows <= high
            out.append(GateResult(
                gate="row_count_max", severity=self._severity(config.row_count_max),
                passed=passed, observed=rows, expected=f"<= {high}",
                message=f"row count {rows:,} "
                        + (f"is within the maximum {high:,}" if passed
                           else f"exceeds the maximum {high:,}")))
        for column, ratio in config.null_ratio_max.items():
            out.append(self._null_ratio(column, ratio))
        counts = [keys.count() for keys in self._keys] or [_NOTHING_READ] * len(
            config.unique_columns)
        for key, found in zip(config.unique_columns, counts, strict=True):
            out.append(self._unique(key, found))
        for bounds, gate in zip(self._bounds, config.bounds.values(), strict=True):
            out.append(bounds.result(self._severity(gate)))
        if self._freshness is not None and config.freshness is not None:
            out.append(self._freshness.result(self._severity(config.freshness),
                                              self.started_at))
        return out

    def _null_ratio(self, column: str, gate: RatioGate) -> GateResult:
        nulls, rows = self._nulls[column], self._rows
        expected = f"<= {_ratio_text(gate.value)}"
        where = f"column {column!r}"
        if rows == 0:
            return GateResult(gate=f"null_ratio_max[{column}]", severity=self._severity(gate),
                              passed=True, observed=None, expected=expected,
                              message=f"{where}: no rows, so no null ratio to check "
                                      f"(maximum {_ratio_text(gate.value)})")
        ratio = nulls / rows
        passed = ratio <= gate.value
        verdict = "is within" if passed else "exceeds"
        return GateResult(
            gate=f"null_ratio_max[{column}]", severity=self._severity(gate), passed=passed,
            observed=ratio, expected=expected,
            message=f"{where}: null ratio {_ratio_text(ratio)} ({nulls:,} of {rows:,} rows) "
                    f"{verdict} the maximum {_ratio_text(gate.value)}")

    def _unique(self, key: UniqueKey, found: KeyCount) -> GateResult:
        where = (f"column {key.columns[0]!r}" if len(key.columns) == 1
                 else f"columns ({', '.join(key.columns)})")
        example = None
        if found.example is not None:
            example = _jsonable(found.example, found.example.type)
        observed = {"duplicates": found.duplicates, "rows": found.rows,
                    "null_key_rows": found.null_rows, "example": example,
                    "exact": found.exact}
        if found.duplicates:
            message = (f"{where}: {found.duplicates:,} duplicate key"
                       f"{'s' * (found.duplicates != 1)} among {found.rows:,} rows")
            if example is not None:
                message += f", e.g. {example!r} appears more than once"
            elif not found.exact:
                message += (" (keys are compared by 64-bit hash, so no example can be "
                            "shown)")
        else:
            message = f"{where}: all {found.rows:,} keys distinct"
        if found.null_rows:
            message += (f"; {found.null_rows:,} row{'s' * (found.null_rows != 1)} with a "
                        "NULL in the key skipped (NULLs never collide)")
        return GateResult(gate=f"unique[{','.join(key.columns)}]",
                          severity=self._severity(key), passed=not found.duplicates,
                          observed=observed, expected="no duplicate keys", message=message)

    def close(self) -> None:
        """Delete the uniqueness keys and spill files. Safe to call twice."""
        for keys in self._keys:
            keys.close()

    def __enter__(self) -> QualityCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _type(schema: pa.Schema | None, column: str) -> pa.DataType | None:
    return None if schema is None else schema.field(column).type
