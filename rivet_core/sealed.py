"""Sealed plans: the artifact ``rivet plan`` writes and ``rivet apply`` runs.

A sealed plan fixes what a run would otherwise decide when it starts: each chunked export's
chunk boundaries, each incremental export's cursor, each time-window export's window start.
It also records what the plan was made from (tool version, config and query file digests,
the resolved query of each export, the source's type and display name) so ``rivet apply``
can tell when the world moved on and refuse (:func:`stale_reasons`).

Lives here: the artifact's format (:meth:`SealedPlan.document`, the digest over its
canonical form, the atomic write), strict reading of a plan file (untrusted bytes: any
content gives a :class:`PlanFileError`, never another exception), the values the runner
takes from it (:class:`SealedExport`, read by the modes through
:meth:`~rivet_core.runner.results.RunContext.sealed_export`) and the pure staleness rules.
Not here: gathering the current facts (config bytes, stored cursors, the source's display
name) and running, which are :mod:`rivet_core.cli.plan_cmd`'s and the runner's.

The digest is a consistency check, not a signature: it catches a plan edited by hand or
damaged in transit, but anyone who can write the file can recompute it. No secret goes
into the artifact: every string passes through :func:`~rivet_core.redact.redact` before
the digest is computed, and the source's URL is not recorded, only its type and its
display name (which never shows a password).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from rivet_core.atomic import write_atomic
from rivet_core.errors import PlanRejected
from rivet_core.report import redacted
from rivet_core.runner import cursor as cursors
from rivet_core.runner.chunks import Chunk
from rivet_core.runner.modes import MODES
from rivet_core.state.store import iso
from rivet_core.validation import parse_json, printable, show

FORMAT = "rivet-plan"
FORMAT_VERSION = 1
MAX_PLAN_BYTES = 256 << 20
"""A plan file larger than this is refused unread (a million chunks take about 200 MiB)."""
MAX_EXPORTS = 10_000
MAX_CHUNKS = 1_000_000
MAX_TEXT = 4 << 20
"""The longest string a plan may hold (a resolved query)."""
MAX_PROBLEMS = 20

_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_INT = re.compile(r"-?\d{1,19}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURSOR_TYPES = frozenset({"int", "decimal", "float", "string", "date", "timestamp",
                           "timestamptz"})
_INT64 = 2**63


class PlanFileError(PlanRejected):
    """A plan file that cannot be read, or is not a Rivet plan this version understands."""


class StalePlan(PlanRejected):
    """A plan that no longer describes what a run would do (or was altered after sealing)."""


# ------------------------------------------------------------------------------ values


@attrs.frozen(kw_only=True)
class SealedChunks:
    """A chunked export's boundaries as planned: the key column and every chunk."""

    column: str
    chunks: tuple[Chunk, ...]


@attrs.frozen(kw_only=True)
class SealedExport:
    """What the plan fixed for one export. ``query`` is the resolved query as redacted."""

    name: str
    mode: str
    query: str
    query_file: str | None = None
    query_file_sha256: str | None = None
    chunks: SealedChunks | None = None
    """chunked: the boundaries the run reads, instead of planning them when it starts."""
    cursor: str | None = None
    """incremental: the stored cursor when the plan was made (typed JSON, as the state
    store holds it), None for none; the run starts from it and requires the store to
    still hold it."""
    window_start: dt.datetime | None = None
    """time_window: the first instant of the window, instead of one computed at run time."""

    def chunks_for(self, column: str) -> list[Chunk]:
        """The sealed chunks, for a run that splits on ``column``."""
        if self.chunks is None:
            raise StalePlan(f"export {self.name!r}: the plan holds no chunk boundaries "
                            f"(it was made for mode {self.mode!r})",
                            hint="make a new plan with `rivet plan`")
        if self.chunks.column != column:
            raise StalePlan(f"export {self.name!r}: the plan's chunks split column "
                            f"{self.chunks.column!r}, the export now splits {column!r}",
                            hint="make a new plan with `rivet plan`")
        return list(self.chunks.chunks)

    def require_cursor(self, stored: str | None) -> None:
        """Refuse to start unless the state store holds the sealed cursor (``stored``)."""
        if not same_cursor(self.cursor, stored):
            raise StalePlan(
                f"export {self.name!r}: the cursor moved since the plan "
                f"({show_cursor(self.cursor)} → {show_cursor(stored)}); nothing was read",
                hint="make a new plan with `rivet plan`, or `rivet apply --force` to run "
                     "from the stored cursor")

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name, "mode": self.mode, "query": self.query,
            "query_file": None if self.query_file is None else
            {"path": self.query_file, "sha256": self.query_file_sha256},
        }
        if self.mode == "chunked":
            assert self.chunks is not None
            document["chunk_column"] = self.chunks.column
            document["chunks"] = [{"idx": c.idx, "lo": _bound_json(c.lo),
                                   "hi": _bound_json(c.hi), "expected_rows": c.expected_rows}
                                  for c in self.chunks.chunks]
        elif self.mode == "incremental":
            document["cursor"] = None if self.cursor is None else json.loads(self.cursor)
        elif self.mode == "time_window":
            assert self.window_start is not None
            document["window_start"] = iso(self.window_start)
        return document


