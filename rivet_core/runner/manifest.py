"""The run manifest: what one run of one export left at its destination, and ``_SUCCESS``.

Layout, relative to the destination's location (so exports sharing a prefix never collide)::

    _rivet/<export>/manifest.json   the last run that touched the destination: run id,
                                    status, files with rows/bytes/SHA-256, schema, ...
    _rivet/<export>/_SUCCESS        {"run_id": ..., "manifest_sha256": ...}: present only
                                    while the manifest describes a complete run

Order within a run (:class:`RunManifest`):

1. just before the run's first file becomes visible (its first commit), the old ``_SUCCESS`` is
   deleted, so from then on no
   marker can vouch for the destination until this run finishes (a killed run leaves the
   previous manifest without a marker: ``rivet validate`` reports it incomplete);
2. the files are written and committed (the runner's own order);
3. after the last commit, ``manifest.json`` is written in one atomic step, then, for a
   complete run (``success`` or ``skipped``), ``_SUCCESS`` holding the run id and the
   SHA-256 of the exact manifest bytes. A failed run writes its manifest with
   ``status: failed`` and no marker.

Durability follows the same order. On a local disk each step is flushed before the next
starts, with one flush per file and one per directory entry: a data file, then its
directory (at its commit); ``manifest.json``, then ``_rivet/<export>/``; ``_SUCCESS``, then
``_rivet/<export>/`` again. The two flushes of that directory are not a duplicate: the first
makes the manifest's rename durable before ``_SUCCESS`` is renamed, so after a power loss a
marker is never on disk without the manifest it names. Nothing else flushes (the probe's
object, the run reports): see :mod:`rivet_core.probe` and :mod:`rivet_core.report`.

A run that fails before its first commit leaves the destination as it was. Only destinations that
implement :class:`~rivet_core.backends.SupportsListing` get a manifest (not stdout). The
checks that read all this back live in :mod:`rivet_core.validation`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from rivet_core import __version__
from rivet_core.backends import CommittedFile, Destination, SupportsListing, WriteTarget
from rivet_core.drift import manifest_schema, schema_record
from rivet_core.errors import DestinationError
from rivet_core.redact import redact
from rivet_core.runner.timings import phase
from rivet_core.state.store import iso, utc_now

if TYPE_CHECKING:
    from rivet_core.plan import ExportPlan
    from rivet_core.runner.results import ExportResult

log = logging.getLogger("rivet.manifest")

MANIFEST_VERSION = 1
COMPLETE = frozenset({"success", "skipped"})
"""Run statuses whose manifest gets a ``_SUCCESS`` marker."""


def manifest_dir(export: str) -> str:
    return f"_rivet/{export}/"


def manifest_name(export: str) -> str:
    return f"{manifest_dir(export)}manifest.json"


def success_name(export: str) -> str:
    return f"{manifest_dir(export)}_SUCCESS"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def success_marker(run_id: str, manifest_bytes: bytes) -> bytes:
    """The exact bytes of ``_SUCCESS`` for a manifest."""
    body = {"run_id": run_id, "manifest_sha256": sha256(manifest_bytes)}
    return (json.dumps(body) + "\n").encode()


def schema_json(schema: pa.Schema | None) -> list[dict[str, Any]] | None:
    """The Arrow schema as JSON: name, Arrow type, nullability, and the source's own type
    (field metadata ``rivet.source_type``) where the source recorded one. The same record
    the drift check stores (:func:`rivet_core.drift.schema_record`)."""
    return None if schema is None else schema_record(schema)


def build_manifest(plan: ExportPlan, result: ExportResult, *, schema: pa.Schema | None,
                   cursor: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest document of one run (pure: no I/O)."""
    files = [{"name": f.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
             for f in result.files]
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": result.run_id,
        "export": plan.name,
        "status": result.status,
        "mode": plan.config.mode,
        "started_at": iso(result.started_at),
        "finished_at": iso(result.finished_at or utc_now()),
        "tool": {"name": "rivet", "version": __version__},
        "source": {"engine": plan.source.spec.name, "table": plan.config.table,
                   "query": redact(plan.sql)},
        "destination": {"kind": plan.destination.spec.name, "uri": result.destination},
        "format": plan.format.spec.name,
        "compression": {"codec": plan.compression.codec, "level": plan.compression.level},
        "file_pattern": f"{plan.name}_{result.run_id}*",
        "schema": schema_json(schema),
        "files": files,
        "totals": {"files": len(files), "rows": sum(f["rows"] for f in files),
                   "bytes": sum(f["bytes"] for f in files)},
        "cursor": cursor,
        "error": result.error,
    }


def encode(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2) + "\n").encode()


