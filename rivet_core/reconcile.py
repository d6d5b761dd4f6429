"""Reconciling a chunked export's run with its source, and repairing the chunks that differ.

``rivet reconcile`` takes one chunk run of an export from the state store (its latest, or
the one named) and, per chunk, compares two counts:

- the **source** count: :meth:`~rivet_core.dialect.Dialect.count` of the chunk's exact
  statement (the same :meth:`~rivet_core.dialect.Dialect.chunk` call the chunked mode reads
  it with), run now, read-only, with the export's tuning;
- the **exported** count: the recorded rows of the chunk's files that the destination
  holds at their recorded size. A recorded file that is missing or of another size, and a
  file of the chunk that the state does not record, make the chunk a mismatch whatever the
  counts say, since a reader of the destination would not get the chunk's rows once each.

``rivet repair`` re-exports the chunks a reconciliation found different, each under the run's
own id and file names, so every file is replaced whole (a local rename, one object-store
upload); it then removes the parts the new export no longer produces, replaces the chunk's
file records in the state store (one transaction, journaled ``chunk_repaired``), and once
every chunk is done rewrites the run manifest and ``_SUCCESS`` from the run's full file list.
The old ``_SUCCESS`` is retired before the first file is replaced, so nothing vouches for the
destination while chunks of old and new content sit side by side.

The command line lives in :mod:`rivet_core.cli.reconcile_cmd`; a whole-query export is
reconciled by ``rivet run --reconcile``, in the runner.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import attrs

from rivet_core import __version__
from rivet_core.backends import Query, SupportsListing
from rivet_core.capabilities import WriteCommitProtocol
from rivet_core.errors import DestinationError, PlanRejected, RivetError, StateError, UsageError
from rivet_core.naming import file_stem
from rivet_core.plan import ExportPlan
from rivet_core.redact import redact
from rivet_core.runner import chunks as chunking
from rivet_core.runner.export import ExportRun
from rivet_core.runner.manifest import COMPLETE, manifest_name, schema_json, success_name
from rivet_core.runner.modes.chunked import _chunk_column, _decode_bound
from rivet_core.runner.results import FileResult, RunContext
from rivet_core.runner.unit import SourceHolder, Unit, write_unit
from rivet_core.runner.verify import destination_holds_the_run
from rivet_core.state.store import ChunkRun, ChunkTask, FileRecord, RunRecord
from rivet_core.validation import RUN_ID, parse_json

STATUSES = ("match", "mismatch", "unknown")
"""A chunk's verdict: the counts agree and every file is whole; they differ or a file is
missing, resized or unrecorded; the source could not be counted (and no file problem)."""

_ALL_FILES = 1_000_000
"""More file records than any one run holds, for the state's paged reads."""


# ------------------------------------------------------------------------------ results


@attrs.frozen(kw_only=True)
class ChunkCheck:
    """The verdict on one chunk."""

    chunk: int
    range: str
    """``[lo..hi)``, or ``[NULL keys]`` for the chunk of rows whose key is NULL."""
    source_rows: int | None
    """None when the count failed."""
    exported_rows: int
    status: str
    note: str | None = None
    """Why it is not a match: ``source=a, exported=b, diff=a-b`` and each file problem."""

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class Reconciliation:
    """The report of ``rivet reconcile`` (and the input of ``rivet repair``)."""

    export: str
    run_id: str
    chunks: list[ChunkCheck]

    @property
    def ok(self) -> bool:
        return all(c.status == "match" for c in self.chunks)

    def summary(self) -> dict[str, int]:
        return {
            "chunks": len(self.chunks),
            "matches": sum(c.status == "match" for c in self.chunks),
            "mismatches": sum(c.status == "mismatch" for c in self.chunks),
            "unknown": sum(c.status == "unknown" for c in self.chunks),
            "source_rows": sum(c.source_rows or 0 for c in self.chunks),
            "exported_rows": sum(c.exported_rows for c in self.chunks),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"rivet_version": __version__, "export": self.export, "run_id": self.run_id,
                "chunks": [c.as_dict() for c in self.chunks], "summary": self.summary()}


@attrs.frozen(kw_only=True)
class RepairAction:
    """A chunk to re-export (or one left alone), and why."""

    chunk: int
    range: str
    reason: str


