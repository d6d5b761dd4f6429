"""Probing a source and a destination before a run: can Rivet reach them, read, write?

Each probe returns :class:`Check` s (``OK``, ``WARN`` or ``FAIL``, a detail and a hint),
never raises for what it finds, and leaves nothing behind.

- :func:`probe_destination` works through the public destination API only: it lists the
  location, writes a small probe object (``write_small``, or ``write_scratch`` where the
  destination offers it: :class:`~rivet_core.backends.SupportsScratchWrite`), reads it
  back, deletes it and lists again to see it gone. A destination without
  :class:`~rivet_core.backends.SupportsListing` cannot be probed (a ``WARN``:
  writing to ``stdout`` would corrupt the data stream). One that implements
  :class:`SupportsCredentialSource` says which credentials it uses. For a ``file://``
  location, directories the probe created are removed, and the free space is reported
  (not to ``rivet run``, which acts on failures only). ``rivet run`` probes before every
  export, so the round trip is kept cheap: the listings ask for the probe object's name
  as the prefix (a destination reads what it can match, not the whole location), and the
  object is not flushed to disk where the destination can skip that.
- :func:`probe_source` connects, asks the dialect
  (:class:`~rivet_core.dialect.SupportsServerInfo`) for the server's version, time zone,
  the read-only transaction and the session's TLS, and describes each export's query with
  a zero-row probe, which fails on a missing grant and names the relation.

``rivet doctor`` prints them; ``rivet run`` may call :func:`probe_destination` first.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import attrs

from rivet_core.backends import (
    Destination,
    DestinationContext,
    ReadOptions,
    Source,
    SupportsCredentialSource,
    SupportsListing,
    SupportsScratchWrite,
)
from rivet_core.config.connection import ConnectionConfig, ConnectionParams
from rivet_core.dialect import Dialect, Query, SupportsServerInfo
from rivet_core.errors import DestinationError, RivetError, UnsupportedTypeError
from rivet_core.naming import new_run_id
from rivet_core.redact import redact
from rivet_core.sources import SqlSource
from rivet_core.types import Fidelity

if TYPE_CHECKING:
    from rivet_core.planner import ExportPlan, Plan

PROBE_PREFIX = "_rivet-probe-"
"""Probe objects are named ``_rivet-probe-<random>``: the ``_`` prefix hides one that could
not be removed from dataset readers (pyarrow, Spark skip ``_`` and ``.`` names)."""
LOW_SPACE = 1 << 30
"""Less free space than this on a local destination is a warning."""


class Status(enum.Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@attrs.frozen(kw_only=True)
class Check:
    """One finding: what was checked, on what, and how it went."""

    subject: str
    """What was checked: ``source``, an export's name, a destination's location."""
    name: str
    """Which check (``connect``, ``TLS``, ``SELECT``, ``write``...)."""
    status: Status
    detail: str
    hint: str | None = None
    error: RivetError | None = attrs.field(default=None, eq=False, repr=False)
    """The error behind a failure, for a caller that raises it (``rivet run``)."""

    def render(self) -> str:
        text = f"{'[' + self.status.value + ']':<6} {self.subject}: {self.name}: {self.detail}"
        if self.hint:
            text += f"\n         hint: {self.hint}"
        return redact(text)

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "check": self.name, "status": self.status.value,
                "detail": redact(self.detail),
                "hint": None if self.hint is None else redact(self.hint)}


# ---------------------------------------------------------------------------- destination


def probe_destination(destination: Destination, *, subject: str | None = None,
                      name: str | None = None, free_space: bool = True) -> list[Check]:
    """List, write, read back and delete a probe object at ``destination``'s location
    (``name``, relative to it; default ``_rivet-probe-<random>``), and leave nothing behind.
    ``rivet doctor`` prints the checks; ``rivet run`` raises the failures before reading,
    and leaves out the free space of a local destination (``free_space``), which is never
    a failure."""
    location = destination.location()
    subject = subject or location
    checks = []
    if isinstance(destination, SupportsCredentialSource):
        checks.append(Check(subject=subject, name="credentials", status=Status.OK,
                            detail=destination.credential_source()))
    local = _local_path(location)
    if not isinstance(destination, SupportsListing):
        checks.append(Check(
            subject=subject, name="write", status=Status.WARN,
            detail=f"cannot probe {location}: the destination cannot read back or remove a "
                   "file (no SupportsListing)",
            hint="its first run is the test"))
        return checks
    existing = _existing_ancestor(local) if local is not None else None
    try:
        checks += _round_trip(destination, subject, location,
                              name or f"{PROBE_PREFIX}{secrets.token_hex(8)}")
    finally:
        if local is not None and existing is not None:
            _remove_created(local, existing)
    if local is not None and free_space:
        checks.append(_free_space(subject, local))
    return checks


def _round_trip(destination: SupportsListing, subject: str, location: str,
                name: str) -> list[Check]:
    body = f"rivet probe {name}\n".encode()
    try:
        destination.list_files(name)
    except RivetError as exc:
        return [_failed(subject, "list", exc, "check the bucket or directory name, and that "
                                              "the credentials may list it")]
    reachable = Check(subject=subject, name="list", status=Status.OK,
                      detail=f"{location} can be listed")
    try:
        if isinstance(destination, SupportsScratchWrite):
            destination.write_scratch(name, body)
        else:
            destination.write_small(name, body)
    except RivetError as exc:
        return [reachable, _failed(subject, "write", exc,
                                   "check that the credentials (or the user running rivet) "
                                   "may write there")]
    problems: list[Check] = []
    try:
        if destination.read_file(name) != body:
            detail = f"the probe object {name} read back different from what was written"
            problems.append(Check(subject=subject, name="content", status=Status.FAIL,
                                  detail=detail, error=DestinationError(detail)))
    except RivetError as exc:
        problems.append(_failed(subject, "read back", exc,
                                "check that the credentials may read what they write"))
    try:
        destination.delete_file(name)
        if name in destination.list_files(name):
            raise RivetError(f"{name} is still listed after its deletion")
    except RivetError as exc:
        problems.append(_failed(subject, "delete", exc,
                                f"remove {name} by hand; check that the credentials may "
                                "delete (rivet repair and the manifest need it)"))
    if problems:
        return [reachable, *problems]
    return [reachable, Check(subject=subject, name="write", status=Status.OK,
                             detail="a probe object was written, read back and deleted")]


def _failed(subject: str, name: str, exc: RivetError, hint: str) -> Check:
    return Check(subject=subject, name=name, status=Status.FAIL, detail=exc.message,
                 hint=exc.hint or hint, error=exc)


def _local_path(location: str) -> Path | None:
    parts = urlsplit(location)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def _existing_ancestor(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return None


def _remove_created(path: Path, existing: Path) -> None:
    """Remove the directories between ``path`` and ``existing`` that the probe created,
    if they are empty."""
    for directory in (path, *path.parents):
        if directory == existing or not directory.is_relative_to(existing):
            return
        try:
            directory.rmdir()
        except OSError:
            return


def _free_space(subject: str, path: Path) -> Check:
    measured = _measure_free(path)
    if measured is None:
        return Check(subject=subject, name="free space", status=Status.WARN,
                     detail=f"{path} has no existing parent")
    anchor, free = measured
    text = f"{_gib(free)} free on the file system of {anchor}"
    if free < LOW_SPACE:
        return Check(subject=subject, name="free space", status=Status.WARN, detail=text,
                     hint=f"less than {_gib(LOW_SPACE)}: a run needs room for its files "
                          "(and a temp file of the one being written)")
    return Check(subject=subject, name="free space", status=Status.OK, detail=text)


def _measure_free(path: Path) -> tuple[Path, int] | None:
    """The nearest existing ancestor of ``path`` (or itself) and the free bytes there. Found
    and measured in one step: another run's probe (exports run at once share parent
    directories) may remove an empty directory between a look and a measure."""
    for candidate in (path, *path.parents):
        try:
            return candidate, shutil.disk_usage(candidate).free
        except (FileNotFoundError, NotADirectoryError):
            continue
    return None


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"


# --------------------------------------------------------------------------------- source


@attrs.frozen(kw_only=True)
class ExportQuery:
    """An export's query as the source reads it, for the zero-row probe."""

    name: str
    query: Query
    options: ReadOptions


