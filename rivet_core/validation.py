"""Checking a destination against its run manifest: what ``rivet validate`` reports.

Given a destination that can list and read its files, :func:`validate_export` re-lists it
and compares with ``_rivet/<export>/manifest.json`` and ``_SUCCESS`` (layout and write
order in :mod:`rivet_core.runner.manifest`). Every problem becomes a :class:`Finding`; an
``error`` finding fails the export. The destination is checked on its own, as a consumer
would see it; the state store is asked one thing only: which files named like the export's
but absent from the manifest were committed by an earlier run (:class:`StateRecords`).
Anything else with such a name was put there by someone else, and is an error.

The manifest and the marker are untrusted bytes: whoever can write to the destination can
write them. They are parsed strictly (:func:`parse_json`) and every field the checks use is
type-checked before it is used (a boolean is not an integer, a file name is a printable
relative path, a checksum is 64 lowercase hex digits), so any bytes give findings, never an
exception. Values quoted in messages go through :func:`show`, which keeps them short and
printable.
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
from rivet_core.runner.modes import MODES

RUN_ID = r"\d{8}T\d{6}Z-[0-9a-f]{6}"
STATUSES = frozenset({*COMPLETE, "failed"})
"""Every status a manifest can record: it is written once the run's status is known."""
MAX_COUNT = 2**63 - 1
"""Rows and bytes are 64-bit wherever they are stored (state store, Arrow, object stores)."""
MAX_PROBLEMS = 20
"""Problems of a manifest's file entries reported one by one; the rest are counted."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


@attrs.frozen(kw_only=True)
class Finding:
    kind: str
    """Stable id: ``no_manifest``, ``bad_manifest``, ``inconsistent_manifest``,
    ``run_failed``, ``marker_missing``, ``stale_marker``, ``marker_checksum``, ``missing``,
    ``size_mismatch``, ``checksum_mismatch``, ``extra``, ``unknown_file``,
    ``previous_run``."""
    message: str
    name: str | None = None
    severity: str = "error"
    """``error`` fails the export; ``info`` is reported only."""

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class StateRecords:
    """What the state store records of one export: the ids of its runs (finished, or
    started and never finished) and the names of the files they committed."""

    runs: frozenset[str] = frozenset()
    files: frozenset[str] = frozenset()


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


# ------------------------------------------------------------------- untrusted JSON


def show(value: Any, limit: int = 80) -> str:
    """A JSON value as a message quotes it: short, printable, and computed without recursion
    or unbounded work whatever the value is (nested hundreds deep, thousands of digits,
    control characters, lone surrogates)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if value.bit_length() > 64:
            # str() of a huge integer is slow, and refused beyond 4300 digits.
            return f"an integer of {value.bit_length()} bits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        # repr() escapes every non-printable character, lone surrogates included.
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    if isinstance(value, list):
        return f"an array of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"an object of {len(value)} key(s)"
    return type(value).__name__


def printable(text: str, limit: int = 500) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\n``,
    ``\\udcff``): printed from untrusted text, it stays one line and encodes as UTF-8."""
    clipped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return clipped + ("…" if len(text) > limit else "")


class _Refused(ValueError):
    """Valid for ``json.loads``, refused here."""


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            # Readers disagree on which of the two values counts.
            raise _Refused(f"key {show(key)} appears twice in one object")
        document[key] = value
    return document


def parse_json(raw: bytes) -> Any:
    """Strict JSON from untrusted bytes, or ``ValueError`` with a short printable reason.

    UTF-8 only (``json.loads`` would guess UTF-16 or UTF-32 from bytes), no ``NaN`` or
    ``Infinity``, no key twice in one object, and nesting deeper than the parser can hold
    is an error like the others rather than a ``RecursionError``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                         f"{exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except (json.JSONDecodeError, _Refused) as exc:
        raise ValueError(printable(str(exc), 200)) from None
    except ValueError:
        # int() refuses more than 4300 digits (CVE-2020-10735).
        raise ValueError("a number has too many digits") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= MAX_COUNT


