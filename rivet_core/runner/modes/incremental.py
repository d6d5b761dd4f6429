"""``mode = "incremental"``: the rows after the stored cursor, in cursor order.

The cursor is the largest value of ``cursor_column`` (or of ``COALESCE(cursor_column,
cursor_fallback_column)``) among the rows a run exported. It is stored only after every file
of the run is committed and recorded, so a failed run never moves it past rows that are not
at the destination. ``cursor_lag`` leaves out rows newer than the server's time minus the
lag (rows of transactions that commit late would otherwise be skipped). Rows whose cursor
is NULL cannot be ordered: ``on_null_cursor`` fails the run (checked by a probe before
anything is read), includes them every run, or leaves them out.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from rivet_core.config.values import parse_duration
from rivet_core.dialect import CursorSpec, SupportsServerTime
from rivet_core.errors import SourceError
from rivet_core.runner import crash
from rivet_core.runner import cursor as cursors
from rivet_core.runner.modes.base import Add, Mode
from rivet_core.runner.unit import SourceHolder, Unit, write_unit

if TYPE_CHECKING:
    import pyarrow as pa

    from rivet_core.config.models import ExportConfig
    from rivet_core.runner.export import ExportRun

log = logging.getLogger("rivet.runner")


class Incremental(Mode):
    name = "incremental"
    keys = ("cursor_column", "cursor_fallback_column", "cursor_lag")
    settings = (("incremental_cursor_mode", "single_column"), ("on_null_cursor", "fail"))

    def check(self, export: ExportConfig, path: str, add: Add) -> None:
        if export.cursor_column is None:
            add(f"{path}.cursor_column", "required for mode = \"incremental\"")
        coalesce = export.incremental_cursor_mode == "coalesce"
        if coalesce and export.cursor_fallback_column is None:
            add(f"{path}.cursor_fallback_column",
                "required when incremental_cursor_mode = \"coalesce\"")
        if not coalesce and export.cursor_fallback_column is not None:
            add(f"{path}.cursor_fallback_column",
                "only used with incremental_cursor_mode = \"coalesce\"")
        if export.cursor_lag is not None:
            try:
                parse_duration(export.cursor_lag)
            except ValueError as exc:
                add(f"{path}.cursor_lag", str(exc))

    def needs(self, export: ExportConfig) -> list[tuple[type, str, str]]:
        if export.cursor_lag is None:
            return []
        return [(SupportsServerTime, "cursor_lag", "remove cursor_lag, or use a source whose "
                 "dialect can compute the server's time")]

    def run(self, run: ExportRun) -> None:
        config, result = run.plan.config, run.result
        spec = CursorSpec(column=str(config.cursor_column),
                          fallback=config.cursor_fallback_column)
        stored = run.state.cursor(run.plan.name)
        sealed = run.ctx.sealed_export(run.plan.name)
        if sealed is not None:
            # `rivet apply` starts from the sealed cursor, which must still be the stored one.
            sealed.require_cursor(stored.value if stored else None)
        result.cursor_before = cursors.display(stored.value) if stored else None
        after = cursors.decode(stored.value) if stored else None
        if config.on_null_cursor == "fail":
            _refuse_null_cursors(run, spec)
        lag = parse_duration(config.cursor_lag) if config.cursor_lag is not None else None
        query = run.dialect.incremental(run.plan.sql, spec, after=after, lag_seconds=lag,
                                        include_nulls=config.on_null_cursor == "include")
        log.info("export %s: run %s: rows after cursor %s", run.plan.name, result.run_id,
                 result.cursor_before or "(none: every row)", extra=run.log_extra)
        newest: list[Any] = [None]

        def track(batch: pa.RecordBatch) -> None:
            try:
                newest[0] = cursors.later(newest[0], cursors.batch_max(batch, spec.column,
                                                                       spec.fallback))
            except KeyError:
                raise SourceError(f"cursor column {spec.column!r} is not in the query's "
                                  "result", hint="select it, or fix cursor_column") from None

        sources = SourceHolder(run)
        try:
            write_unit(run, Unit(query=query, on_batch=track, decide=True), sources)
        finally:
            sources.close()
        if newest[0] is not None:
            # What the run read: the rows after the old cursor up to the newest it saw
            # (rows arriving later are the next run's).
            run.count_statement = run.dialect.count(query, cursor=spec, until=newest[0])
        if newest[0] is None or (after is not None and newest[0] <= after):
            result.cursor_after = result.cursor_before
            log.info("export %s: cursor unchanged (no newer row)", run.plan.name,
                     extra=run.log_extra)
            return
        # Every file of the run is committed: only now may the cursor move past its rows.
        value = cursors.encode(newest[0])
        run.manifest.cursor = {"column": spec.column, "fallback": spec.fallback,
                               "from": json.loads(stored.value) if stored else None,
                               "to": json.loads(value)}
        with run.state.transaction() as tx:
            tx.set_cursor(run.plan.name, value, result.run_id)
            tx.journal(result.run_id, run.plan.name, "cursor_advanced",
                       before=stored.value if stored else None, after=value)
        result.cursor_after = cursors.display(value)
        log.info("export %s: cursor committed: %s → %s", run.plan.name,
                 result.cursor_before or "(none)", result.cursor_after, extra=run.log_extra)
        crash.point("after_cursor_commit")


def _refuse_null_cursors(run: ExportRun, spec: CursorSpec) -> None:
    try:
        found = run.fetch_rows(run.dialect.null_cursor_probe(run.plan.sql, spec))
    finally:
        run.release_control_source()
    if found:
        raise SourceError(
            f"rows with a NULL cursor ({spec.column}) exist; an incremental run cannot "
            "order them, and on_null_cursor = \"fail\"",
            hint="set on_null_cursor = \"include\" (exported every run) or \"exclude\" "
                 "(never exported), or add cursor_fallback_column with "
                 "incremental_cursor_mode = \"coalesce\"")