@attrs.frozen(kw_only=True)
class SealedPlan:
    """A plan as sealed, and (once ``rivet apply --force`` accepted it) what was overridden."""

    tool_version: str
    created_at: dt.datetime
    config_path: str
    config_sha256: str
    source_type: str
    source_display: str
    exports: tuple[SealedExport, ...]
    digest: str = ""
    """``sha256:<hex>`` over the canonical form of everything else (see :func:`digest_of`)."""
    path: str | None = None
    """The file it was read from."""
    overridden: tuple[str, ...] = ()
    """What ``--force`` overrode, one reason each."""

    def export(self, name: str) -> SealedExport | None:
        return next((e for e in self.exports if e.name == name), None)

    def body(self) -> dict[str, Any]:
        """The artifact without its digest, every string redacted."""
        return redacted({
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tool_version": self.tool_version,
            "created_at": iso(self.created_at),
            "config": {"path": self.config_path, "sha256": self.config_sha256},
            "source": {"type": self.source_type, "display": self.source_display},
            "exports": [e.as_json() for e in self.exports],
        })  # type: ignore[no-any-return]

    def document(self) -> dict[str, Any]:
        body = self.body()
        return {**body, "digest": digest_of(body)}

    def overriding(self, reasons: list[Reason], cursors_now: Mapping[str, str | None]
                   ) -> SealedPlan:
        """The plan ``--force`` runs despite ``reasons``: an incremental export whose cursor
        moved starts from the stored cursor (``cursors_now``), since starting from the
        sealed one would export rows again and move the cursor back."""
        moved = {r.export for r in reasons if r.kind == "cursor_moved"}
        exports = tuple(attrs.evolve(e, cursor=cursors_now.get(e.name))
                        if e.name in moved else e for e in self.exports)
        return attrs.evolve(self, exports=exports,
                            overridden=tuple(r.message for r in reasons))

    def headline(self) -> str:
        """The line a run summary opens with."""
        forced = (f"; --force overrode {len(self.overridden)} reason(s)"
                  if self.overridden else "")
        return f"applied plan {self.digest} (created {iso(self.created_at)}{forced})"

    def summary(self) -> dict[str, Any]:
        """What a run summary says of the plan it applied."""
        return {"digest": self.digest, "created_at": iso(self.created_at), "file": self.path,
                "forced": bool(self.overridden), "overridden": list(self.overridden)}