def probe_source(source: Source, dialect: Dialect, exports: Sequence[ExportQuery]
                 ) -> list[Check]:
    """Connect, report the server and the session, and probe each export's query."""
    options = ReadOptions(statement_timeout_s=30, lock_timeout_s=5)
    params = _params(source)
    where = source.display_name()
    info: dict[str, Any] = {}
    try:
        if isinstance(dialect, SupportsServerInfo):
            rows = source.fetch_rows(dialect.server_info(), options)
            info = rows[0] if rows else {}
        else:
            source.fetch_rows(Query(sql="SELECT 1 AS ok", label="connection probe"), options)
    except RivetError as exc:
        return [Check(subject="source", name="connect", status=Status.FAIL,
                      detail=exc.message, hint=exc.hint)]
    checks = [Check(subject="source", name="connect", status=Status.OK,
                    detail=f"connected to {where}")]
    if isinstance(dialect, SupportsServerInfo):
        checks += _server(dialect, info)
        checks.append(_tls(source, dialect, params, options))
    else:
        checks.append(Check(
            subject="source", name="server", status=Status.WARN,
            detail=f"version, time zone, read-only transaction and TLS not checked: dialect "
                   f"{dialect.name!r} does not provide SupportsServerInfo"))
    for export in exports:
        checks.append(_select(source, dialect, export, params))
    return checks


def _params(source: Source) -> ConnectionParams | None:
    if isinstance(source, SqlSource) and isinstance(source.config, ConnectionConfig):
        try:
            return source.connection_params()
        except RivetError:
            return None
    return None


