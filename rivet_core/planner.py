"""Config + registry → :class:`Plan`: resolved backends per export, and every diagnostic.

The planner runs nothing and opens no connection. It resolves each export's backends,
compression, tuning and SQL, then applies the rules below to the declared capabilities.
A ``rejected`` diagnostic stops ``rivet run`` before any connection opens; ``rivet check``
prints the same list. Each rule names the TOML key involved and the plugin whose
declaration it relied on.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs

from rivet_core.backends import Compression
from rivet_core.capabilities import WriteCommitProtocol
from rivet_core.config.loader import LoadedConfig
from rivet_core.config.models import ExportConfig, effective_tuning
from rivet_core.config.values import format_bytes, parse_size
from rivet_core.dialect import PIECES
from rivet_core.plan import ExportPlan
from rivet_core.plugins import Registry
from rivet_core.runner.modes import MODES
from rivet_core.specs import FormatSpec


class Severity(enum.Enum):
    REJECTED = "rejected"
    WARNING = "warning"
    INFO = "info"


@attrs.frozen(kw_only=True)
class Diagnostic:
    severity: Severity
    rule: str
    """Stable rule id, e.g. ``single-stream-no-split``."""
    export: str | None
    toml_path: str
    message: str
    hint: str | None = None
    origin: str | None = None
    """The plugin whose declaration the rule relied on."""

    def render(self) -> str:
        where = f"{self.toml_path}: " if self.toml_path else ""
        text = f"[{self.severity.value}] {where}{self.message} ({self.rule})"
        if self.origin:
            text += f" [declared by {self.origin}]"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def as_dict(self) -> dict[str, str | None]:
        return {
            "severity": self.severity.value,
            "rule": self.rule,
            "export": self.export,
            "toml_path": self.toml_path,
            "message": self.message,
            "hint": self.hint,
            "origin": self.origin,
        }


@attrs.frozen(kw_only=True)
class Plan:
    loaded: LoadedConfig
    exports: list[ExportPlan]
    diagnostics: list[Diagnostic]

    def rejected(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.REJECTED]

    def rejected_exports(self) -> set[str | None]:
        return {d.export for d in self.rejected()}


def resolve_compression(export: ExportConfig, spec: FormatSpec) -> Compression:
    """Codec and level after ``compression_profile`` (which wins) and the format's default."""
    if export.compression_profile is not None:
        codec, level = spec.profiles[export.compression_profile]
        return Compression(codec=codec, level=level)
    return Compression(codec=export.compression or spec.default_codec,
                       level=export.compression_level)


def build_plan(loaded: LoadedConfig, registry: Registry, *, only: list[str] | None = None,
               resume: bool = False) -> Plan:
    """Resolve and check every export (or only those named in ``only``); ``resume`` is
    ``rivet run --resume``."""
    config = loaded.config
    source = registry.sources[config.source.type]
    plans: list[ExportPlan] = []
    diagnostics: list[Diagnostic] = [
        Diagnostic(severity=Severity.WARNING, rule="config-warning", export=None, toml_path="",
                   message=w)
        for w in loaded.warnings
    ]
    for index, export in enumerate(config.exports):
        if only is not None and export.name not in only:
            continue
        plans.append(
            ExportPlan(
                index=index,
                config=export,
                sql=loaded.queries[export.name],
                source=source,
                source_options=config.source.options,
                format=registry.formats[export.format.type],
                destination=registry.destinations[export.destination.type],
                compression=resolve_compression(export, registry.formats[export.format.type].spec),
                max_file_bytes=parse_size(export.max_file_size)
                if export.max_file_size is not None else None,
                tuning=effective_tuning(config.source.tuning, export.tuning),
                column_types=_column_types(export.columns),
            )
        )
    for plan in plans:
        for rule in RULES:
            diagnostics.extend(rule(plan))
        if resume and not MODES[plan.config.mode].resumable(plan.config):
            diagnostics.append(_diag(
                plan, Severity.WARNING, "resume-no-checkpoint", "mode",
                "--resume only continues chunked exports with chunk_checkpoint = true; this "
                "export runs normally", "set chunk_checkpoint = true to make it resumable"))
    diagnostics.extend(_single_stdout(plans))
    diagnostics.extend(parallel_connections(plans, config.parallel_exports))
    return Plan(loaded=loaded, exports=plans, diagnostics=diagnostics)


