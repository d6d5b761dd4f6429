"""The config ``rivet init`` writes: which mode each surveyed table's export gets, and why
(:func:`suggest`), and the commented TOML (:func:`render`). Pure: it works on the facts of
:mod:`rivet_core.introspect` and touches nothing.

How a mode is chosen, per table (:class:`Thresholds` holds the numbers):

1. A view or a foreign table: ``full`` (the catalog knows nothing of its size).
2. Small (at most ``big_rows`` estimated rows and ``big_bytes`` on disk): ``full``. A copy
   of a small table is cheap, and unlike an incremental one it shows deleted rows.
3. Big, with an indexed column the application or the database sets on every update
   (``updated_at``, ``ON UPDATE CURRENT_TIMESTAMP``): ``incremental`` on it, with
   ``cursor_lag`` where the dialect has the server's clock; a nullable one falls back on
   a timestamp that is never NULL (``coalesce``), and without one yields to rule 4 when it
   applies (a NULL cursor would fail the run).
4. Big (or of unknown size) with an integer key (a single-column primary key, or an indexed
   identity / serial / auto-increment column): ``chunked`` on it, ``chunk_size`` keys per
   chunk, checkpointed; 2 chunks at once from ``parallel_2_rows`` rows, 4 from
   ``parallel_4_rows``.
5. Big with any other indexed timestamp (``created_at``): ``incremental`` on it, assuming
   rows are appended.
6. Otherwise ``full``, with a warning: one long statement.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import attrs

from rivet_core.introspect import UNSIZED_KINDS, Survey, TableFacts

_UPDATED = re.compile(r"updated|modified|changed|last_?(?:update|modif|change)|mtime|edited",
                      re.IGNORECASE)
_CREATED = re.compile(r"created|inserted|added|ctime", re.IGNORECASE)
_NUMBERED = frozenset({"identity", "sequence", "auto_increment"})
_EXPORT_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
WIDTH = 96
"""Comment lines are wrapped to this many characters."""


@attrs.frozen(kw_only=True)
class Thresholds:
    """The numbers behind each choice of mode."""

    big_rows: int = 1_000_000
    """A table with more estimated rows than this is big."""
    big_bytes: int = 1 << 30
    """A table taking more bytes than this on disk (indexes included) is big."""
    chunk_size: int = 100_000
    """Keys per chunk of a chunked export."""
    parallel_2_rows: int = 10_000_000
    """From this many rows a chunked export reads 2 chunks at once."""
    parallel_4_rows: int = 100_000_000
    """From this many rows, 4 at once."""
    cursor_lag: str = "5m"
    """How far an incremental run stays behind the server's clock."""


@attrs.frozen(kw_only=True)
class CursorCandidate:
    """A column an incremental export could order by, or a chunked one split on."""

    column: str
    kind: str
    """``timestamp`` or ``integer``."""
    nullable: bool | None
    score: int
    reasons: list[str]
    update_like: bool = False
    """Set on every update (by the database, or by its name's promise)."""

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def cursor_candidates(table: TableFacts) -> list[CursorCandidate]:
    """Indexed timestamp columns and integer columns the database numbers (or the primary
    key), best first."""
    found = []
    key = table.primary_key
    for column in table.columns:
        reasons: list[str] = []
        score = 0
        is_key = key == [column.name]
        if column.kind == "timestamp" and column.indexed:
            reasons.append("indexed")
            update_like = False
            if column.generated == "now_on_update":
                reasons.append("set to the current time by every update")
                score, update_like = score + 4, True
            if _UPDATED.search(column.name):
                reasons.append("name suggests an update time")
                score, update_like = score + 3, True
            elif _CREATED.search(column.name):
                reasons.append("name suggests a creation time")
                score += 1
            if column.generated == "now":
                reasons.append("defaults to the current time")
                score += 1
        elif column.kind == "integer" and (is_key or (
                column.indexed and column.generated in _NUMBERED)):
            update_like = False
            reasons.append("primary key" if is_key else "indexed")
            score += 2 if is_key else 0
            if column.generated in _NUMBERED:
                reasons.append(f"numbered by the database ({column.generated})")
                score += 3
        else:
            continue
        if column.nullable is False:
            reasons.append("not null")
            score += 1
        elif column.nullable:
            reasons.append("nullable")
        found.append(CursorCandidate(column=column.name, kind=str(column.kind),
                                     nullable=column.nullable, score=score, reasons=reasons,
                                     update_like=update_like))
    return sorted(found, key=lambda c: -c.score)


