"""``mode = "time_window"``: the rows of the last ``days_window`` days, by a time column.

The window starts at UTC midnight ``days_window`` days before the run started, so two runs
on one day export the same window whatever their time of day. ``rivet apply`` uses the
window start sealed in its plan instead.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from rivet_core.runner.modes.base import Add, Mode
from rivet_core.runner.unit import SourceHolder, Unit, write_unit
from rivet_core.state.store import iso

if TYPE_CHECKING:
    from rivet_core.config.models import ExportConfig
    from rivet_core.runner.export import ExportRun

log = logging.getLogger("rivet.runner")


def window_start(now: dt.datetime, days: int) -> dt.datetime:
    """UTC midnight ``days`` days before ``now``: the first instant a window includes."""
    day = now.astimezone(dt.UTC).date() - dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


class TimeWindow(Mode):
    name = "time_window"
    keys = ("time_column", "days_window")
    settings = (("time_column_type", "timestamp"),)

    def check(self, export: ExportConfig, path: str, add: Add) -> None:
        if export.time_column is None:
            add(f"{path}.time_column", "required for mode = \"time_window\"")
        if export.days_window is None:
            add(f"{path}.days_window", "required for mode = \"time_window\"")
        elif export.days_window < 1:
            add(f"{path}.days_window", f"must be at least 1, got {export.days_window}")

    def run(self, run: ExportRun) -> None:
        config = run.plan.config
        sealed = run.ctx.sealed_export(run.plan.name)
        start = (sealed.window_start if sealed is not None and sealed.window_start is not None
                 else window_start(run.result.started_at, config.days_window or 0))
        run.result.window_start = iso(start)
        query = run.dialect.time_window(run.plan.sql, str(config.time_column), start=start,
                                        unix=config.time_column_type == "unix")
        run.count_statement = run.dialect.count(query)
        log.info("export %s: run %s: rows with %s from %s", run.plan.name, run.result.run_id,
                 config.time_column, iso(start), extra=run.log_extra)
        sources = SourceHolder(run)
        try:
            write_unit(run, Unit(query=query, decide=True), sources)
        finally:
            sources.close()