def _server(dialect: Dialect, info: dict[str, Any]) -> list[Check]:
    checks = [
        Check(subject="source", name="server version", status=Status.OK,
              detail=str(info.get("server_version") or "unknown")),
        Check(subject="source", name="server time zone", status=Status.OK,
              detail=f"{info.get('time_zone') or 'unknown'} (Rivet's sessions use UTC)"),
    ]
    read_only = info.get("read_only")
    if read_only is None:
        checks.append(Check(subject="source", name="read-only transaction", status=Status.OK,
                            detail="the server accepted the source's read-only transaction "
                                   "(it does not report the mode back)"))
    elif read_only:
        checks.append(Check(subject="source", name="read-only transaction", status=Status.OK,
                            detail="statements run in a read-only transaction"))
    else:
        checks.append(Check(subject="source", name="read-only transaction",
                            status=Status.FAIL,
                            detail="the server reports the source's transaction as read-write",
                            hint=f"a bug in the {dialect.name} source plugin: it must read "
                                 "in read-only transactions"))
    return checks


def _tls(source: Source, dialect: SupportsServerInfo, params: ConnectionParams | None,
         options: ReadOptions) -> Check:
    try:
        cipher = dialect.tls_in_use(source.fetch_rows(dialect.session_tls(), options))
    except RivetError as exc:
        return Check(subject="source", name="TLS", status=Status.WARN,
                     detail=f"the session's encryption could not be read: {exc.message}")
    setting = params.tls_summary() if params is not None else "the source's settings"
    if cipher:
        return Check(subject="source", name="TLS", status=Status.OK,
                     detail=f"encrypted ({cipher}); {setting}")
    if params is not None and params.tls_mode == "disable":
        return Check(subject="source", name="TLS", status=Status.OK,
                     detail="not encrypted, as tls.mode = \"disable\" asks")
    if params is not None and params.local():
        return Check(subject="source", name="TLS", status=Status.OK,
                     detail=f"not encrypted (the server is on this machine, {params.host})")
    return Check(subject="source", name="TLS", status=Status.WARN,
                 detail="not encrypted: credentials and rows cross the network in plaintext",
                 hint="turn TLS on at the server and set [source.tls] mode = \"verify-full\" "
                      "(or mode = \"disable\" to say plaintext is intended)")


def _select(source: Source, dialect: Dialect, export: ExportQuery,
            params: ConnectionParams | None) -> Check:
    try:
        columns = source.describe(export.query, export.options)
    except UnsupportedTypeError as exc:
        bad = [c.name for c in exc.columns if c.fidelity is Fidelity.UNSUPPORTED]
        return Check(subject=export.name, name="SELECT", status=Status.WARN,
                     detail="the query can be read, but "
                            + (f"{len(bad)} column(s) have no faithful Arrow type: "
                               f"{', '.join(bad)}" if bad else exc.message),
                     hint="rivet check --type-report shows each column and its fix")
    except RivetError as exc:
        relation = (dialect.denied_relation(exc.message)
                    if isinstance(dialect, SupportsServerInfo) else None)
        hint = exc.hint
        if relation is not None:
            user = f" ({params.user})" if params is not None else ""
            hint = f"grant SELECT on {relation} to the user Rivet connects as{user}"
        return Check(subject=export.name, name="SELECT", status=Status.FAIL,
                     detail=(f"no access to {relation}: " if relation else "")
                     + exc.message, hint=hint)
    return Check(subject=export.name, name="SELECT", status=Status.OK,
                 detail=f"the query can be read ({len(columns)} column"
                        f"{'' if len(columns) == 1 else 's'}, zero-row probe)")


__all__ = ["Check", "ExportQuery", "Status", "SupportsCredentialSource", "probe_destination",
           "probe_source"]



def destination_checks(plan: Plan) -> list[Check]:
    """Probe the destination of every planned export (``rivet doctor``, ``rivet check
    --preflight``): each location once, nothing left behind."""
    checks: list[Check] = []
    probed: dict[str, str] = {}
    now = dt.datetime.now(dt.UTC)
    for export in plan.exports:
        try:
            destination = _build(plan, export, now)
        except RivetError as exc:
            checks.append(Check(subject=export.name, name="destination", status=Status.FAIL,
                                detail=exc.message, hint=exc.hint, error=exc))
            continue
        try:
            location = destination.location()
            if location in probed:
                checks.append(Check(subject=export.name, name="destination", status=Status.OK,
                                    detail=f"{location}, probed for export "
                                           f"{probed[location]!r}"))
                continue
            probed[location] = export.name
            checks += probe_destination(destination, subject=export.name)
        except RivetError as exc:
            checks.append(Check(subject=export.name, name="destination", status=Status.FAIL,
                                detail=exc.message, hint=exc.hint, error=exc))
        finally:
            destination.close()
    return checks


def _build(plan: Plan, export: ExportPlan, now: dt.datetime) -> Destination:
    """The export's destination, as a run starting ``now`` would build it."""
    context = DestinationContext(export=export.name, run_id=new_run_id(now), started_at=now,
                                 config_dir=plan.loaded.config.directory)
    destination: Destination = export.destination.spec.factory(
        export.config.destination.options, context)
    return destination