def _is_name(value: Any) -> bool:
    """A file name as a run writes it: a non-empty, printable path relative to the
    location, without ``.`` or ``..`` segments."""
    if not isinstance(value, str) or not value.isprintable():
        return False
    return all(part not in ("", ".", "..") for part in value.split("/"))


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


# ------------------------------------------------------------------------- manifest


def _entry_problems(index: int, entry: Any) -> list[str]:
    where = f"files[{index}]"
    if not isinstance(entry, dict):
        return [f"{where} is {show(entry)}, expected an object of name, rows, bytes, sha256"]
    problems = []
    if not _is_name(entry.get("name")):
        problems.append(f"{where}.name is {show(entry.get('name'))}, expected a non-empty "
                        "printable relative path")
    for key in ("rows", "bytes"):
        if not _is_count(entry.get(key)):
            problems.append(f"{where}.{key} is {show(entry.get(key))}, expected an integer "
                            f"0..{MAX_COUNT}")
    if not _is_sha256(entry.get("sha256")):
        problems.append(f"{where}.sha256 is {show(entry.get('sha256'))}, expected 64 "
                        "lowercase hex digits")
    return problems


def _consistency(manifest: dict[str, Any], export: str) -> list[str]:
    """Every reason not to trust the manifest, each a phrase following "manifest"; [] when
    every field the checks use has its type and the totals add up."""
    problems = []
    version = manifest.get("manifest_version")
    if not (_is_int(version) and version == MANIFEST_VERSION):
        problems.append(f"manifest_version is {show(version)}, expected {MANIFEST_VERSION}")
    if not (isinstance(manifest.get("export"), str) and manifest["export"] == export):
        problems.append(f"describes export {show(manifest.get('export'))}")
    run_id = manifest.get("run_id")
    if not (isinstance(run_id, str) and re.fullmatch(RUN_ID, run_id)):
        problems.append(f"run_id is {show(run_id)}, expected a run id like "
                        "20261127T121530Z-a1b2c3")
    status = manifest.get("status")
    if not (isinstance(status, str) and status in STATUSES):
        problems.append(f"status is {show(status)}, expected one of "
                        f"{', '.join(sorted(STATUSES))}")
    mode = manifest.get("mode")
    if not (isinstance(mode, str) and mode in MODES):
        problems.append(f"mode is {show(mode)}, expected one of {', '.join(MODES)}")
    error = manifest.get("error")
    if error is not None and not isinstance(error, str):
        problems.append(f"error is {show(error)}, expected a string or null")

    files = manifest.get("files")
    if not isinstance(files, list):
        return [*problems, f"files is {show(files)}, expected an array"]
    entries = [p for i, entry in enumerate(files) for p in _entry_problems(i, entry)]
    if len(entries) > MAX_PROBLEMS:
        entries[MAX_PROBLEMS:] = [f"has {len(entries) - MAX_PROBLEMS} more problem(s) in "
                                  "its files"]
    if entries:
        return problems + entries
    names = [f["name"] for f in files]
    if len(set(names)) != len(names):
        problems.append("lists a file twice")
    totals = manifest.get("totals")
    if not isinstance(totals, dict):
        return [*problems, f"totals is {show(totals)}, expected an object"]
    expected = {"files": len(files), "rows": sum(f["rows"] for f in files),
                "bytes": sum(f["bytes"] for f in files)}
    for key, value in expected.items():
        given = totals.get(key)
        if not (_is_int(given) and given == value):
            problems.append(f"totals.{key} is {show(given)} but the files add up to "
                            f"{show(value)}")
    return problems


