"""``rivet check --preflight``: per export, the size the server's statistics give
(:class:`~rivet_core.dialect.SupportsTableStats`, else the EXPLAIN estimate of the query),
the plan the server would use for the statements the export's mode sends, built with the
same dialect calls the modes use, whether an index serves the cursor, window or chunk
column (:class:`~rivet_core.dialect.SupportsPlanSteps`), and a verdict with
recommendations (:func:`assess`, pure: the rules are documented in docs/cli.md). A dialect
without a piece gets the verdict ``unknown``, never an error.

Apart from :mod:`rivet_core.runner.preflight` (what every run checks before it reads), so
that ``rivet run`` does not build the classes of an assessment it never makes.

Not here: how the verdicts are printed (:mod:`rivet_core.cli.check_cmd`).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pyarrow as pa

from rivet_core.backends import Query, ReadOptions, Source
from rivet_core.config.values import format_bytes
from rivet_core.dialect import (
    CursorSpec,
    Dialect,
    SupportsExplain,
    SupportsPlanSteps,
    SupportsPrimaryKey,
    SupportsTableStats,
)
from rivet_core.errors import RivetError, SourceError, StateError
from rivet_core.redact import redact
from rivet_core.runner import cursor as cursors
from rivet_core.runner.chunks import DEFAULT_CHUNK_SIZE, default_chunk_size
from rivet_core.runner.modes.time_window import window_start

if TYPE_CHECKING:
    from rivet_core.config.models import StateConfig
    from rivet_core.plan import ExportPlan

log = logging.getLogger("rivet.runner")


# ------------------------------------------------------------------ what the server says


@attrs.frozen(kw_only=True)
class Estimate:
    """How big the export's data is, and where the numbers come from."""

    rows: int | None = None
    bytes: int | None = None
    origin: str | None = None
    """``"table statistics"`` or ``"query plan"``; None when nothing is known."""

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "bytes": self.bytes, "origin": self.origin}


@attrs.frozen(kw_only=True)
class PlanStep:
    """One step of a plan, as :meth:`~rivet_core.dialect.SupportsPlanSteps.plan_steps`
    reads it."""

    text: str
    depth: int = 0
    relation: str | None = None
    full_scan: bool = False
    index: str | None = None
    rows: int | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> PlanStep:
        rows = row.get("rows")
        return cls(text=str(row.get("text", "?")), depth=int(row.get("depth") or 0),
                   relation=None if row.get("relation") is None else str(row["relation"]),
                   full_scan=bool(row.get("full_scan")),
                   index=None if row.get("index") is None else str(row["index"]),
                   rows=None if rows is None else int(rows))


@attrs.frozen(kw_only=True)
class Statement:
    """One statement the export's mode would send, and the server's plan for it."""

    role: str
    """What it is for: ``read``, ``first run``, ``next runs``."""
    query: Query
    predicate: bool
    """Its plan decides whether an index serves the export's column."""
    steps: list[PlanStep] | None = None
    """None: the dialect cannot explain it, or cannot read the plan."""
    estimated_rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "label": self.query.label, "sql": self.query.sql,
                "params": list(self.query.params), "estimated_rows": self.estimated_rows,
                "plan": None if self.steps is None
                else ["  " * s.depth + s.text for s in self.steps]}


@attrs.frozen(kw_only=True)
class IndexUse:
    """Whether an index serves the predicate on the export's column."""

    serves: bool | None
    """None: unknown (no plan, or a plan that reads no table)."""
    index: str | None = None
    full_scans: tuple[str, ...] = ()
    """Relations the predicate's plan reads in full."""


def index_use(statement: Statement | None) -> IndexUse:
    if statement is None or statement.steps is None:
        return IndexUse(serves=None)
    full = tuple(s.relation or "?" for s in statement.steps if s.full_scan)
    if full:
        return IndexUse(serves=False, full_scans=full)
    indexes = [s.index for s in statement.steps if s.index]
    return IndexUse(serves=True, index=indexes[0]) if indexes else IndexUse(serves=None)


