"""``mode = "full"``: the whole query, every run, as one unit."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rivet_core.runner.modes.base import Mode
from rivet_core.runner.unit import SourceHolder, Unit, write_unit

if TYPE_CHECKING:
    from rivet_core.runner.export import ExportRun

log = logging.getLogger("rivet.runner")


class Full(Mode):
    name = "full"
    parallel = True

    def run(self, run: ExportRun) -> None:
        plan = run.plan
        query = run.dialect.full(plan.sql, table=plan.config.table)
        run.count_statement = run.dialect.count(query)
        log.info("export %s: run %s: full read of %s", plan.name, run.result.run_id,
                 plan.config.table or "the query", extra=run.log_extra)
        sources = SourceHolder(run)
        try:
            write_unit(run, Unit(query=query, parallel=plan.config.parallel, decide=True), sources)
        finally:
            sources.close()