def chunk_key(table: TableFacts) -> str | None:
    """The integer column a chunked export splits on: a single-column integer primary
    key, else an indexed column the database numbers."""
    integers = [c for c in cursor_candidates(table) if c.kind == "integer"]
    chosen = [c for c in integers if table.primary_key == [c.column]] or integers
    return chosen[0].column if chosen else None


@attrs.frozen(kw_only=True)
class Suggestion:
    """The mode of one table's export, its mode keys, and why."""

    mode: str
    keys: dict[str, Any]
    why: list[str]
    size: str
    """``small``, ``big`` or ``unknown``."""

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def size_class(table: TableFacts, limits: Thresholds) -> str:
    """``small``, ``big``, or ``unknown`` (no statistics, or a view)."""
    rows, size = table.estimated_rows, table.total_bytes
    if table.kind in UNSIZED_KINDS or (rows is None and size is None):
        return "unknown"
    if (rows is not None and rows > limits.big_rows) or (
            size is not None and size > limits.big_bytes):
        return "big"
    return "small"


def suggest(table: TableFacts, limits: Thresholds, *, server_time: bool) -> Suggestion:
    """The mode for ``table``'s export (see the module's rules). ``server_time``: the
    dialect has :class:`~rivet_core.dialect.SupportsServerTime` (``cursor_lag``)."""
    size = size_class(table, limits)
    amount = size_text(table)
    stamps = [c for c in cursor_candidates(table) if c.kind == "timestamp"]
    key = chunk_key(table)
    updates = [c for c in stamps if c.update_like
               # a cursor that may be NULL, with nothing to fall back on, can fail a run:
               # a chunk key is the safer choice then
               and (key is None or not c.nullable or _fallback(c, stamps) is not None)]
    if table.kind in UNSIZED_KINDS:
        return Suggestion(mode="full", keys={}, size=size, why=[
            f"full: a {table.kind}, whose size the catalog does not know: it is read whole "
            "on every run. Check that it is cheap (a view over big tables reads them all)."])
    if size == "small":
        why = [f"full: small ({amount}; big means over {limits.big_rows:,} rows or "
               f"{byte_text(limits.big_bytes)}), so a whole copy on every run is cheap, and "
               "it shows deleted rows too."]
        if updates:
            why.append(f"If it grows, incremental on {updates[0].column} (indexed, "
                       f"{', '.join(updates[0].reasons[1:]) or 'a timestamp'}) reads only "
                       "changed rows.")
        return Suggestion(mode="full", keys={}, size=size, why=why)
    if size == "big" and updates:
        best = updates[0]
        return _incremental(table, best, stamps, limits, server_time, size, [
            f"incremental: big ({amount}) with an indexed update-time column "
            f"{best.column} ({', '.join(best.reasons[1:])}): each run reads only the rows "
            "changed since the last one. Deleted rows are not seen (re-export in full now "
            "and then if that matters); the first run reads every row."])
    if key is not None:
        keys: dict[str, Any] = {"chunk_column": key, "chunk_size": limits.chunk_size,
                                "chunk_checkpoint": True}
        rows = table.estimated_rows or 0
        parallel = 4 if rows >= limits.parallel_4_rows else (
            2 if rows >= limits.parallel_2_rows else 1)
        if parallel > 1:
            keys["parallel"] = parallel
        what = (f"big ({amount})" if size == "big" else
                "of unknown size (the catalog has no estimate: chunks suit any size)")
        why = [f"chunked: {what}, with the integer key {key}: read in ranges of "
               f"{limits.chunk_size:,} keys, one short statement each, checkpointed so "
               "`rivet run --resume` continues an interrupted run"
               + (f"; {parallel} chunks at once (over {_parallel_floor(parallel, limits):,} "
                  "rows)." if parallel > 1 else ".")]
        return Suggestion(mode="chunked", keys=keys, size=size, why=why)
    if stamps:
        best = stamps[0]
        return _incremental(table, best, stamps, limits, server_time, size, [
            f"incremental: {'big' if size == 'big' else 'of unknown size'} ({amount}), no "
            f"integer key to split on, and an indexed timestamp {best.column} "
            f"({', '.join(best.reasons[1:]) or 'no other hint'}): each run reads the rows "
            f"with a newer {best.column}. This assumes rows are added, not updated, once "
            f"{best.column} is set: review."])
    return Suggestion(mode="full", keys={}, size=size, why=[
        f"full: {'big' if size == 'big' else 'of unknown size'} ({amount}), but no integer "
        "key to split on and no indexed timestamp to follow, so it is read whole, in one "
        "long statement, on every run. An index on an update-time column (incremental) or "
        "an integer key (chunked) would make it cheaper: review."])