def digest_of(body: Mapping[str, Any]) -> str:
    """``sha256:`` of the canonical JSON of ``body``: sorted keys, no whitespace, ASCII."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def same_cursor(a: str | None, b: str | None) -> bool:
    """Whether two stored cursors (typed JSON text) are the same value."""
    if a is None or b is None:
        return a is b
    return bool(json.loads(a) == json.loads(b))


def show_cursor(stored: str | None) -> str:
    return "(none)" if stored is None else cursors.display(stored)


def _bound_json(value: Any) -> Any:
    return None if value is None else json.loads(cursors.encode(value))


# ----------------------------------------------------------------------------- writing


def write_plan(path: Path, plan: SealedPlan) -> None:
    """Write the artifact at ``path`` in one step (a temporary file beside it, fsynced, then
    renamed): a reader sees the old file or the whole new one."""
    write_atomic(path, (json.dumps(plan.document(), indent=2, ensure_ascii=True)
                        + "\n").encode("ascii"))


# ----------------------------------------------------------------------------- reading


_REMAKE = "make a new plan with `rivet plan -c CONFIG -o FILE`"


def read_plan(path: Path) -> SealedPlan:
    """The plan in the file at ``path``, checked field by field and against its digest;
    :class:`PlanFileError` for a file that cannot be read or is not a valid plan,
    :class:`StalePlan` for one whose digest does not match its content."""
    shown = printable(str(path), 200)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise PlanFileError(f"cannot read plan file {shown}: "
                            f"{getattr(exc, 'strerror', None) or exc}",
                            hint="give the file `rivet plan -o FILE` wrote") from None
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanFileError(f"plan file {shown} is larger than {MAX_PLAN_BYTES >> 20} MiB; "
                            "it is not a Rivet plan", hint=_REMAKE)
    return attrs.evolve(parse_plan(raw, shown), path=str(path))


def parse_plan(raw: bytes, where: str = "plan") -> SealedPlan:
    """:func:`read_plan` on bytes already read (``where`` names them in messages)."""
    try:
        document = parse_json(raw)
    except ValueError as exc:
        raise PlanFileError(f"{where} is not a valid Rivet plan: not JSON ({exc})",
                            hint=_REMAKE) from None
    fields = _Fields()
    plan = fields.plan(document)
    if fields.problems or plan is None:
        listed = fields.problems[:MAX_PROBLEMS]
        more = len(fields.problems) - len(listed)
        raise PlanFileError(
            f"{where} is not a valid Rivet plan: " + "; ".join(listed)
            + (f"; and {more} more problem(s)" if more > 0 else ""), hint=_REMAKE)
    body = {k: v for k, v in document.items() if k != "digest"}
    if digest_of(body) != document["digest"]:
        raise StalePlan(f"{where} was altered after it was sealed: its content does not match "
                        f"its digest {document['digest']}",
                        hint=f"--force does not apply to an altered plan; {_REMAKE}")
    return plan


class _Fields:
    """Field-by-field checks of an untrusted plan document, collecting every problem."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, where: str, value: Any, expected: str) -> None:
        self.problems.append(f"{where} is {show(value)}, expected {expected}")

    def table(self, value: Any, where: str, required: set[str]) -> dict[str, Any] | None:
        """``value`` if it is an object with exactly the ``required`` keys."""
        if not isinstance(value, dict):
            self.bad(where, value, "an object")
            return None
        for key in sorted(required - value.keys()):
            self.problems.append(f"{where}.{key}: required key missing")
        for key in sorted(value.keys() - required)[:5]:
            self.problems.append(f"{where}: unknown key {show(key)}")
        return value if required <= value.keys() else None

    def text(self, value: Any, where: str, *, pattern: re.Pattern[str] | None = None,
             limit: int = 4096, expected: str = "a string", line: bool = True) -> str | None:
        """A non-empty string of at most ``limit`` characters, printable (one line) unless
        ``line`` is false, matching ``pattern`` if given."""
        if not isinstance(value, str) or not value or len(value) > limit or (
                line and not value.isprintable()) or (
                pattern is not None and not pattern.fullmatch(value)):
            self.bad(where, value, expected if pattern is not None else
                     f"a non-empty{' printable' if line else ''} string of at most {limit} "
                     "characters")
            return None
        return value

    def moment(self, value: Any, where: str) -> dt.datetime | None:
        text = self.text(value, where, pattern=_MOMENT,
                         expected="a UTC time like 2026-01-31T12:00:00.000000Z")
        if text is None:
            return None
        try:
            return dt.datetime.fromisoformat(text[:-1] + "+00:00")
        except ValueError:
            self.bad(where, value, "a UTC time that exists")
            return None

    def count(self, value: Any, where: str, *, limit: int = _INT64 - 1) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            self.bad(where, value, f"an integer 0..{limit}")
            return None
        return value

    # ------------------------------------------------------------------- document

    def plan(self, document: Any) -> SealedPlan | None:
        top = self.table(document, "plan", {"format", "format_version", "tool_version",
                                            "created_at", "config", "source", "exports",
                                            "digest"})
        if top is None:
            return None
        if top["format"] != FORMAT:
            self.bad("format", top["format"], repr(FORMAT))
            return None
        version = top["format_version"]
        if type(version) is not int or version != FORMAT_VERSION:
            self.bad("format_version", version, f"{FORMAT_VERSION} (this Rivet reads version "
                                                f"{FORMAT_VERSION} plans)")
            return None
        self.text(top["digest"], "digest", pattern=_DIGEST, expected="sha256:<64 hex digits>")
        tool_version = self.text(top["tool_version"], "tool_version", limit=100)
        created_at = self.moment(top["created_at"], "created_at")
        config = self.table(top["config"], "config", {"path", "sha256"})
        config_path = config_sha = None
        if config is not None:
            config_path = self.text(config["path"], "config.path")
            config_sha = self.text(config["sha256"], "config.sha256", pattern=_SHA256,
                                   expected="64 lowercase hex digits")
        source = self.table(top["source"], "source", {"type", "display"})
        source_type = source_display = None
        if source is not None:
            source_type = self.text(source["type"], "source.type", limit=100)
            source_display = self.text(source["display"], "source.display")
        exports = self.exports(top["exports"])
        if (tool_version is None or created_at is None or config_path is None
                or config_sha is None or source_type is None or source_display is None
                or exports is None or self.problems):
            return None
        return SealedPlan(tool_version=tool_version, created_at=created_at,
                          config_path=config_path, config_sha256=config_sha,
                          source_type=source_type, source_display=source_display,
                          exports=tuple(exports), digest=top["digest"])

    def exports(self, value: Any) -> list[SealedExport] | None:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_EXPORTS:
            self.bad("exports", value, f"an array of 1..{MAX_EXPORTS} exports")
            return None
        found = [self.export(entry, f"exports[{i}]") for i, entry in enumerate(value)]
        names = [e.name for e in found if e is not None]
        if len(set(names)) != len(names):
            self.problems.append("exports: an export appears twice")
        if any(e is None for e in found):
            return None
        return [e for e in found if e is not None]

    def export(self, value: Any, where: str) -> SealedExport | None:
        mode = value.get("mode") if isinstance(value, dict) else None
        if not isinstance(mode, str) or mode not in MODES:
            if isinstance(value, dict):
                self.bad(f"{where}.mode", mode, f"one of {', '.join(MODES)}")
            else:
                self.bad(where, value, "an object")
            return None
        extra = {"chunked": {"chunk_column", "chunks"}, "incremental": {"cursor"},
                 "time_window": {"window_start"}}.get(mode, set())
        entry = self.table(value, where, {"name", "mode", "query", "query_file", *extra})
        if entry is None:
            return None
        name = self.text(entry["name"], f"{where}.name", limit=200)
        query = self.text(entry["query"], f"{where}.query", limit=MAX_TEXT, line=False)
        query_file = query_file_sha = None
        if entry["query_file"] is not None:
            qf = self.table(entry["query_file"], f"{where}.query_file", {"path", "sha256"})
            if qf is not None:
                query_file = self.text(qf["path"], f"{where}.query_file.path")
                query_file_sha = self.text(qf["sha256"], f"{where}.query_file.sha256",
                                           pattern=_SHA256, expected="64 lowercase hex digits")
        chunks = cursor = window = None
        if mode == "chunked":
            chunks = self.chunks(entry, where)
        elif mode == "incremental":
            cursor = self.cursor(entry["cursor"], f"{where}.cursor")
        elif mode == "time_window":
            window = self.moment(entry["window_start"], f"{where}.window_start")
        if name is None or query is None or self.problems:
            return None
        return SealedExport(name=name, mode=mode, query=query, query_file=query_file,
                            query_file_sha256=query_file_sha, chunks=chunks, cursor=cursor,
                            window_start=window)

    def chunks(self, entry: dict[str, Any], where: str) -> SealedChunks | None:
        column = self.text(entry["chunk_column"], f"{where}.chunk_column", limit=1000)
        items = entry["chunks"]
        if not isinstance(items, list) or len(items) > MAX_CHUNKS:
            self.bad(f"{where}.chunks", items, f"an array of at most {MAX_CHUNKS} chunks")
            return None
        chunks = []
        for i, item in enumerate(items):
            chunk = self.chunk(item, f"{where}.chunks[{i}]", i)
            if chunk is None:
                return None  # one bad chunk is enough; the rest would repeat it
            chunks.append(chunk)
        if column is None:
            return None
        return SealedChunks(column=column, chunks=tuple(chunks))

    def chunk(self, value: Any, where: str, idx: int) -> Chunk | None:
        item = self.table(value, where, {"idx", "lo", "hi", "expected_rows"})
        if item is None:
            return None
        if type(item["idx"]) is not int or item["idx"] != idx:
            self.bad(f"{where}.idx", item["idx"], str(idx))
            return None
        rows = item["expected_rows"]
        if rows is not None and self.count(rows, f"{where}.expected_rows") is None:
            return None
        if item["lo"] is None and item["hi"] is None:
            return Chunk(idx=idx, lo=None, hi=None, expected_rows=rows)
        lo = self.bound(item["lo"], f"{where}.lo")
        hi = self.bound(item["hi"], f"{where}.hi")
        if lo is None or hi is None:
            return None
        ordered = (lo < hi if isinstance(lo, int) and isinstance(hi, int) else
                   isinstance(lo, dt.date) and isinstance(hi, dt.date) and lo < hi)
        if not ordered:
            self.problems.append(f"{where}: lo {lo} is not below hi {hi}")
            return None
        return Chunk(idx=idx, lo=lo, hi=hi, expected_rows=rows)

    def bound(self, value: Any, where: str) -> int | dt.date | None:
        """A chunk bound: ``{"type": "int", "value": "<digits>"}`` (64-bit) or
        ``{"type": "date", "value": "YYYY-MM-DD"}``."""
        item = self.table(value, where, {"type", "value"})
        if item is None:
            return None
        kind, text = item["type"], item["value"]
        if kind == "int" and isinstance(text, str) and _INT.fullmatch(text):
            number = int(text)
            if -_INT64 <= number < _INT64:
                return number
        elif kind == "date" and isinstance(text, str) and _DATE.fullmatch(text):
            with contextlib.suppress(ValueError):
                return dt.date.fromisoformat(text)
        self.bad(where, value, 'a 64-bit {"type": "int", "value": "<digits>"} or a '
                               '{"type": "date", "value": "YYYY-MM-DD"}')
        return None

    def cursor(self, value: Any, where: str) -> str | None:
        """A stored cursor (``{"type", "value"}``, as the state store holds it), or None."""
        if value is None:
            return None
        item = self.table(value, where, {"type", "value"})
        if item is None:
            return None
        kind, text = item["type"], item["value"]
        if kind not in _CURSOR_TYPES or not isinstance(text, str) or len(text) > 1000:
            self.bad(where, value, f"a cursor of type {', '.join(sorted(_CURSOR_TYPES))} "
                                   "with a string value of at most 1000 characters")
            return None
        stored = json.dumps({"type": kind, "value": text})
        try:
            cursors.decode(stored)
        except (ValueError, ArithmeticError):
            self.bad(f"{where}.value", text, f"a value of cursor type {kind!r}")
            return None
        return stored