@attrs.frozen(kw_only=True)
class RepairPlan:
    export: str
    run_id: str
    actions: list[RepairAction]
    """The mismatched chunks, re-exported by ``--execute``."""
    skipped: list[RepairAction]
    """Chunks whose source count failed: nothing is known to be wrong with them."""

    def as_dict(self) -> dict[str, Any]:
        return {"rivet_version": __version__, "export": self.export, "run_id": self.run_id,
                "actions": [attrs.asdict(a) for a in self.actions],
                "skipped": [attrs.asdict(a) for a in self.skipped]}


@attrs.frozen(kw_only=True)
class RepairedChunk:
    chunk: int
    range: str
    rows: int
    files: list[str]
    """The chunk's files now, each written by the repair."""
    removed: list[str]
    """Parts of the chunk the new export no longer produces, deleted."""


# ------------------------------------------------------------------------- pure rules


def chunk_of(task: ChunkTask) -> chunking.Chunk:
    """A recorded task as the chunk the mode planned (its bounds decoded)."""
    return chunking.Chunk(idx=task.idx, lo=_decode_bound(task.lo), hi=_decode_bound(task.hi),
                          expected_rows=task.expected_rows)


def chunk_range(chunk: chunking.Chunk) -> str:
    return "[NULL keys]" if chunk.null_keys else f"[{chunk.lo}..{chunk.hi})"


def chunk_files(held: dict[str, int], stem: str) -> dict[str, int]:
    """The files of ``held`` that belong to the chunk whose names start with ``stem``
    (``stem.ext`` or ``stem_partNNNN.ext``; ``chunk000001`` is not ``chunk0000010``)."""
    own = re.compile(re.escape(stem) + r"(_part\d+)?\.")
    return {name: size for name, size in held.items() if own.match(name) and "/" not in name}


def compare_chunk(chunk: chunking.Chunk, *, task_status: str, records: list[FileRecord],
                  held: dict[str, int], source_rows: int | None,
                  count_error: str | None = None) -> ChunkCheck:
    """The verdict on one chunk: ``records`` are its files in the state store, ``held`` the
    destination's files of the chunk (name → size)."""
    exported = 0
    problems: list[str] = []
    if task_status != "completed":
        problems.append(f"the chunk is {task_status}, not completed")
    for record in records:
        size = held.get(record.file_name)
        if size is None:
            problems.append(f"missing {record.file_name}")
        elif size != record.bytes:
            problems.append(f"{record.file_name} holds {size} bytes, {record.bytes} recorded")
        else:
            exported += record.rows
    recorded = {r.file_name for r in records}
    problems += [f"unrecorded {name}" for name in sorted(held) if name not in recorded]
    if source_rows is None:
        counts = f"source=?, exported={exported}; source count failed: {count_error}"
    else:
        counts = f"source={source_rows}, exported={exported}, diff={source_rows - exported}"
    if problems or (source_rows is not None and source_rows != exported):
        status = "mismatch"
    elif source_rows is None:
        status = "unknown"
    else:
        return ChunkCheck(chunk=chunk.idx, range=chunk_range(chunk), source_rows=source_rows,
                          exported_rows=exported, status="match")
    return ChunkCheck(chunk=chunk.idx, range=chunk_range(chunk), source_rows=source_rows,
                      exported_rows=exported, status=status,
                      note="; ".join([counts, *problems]))


def plan_repair(report: Reconciliation, *, manifest_problem: str | None = None) -> RepairPlan:
    """Re-export every mismatched chunk; leave the unknown ones (a failed count says
    nothing about the files) to a later reconcile. When every chunk matches but the run
    manifest does not vouch for the recorded files (``manifest_problem``: a repair stopped
    before rewriting it), the smallest chunk is re-exported so the manifest is rewritten
    with the schema the source gives now."""
    actions = [RepairAction(chunk=c.chunk, range=c.range, reason=c.note or c.status)
               for c in report.chunks if c.status == "mismatch"]
    skipped = [RepairAction(chunk=c.chunk, range=c.range,
                            reason=f"{c.note or c.status}; reconcile again once the source "
                                   "can be counted")
               for c in report.chunks if c.status == "unknown"]
    matching = [c for c in report.chunks if c.status == "match"]
    if not actions and manifest_problem is not None and matching:
        smallest = min(matching, key=lambda c: (c.exported_rows, c.chunk))
        actions = [RepairAction(chunk=smallest.chunk, range=smallest.range,
                                reason=f"{manifest_problem}: the smallest chunk is "
                                       "re-exported so the manifest is rewritten")]
    return RepairPlan(export=report.export, run_id=report.run_id, actions=actions,
                      skipped=skipped)