# ------------------------------------------------------------------ verdicts (pure)

BIG_ROWS = 1_000_000
"""From this many rows, a full scan where the mode meant to read a slice is dangerous."""
HEAVY_ROWS = 10_000_000
HEAVY_BYTES = 4 << 30
"""From this size, a full export on one connection is heavy."""
ROWS_PER_CONNECTION = 5_000_000
"""The rows each connection of a recommended ``parallel`` reads."""
MAX_PARALLEL = 8
MAX_CHUNKS = 10_000
"""More chunks than this are more statements than the rows justify."""
HEAVY_CHUNK_ROWS = 5_000_000
"""A chunk with more rows than this is a long statement and a long retry."""

SLICE = {"incremental": "cursor", "time_window": "window", "chunked": "chunk"}
"""The modes that read a slice by a predicate, and what the predicate is called."""


@attrs.frozen(kw_only=True)
class Recommendation:
    key: str
    """The config key (``parallel``, ``chunk_size``, ``mode``) or ``index``."""
    value: str
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value, "why": self.why}

    def render(self) -> str:
        return f"{self.key} = {self.value} ({self.why})"


@attrs.frozen(kw_only=True)
class Facts:
    """What the verdict is decided on."""

    mode: str
    table: str | None = None
    column: str | None = None
    """The cursor, window or chunk column (or cursor expression), as shown."""
    parallel: int = 1
    estimate: Estimate = Estimate()
    predicate: Statement | None = None
    chunk_size: int | None = None
    chunk_count: int | None = None
    chunk_by_days: int | None = None
    first_run: bool = False
    """An incremental export with no stored cursor: its next run reads every row."""
    missing: tuple[str, ...] = ()
    """The dialect pieces that would have told more (names, for ``unknown`` reasons)."""


@attrs.frozen(kw_only=True)
class Assessment:
    verdict: str
    """``ok``, ``heavy``, ``dangerous`` or ``unknown``."""
    reason: str
    index: IndexUse = IndexUse(serves=None)
    recommendations: list[Recommendation] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)


def approx(rows: int) -> str:
    """``~950``, ``~12K``, ``~3.4M``, ``~1.2B`` rows."""
    for size, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if rows >= size:
            value = rows / size
            return f"~{value:.1f}{suffix}" if value < 10 else f"~{value:.0f}{suffix}"
    return f"~{rows}"


def describe_size(estimate: Estimate) -> str:
    """``~1.2M rows, 69.0 MiB``."""
    parts = [f"{approx(estimate.rows)} rows"] if estimate.rows is not None else []
    if estimate.bytes is not None:
        parts.append(format_bytes(estimate.bytes))
    return ", ".join(parts) or "unknown size"


