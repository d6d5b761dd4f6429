"""Checking a destination against its run manifest: what ``rivet validate`` reports.

Given a destination that can list and read its files, :func:`validate_export` re-lists it
and compares with ``_rivet/<export>/manifest.json`` and ``_SUCCESS`` (layout and write
order in :mod:`rivet_core.runner.manifest`). Every problem becomes a :class:`Finding`; an
``error`` finding fails the export. No state store is needed: the destination is checked
on its own, as a consumer would see it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from rivet_core.backends import SupportsListing
from rivet_core.errors import DestinationError
from rivet_core.runner.manifest import (
    COMPLETE,
    MANIFEST_VERSION,
    manifest_name,
    sha256,
    success_name,
)

RUN_ID = r"\d{8}T\d{6}Z-[0-9a-f]{6}"


@attrs.frozen(kw_only=True)
class Finding:
    kind: str
    """Stable id: ``no_manifest``, ``bad_manifest``, ``inconsistent_manifest``,
    ``run_failed``, ``marker_missing``, ``stale_marker``, ``marker_checksum``, ``missing``,
    ``size_mismatch``, ``checksum_mismatch``, ``extra``, ``previous_run``."""
    message: str
    name: str | None = None
    severity: str = "error"
    """``error`` fails the export; ``info`` is reported only."""

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define(kw_only=True)
class ExportValidation:
    export: str
    location: str
    run_id: str | None = None
    run_status: str | None = None
    """The status the manifest records for its run."""
    files_checked: int = 0
    findings: list[Finding] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def status(self) -> str:
        if any(f.kind == "no_manifest" for f in self.findings):
            return "no_manifest"
        return "passed" if self.ok else "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"export": self.export, "location": self.location, "status": self.status,
                "run_id": self.run_id, "run_status": self.run_status,
                "files_checked": self.files_checked,
                "findings": [f.as_dict() for f in self.findings]}


def _consistency(manifest: dict[str, Any], export: str) -> list[str]:
    problems = []
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        problems.append(f"manifest_version is {manifest.get('manifest_version')!r}, "
                        f"expected {MANIFEST_VERSION}")
    if manifest.get("export") != export:
        problems.append(f"describes export {manifest.get('export')!r}")
    if not isinstance(manifest.get("run_id"), str) or not manifest["run_id"]:
        problems.append("has no run_id")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and {"name", "rows", "bytes", "sha256"} <= f.keys()
            for f in files):
        return [*problems, "files must be a list of {name, rows, bytes, sha256}"]
    names = [f["name"] for f in files]
    if len(set(names)) != len(names):
        problems.append("lists a file twice")
    totals = manifest.get("totals") or {}
    expected = {"files": len(files), "rows": sum(f["rows"] for f in files),
                "bytes": sum(f["bytes"] for f in files)}
    for key, value in expected.items():
        if totals.get(key) != value:
            problems.append(f"totals.{key} is {totals.get(key)!r} but the files add up to "
                            f"{value}")
    return problems


def validate_export(export: str, destination: SupportsListing, location: str
                    ) -> ExportValidation:
    """Compare the destination's files with the export's manifest and marker."""
    report = ExportValidation(export=export, location=location)
    add = report.findings.append
    listing = destination.list_files()
    if manifest_name(export) not in listing:
        add(Finding(kind="no_manifest", name=manifest_name(export),
                    message="no run manifest: the export has not completed a run here "
                            "(or the destination/prefix is not the one it wrote to)"))
        return report
    raw = destination.read_file(manifest_name(export))
    try:
        manifest = json.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        add(Finding(kind="bad_manifest", name=manifest_name(export),
                    message=f"manifest is not valid JSON: {exc}"))
        return report
    report.run_id = manifest.get("run_id")
    report.run_status = manifest.get("status")
    problems = _consistency(manifest, export)
    for problem in problems:
        add(Finding(kind="inconsistent_manifest", name=manifest_name(export),
                    message=f"manifest {problem}"))
    if problems:
        return report

    _check_marker(export, destination, listing, manifest, raw, add)
    listed: dict[str, dict[str, Any]] = {f["name"]: f for f in manifest["files"]}
    for name, entry in listed.items():
        report.files_checked += 1
        if name not in listing:
            add(Finding(kind="missing", name=name, message="listed in the manifest but not "
                                                           "at the destination"))
        elif listing[name] != entry["bytes"]:
            add(Finding(kind="size_mismatch", name=name,
                        message=f"{listing[name]} bytes at the destination, "
                                f"{entry['bytes']} in the manifest"))
        else:
            try:
                digest = sha256(destination.read_file(name))
            except DestinationError as exc:
                add(Finding(kind="missing", name=name, message=f"unreadable: {exc.message}"))
                continue
            if digest != entry["sha256"]:
                add(Finding(kind="checksum_mismatch", name=name,
                            message=f"SHA-256 {digest} at the destination, "
                                    f"{entry['sha256']} in the manifest"))
    _check_unlisted(export, listing, listed, manifest, add)
    return report


def _check_marker(export: str, destination: SupportsListing, listing: dict[str, int],
                  manifest: dict[str, Any], raw: bytes, add: Any) -> None:
    run_id, status = manifest["run_id"], manifest.get("status")
    if success_name(export) not in listing:
        if status in COMPLETE:
            add(Finding(kind="marker_missing", name=success_name(export),
                        message=f"no _SUCCESS for run {run_id}: a later run started "
                                "writing and did not finish, or the marker was removed"))
        else:
            error = manifest.get("error") or "no error recorded"
            add(Finding(kind="run_failed", name=manifest_name(export),
                        message=f"the last run ({run_id}) ended {status!r}: {error}"))
        return
    try:
        marker = json.loads(destination.read_file(success_name(export)))
        marker_run, marker_sum = marker["run_id"], marker["manifest_sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        add(Finding(kind="stale_marker", name=success_name(export),
                    message=f"_SUCCESS is not a Rivet marker ({exc!r})"))
        return
    if marker_run != run_id:
        add(Finding(kind="stale_marker", name=success_name(export),
                    message=f"_SUCCESS belongs to run {marker_run}, but the manifest "
                            f"describes run {run_id}"))
    elif marker_sum != sha256(raw):
        add(Finding(kind="marker_checksum", name=success_name(export),
                    message="_SUCCESS holds a different manifest checksum: the manifest "
                            "was changed after the run"))
    if status not in COMPLETE:
        add(Finding(kind="run_failed", name=manifest_name(export),
                    message=f"the manifest records status {status!r} but a _SUCCESS "
                            "marker exists"))


def _check_unlisted(export: str, listing: dict[str, int], listed: dict[str, Any],
                    manifest: dict[str, Any], add: Any) -> None:
    pattern = re.compile(rf"^{re.escape(export)}_({RUN_ID})")
    snapshot = manifest.get("mode", "full") == "full"
    for name in sorted(listing):
        match = pattern.match(name)
        if "/" in name or match is None or name in listed:
            continue
        if match.group(1) == manifest["run_id"]:
            add(Finding(kind="extra", name=name,
                        message="a file of this run that the manifest does not list"))
        elif snapshot:
            add(Finding(kind="extra", name=name,
                        message=f"a file of an earlier run ({match.group(1)}) beside this "
                                "full snapshot: a reader of the prefix would read both "
                                "(put {run_id} or {date} in the path, or remove it)"))
        else:
            add(Finding(kind="previous_run", name=name, severity="info",
                        message=f"a file of an earlier run ({match.group(1)})"))
