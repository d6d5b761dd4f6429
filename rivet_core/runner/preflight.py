"""Checks before any row moves: the destination probe that starts every run, and the row
estimate of the progress line.

**Destination probe** (:func:`probe_destination`): before the source is opened, a run
writes a tiny object under a reserved name in its export's ``_rivet/<export>/`` directory,
reads it back, deletes it and lists the directory once, so a wrong bucket, a missing
permission or a bad credential fails the run before a row is read. It runs before every
export, so it is kept cheap: the object is not flushed to disk where the destination can
skip that (:class:`~rivet_core.backends.SupportsScratchWrite`: it is deleted at once and
means nothing after a crash), and the free space is not measured (never a failure). It goes to the
destination itself, not the guarded one files are opened on: it is not the run's first
commit and never retires the previous ``_SUCCESS``.

The assessment of ``rivet check --preflight`` is :mod:`rivet_core.runner.preflight_check`.

Not here: the progress line itself (:mod:`rivet_core.runner.progress`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rivet_core.backends import Destination, ReadOptions
from rivet_core.dialect import SupportsExplain, SupportsTableStats
from rivet_core.errors import DestinationError, RivetError
from rivet_core.runner.manifest import manifest_dir

if TYPE_CHECKING:
    from rivet_core.runner.export import ExportRun

log = logging.getLogger("rivet.runner")

# ------------------------------------------------------------------ destination probe

PROBE_PREFIX = "_probe-"
"""Reserved name prefix, inside ``_rivet/<export>/``, of the object a run's probe writes."""


def probe_name(export: str, run_id: str) -> str:
    return f"{manifest_dir(export)}{PROBE_PREFIX}{run_id}"


def probe_destination(destination: Destination, *, export: str, run_id: str) -> list[str]:
    """The check ``rivet doctor`` makes (:func:`rivet_core.probe.probe_destination`), on an
    object under ``_rivet/<export>/``: listing, writing and deleting (a run retires the old
    ``_SUCCESS``) are needed by every run, so their failure is raised, with the
    destination's own error (a transient one can be retried). Reading back is needed only
    by ``--validate`` and ``rivet validate``: write-only credentials pass, with a warning
    returned. A destination without listing (a stream) has nothing to probe."""
    from rivet_core.probe import Status
    from rivet_core.probe import probe_destination as probe

    warnings = []
    for check in probe(destination, subject=export, name=probe_name(export, run_id),
                       free_space=False):
        if check.status is not Status.FAIL:
            continue
        if check.name == "read back":
            warnings.append(f"the destination cannot be read back with these credentials "
                            f"({check.detail}): --validate and `rivet validate` will fail")
            continue
        raise check.error or DestinationError(check.detail, hint=check.hint)
    return warnings


# ------------------------------------------------------------------ progress estimate


def progress_estimate(run: ExportRun) -> int | None:
    """The rows a ``full`` export is expected to read, for the progress line's percentage:
    one cheap statement (the table's statistics for a ``table`` export, else the plan's
    estimate of the query) on a source of its own, given back at once. None for the other
    modes (their statement depends on state they read later; chunked runs count chunks
    instead), when the dialect cannot say, or when the statement fails (the run goes on
    without a percentage)."""
    plan, dialect, table = run.plan, run.plan.dialect, run.plan.config.table
    if plan.config.mode != "full":
        return None
    if table is not None and isinstance(dialect, SupportsTableStats):
        query = dialect.table_stats(table)
    elif isinstance(dialect, SupportsExplain):
        query = dialect.explain(dialect.full(plan.sql, table=table))
    else:
        return None
    source = run.take_source()
    try:
        rows = source.fetch_rows(query, ReadOptions(
            statement_timeout_s=plan.tuning.statement_timeout_s,
            lock_timeout_s=plan.tuning.lock_timeout_s))
    except BaseException as exc:
        run.discard_source(source)
        if isinstance(exc, RivetError):
            return None
        raise
    run.give_back_source(source)
    if isinstance(dialect, SupportsTableStats) and table is not None:
        found = rows[0].get("estimated_rows") if rows else None
        return None if found is None else int(found)
    assert isinstance(dialect, SupportsExplain)
    return dialect.estimated_rows(rows)