# ------------------------------------------------------------------------------- rules

Rule = Callable[[ExportPlan], list[Diagnostic]]


def _diag(plan: ExportPlan, severity: Severity, rule: str, key: str, message: str,
          hint: str | None = None, origin: str | None = None) -> Diagnostic:
    path = f"{plan.path}.{key}" if key else plan.path
    return Diagnostic(severity=severity, rule=rule, export=plan.name, toml_path=path,
                      message=message, hint=hint, origin=origin)


def _mode_supported(plan: ExportPlan) -> list[Diagnostic]:
    mode = plan.config.mode
    if mode not in plan.source.spec.modes:
        return [_diag(plan, Severity.REJECTED, "mode-unsupported-by-source", "mode",
                      f"source {plan.source.spec.name!r} cannot run mode {mode!r}",
                      f"supported: {', '.join(sorted(plan.source.spec.modes))}",
                      plan.source.plugin.origin())]
    return []


def _single_stream_no_split(plan: ExportPlan) -> list[Diagnostic]:
    caps = plan.capabilities
    if caps.multi_file or plan.max_file_bytes is None:
        return []
    return [_diag(plan, Severity.REJECTED, "single-stream-no-split", "max_file_size",
                  f"destination {plan.destination.spec.name!r} holds a single stream, so the "
                  "output cannot be split into part files",
                  "remove max_file_size, or write to a destination that stores named files",
                  plan.destination.plugin.origin())]


def _format_destination(plan: ExportPlan) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    dest, fmt = plan.destination.spec, plan.format.spec
    if dest.accepts_formats is not None and fmt.name not in dest.accepts_formats:
        out.append(_diag(plan, Severity.REJECTED, "format-not-accepted", "format",
                         f"destination {dest.name!r} cannot store format {fmt.name!r}",
                         f"accepted: {', '.join(sorted(dest.accepts_formats))}",
                         plan.destination.plugin.origin()))
    if fmt.needs_seekable and not dest.seekable:
        out.append(_diag(plan, Severity.REJECTED, "format-needs-seekable", "format",
                         f"format {fmt.name!r} seeks back while writing, but destination "
                         f"{dest.name!r} is write-once",
                         "choose another format or destination", plan.format.plugin.origin()))
    return out


def _streaming_state(plan: ExportPlan) -> list[Diagnostic]:
    caps = plan.capabilities
    if caps.commit_protocol is not WriteCommitProtocol.STREAMING:
        return []
    out = [_diag(plan, Severity.INFO, "streaming-no-commit", "destination",
                 f"destination {plan.destination.spec.name!r} streams bytes with no commit "
                 "point: a failed run leaves a truncated stream, and no manifest is written",
                 origin=plan.destination.plugin.origin())]
    if plan.config.mode in ("incremental", "chunked"):
        out.append(_diag(plan, Severity.REJECTED, "streaming-no-state", "mode",
                         f"mode {plan.config.mode!r} records progress after files are "
                         f"committed, but {plan.destination.spec.name!r} has no commit point",
                         "use a local or object-store destination for this mode",
                         plan.destination.plugin.origin()))
    return out


def _retries_on_unsafe(plan: ExportPlan) -> list[Diagnostic]:
    caps = plan.capabilities
    if caps.retry_safe or plan.tuning.max_retries == 0:
        return []
    return [_diag(plan, Severity.WARNING, "retry-not-safe", "tuning.max_retries",
                  f"destination {plan.destination.spec.name!r} is not retry-safe, so Rivet "
                  "retries only failures that happen before the first byte is written",
                  "set tuning.max_retries = 0 to silence this",
                  plan.destination.plugin.origin())]