def validate_export(export: str, destination: SupportsListing, location: str, *,
                    recorded: StateRecords | None = None) -> ExportValidation:
    """Compare the destination's files with the export's manifest and marker. Whatever
    bytes the manifest and the marker hold, the result is findings; only the destination's
    own failures (:class:`~rivet_core.errors.DestinationError`) are raised.

    ``recorded``: what the state store records of the export's runs (none when None). A
    file named like a run's (``<export>_<run id>…``) that the manifest does not list is a
    file of an earlier run only if the state store recorded it; its name alone proves
    nothing."""
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
        manifest = parse_json(raw)
    except ValueError as exc:
        add(Finding(kind="bad_manifest", name=manifest_name(export),
                    message=f"manifest is not valid JSON: {exc}"))
        return report
    if not isinstance(manifest, dict):
        add(Finding(kind="bad_manifest", name=manifest_name(export),
                    message=f"manifest is {show(manifest)}, not a JSON object"))
        return report
    # Reported even for an inconsistent manifest, when they have their types.
    if isinstance(manifest.get("run_id"), str) and re.fullmatch(RUN_ID, manifest["run_id"]):
        report.run_id = manifest["run_id"]
    if isinstance(manifest.get("status"), str) and manifest["status"] in STATUSES:
        report.run_status = manifest["status"]
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
    _check_unlisted(export, listing, listed, manifest, add, recorded or StateRecords())
    return report


# --------------------------------------------------------------------------- marker


def _read_marker(raw: bytes) -> tuple[str, str]:
    """The run id and manifest checksum of a ``_SUCCESS``; ``ValueError`` unless it holds
    what :func:`~rivet_core.runner.manifest.success_marker` writes."""
    marker = parse_json(raw)
    if not isinstance(marker, dict):
        raise ValueError(f"{show(marker)}, not a JSON object")
    run_id, digest = marker.get("run_id"), marker.get("manifest_sha256")
    if not (isinstance(run_id, str) and re.fullmatch(RUN_ID, run_id)):
        raise ValueError(f"run_id is {show(run_id)}")
    if not (isinstance(digest, str) and _is_sha256(digest)):
        raise ValueError(f"manifest_sha256 is {show(digest)}, not 64 lowercase hex digits")
    return run_id, digest


def _check_marker(export: str, destination: SupportsListing, listing: dict[str, int],
                  manifest: dict[str, Any], raw: bytes, add: Any) -> None:
    run_id, status = manifest["run_id"], manifest["status"]
    if success_name(export) not in listing:
        if status in COMPLETE:
            add(Finding(kind="marker_missing", name=success_name(export),
                        message=f"no _SUCCESS for run {run_id}: a later run started "
                                "writing and did not finish, or the marker was removed"))
        else:
            error = printable(manifest["error"] or "no error recorded")
            add(Finding(kind="run_failed", name=manifest_name(export),
                        message=f"the last run ({run_id}) ended {status!r}: {error}"))
        return
    try:
        marker_run, marker_sum = _read_marker(destination.read_file(success_name(export)))
    except ValueError as exc:
        add(Finding(kind="stale_marker", name=success_name(export),
                    message=f"_SUCCESS is not a Rivet marker: {exc}"))
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
                    manifest: dict[str, Any], add: Any, recorded: StateRecords) -> None:
    pattern = re.compile(rf"^{re.escape(export)}_({RUN_ID})")
    snapshot = manifest["mode"] == "full"
    for name in sorted(listing):
        match = pattern.match(name)
        if "/" in name or match is None or name in listed:
            continue
        run_id = match.group(1)
        if run_id == manifest["run_id"]:
            add(Finding(kind="extra", name=name,
                        message="a file of this run that the manifest does not list"))
        elif name not in recorded.files and run_id in recorded.runs:
            add(Finding(kind="extra", name=name,
                        message=f"a file of run {run_id} that the state store does not "
                                "record: the run committed it and ended before recording "
                                "it (killed), so no manifest or cursor accounts for its "
                                "rows; a reader of the prefix would read it (remove it)"))
        elif name not in recorded.files:
            add(Finding(kind="unknown_file", name=name,
                        message=f"named like a file of run {run_id}, but the state store "
                                "records neither the file nor the run: it was put here by "
                                "something else (or the state store is not the one the "
                                "runs used); a reader of the prefix would read it"))
        elif snapshot:
            add(Finding(kind="extra", name=name,
                        message=f"a file of an earlier run ({run_id}) beside this "
                                "full snapshot: a reader of the prefix would read both "
                                "(put {run_id} or {date} in the path, or remove it)"))
        else:
            add(Finding(kind="previous_run", name=name, severity="info",
                        message=f"a file of an earlier run ({run_id}), recorded in the "
                                "state store"))