def read_report(raw: bytes, *, export: str, path: str) -> Reconciliation:
    """A report written by ``rivet reconcile --output``, checked field by field; a
    :class:`~rivet_core.errors.UsageError` naming ``path`` if it is not one, or is one of
    another export."""

    def bad(why: str) -> UsageError:
        return UsageError(f"{path}: not a reconcile report: {why}",
                          hint=f"write one with `rivet reconcile -e {export} --output {path}`")

    try:
        data = parse_json(raw)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    if data.get("export") != export:
        raise UsageError(f"{path} is the reconcile report of export "
                         f"{str(data.get('export'))[:80]!r}, not of {export!r}",
                         hint=f"reconcile {export!r} with `rivet reconcile -e {export} "
                              "--output FILE`, or repair the export the report is about")
    run_id = data.get("run_id")
    if not (isinstance(run_id, str) and re.fullmatch(RUN_ID, run_id)):
        raise bad("run_id is not a run id")
    entries = data.get("chunks")
    if not isinstance(entries, list):
        raise bad("chunks is not an array")
    checks = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, dict) and _is_int(entry.get("chunk"))
                and entry.get("status") in STATUSES and isinstance(entry.get("range"), str)
                and (entry.get("note") is None or isinstance(entry.get("note"), str))
                and (entry.get("source_rows") is None or _is_int(entry.get("source_rows")))
                and _is_int(entry.get("exported_rows"))):
            raise bad(f"chunks[{i}] lacks chunk, range, status, source_rows, exported_rows "
                      "or note, or has one of the wrong type")
        checks.append(ChunkCheck(chunk=entry["chunk"], range=entry["range"],
                                 source_rows=entry["source_rows"],
                                 exported_rows=entry["exported_rows"], status=entry["status"],
                                 note=entry.get("note")))
    return Reconciliation(export=export, run_id=run_id, chunks=checks)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------- I/O