def _part_below_granularity(plan: ExportPlan) -> list[Diagnostic]:
    """The format cuts parts in blocks (Parquet: row groups): a smaller ``max_file_size``
    cannot be honoured, and the parts silently come out larger."""
    floor, fmt = plan.format.spec.min_part_bytes, plan.format.spec.name
    if plan.max_file_bytes is None or plan.max_file_bytes >= floor:
        return []
    return [_diag(plan, Severity.WARNING, "max-file-size-below-granularity", "max_file_size",
                  f"max_file_size {format_bytes(plan.max_file_bytes)} is below the finest "
                  f"part format {fmt!r} can cut ({format_bytes(floor)} of data at a time, "
                  "before compression): parts will be larger than the limit; the effective "
                  f"minimum is about {format_bytes(floor)}",
                  f"set max_file_size to at least {format_bytes(floor)}",
                  plan.format.plugin.origin())]


def _dialect_pieces(plan: ExportPlan) -> list[Diagnostic]:
    """The statements of the export's mode need pieces the source's dialect may lack."""
    dialect, source = plan.dialect, plan.source.spec.name
    return [_diag(plan, Severity.REJECTED, "dialect-lacks-piece", key,
                  f"{key} needs {PIECES[piece]}, which source {source!r} (dialect "
                  f"{dialect.name!r}) does not provide", hint, plan.source.plugin.origin())
            for piece, key, hint in MODES[plan.config.mode].needs(plan.config)
            if not isinstance(dialect, piece)]


RULES: list[Rule] = [
    _mode_supported,
    _dialect_pieces,
    _single_stream_no_split,
    _format_destination,
    _streaming_state,
    _retries_on_unsafe,
    _part_below_granularity,
]


def _single_stdout(plans: list[ExportPlan]) -> list[Diagnostic]:
    streaming = [p for p in plans if not p.capabilities.multi_file]
    by_dest: dict[str, list[ExportPlan]] = {}
    for plan in streaming:
        by_dest.setdefault(plan.destination.spec.name, []).append(plan)
    out = []
    for name, group in by_dest.items():
        for plan in group[1:]:
            out.append(_diag(plan, Severity.REJECTED, "single-stream-shared", "destination",
                             f"exports {group[0].name!r} and {plan.name!r} both write to the "
                             f"single stream {name!r}; their bytes would interleave",
                             "run them separately with -e NAME",
                             plan.destination.plugin.origin()))
    return out


CONNECTIONS_WARNING = 16
"""Source connections one invocation may hold at once before the planner warns. A sixth of
PostgreSQL's default ``max_connections`` (100) and about a tenth of MySQL's (151): the
server has other clients (the applications it serves, the replicas, the operators), and
more concurrent scans than that rarely make the export faster (they compete for the same
disks and cores). A server sized for more is a reason to accept the warning, not to raise
the number."""


def parallel_connections(plans: list[ExportPlan], parallel_exports: int, *,
                         key: str = "parallel_exports") -> list[Diagnostic]:
    """A warning when the exports run at once may hold more than
    :data:`CONNECTIONS_WARNING` source connections: each running export holds its own, up to
    its ``parallel`` (a chunked or ranged read); at most ``parallel_exports`` run at once, so
    at most the largest ``parallel`` values of that many exports add up. ``key`` names what
    set the number (the config key, or the command line's ``--parallel-exports``)."""
    running = min(parallel_exports, len(plans))
    if running < 2:
        return []
    widest = sorted((p.config.parallel for p in plans), reverse=True)[:running]
    bound = sum(widest)
    if bound <= CONNECTIONS_WARNING:
        return []
    return [Diagnostic(
        severity=Severity.WARNING, rule="parallel-connections", export=None, toml_path=key,
        message=f"{running} exports run at once, each on its own source connection(s) (its "
                f"`parallel`): up to {bound} connections to the source at once, more than "
                f"{CONNECTIONS_WARNING}",
        hint="lower parallel_exports or the exports' parallel, unless the source server is "
             "sized for it (its max_connections, and its other clients)")]


def _column_types(columns: dict[str, str]) -> dict[str, Any]:
    """``[exports.columns]`` overrides as Arrow types; pyarrow is loaded only for a config
    that has some."""
    if not columns:
        return {}
    from rivet_core.types import parse_override

    return {name: parse_override(text) for name, text in columns.items()}