def suggested_parallel(estimate: Estimate) -> int:
    by_rows = math.ceil((estimate.rows or 0) / ROWS_PER_CONNECTION)
    by_bytes = math.ceil((estimate.bytes or 0) / (HEAVY_BYTES // 2))
    return max(2, min(MAX_PARALLEL, max(by_rows, by_bytes)))


def estimated_chunks(facts: Facts) -> int | None:
    """How many chunks the mode would plan, assuming dense integer keys."""
    if facts.chunk_count is not None:
        return facts.chunk_count
    if facts.chunk_by_days is not None or facts.estimate.rows is None:
        return None
    return max(1, math.ceil(facts.estimate.rows
                            / (facts.chunk_size or _default_chunk_size(facts.estimate))))


def _default_chunk_size(estimate: Estimate) -> int:
    """The keys per chunk a run plans without ``chunk_size``: sized from the table's
    statistics when that is where the estimate comes from, as the chunked mode does."""
    if estimate.origin == "table statistics":
        return default_chunk_size(estimate.rows, estimate.bytes)
    return DEFAULT_CHUNK_SIZE


def _round_size(rows: float) -> int:
    """A chunk size people write: 1, 2 or 5 times a power of ten, at least ``rows``."""
    power = 10 ** max(0, int(math.log10(max(rows, 1))))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rows)


def assess(facts: Facts) -> Assessment:
    """The verdict on one export (the rules of docs/cli.md, ``rivet check``)."""
    estimate, rows = facts.estimate, facts.estimate.rows
    if facts.mode not in SLICE:
        return _assess_full(facts)
    what = SLICE[facts.mode]
    use = index_use(facts.predicate)
    notes = []
    if facts.first_run and rows is not None and rows >= BIG_ROWS:
        notes.append(f"no stored cursor: the first run reads every row ({approx(rows)})")
    if rows is None:
        return Assessment(verdict="unknown", index=use, notes=notes,
                          reason=f"no estimate of the rows "
                                 f"({_lacking(facts, _ROWS_FROM, 'the server gave none')})")
    if rows < BIG_ROWS:
        return Assessment(verdict="ok", index=use, notes=notes,
                          reason=f"{describe_size(estimate)}: even a full scan of so few "
                                 "rows is cheap")
    if use.serves is None:
        return Assessment(verdict="unknown", index=use, notes=notes,
                          reason=f"{approx(rows)} rows, and no way to tell whether an index "
                                 f"serves the {what} predicate on {facts.column} "
                                 f"({_lacking(facts, _PLAN_FROM, 'its plan reads no table')})")
    recommendations: list[Recommendation] = []
    chunks = estimated_chunks(facts) if facts.mode == "chunked" else None
    if use.serves is False and not (chunks is not None and chunks <= 1):
        scanned = ", ".join(use.full_scans)
        effect = {"incremental": "every run reads the whole table to find the new rows",
                  "time_window": "every run reads the whole table for its window",
                  "chunked": f"each of {'~' + str(chunks) if chunks else 'the'} chunks "
                             "reads the whole table"}[facts.mode]
        target = f"{facts.table or use.full_scans[0]}({facts.column})"
        return Assessment(
            verdict="dangerous", index=use, notes=notes,
            reason=f"the {what} predicate on {facts.column} is planned as a full scan of "
                   f"{scanned} ({describe_size(estimate)}): {effect}",
            recommendations=[Recommendation(
                key="index", value=target,
                why=f"so the {what} predicate reads only its rows")])
    if facts.mode == "chunked":
        heavy = _chunk_sizing(facts, chunks, recommendations)
        if rows >= HEAVY_ROWS and facts.parallel <= 1:
            recommendations.append(Recommendation(
                key="parallel", value=str(suggested_parallel(estimate)),
                why=f"{approx(rows)} rows: chunks can be read over several connections"))
        if heavy:
            return Assessment(verdict="heavy", reason=heavy, index=use, notes=notes,
                              recommendations=recommendations)
    served = (f"index {use.index} serves the {what} predicate on {facts.column}"
              if use.serves else "a single chunk: one full scan")
    return Assessment(verdict="ok", reason=f"{describe_size(estimate)}; {served}", index=use,
                      notes=notes, recommendations=recommendations)


def _assess_full(facts: Facts) -> Assessment:
    estimate = facts.estimate
    if estimate.rows is None and estimate.bytes is None:
        why = _lacking(facts, _ROWS_FROM, "the server gave none")
        return Assessment(verdict="unknown", reason=f"no estimate of the rows ({why})")
    big = (estimate.rows or 0) >= HEAVY_ROWS or (estimate.bytes or 0) >= HEAVY_BYTES
    if not big:
        return Assessment(verdict="ok", reason=f"{describe_size(estimate)}: one connection "
                                               "reads it comfortably")
    if facts.parallel > 1 and facts.table is not None:
        return Assessment(verdict="ok", reason=f"{describe_size(estimate)}, read over "
                                               f"{facts.parallel} connections")
    parallel = str(suggested_parallel(estimate))
    if facts.table is not None:
        recommendations = [Recommendation(
            key="parallel", value=parallel,
            why="the source splits a table read over that many connections")]
    else:
        recommendations = [
            Recommendation(key="mode", value='"chunked"',
                           why="a query is read on one connection; chunks on several "
                               "(set chunk_column to an indexed integer key)"),
            Recommendation(key="parallel", value=parallel, why="chunks read at once")]
    return Assessment(verdict="heavy", recommendations=recommendations,
                      reason=f"a full export of {describe_size(estimate)} on one connection, "
                             "every run" + ("" if facts.parallel <= 1 else
                                            " (parallel splits only a `table` read)"))


def _chunk_sizing(facts: Facts, chunks: int | None,
                  recommendations: list[Recommendation]) -> str | None:
    """Too many chunks, or chunks too big: the heavy reason, with a recommendation."""
    rows = facts.estimate.rows or 0
    if chunks is None:
        return None
    if chunks > MAX_CHUNKS:
        size = _round_size(rows / 1000)
        recommendations.append(Recommendation(
            key="chunk_size", value=f"{size:_}", why="about 1,000 chunks"))
        return f"~{chunks:,} chunks, one statement each, for {approx(rows)} rows"
    per_chunk = rows / chunks
    if per_chunk > HEAVY_CHUNK_ROWS:
        key = "chunk_count" if facts.chunk_count is not None else "chunk_size"
        value = (math.ceil(rows / 1_000_000) if key == "chunk_count" else 1_000_000)
        recommendations.append(Recommendation(
            key=key, value=f"{value:_}", why="about a million rows per chunk"))
        return (f"each chunk reads {approx(int(per_chunk))} rows in one statement (a long "
                "statement, and a long retry when it fails)")
    return None


_ROWS_FROM = ("SupportsTableStats", "SupportsExplain")
_PLAN_FROM = ("SupportsExplain", "SupportsPlanSteps")


def _lacking(facts: Facts, pieces: tuple[str, ...], otherwise: str) -> str:
    missing = [p for p in facts.missing if p in pieces]
    if not missing:
        return otherwise
    return "the source's dialect lacks " + " and ".join(missing)


# ------------------------------------------------------------------ gathering (I/O)


@attrs.frozen(kw_only=True)
class ExportPreflight:
    """The preflight of one export: what the server said, and the verdict."""

    export: str
    mode: str
    column: str | None = None
    estimate: Estimate = Estimate()
    statements: list[Statement] = attrs.field(factory=list)
    assessment: Assessment | None = None
    error: str | None = None
    """Why the preflight could not run (connection refused, a query the server refuses)."""
    hint: str | None = None

    @property
    def verdict(self) -> str:
        return "unknown" if self.assessment is None else self.assessment.verdict

    def as_dict(self) -> dict[str, Any]:
        a = self.assessment
        use = a.index if a is not None else IndexUse(serves=None)
        return {
            "export": self.export, "mode": self.mode, "column": self.column,
            "estimate": self.estimate.as_dict(),
            "statements": [s.as_dict() for s in self.statements],
            "index": {"column": self.column, "serves": use.serves, "name": use.index,
                      "full_scans": list(use.full_scans)},
            "verdict": self.verdict, "reason": a.reason if a else None,
            "recommendations": [r.as_dict() for r in a.recommendations] if a else [],
            "notes": a.notes if a else [], "error": self.error, "hint": self.hint,
        }


def stored_cursors(config_dir: Path, state: StateConfig | None) -> dict[str, str]:
    """Each export's stored cursor, read-only from the project's state store (``state``:
    the config's ``[state]``); empty when there is none or it cannot be read (the preflight
    then plans a first run)."""
    from rivet_core.state import open_existing_store

    try:
        store = open_existing_store(config_dir, state=state, readonly=True)
    except StateError:
        return {}
    if store is None:
        return {}
    try:
        return {c.export_name: c.value for c in store.cursors()}
    except StateError:
        return {}
    finally:
        store.close()


def estimate_size(source: Source, plan: ExportPlan, options: ReadOptions) -> Estimate:
    """Rows and bytes from the table's statistics; rows from the plan of the query when the
    statistics do not say (a query export, a dialect without the piece)."""
    dialect, table = plan.dialect, plan.config.table
    if table is not None and isinstance(dialect, SupportsTableStats):
        rows = source.fetch_rows(dialect.table_stats(table), options)
        if rows and rows[0].get("estimated_rows") is not None:
            data = rows[0].get("data_bytes")
            return Estimate(rows=int(rows[0]["estimated_rows"]),
                            bytes=None if data is None else int(data),
                            origin="table statistics")
    if isinstance(dialect, SupportsExplain):
        found = dialect.estimated_rows(source.fetch_rows(
            dialect.explain(dialect.full(plan.sql, table=table)), options))
        if found is not None:
            return Estimate(rows=found, origin="query plan")
    return Estimate()


def preflight_export(source: Source, plan: ExportPlan, *, stored_cursor: str | None,
                     now: dt.datetime) -> ExportPreflight:
    """Ask the server about one export: its size, the plans of the statements its mode
    would send, and the verdict. Reads nothing but statistics and plans (and, for an
    incremental export with no stored cursor, a zero-row probe of the query for the cursor's
    type); a failure is the result's error."""
    config = plan.config
    options = ReadOptions(statement_timeout_s=plan.tuning.statement_timeout_s,
                          lock_timeout_s=plan.tuning.lock_timeout_s)
    column: str | None = None
    try:
        estimate = estimate_size(source, plan, options)
        column, statements = _statements(source, plan, options, stored_cursor, now,
                                         estimate)
        statements = [_explained(source, plan.dialect, s, options) for s in statements]
    except RivetError as exc:
        return ExportPreflight(export=plan.name, mode=config.mode, column=column,
                               error=redact(exc.message), hint=exc.hint)
    facts = Facts(
        mode=config.mode, table=config.table, column=column, parallel=config.parallel,
        estimate=estimate, predicate=next((s for s in statements if s.predicate), None),
        chunk_size=config.chunk_size, chunk_count=config.chunk_count,
        chunk_by_days=config.chunk_by_days,
        first_run=config.mode == "incremental" and stored_cursor is None,
        missing=missing_pieces(plan.dialect, table=config.table))
    return ExportPreflight(export=plan.name, mode=config.mode, column=column,
                           estimate=estimate, statements=statements,
                           assessment=assess(facts))


def missing_pieces(dialect: Dialect, *, table: str | None) -> tuple[str, ...]:
    pieces: list[type] = [SupportsExplain, SupportsPlanSteps]
    if table is not None:
        pieces.insert(0, SupportsTableStats)
    return tuple(p.__name__ for p in pieces if not isinstance(dialect, p))


def _explained(source: Source, dialect: Dialect, statement: Statement,
               options: ReadOptions) -> Statement:
    if not isinstance(dialect, SupportsExplain):
        return statement
    rows = source.fetch_rows(dialect.explain(statement.query), options)
    steps = ([PlanStep.of(r) for r in dialect.plan_steps(rows)]
             if isinstance(dialect, SupportsPlanSteps) else None)
    return attrs.evolve(statement, steps=steps, estimated_rows=dialect.estimated_rows(rows))


def _statements(source: Source, plan: ExportPlan, options: ReadOptions,
                stored_cursor: str | None, now: dt.datetime, estimate: Estimate
                ) -> tuple[str | None, list[Statement]]:
    """The export's column and the statements its mode would send, built as the mode builds
    them (:mod:`rivet_core.runner.modes`)."""
    config, dialect, sql = plan.config, plan.dialect, plan.sql
    if config.mode == "full":
        return None, [Statement(role="read", query=dialect.full(sql, table=config.table),
                                predicate=False)]
    if config.mode == "time_window":
        column, unix = str(config.time_column), config.time_column_type == "unix"
        start = window_start(now, config.days_window or 0)
        return column, [
            Statement(role=f"read (the window from {start:%Y-%m-%d})", predicate=False,
                      query=dialect.time_window(sql, column, start=start, unix=unix)),
            Statement(role="index check (a window starting a year ahead: few rows)",
                      predicate=True, query=dialect.time_window(
                          sql, column, start=now + dt.timedelta(days=365), unix=unix))]
    if config.mode == "incremental":
        return _incremental(source, plan, options, stored_cursor, now)
    column = _chunk_column(source, plan, options)
    if config.chunk_by_days is not None:
        hi: Any = now.date()
        lo: Any = hi - dt.timedelta(days=config.chunk_by_days)
    else:
        width = config.chunk_size or _default_chunk_size(estimate)
        if config.chunk_count is not None and estimate.rows:
            width = max(1, math.ceil(estimate.rows / config.chunk_count))
        lo, hi = 0, width
    query = dialect.chunk(sql, column, lo, hi, label=f"chunk 0 [{lo}..{hi})")
    return column, [Statement(role=f"read (a chunk: [{lo}..{hi}))", query=query,
                              predicate=True)]


def _incremental(source: Source, plan: ExportPlan, options: ReadOptions,
                 stored_cursor: str | None, now: dt.datetime
                 ) -> tuple[str, list[Statement]]:
    from rivet_core.config.values import parse_duration

    config, dialect, sql = plan.config, plan.dialect, plan.sql
    spec = CursorSpec(column=str(config.cursor_column), fallback=config.cursor_fallback_column)
    shown = spec.column if spec.fallback is None else f"COALESCE({spec.column}, " \
                                                      f"{spec.fallback})"
    lag = parse_duration(config.cursor_lag) if config.cursor_lag is not None else None

    def statement(after: Any) -> Query:
        return dialect.incremental(sql, spec, after=after, lag_seconds=lag,
                                   include_nulls=config.on_null_cursor == "include")

    after = None if stored_cursor is None else cursors.decode(stored_cursor)
    statements = [Statement(role="read (rows after the stored cursor)" if after is not None
                            else "read (first run, no stored cursor: every row)",
                            query=statement(after), predicate=False)]
    columns = {c.name: c for c in source.describe(Query(sql=sql, label="cursor type"),
                                                  options)}
    found = columns.get(spec.column)
    if found is None:
        raise SourceError(f"cursor column {spec.column!r} is not in the query's result",
                          hint="select it, or fix cursor_column")
    ahead = value_ahead(found.arrow_type, now)
    if ahead is not None:
        statements.append(Statement(
            role="index check (a cursor past the newest row: a run that finds few rows)",
            query=statement(ahead), predicate=True))
    return shown, statements


def value_ahead(arrow_type: pa.DataType | None, now: dt.datetime) -> Any:
    """A value of the column's type past any real one (a year ahead; the top of an
    integer's range), standing for the stored cursor of a run that finds few new rows: the
    server then uses an index on the cursor if there is one, whatever the backlog of the
    next real run. None for a type that cannot be a cursor."""
    if arrow_type is None:
        return None
    if pa.types.is_integer(arrow_type):
        return (1 << (arrow_type.bit_width - (1 if pa.types.is_signed_integer(arrow_type)
                                              else 0))) - 2
    if pa.types.is_timestamp(arrow_type):
        ahead = now.astimezone(dt.UTC) + dt.timedelta(days=365)
        return ahead if arrow_type.tz is not None else ahead.replace(tzinfo=None)
    if pa.types.is_date(arrow_type):
        return now.date() + dt.timedelta(days=365)
    if pa.types.is_decimal(arrow_type):
        from decimal import Decimal

        return Decimal(10) ** (arrow_type.precision - arrow_type.scale) - 1
    if pa.types.is_floating(arrow_type):
        return 1e300
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "\U0010ffff"
    return None


def _chunk_column(source: Source, plan: ExportPlan, options: ReadOptions) -> str:
    """``chunk_column``, or the table's primary key as the chunked mode finds it."""
    config, dialect = plan.config, plan.dialect
    if config.chunk_column is not None:
        return config.chunk_column
    assert config.table is not None and isinstance(dialect, SupportsPrimaryKey)
    rows = source.fetch_rows(dialect.primary_key(config.table), options)
    if len(rows) != 1 or not dialect.is_integer_type(str(rows[0]["data_type"])):
        raise SourceError(f"table {config.table!r} has no single-column integer primary key",
                          hint="set chunk_column")
    return str(rows[0]["column_name"])