class ChunkRunAttached:
    """One recorded chunk run of an export, re-opened: its tasks and file records, its
    destination (rendered with the run's id and start time, as the run rendered it), and an
    :class:`~rivet_core.runner.export.ExportRun` under its run id, through which the source
    is counted and chunks are written. :meth:`close` releases the source and destination."""

    def __init__(self, plan: ExportPlan, ctx: RunContext, run_id: str | None = None) -> None:
        self.plan = plan
        self.state = ctx.state
        self.chunk_run = _chunk_run(ctx, plan.name, run_id)
        self.run_id = self.chunk_run.run_id
        self.tasks = self.state.chunk_tasks(self.run_id)
        self.record = _run_record(ctx, plan.name, self.run_id)
        self.run = ExportRun(plan, ctx)
        self.run.result.run_id = self.run_id
        self.run.result.started_at = _started_at(self.record, self.run_id)
        self._closed = False
        destination = self.run.destination()
        if not isinstance(destination, SupportsListing):
            self.close()
            raise PlanRejected(
                f"export {plan.name!r}: destination {plan.destination.spec.name!r} cannot "
                f"list its files [declared by {plan.destination.plugin.origin()}], so what it "
                "holds cannot be reconciled",
                hint="reconcile exports whose destination keeps files (local, s3, gcs)")
        self.destination: SupportsListing = destination
        try:
            self.column = _chunk_column(self.run)
            self._check_plan_unchanged()
        except BaseException:
            self.close()
            raise

    def _check_plan_unchanged(self) -> None:
        config = self.plan.config
        fingerprint = chunking.plan_hash(sql=self.plan.sql, chunk_column=self.column,
                                         chunk_size=config.chunk_size,
                                         chunk_count=config.chunk_count,
                                         chunk_by_days=config.chunk_by_days)
        if fingerprint != self.chunk_run.plan_hash:
            raise StateError(
                f"export {self.plan.name!r}: the chunk plan changed since run {self.run_id} "
                "(query, chunk_column or chunk sizing differ), so its chunks' statements "
                "cannot be rebuilt", hint=f"restore the settings run {self.run_id} used")

    def close(self) -> None:
        self.run.release_control_source()
        if not self._closed:
            self._closed = True
            self.run.destination().close()

    # --------------------------------------------------------------------- reading

    def statement(self, chunk: chunking.Chunk) -> Query:
        """The chunk's statement, built as the chunked mode builds it."""
        return self.run.dialect.chunk(self.plan.sql, self.column, chunk.lo, chunk.hi,
                                      label=chunk.label())

    def count(self, chunk: chunking.Chunk) -> int:
        statement = self.statement(chunk)
        query = self.run.dialect.count(statement)
        (row,) = self.run.fetch_rows(query)
        return int(row["n"])

    def held(self) -> dict[str, int]:
        """The destination's files of this run (name → size)."""
        stem = file_stem(self.plan.name, self.run_id)
        return {name: size for name, size in self.destination.list_files(stem).items()
                if "/" not in name}

    def records(self) -> list[FileRecord]:
        """The run's file records, in commit order."""
        return list(reversed(self.state.files(self.plan.name, run_id=self.run_id,
                                              limit=_ALL_FILES)))

    def reconcile(self) -> Reconciliation:
        """Count every chunk at the source and at the destination; journaled
        ``reconciled``."""
        held = self.held()
        records = self.records()
        checks = []
        try:
            for task in self.tasks:
                if self.run.ctx.stop.is_set():
                    raise KeyboardInterrupt
                chunk = chunk_of(task)
                source_rows: int | None = None
                error = None
                try:
                    source_rows = self.count(chunk)
                except RivetError as exc:
                    error = redact(exc.message)
                stem = file_stem(self.plan.name, self.run_id, chunk=chunk.idx)
                checks.append(compare_chunk(
                    chunk, task_status=task.status,
                    records=[r for r in records if r.chunk_index == chunk.idx],
                    held=chunk_files(held, stem), source_rows=source_rows, count_error=error))
        finally:
            self.run.release_control_source()
        report = Reconciliation(export=self.plan.name, run_id=self.run_id, chunks=checks)
        with self.state.transaction() as tx:
            tx.journal(self.run_id, self.plan.name, "reconciled", **report.summary())
        return report

    def check_report(self, report: Reconciliation, path: str) -> None:
        """A report read from a file must describe this run's chunks as the state holds
        them: the same chunks over the same ranges."""
        ranges = {t.idx: chunk_range(chunk_of(t)) for t in self.tasks}
        for check in report.chunks:
            if ranges.get(check.chunk) != check.range:
                there = ranges.get(check.chunk)
                raise UsageError(
                    f"{path}: chunk {check.chunk} {check.range} is not a chunk of run "
                    f"{self.run_id} in the state store"
                    + (f" (there it covers {there})" if there else ""),
                    hint=f"reconcile again: `rivet reconcile -e {self.plan.name} --output "
                         f"{path}`")

    # --------------------------------------------------------------------- repairing

    def check_repairable(self) -> None:
        """Refuse what repair cannot do safely: a run still in progress (``--resume``
        finishes it), a destination whose files cannot be replaced whole, a format that is
        no longer the one the run wrote (the run's files would mix two)."""
        if self.chunk_run.status != "completed":
            raise StateError(
                f"export {self.plan.name!r}: chunk run {self.run_id} is not finished "
                f"({self.chunk_run.status}); repair replaces chunks of a finished run",
                hint=f"finish it with `rivet run -e {self.plan.name} --resume`, then "
                     "reconcile again")
        caps = self.plan.capabilities
        if not caps.idempotent_overwrite or caps.commit_protocol not in (
                WriteCommitProtocol.ATOMIC, WriteCommitProtocol.FINALIZE_ON_CLOSE):
            raise PlanRejected(
                f"export {self.plan.name!r}: repair replaces files in place, which needs "
                "idempotent_overwrite and an atomic or finalize_on_close commit; destination "
                f"{self.plan.destination.spec.name!r} declares idempotent_overwrite="
                f"{caps.idempotent_overwrite}, commit_protocol={caps.label()} [declared by "
                f"{self.plan.destination.plugin.origin()}]",
                hint="run the export again instead")
        written = {(r.format, r.compression) for r in self.records()}
        now = (self.plan.format.spec.name, self.plan.compression.codec)
        if written - {now}:
            was = ", ".join(f"{f}/{c}" for f, c in sorted(written - {now}))
            raise PlanRejected(
                f"export {self.plan.name!r}: run {self.run_id} wrote {was} files, the config "
                f"now writes {now[0]}/{now[1]}; a repaired chunk would mix the two in one run",
                hint="restore the format and compression the run used, or run the export "
                     "again")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the export's run lock; refused while a run of the export is alive."""
        with self.state.transaction() as tx:
            tx.refuse_while_running(self.plan.name)
            tx.acquire_lock(self.plan.name, self.run_id)
        try:
            yield
        finally:
            with self.state.transaction() as tx:
                tx.release_lock(self.plan.name, self.run_id)

    def repair(self, plan: RepairPlan) -> list[RepairedChunk]:
        """Re-export every chunk of ``plan``, then rewrite the manifest and ``_SUCCESS``
        (the caller holds :meth:`locked`)."""
        self.check_repairable()
        previous = self._previous_manifest()
        chunks = {t.idx: chunk_of(t) for t in self.tasks}
        repaired = []
        sources = SourceHolder(self.run)
        try:
            for action in plan.actions:
                repaired.append(self._repair_chunk(chunks[action.chunk], action.reason,
                                                   sources))
                self._check_columns(previous)
        finally:
            sources.close()
        self._rewrite_manifest()
        with self.state.transaction() as tx:
            tx.journal(self.run_id, self.plan.name, "run_repaired",
                       chunks=[c.chunk for c in repaired], status=self.run.result.status)
        return repaired

    def manifest_problem(self) -> str | None:
        """Why the destination's run manifest does not vouch for the run's recorded files;
        None when it does, or when it describes another run (not this run's to rewrite)."""
        manifest = self._read_manifest()
        if manifest is None:
            return "the destination has no readable run manifest"
        if manifest.get("run_id") != self.run_id:
            return None
        files = manifest.get("files")
        entries = files if isinstance(files, list) else []
        listed = sorted((str(f.get("name")), f.get("bytes"), f.get("sha256"))
                        for f in entries if isinstance(f, dict))
        recorded = sorted((r.file_name, r.bytes, r.sha256) for r in self.records())
        if listed != recorded:
            return "the run manifest lists other files than the state records"
        if self.record is not None and self.record.status in COMPLETE:
            marker = success_name(self.plan.name)
            if marker not in self.destination.list_files(marker):
                return f"run {self.run_id} is recorded {self.record.status} but has no _SUCCESS"
        return None

    def _read_manifest(self) -> dict[str, Any] | None:
        name = manifest_name(self.plan.name)
        if name not in self.destination.list_files(name):
            return None
        try:
            manifest = parse_json(self.destination.read_file(name))
        except ValueError:
            return None
        return manifest if isinstance(manifest, dict) else None

    def _previous_manifest(self) -> dict[str, Any] | None:
        """The destination's run manifest, checked to be this run's before anything is
        written: replacing files would retire the ``_SUCCESS`` of whichever run it is."""
        manifest = self._read_manifest()
        if manifest is None:
            return None
        if manifest.get("run_id") != self.run_id:
            raise DestinationError(
                f"export {self.plan.name!r}: the run manifest at {self.run.result.destination} "
                f"describes run {str(manifest.get('run_id'))[:40]}, not run {self.run_id}; "
                "repairing this run's files there would retire that run's _SUCCESS",
                hint="repair the run the destination's manifest describes, or run the "
                     "export again")
        return manifest

    def _repair_chunk(self, chunk: chunking.Chunk, reason: str,
                      sources: SourceHolder) -> RepairedChunk:
        run = self.run
        unit = Unit(query=self.statement(chunk), chunk=chunk.idx, retract=True, record=False)
        rows, committed = write_unit(run, unit, sources)
        written = {f.name for f in committed}
        stem = file_stem(self.plan.name, self.run_id, chunk=chunk.idx)
        removed = sorted(set(chunk_files(self.held(), stem)) - written)
        for name in removed:
            self.destination.delete_file(name)
        with self.state.transaction() as tx:
            tx.replace_chunk_files(run.plan.name, run.result.run_id, chunk.idx,
                                    [run.file_record(f) for f in committed], rows=rows)
            tx.journal(self.run_id, self.plan.name, "chunk_repaired", chunk=chunk.idx,
                       rows=rows, files=sorted(written), removed=removed, reason=reason)
        return RepairedChunk(chunk=chunk.idx, range=chunk_range(chunk), rows=rows,
                             files=[f.name for f in committed], removed=removed)

    def _check_columns(self, previous: dict[str, Any] | None) -> None:
        """Stop at the first repaired chunk whose columns are not those of the run's
        manifest: the source changed, and the run's files would no longer share a schema."""
        before = _columns(previous.get("schema")) if previous else None
        now = _columns(schema_json(self.run.schema))
        if before is not None and now is not None and before != now:
            raise DestinationError(
                f"export {self.plan.name!r}: the repaired chunks have other columns than run "
                f"{self.run_id}'s manifest records (the source changed since the run); the "
                "destination is left without _SUCCESS",
                hint="run the export again for a consistent snapshot")

    def _rewrite_manifest(self) -> None:
        """Check the destination holds exactly the run's recorded files, then write the
        manifest (and ``_SUCCESS`` for a complete run) as the run itself did."""
        result, record = self.run.result, self.record
        result.files = [FileResult(name=r.file_name, uri=r.uri, rows=r.rows, bytes=r.bytes,
                                   sha256=r.sha256, chunk=r.chunk_index)
                        for r in self.records()]
        result.rows = sum(f.rows for f in result.files)
        if record is not None:
            result.status, result.error = record.status, record.error
            result.finished_at = _parse_time(record.finished_at)
        else:
            result.status = "failed"
            result.error = "the process ended before the run finished (killed or crashed)"
        try:
            destination_holds_the_run(self.run)
        except DestinationError as exc:
            raise DestinationError(
                f"after the repair, {exc.message}",
                hint=f"the destination has no _SUCCESS; reconcile again (`rivet reconcile -e "
                     f"{self.plan.name} --run-id {self.run_id}`) and repair what it finds"
            ) from None
        was_complete = result.status in COMPLETE
        self._closed = True  # the manifest writer closes the destination
        self.run.manifest.write(self.run.destination, self.run.schema)
        if was_complete and result.status not in COMPLETE:
            raise DestinationError(result.error or "writing the run manifest failed",
                                   hint=result.hint)