# --------------------------------------------------------------------------- staleness


@attrs.frozen(kw_only=True)
class CurrentExport:
    """One export as the config and the state store describe it now."""

    mode: str
    query: str
    """The resolved query, redacted as the plan holds it."""
    query_file: str | None
    query_file_sha256: str | None
    cursor: str | None
    """The stored cursor (incremental)."""


@attrs.frozen(kw_only=True)
class Current:
    """What a sealed plan is compared with when it is applied."""

    now: dt.datetime
    tool_version: str
    config_path: str
    config_sha256: str
    source_type: str
    source_display: str
    exports: Mapping[str, CurrentExport]


@attrs.frozen(kw_only=True)
class Reason:
    """One reason the plan is stale."""

    kind: str
    """``too_old``, ``from_the_future``, ``tool_version``, ``config_changed``,
    ``source_changed``, ``export_missing``, ``mode_changed``, ``query_file_changed``,
    ``query_changed``, ``cursor_moved``."""
    message: str
    export: str | None = None
    overridable: bool = True
    """Whether ``--force`` may override it (a plan for an export that is gone or runs
    another mode cannot be applied at all)."""


def stale_reasons(plan: SealedPlan, now: Current, *, max_age_s: float) -> list[Reason]:
    """Every reason ``plan`` no longer describes what a run would do, in the order checked."""
    reasons: list[Reason] = []
    age = (now.now - plan.created_at).total_seconds()
    if age > max_age_s:
        reasons.append(Reason(kind="too_old", message=(
            f"the plan is {span(age)} old (created {iso(plan.created_at)}); --max-age is "
            f"{span(max_age_s)}")))
    elif age < -300:
        reasons.append(Reason(kind="from_the_future", message=(
            f"the plan was created {span(-age)} in the future ({iso(plan.created_at)}): a "
            "clock is wrong")))
    if plan.tool_version != now.tool_version:
        reasons.append(Reason(kind="tool_version", message=(
            f"the plan was made by rivet {plan.tool_version}; this is rivet "
            f"{now.tool_version}")))
    if plan.config_sha256 != now.config_sha256:
        reasons.append(Reason(kind="config_changed", message=(
            f"config {now.config_path} changed since the plan (sha256 "
            f"{plan.config_sha256[:12]}… → {now.config_sha256[:12]}…)")))
    if (plan.source_type, plan.source_display) != (now.source_type, now.source_display):
        reasons.append(Reason(kind="source_changed", message=(
            f"the source is now {now.source_type} {now.source_display}; the plan was made for "
            f"{plan.source_type} {plan.source_display}")))
    for sealed in plan.exports:
        reasons.extend(_export_reasons(sealed, now.exports.get(sealed.name), now.config_path))
    return reasons