def _fallback(cursor: CursorCandidate, stamps: list[CursorCandidate]
              ) -> CursorCandidate | None:
    """A timestamp that is never NULL, to order the rows whose ``cursor`` is."""
    return next((s for s in stamps if s.column != cursor.column and s.nullable is False),
                None)


def _parallel_floor(parallel: int, limits: Thresholds) -> int:
    return limits.parallel_4_rows if parallel == 4 else limits.parallel_2_rows


def _incremental(table: TableFacts, best: CursorCandidate, stamps: list[CursorCandidate],
                 limits: Thresholds, server_time: bool, size: str,
                 why: list[str]) -> Suggestion:
    keys: dict[str, Any] = {"cursor_column": best.column}
    if best.nullable:
        fallback = _fallback(best, stamps)
        if fallback is not None:
            keys["incremental_cursor_mode"] = "coalesce"
            keys["cursor_fallback_column"] = fallback.column
            why.append(f"{best.column} may be NULL: such rows are ordered by "
                       f"{fallback.column} instead.")
        else:
            keys["on_null_cursor"] = "fail"
            why.append(f"{best.column} may be NULL, and a row without it cannot be "
                       "ordered: the run then fails before writing. Set on_null_cursor to "
                       "\"include\" or \"exclude\", or a cursor_fallback_column.")
    if server_time:
        keys["cursor_lag"] = limits.cursor_lag
        why.append(f"cursor_lag keeps each run {limits.cursor_lag} behind the server's "
                   "clock, so rows of transactions that commit late are not skipped.")
    return Suggestion(mode="incremental", keys=keys, size=size, why=why)


# ------------------------------------------------------------------------------ the TOML


@attrs.frozen(kw_only=True)
class Target:
    """Where the scaffold's exports write: a destination ``type`` and its keys."""

    type: str
    keys: dict[str, Any]


def export_names(tables: Sequence[TableFacts]) -> list[str]:
    """One usable, unique export name per table: the table's name, qualified by its
    schema when two schemas hold the same name."""
    counts: dict[str, int] = {}
    for table in tables:
        counts[table.name] = counts.get(table.name, 0) + 1
    names: list[str] = []
    for table in tables:
        raw = table.qualified if counts[table.name] > 1 else table.name
        name = _EXPORT_NAME.sub("_", raw)
        if not name or name[0] in ".-":
            name = "_" + name
        name = name[:100]
        base, number = name, 2
        while name in names:
            name = f"{base[:96]}_{number}"
            number += 1
        names.append(name)
    return names