def _columns(schema: Any) -> list[tuple[Any, Any]] | None:
    """The names and types of a manifest's ``schema`` list (None if it has none)."""
    if not isinstance(schema, list):
        return None
    return [(c.get("name"), c.get("type")) for c in schema if isinstance(c, dict)]


def _chunk_run(ctx: RunContext, export: str, run_id: str | None) -> ChunkRun:
    """The export's latest chunk run, or the one ``run_id`` names."""
    state = ctx.state
    if run_id is None:
        found = state.chunk_run(export)
        if found is None:
            raise StateError(
                f"export {export!r} has no chunk run in the state store: reconcile compares "
                "the chunks a checkpointed run recorded",
                hint="set chunk_checkpoint = true and run the export")
        return found
    found = state.chunk_run(export, run_id=run_id)
    if found is None:
        raise UsageError(f"export {export!r} has no chunk run {run_id!r} in the state store",
                         hint=f"`rivet state chunks -e {export}` shows its latest chunk run")
    return found


def _run_record(ctx: RunContext, export: str, run_id: str) -> RunRecord | None:
    return next((r for r in ctx.state.runs(export, limit=_ALL_FILES) if r.run_id == run_id),
                None)


def _started_at(record: RunRecord | None, run_id: str) -> dt.datetime:
    """When the run (its last invocation) started: its destination path's ``{date}``."""
    if record is not None:
        return _parse_time(record.started_at)
    return dt.datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

