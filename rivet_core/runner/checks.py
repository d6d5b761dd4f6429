"""What an export checks before anything it writes is trusted: schema drift, quality gates,
meta columns, and the ``--reconcile`` / ``--validate`` proofs.

The order, for one run (:class:`RunChecks`):

1. **Drift**, when the first stream opens and its schema is known, before any file: the
   schema is compared with the last successful run's (the state store's, else the
   destination's last complete manifest). ``on_schema_drift = "fail"`` raises
   :class:`~rivet_core.errors.TrustError` there, so nothing is written.
2. **Observation**, per batch, on the batches already in flight (no second pass over the
   source): each attempt of a unit observes into its own :class:`AttemptChecks`, merged
   into the run's totals only when the attempt succeeds, so a retried attempt never counts
   twice. Meta columns are appended here, after observation.
3. **Decision** (:meth:`RunChecks.decide`), once every row is read: the gates are evaluated.
   When the run has a ``fail`` gate and its destination can hold files (atomic or
   finalize-on-close) outside a chunked run, the unit's files are finished but held
   uncommitted until then (:class:`~rivet_core.runner.files.FileRoller` ``hold``): a failing
   gate aborts them and the destination shows the previous run, still vouched for.
4. After the last commit and before the manifest and ``_SUCCESS``: ``--reconcile`` counts
   the rows on the source, ``--validate`` re-reads every committed file.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rivet_core import drift as drifts
from rivet_core.capabilities import WriteCommitProtocol
from rivet_core.errors import SourceError, TrustError

if TYPE_CHECKING:
    import pyarrow as pa

    from rivet_core.meta import MetaAppender
    from rivet_core.quality import QualityCheck
    from rivet_core.runner.export import ExportRun


class RunChecks:
    """The checks of one export run. Thread-safe: chunk workers share it."""

    def __init__(self, run: ExportRun) -> None:
        self.run = run
        config = run.plan.config
        self.quality_config = config.quality
        self.meta: MetaAppender | None = None
        if config.meta_columns is not None and config.meta_columns.any():
            # Imported when an export has meta columns, as the gates below: most runs never
            # load their machinery (the row hash's C extension).
            from rivet_core.meta import MetaAppender

            self.meta = MetaAppender(config.meta_columns, run_id=run.result.run_id,
                                     started_at=run.result.started_at)
        self.lock = threading.Lock()
        self.quality: QualityCheck | None = None
        self.widths = drifts.WidthTracker()
        self.schema: pa.Schema | None = None
        """The source schema of the first stream (before meta columns)."""
        self.decided = False
        self.refused: TrustError | None = None
        self._record: tuple[str, list[dict[str, Any]], dict[str, int]] | None = None
        self._record_read = False
        """The drift failure of the first stream, raised again for any later one."""

    # ------------------------------------------------------------------ planning

    @property
    def holds(self) -> bool:
        """Whether whole-query units hold their files until :meth:`decide` (see module)."""
        quality = self.quality_config
        if quality is None or not quality.has_fail_gates():
            return False
        protocol = self.run.plan.capabilities.commit_protocol
        return protocol is not WriteCommitProtocol.STREAMING

    # ------------------------------------------------------------------ per stream

    def opened(self, schema: pa.Schema) -> pa.Schema:
        """A stream opened with ``schema``: the first one is checked for drift and sets up
        the gates. Returns the schema files are written with (meta columns appended)."""
        with self.lock:
            if self.refused is not None:
                raise self.refused  # every chunk meets the same drift: reported once
            if self.schema is None:
                try:
                    self._first(schema)
                except TrustError as exc:
                    self.refused = exc
                    raise
                self.schema = schema
        return self.meta.schema(schema) if self.meta is not None else schema

    def _first(self, schema: pa.Schema) -> None:
        run = self.run
        meta = run.plan.config.meta_columns
        if self.meta is not None and meta is not None:
            from rivet_core.meta import meta_problems

            problems = meta_problems(meta, schema)
            if problems:
                raise SourceError(f"exports: {run.plan.name}: " + "; ".join(problems))
        self._drift(schema)
        if self.quality_config is not None:
            # Imported when an export has gates: most runs never load the gates' machinery.
            from rivet_core.quality import QualityCheck

            self.quality = QualityCheck(self.quality_config, schema,
                                        started_at=run.result.started_at,
                                        spill_dir=None)

    def _drift(self, schema: pa.Schema) -> None:
        run = self.run
        previous = self.previous_schema()
        current = drifts.schema_record(schema)
        if previous is None:
            return
        drift = drifts.compare(previous[1], current)
        if not drift.changed:
            run.result.schema_drift = {"changed": False, "since_run": previous[0]}
            return
        policy = run.plan.config.on_schema_drift
        run.result.schema_drift = {"changed": True, "since_run": previous[0],
                                   "policy": policy, **drift.as_dict()}
        run.result.schema_drift["summary"] = drift.summary()
        run.journal("schema_drift", policy=policy, since_run=previous[0], **drift.as_dict())
        if policy == "fail":
            raise TrustError(
                f"the schema changed since run {previous[0]}: {drift.summary()}",
                hint="nothing was written; if the change is expected, run once with "
                     "on_schema_drift = \"warn\" (or \"continue\") to accept it")
        if policy == "warn":
            run.result.warnings.append(f"schema changed since run {previous[0]}: "
                                       f"{drift.summary()}")

    def previous_schema(self) -> tuple[str, list[dict[str, Any]]] | None:
        """``(run_id, columns)`` of the last successful run: from the state store, else
        from the destination's last complete manifest (the state store may be new)."""
        stored = self._stored()
        if stored is not None:
            return stored[0], stored[1]
        return self.run.manifest.last_complete_schema(self.run.destination())

    def attempt(self) -> AttemptChecks:
        return AttemptChecks(self)

    # ------------------------------------------------------------------ deciding

    def decide(self) -> None:
        """Evaluate the gates once every row is read; a failed ``fail`` gate raises
        :class:`TrustError` (the caller aborts what it holds). Idempotent."""
        with self.lock:
            if self.decided:
                return
            self.decided = True
        run = self.run
        if self.schema is not None:
            warnings = drifts.shape_drift(self.previous_widths(), self.widths.widths(),
                                          run.plan.config.shape_drift_factor)
            run.result.warnings.extend(warnings)
        if self.quality_config is None:
            return
        if self.quality is None:  # no stream opened: nothing was read
            from rivet_core.quality import QualityCheck

            self.quality = QualityCheck(self.quality_config, None,
                                        started_at=run.result.started_at, spill_dir=None)
        try:
            outcomes = self.quality.results()
        finally:
            self.quality.close()
        run.result.quality = [o.as_dict() for o in outcomes]
        run.journal("quality_checked", passed=all(o.passed for o in outcomes),
                    gates=run.result.quality)
        failed = [o for o in outcomes if not o.passed and o.severity == "fail"]
        for o in outcomes:
            if not o.passed:
                run.journal("quality_gate", **o.as_dict())
                if o.severity == "warn":
                    run.result.warnings.append(f"quality: {o.message}")
        if failed:
            raise TrustError(
                f"{len(failed)} quality gate(s) failed: " + "; ".join(o.message
                                                                       for o in failed),
                hint=("nothing of this run was certified" + (
                    " (its files were discarded before any became visible)" if self.holds
                    else "") + "; fix the data at the source, or relax the gate in "
                    "[exports.quality] (severity = \"warn\" reports without failing), then "
                    "run again"))

    def previous_widths(self) -> dict[str, int]:
        stored = self._stored()
        return stored[2] if stored is not None else {}

    def _stored(self) -> tuple[str, list[dict[str, Any]], dict[str, int]] | None:
        """The last successful run's record in the state store, read once per run."""
        if not self._record_read:
            self._record = self.run.state.export_schema(self.run.plan.name)
            self._record_read = True
        return self._record

    def record(self, tx: Any) -> None:
        """In the run's final state transaction, for a complete run: its schema and
        widths become what the next run compares with."""
        if self.schema is None:
            return
        columns = drifts.schema_record(self.meta.schema(self.schema) if self.meta
                                       else self.schema)
        # The widest value ever seen per column, so a small incremental run after a big
        # one does not make the next normal run look like a shape change.
        widths = dict(self.previous_widths())
        for name, width in self.widths.widths().items():
            widths[name] = max(width, widths.get(name, 0))
        tx.record_schema(self.run.plan.name, self.run.result.run_id, columns, widths)

    def close(self) -> None:
        if self.quality is not None:
            self.quality.close()


class AttemptChecks:
    """What one attempt of a unit observed; merged into the run only if it succeeds."""

    def __init__(self, checks: RunChecks) -> None:
        self.checks = checks
        self.quality = checks.quality.fork() if checks.quality is not None else None
        self.widths = drifts.WidthTracker()

    def observe(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Observe a source batch; return the batch to write (meta columns appended)."""
        if self.quality is not None:
            self.quality.observe(batch)
        self.widths.observe(batch)
        meta = self.checks.meta
        return meta.apply(batch) if meta is not None else batch

    def done(self) -> None:
        checks = self.checks
        with checks.lock:
            if self.quality is not None and checks.quality is not None:
                checks.quality.merge(self.quality)
            checks.widths.merge(self.widths)

    def discard(self) -> None:
        if self.quality is not None:
            self.quality.close()
