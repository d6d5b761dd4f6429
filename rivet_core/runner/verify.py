"""Proving what a run delivered, after its last commit and before it is certified.

- :func:`destination_holds_the_run`: the destination's files of this run are exactly the
  committed ones, each of the committed size (always, for a listing destination);
- :func:`reread` (``rivet run --validate``): every committed file is read back from the
  destination; its SHA-256 must be the one computed while writing and, when the format can
  count rows (:class:`~rivet_core.backends.SupportsRowCount`), its row count the committed
  one;
- :func:`reconcile` (``rivet run --reconcile``): the source counts the rows of what the run
  read (the dialect's ``count`` statement) and the count must equal the committed rows.

A failure raises before the manifest and ``_SUCCESS`` are written, so the run is reported
failed and nothing vouches for it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from rivet_core.backends import SupportsListing, SupportsRowCount
from rivet_core.errors import DestinationError, FormatError, RivetError, TrustError
from rivet_core.naming import file_stem

if TYPE_CHECKING:
    from rivet_core.runner.export import ExportRun


def destination_holds_the_run(run: ExportRun) -> None:
    """Certify only what the destination holds: before the manifest and ``_SUCCESS``, its
    files of this run must be exactly the committed ones, each of the committed size."""
    destination = run.destination()
    if not isinstance(destination, SupportsListing) or not run.result.files:
        return
    stem = file_stem(run.plan.name, run.result.run_id)
    held = {name: size for name, size in destination.list_files(stem).items()
            if "/" not in name}
    committed = {f.name: f.bytes for f in run.result.files}
    problems = [f"{name} is missing" for name in sorted(committed.keys() - held.keys())]
    problems += [f"{name} holds {held[name]} bytes, {committed[name]} were committed"
                 for name in sorted(committed.keys() & held.keys())
                 if held[name] != committed[name]]
    problems += [f"{name} is there but was not committed by this run"
                 for name in sorted(held.keys() - committed.keys())]
    if problems:
        raise DestinationError(
            f"the destination does not hold what this run committed: {'; '.join(problems)}",
            hint="the run is not certified (no _SUCCESS); run the export again")


def reread(run: ExportRun) -> None:
    """``--validate``: read every committed file back (see the module)."""
    destination = run.destination()
    result = run.result
    if not isinstance(destination, SupportsListing):
        result.validation = {"passed": False, "files": 0,
                             "problems": ["the destination cannot read files back"]}
        raise TrustError(f"--validate: destination {run.plan.destination.spec.name!r} "
                         "cannot read its files back",
                         hint="run without --validate for a streaming destination")
    fmt = run.fmt()
    counts = isinstance(fmt, SupportsRowCount)
    problems: list[str] = []
    for f in result.files:
        try:
            data = destination.read_file(f.name)
        except DestinationError as exc:
            problems.append(f"{f.name}: cannot be read back: {exc.message}")
            continue
        if hashlib.sha256(data).hexdigest() != f.sha256:
            problems.append(f"{f.name}: its SHA-256 differs from the one written")
            continue
        if counts:
            assert isinstance(fmt, SupportsRowCount)
            try:
                rows = fmt.count_rows(data)
            except FormatError as exc:
                problems.append(f"{f.name}: {exc.message}")
                continue
            if rows != f.rows:
                problems.append(f"{f.name}: a reader finds {rows:,} rows, {f.rows:,} were "
                                "written")
    result.validation = {"passed": not problems, "files": len(result.files),
                         "rows_counted": counts, "problems": problems}
    run.journal("validated", passed=not problems, files=len(result.files),
                problems=problems)
    if problems:
        raise TrustError(f"--validate: {len(problems)} file(s) failed the re-read: "
                         + "; ".join(problems[:5]),
                         hint="the run is not certified (no _SUCCESS); run the export again")


def reconcile(run: ExportRun) -> None:
    """``--reconcile``: the source's count of what the run read against the committed
    rows (see the module)."""
    result = run.result
    statement = run.count_statement
    exported = sum(f.rows for f in result.files)
    if statement is None:
        # An incremental run that found no new row: nothing was read, nothing to count.
        result.reconcile = {"source_rows": 0, "exported_rows": exported,
                            "match": exported == 0, "note": "the run read no new row"}
        run.journal("reconciled", source_rows=0, exported_rows=exported,
                    match=exported == 0)
        return
    try:
        rows = run.fetch_rows(statement)
    except RivetError as exc:
        result.reconcile = {"source_rows": None, "exported_rows": exported, "match": False,
                            "error": exc.message}
        raise TrustError(f"--reconcile: counting the source's rows failed: {exc.message}",
                         hint=exc.hint) from exc
    finally:
        run.release_control_source()
    source_rows = int(rows[0]["n"]) if rows else 0
    match = source_rows == exported
    result.reconcile = {"source_rows": source_rows, "exported_rows": exported,
                        "match": match}
    run.journal("reconciled", source_rows=source_rows, exported_rows=exported, match=match)
    if not match:
        raise TrustError(
            f"--reconcile: MISMATCH: the source counts {source_rows:,} rows, the run "
            f"committed {exported:,}",
            hint="rows changed on the source while the export ran (a live table), or rows "
                 "were lost: the run is not certified (no _SUCCESS); run it again, or read "
                 "a stable snapshot")