def _export_reasons(sealed: SealedExport, now: CurrentExport | None,
                    config_path: str) -> list[Reason]:
    name = sealed.name
    if now is None:
        return [Reason(kind="export_missing", export=name, overridable=False,
                       message=f"export {name!r} of the plan is not in {config_path}")]
    if now.mode != sealed.mode:
        return [Reason(kind="mode_changed", export=name, overridable=False,
                       message=f"export {name!r} is mode {now.mode!r} now; the plan was made "
                               f"for mode {sealed.mode!r}")]
    reasons = []
    if (sealed.query_file, sealed.query_file_sha256) != (now.query_file, now.query_file_sha256):
        reasons.append(Reason(kind="query_file_changed", export=name, message=(
            f"export {name!r}: query file {now.query_file or sealed.query_file} changed "
            "since the plan")))
    elif sealed.query != now.query:
        reasons.append(Reason(kind="query_changed", export=name, message=(
            f"export {name!r}: its resolved query differs from the plan's (a ${{NAME}} or "
            "-p value changed)")))
    if sealed.mode == "incremental" and not same_cursor(sealed.cursor, now.cursor):
        reasons.append(Reason(kind="cursor_moved", export=name, message=(
            f"export {name!r}: the cursor moved since the plan ({show_cursor(sealed.cursor)} "
            f"→ {show_cursor(now.cursor)}): another run exported rows after it")))
    return reasons


def span(seconds: float) -> str:
    """A duration for people: ``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``."""
    s = int(seconds)
    if s < 60:
        return f"{max(seconds, 0):.3g}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