class RunManifest:
    """Writes the manifest of one export run; the runner calls :meth:`guard` on every
    destination it builds and :meth:`write` once the run's status is known."""

    def __init__(self, plan: ExportPlan, result: ExportResult) -> None:
        self.plan = plan
        self.result = result
        self.cursor: dict[str, Any] | None = None
        """The cursor range this run covered (``{"column", "from", "to"}``), filled by the
        modes that have one; ``None`` for ``full``."""
        self.touched = False
        """Whether this run has started writing to the destination."""

    def last_complete_schema(self, destination: Destination
                             ) -> tuple[str, list[dict[str, Any]]] | None:
        """``(run_id, schema)`` from the destination's manifest when it describes a complete
        run: what a drift check compares with when the state store is new. None when there
        is none, it is not complete, or it is not a manifest; the destination's own failures
        (access denied) are raised: the run could not write there either."""
        from rivet_core.validation import parse_json

        name = manifest_name(self.plan.name)
        if not isinstance(destination, SupportsListing) or name not in destination.list_files(
                manifest_dir(self.plan.name)):
            return None
        try:
            manifest = parse_json(destination.read_file(name))
            columns = manifest_schema(manifest)
        except ValueError:
            return None
        run_id = manifest.get("run_id")
        if manifest.get("status") not in COMPLETE or columns is None or not isinstance(
                run_id, str):
            return None
        return run_id, [c.as_dict() for c in columns]

    def guard(self, destination: Destination) -> Destination:
        """``destination``, made to retire the old ``_SUCCESS`` at its first commit."""
        if not isinstance(destination, SupportsListing):
            return destination
        return _RetireMarkerFirst(destination, self)

    def retire_marker(self, destination: SupportsListing) -> None:
        if self.touched:
            return
        try:
            with phase("manifest"):
                destination.delete_file(success_name(self.plan.name))
        except DestinationError as exc:
            # The first request a run sends: the destination's own hint (a TLS failure, a
            # missing bucket) says more than a guess about permissions would.
            raise type(exc)(
                f"cannot remove the previous run's {success_name(self.plan.name)} before "
                f"writing: {exc.message}",
                hint=exc.hint or "Rivet needs delete permission on the destination so a "
                                 "stale marker never vouches for an incomplete run",
            ) from exc
        log.debug("export %s: previous %s retired before the first commit", self.plan.name,
                  success_name(self.plan.name), extra=self._log_extra())
        self.touched = True

    def _log_extra(self) -> dict[str, str]:
        return {"export": self.plan.name, "run_id": self.result.run_id}

    def write(self, build_destination: Callable[[], Destination],
              schema: pa.Schema | None) -> None:
        """Write the manifest (and ``_SUCCESS`` for a complete run). A complete run whose
        manifest cannot be written is turned into a failed one: its files are there, but
        nothing may vouch for them."""
        result = self.result
        if not self.touched and result.status not in COMPLETE:
            return  # failed before writing anything: the destination is as it was
        with phase("manifest"):
            self._write(build_destination, schema)

    def _write(self, build_destination: Callable[[], Destination],
               schema: pa.Schema | None) -> None:
        result = self.result
        try:
            destination = build_destination()
        except Exception as exc:
            self._failed_to_write(exc)
            return
        try:
            if not isinstance(destination, SupportsListing):
                return
            self.retire_marker(destination)
            manifest = encode(build_manifest(self.plan, result, schema=schema,
                                             cursor=self.cursor))
            destination.write_small(manifest_name(self.plan.name), manifest)
            if result.status in COMPLETE:
                destination.write_small(success_name(self.plan.name),
                                        success_marker(result.run_id, manifest))
            log.info("export %s: run manifest written (status %s, %d file(s))%s at %s",
                     self.plan.name, result.status, len(result.files),
                     " with _SUCCESS" if result.status in COMPLETE else ", no _SUCCESS",
                     destination.location(), extra=self._log_extra())
        except Exception as exc:
            self._failed_to_write(exc)
        finally:
            destination.close()

    def _failed_to_write(self, exc: Exception) -> None:
        result = self.result
        message = exc.message if isinstance(exc, DestinationError) else f"{exc}"
        log.error("export %s: writing the run manifest failed: %s", self.plan.name,
                  redact(message), extra=self._log_extra())
        if result.status in COMPLETE:
            result.status = "failed"
            result.error = redact(f"files committed, but the run manifest could not be "
                                  f"written: {message}")
            result.hint = ("the files are complete but unvouched (no _SUCCESS); rerun the "
                           "export")


class _RetireMarkerFirst(Destination):
    """Delegates to a listing destination, retiring the old ``_SUCCESS`` just before the
    run's first file becomes visible (its first commit). Until then the destination shows
    exactly the previous run, whose marker still vouches for it: a run that fails before
    committing anything (a failed quality gate, a drift check) leaves it untouched."""

    def __init__(self, inner: Destination, manifest: RunManifest) -> None:
        self.inner = inner
        self.manifest = manifest

    def open(self, name: str) -> WriteTarget:
        return _RetireOnCommit(self.inner.open(name), self)

    def retire(self) -> None:
        assert isinstance(self.inner, SupportsListing)
        self.manifest.retire_marker(self.inner)

    def location(self) -> str:
        return self.inner.location()

    def close(self) -> None:
        self.inner.close()


class _RetireOnCommit(WriteTarget):
    def __init__(self, inner: WriteTarget, guard: _RetireMarkerFirst) -> None:
        self.inner = inner
        self.guard = guard

    def write(self, data: bytes | memoryview) -> None:
        self.inner.write(data)

    def commit(self) -> CommittedFile:
        self.guard.retire()
        return self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()