def render(survey: Survey, *, source: dict[str, Any], suggestions: Sequence[Suggestion],
           names: Sequence[str], target: Target, format: str, limits: Thresholds,
           config_name: str, env: str | None, now: dt.datetime) -> str:
    """The commented config. ``source``: the keys of ``[source]`` (no secret: an env
    reference or a path); ``env``: the variable holding the URL, for the header."""
    readable = [t for t in survey.tables if t.error is None]
    schemas = [survey.schema] if survey.schema else sorted(
        {t.schema for t in survey.tables if t.schema})
    where = ("schema " if len(schemas) == 1 else "schemas ") + ", ".join(map(repr, schemas))
    lines = _comment(
        f"Generated by `rivet init` on {now:%Y-%m-%d %H:%M} UTC from the {survey.source_type} "
        f"source {survey.location}, {where}: {len(readable)} export(s), one per table. Each "
        "export says why it got its mode.")
    lines += _comment(
        f"Thresholds: a table is big above {limits.big_rows:,} estimated rows or "
        f"{byte_text(limits.big_bytes)} on disk. Small tables are copied in full; big "
        "ones are read incrementally when an indexed update-time column exists, else in "
        f"chunks of {limits.chunk_size:,} keys of an integer key.")
    if env is not None:
        lines += _comment(f"The connection URL is read from ${env} when Rivet runs; this "
                          "file holds no secret.")
    for note in survey.missing:
        lines += _comment(f"note: {note}")
    lines += ["# Next:", f"#   rivet doctor -c {config_name}    connection, grants, "
              "destination access",
              f"#   rivet check -c {config_name} --type-report",
              f"#   rivet run -c {config_name}", "", "[source]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in source.items()]
    for table, suggestion, name in zip(survey.tables, suggestions, names, strict=True):
        lines.append("")
        if table.error is not None:
            lines += _comment(f"skipped {table.qualified}: {table.error}")
            continue
        lines += _export(table, suggestion, name, target, format)
    return "\n".join(lines) + "\n"


def _export(table: TableFacts, suggestion: Suggestion, name: str, target: Target,
            format: str) -> list[str]:
    key = ", ".join(table.primary_key) if table.primary_key else None
    lines = _comment(f"{table.qualified} ({table.kind}): {size_text(table)}; "
                     + (f"primary key ({key})" if key else "no primary key"))
    for reason in suggestion.why:
        lines += _comment(reason, indent="  ")
    for column, expression in table.casts.items():
        facts = table.column(column)
        lines += _comment(f"{column} ({facts.source_type if facts else '?'}) has no "
                          f"faithful Arrow type: it is read as {expression}.", indent="  ")
    for column in table.left_out:
        facts = table.column(column)
        lines += _comment(f"LEFT OUT: {column} ({facts.source_type if facts else '?'}) has no "
                          "faithful Arrow type and no cast that keeps every value; add it "
                          "to the query in a form you choose.", indent="  ")
    for note in table.notes:
        lines += _comment(f"note: {note}", indent="  ")
    lines += ["[[exports]]", f"name = {toml_value(name)}"]
    if table.table_key is not None:
        lines.append(f"table = {toml_value(table.table_key)}")
    else:
        lines.append(f"query = {toml_value(table.query)}")
    lines.append(f"mode = {toml_value(suggestion.mode)}")
    lines += [f"{k} = {toml_value(v)}" for k, v in suggestion.keys.items()]
    lines.append(f"format = {toml_value(format)}")
    lines += ["[exports.destination]", f"type = {toml_value(target.type)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in target.keys.items()]
    return lines


def _comment(text: str, *, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"# {indent}",
                         subsequent_indent=f"# {indent}  ", break_on_hyphens=False)


def toml_value(value: Any) -> str:
    """A TOML literal: a basic string (``${`` escaped, so the loader keeps it as
    written), an integer or a boolean."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False).replace("${", "$${")


def size_text(table: TableFacts) -> str:
    parts = []
    if table.estimated_rows is not None:
        parts.append(f"~{table.estimated_rows:,} rows")
    if table.total_bytes is not None:
        parts.append(byte_text(table.total_bytes))
    return ", ".join(parts) or "size unknown"


def byte_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
