"""The typed config: attrs models whose attribute names are exactly the TOML keys.

Each field carries its documentation in ``metadata["doc"]``; the config reference in
``docs/`` is generated from it (``python -m rivet_core.config.reference``). Plugin-owned
tables (``[source]``, ``[exports.format]``, ``[exports.destination]``) keep only ``type``
(and the source's ``tuning``) here; their other keys belong to the plugin's ``config_cls``.
Cross-field rules live in :mod:`rivet_core.config.rules`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import attrs

from rivet_core.config.fields import doc
from rivet_core.config.quality import QualityConfig

if TYPE_CHECKING:
    from rivet_core.notify import NotificationsConfig

CursorMode = Literal["single_column", "coalesce"]
NullCursorPolicy = Literal["fail", "include", "exclude"]
TimeColumnType = Literal["timestamp", "unix"]
Profile = Literal["fast", "balanced", "safe"]
CompressionProfile = Literal["none", "fast", "balanced", "compact"]
DriftPolicy = Literal["warn", "continue", "fail"]


@runtime_checkable
class ChecksConfig(Protocol):
    """Optional behaviour of a plugin ``config_cls``: cross-field rules of its own keys,
    checked at load time with the rest of the config."""

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """Return ``(key, message)`` for every problem; ``key`` is relative to the table."""


@runtime_checkable
class ChecksReferences(Protocol):
    """Optional behaviour of a source's ``config_cls``: the environment variables and files
    its connection reads, checked only by commands that connect (not ``rivet validate``)."""

    def reference_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """Return ``(key, message)`` for every unset variable or missing file."""


# ---------------------------------------------------------------------------------- tuning


@attrs.frozen(kw_only=True)
class Tuning:
    """``tuning`` table (under ``[source]`` or an export): how gently to read.
    An export's value wins over the source's, field by field, which wins over the profile."""

    profile: Profile | None = doc(
        "Preset for the other fields: `fast` (big batches, no timeouts), `balanced` (default), "
        "`safe` (small batches, pauses between batches, short timeouts).",
        default=None,
    )
    batch_size: int | None = doc("Rows fetched per round trip and per Arrow batch.", default=None)
    throttle_ms: int | None = doc(
        "Pause after each batch, in milliseconds, to spread load on a busy server.", default=None
    )
    statement_timeout_s: float | None = doc(
        "Server-side timeout for each statement, in seconds (0 = none).", default=None
    )
    lock_timeout_s: float | None = doc(
        "PostgreSQL lock wait timeout, in seconds (0 = none).", default=None
    )
    max_retries: int | None = doc(
        "Retries of a unit of work after a transient error, each on a fresh connection.",
        default=None,
    )
    retry_backoff_ms: int | None = doc(
        "First retry delay in milliseconds; doubles each attempt, with jitter.", default=None
    )
    max_batch_memory_mb: int | None = doc(
        "Cap on the Arrow memory of one batch; wide rows shrink the batch to fit.", default=None
    )
    retry_timeouts: bool | None = doc(
        "Also retry a statement that hit `statement_timeout_s` (default false: a query that "
        "ran out of time once usually does again).",
        default=None,
    )


@attrs.frozen(kw_only=True)
class EffectiveTuning:
    """Tuning after profile and overrides are applied: every value concrete."""

    profile: str
    batch_size: int
    throttle_ms: int
    statement_timeout_s: float
    lock_timeout_s: float
    max_retries: int
    retry_backoff_ms: int
    max_batch_memory_mb: int | None
    retry_timeouts: bool = False


PROFILES: dict[str, EffectiveTuning] = {
    "fast": EffectiveTuning(
        profile="fast", batch_size=50_000, throttle_ms=0, statement_timeout_s=0,
        lock_timeout_s=0, max_retries=1, retry_backoff_ms=1_000, max_batch_memory_mb=None,
    ),
    "balanced": EffectiveTuning(
        profile="balanced", batch_size=10_000, throttle_ms=0, statement_timeout_s=300,
        lock_timeout_s=30, max_retries=3, retry_backoff_ms=2_000, max_batch_memory_mb=None,
    ),
    "safe": EffectiveTuning(
        profile="safe", batch_size=2_000, throttle_ms=200, statement_timeout_s=120,
        lock_timeout_s=10, max_retries=5, retry_backoff_ms=5_000, max_batch_memory_mb=256,
    ),
}


def effective_tuning(*layers: Tuning | None) -> EffectiveTuning:
    """Merge tuning tables; later layers win field by field, then fill from the profile."""
    chosen: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        for field in attrs.fields(Tuning):
            value = getattr(layer, field.name)
            if value is not None:
                chosen[field.name] = value
    base = PROFILES[chosen.get("profile", "balanced")]
    return attrs.evolve(base, **{k: v for k, v in chosen.items() if k != "profile"})


# -------------------------------------------------------------------- plugin-owned tables


@attrs.frozen(kw_only=True)
class SourceConfig:
    """``[source]``: the database every export reads from."""

    type: str = doc("Source backend: `postgres` or `mysql` (or a plugin's).")
    tuning: Tuning | None = doc("Source-wide tuning; see `tuning`.", default=None)
    options: Any = doc("The backend's own keys (connection settings).", default=None)


@attrs.frozen(kw_only=True)
class FormatConfig:
    """``format = "parquet"``, or an ``[exports.format]`` table with ``type`` and the
    format's own keys."""

    type: str = doc("Format backend: `parquet` or `csv` (or a plugin's).")
    options: Any = doc("The format's own keys.", default=None)


@attrs.frozen(kw_only=True)
class DestinationConfig:
    """``[exports.destination]``: where the files of one export go."""

    type: str = doc("Destination backend: `local`, `stdout`, `s3`, `gcs`, `azure` (or a "
                    "plugin's).")
    options: Any = doc("The destination's own keys (path, bucket, ...).", default=None)


# ---------------------------------------------------------------------------------- trust


@attrs.frozen(kw_only=True)
class MetaColumns:
    """``meta_columns`` table of an export: columns appended after the query's, in the
    order `_rivet_exported_at`, `_rivet_row_hash`, `_rivet_run_id`. A query column with
    one of these names is an error when that column is on."""

    exported_at: bool = doc(
        "Append `_rivet_exported_at` (timestamp[us, tz=UTC]): when the run started, the same "
        "value in every row the run writes.",
        default=False,
    )
    row_hash: bool = doc(
        "Append `_rivet_row_hash` (int64): a 64-bit hash of the row's query columns, in "
        "order, the same on every run and machine (algorithm in docs/row-hash.md). The "
        "unsigned XXH64 is stored as the int64 with the same bits, since most warehouses "
        "have no unsigned 64-bit type.",
        default=False,
    )
    run_id: bool = doc(
        "Append `_rivet_run_id` (string): the id of the run that wrote the row.",
        default=False,
    )

    def any(self) -> bool:
        """Whether any meta column is on."""
        return self.exported_at or self.row_hash or self.run_id


# ---------------------------------------------------------------------------------- export


@attrs.frozen(kw_only=True)
class ExportConfig:
    """One ``[[exports]]`` entry: a query, how to read it, and where its files go."""

    name: str = doc(
        "Unique name; keys all state (cursor, runs, files) and fills `{export}` in paths."
    )
    query: str | None = doc("SQL to export. Exactly one of `query`, `query_file`, `table`.",
                            default=None)
    query_file: str | None = doc(
        "Path of a file holding the SQL, relative to the config file's directory and inside it.",
        default=None,
    )
    table: str | None = doc(
        "`name` or `schema.name`: exports `SELECT * FROM` that table.", default=None
    )
    mode: str = doc(
        "`full` (everything, every run), `incremental` (rows after the stored cursor), "
        "`chunked` (key ranges, resumable) or `time_window` (the last N days).",
        default="full",
    )
    format: FormatConfig = doc("Output format: `parquet` or `csv`, or a table with options.")
    compression: str | None = doc(
        "Codec: parquet `zstd` (default) `snappy` `gzip` `lz4` `brotli` `none`; "
        "csv `none` (default) `gzip` `zstd`.",
        default=None,
    )
    compression_level: int | None = doc(
        "Codec level (zstd 1..22, gzip 1..9, brotli 0..11).", default=None
    )
    compression_profile: CompressionProfile | None = doc(
        "Preset codec and level; wins over `compression` and `compression_level`.",
        default=None,
    )
    max_file_size: str | int | None = doc(
        "Roll to a new part file once a file reaches this size (`\"256MB\"`, `\"1GB\"`; "
        "binary units).",
        default=None,
    )
    skip_empty: bool = doc(
        "Report a run that read zero rows as `skipped` instead of `success`.", default=False
    )
    destination: DestinationConfig = doc("Where files go; see the destination pages.")
    tuning: Tuning | None = doc("Tuning for this export; wins over `[source.tuning]`.",
                                default=None)
    quality: QualityConfig | None = doc(
        "Quality gates the run's rows must pass before the run is certified (see "
        "docs/trust.md): `row_count_min`, `row_count_max`, `null_ratio_max`, "
        "`unique_columns`, `bounds`, `freshness`, each `fail` or `warn`.",
        default=None,
    )
    meta_columns: MetaColumns | None = doc(
        "Columns Rivet appends to every row: `{ exported_at = true, row_hash = true, "
        "run_id = true }` (see docs/trust.md).",
        default=None,
    )
    on_schema_drift: DriftPolicy = doc(
        "When the query's columns differ from the last successful run's (added, removed, "
        "retyped, nullability), checked before the first file: `warn` (default: reported, "
        "the run goes on), `continue` (recorded only) or `fail` (nothing is written).",
        default="warn",
    )
    shape_drift_factor: float = doc(
        "Warn when a text or binary column's widest value grows past this factor of the "
        "widest seen before (0 turns it off).",
        default=2.0,
    )
    columns: dict[str, str] = doc(
        "Column → type overrides for types the catalog cannot decide, e.g. "
        "`amount = \"decimal(18,4)\"`.",
        factory=dict,
    )

    # incremental
    cursor_column: str | None = doc(
        "incremental: column whose value orders rows; each run exports rows strictly after "
        "the stored cursor. Must be a column of the query's result.",
        default=None,
    )
    incremental_cursor_mode: CursorMode = doc(
        "incremental: `single_column`, or `coalesce` to order by "
        "`COALESCE(cursor_column, cursor_fallback_column)`.",
        default="single_column",
    )
    cursor_fallback_column: str | None = doc(
        "incremental, `coalesce` mode: column used where `cursor_column` is NULL.",
        default=None,
    )
    cursor_lag: str | int | None = doc(
        "incremental: only export rows whose cursor is at most `now() - lag` on the server "
        "(`\"5m\"`, `\"30s\"`), so rows of transactions that commit late are not skipped. "
        "For timestamp cursors.",
        default=None,
    )
    on_null_cursor: NullCursorPolicy = doc(
        "incremental: rows whose cursor is NULL cannot be ordered. `fail` (default) fails "
        "the run before anything is committed; `include` exports them on every run; "
        "`exclude` never exports them.",
        default="fail",
    )

    # time_window
    time_column: str | None = doc("time_window: the timestamp (or epoch) column.",
                                  default=None)
    time_column_type: TimeColumnType = doc(
        "time_window: `timestamp` (date/timestamp column) or `unix` (epoch seconds).",
        default="timestamp",
    )
    days_window: int | None = doc(
        "time_window: export rows with `time_column` at or after UTC midnight N days ago.",
        default=None,
    )

    # chunked
    chunk_column: str | None = doc(
        "chunked: integer (or, with `chunk_by_days`, date/timestamp) column to split on. "
        "Optional with `table`: the table's single-column integer primary key is used.",
        default=None,
    )
    chunk_size: int | None = doc(
        "chunked: width of each key range (with sparse keys, ranges are merged so each "
        "chunk holds about this many rows). Default: for a `table` export the catalog has "
        "statistics for, sized so each chunk reads about 32 MiB of the table (1000 to "
        "250000 keys); otherwise 100000 keys.",
        default=None,
    )
    chunk_count: int | None = doc(
        "chunked: split into about this many chunks instead of `chunk_size` wide ones.",
        default=None,
    )
    chunk_by_days: int | None = doc(
        "chunked: split a date/timestamp column into ranges of this many days.",
        default=None,
    )
    parallel: int = doc(
        "chunked: chunks read at once, each worker on its own connection. full: connections "
        "one `table` export may be read over, in ranges (PostgreSQL: block ranges sharing one "
        "snapshot; MySQL: primary-key ranges), into the same file stream.",
        default=1,
    )
    chunk_checkpoint: bool = doc(
        "chunked: record every chunk in the state store so `rivet run --resume` continues an "
        "interrupted run without redoing completed chunks.",
        default=False,
    )
    chunk_max_attempts: int | None = doc(
        "chunked with checkpoint: claims of one chunk in a run before it is left `failed` "
        "(default `max_retries + 1`); `--resume` gives failed chunks a new claim.",
        default=None,
    )


# ----------------------------------------------------------------------------------- state

STATE_URL_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@attrs.frozen(kw_only=True)
class StateConfig:
    """``[state]``: where the state store lives (docs/state.md). Without ``url`` or
    ``url_env``, the environment variable ``RIVET_STATE_URL`` names it; without that, it is
    the SQLite file ``.rivet_state.db`` beside the config."""

    url: str | None = doc(
        "PostgreSQL URL of a state store several machines share, "
        "`postgresql://user@host:5432/db` (add `?sslmode=verify-full` off this machine). "
        "Wins over `RIVET_STATE_URL`. Keep the password out of the file: `url_env`, "
        "`${VAR}` or `~/.pgpass`.",
        default=None,
    )
    url_env: str | None = doc(
        "Name of the environment variable holding that URL; wins over `RIVET_STATE_URL`. "
        "Not with `url`.",
        default=None,
    )
    schema: str = doc(
        "PostgreSQL schema of Rivet's state tables, created on first use. Projects sharing "
        "one database each need their own: export names key all state.",
        default="rivet",
    )

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues = []
        if self.url is not None and self.url_env is not None:
            issues.append(("url_env", "give `url` or `url_env`, not both"))
        if self.url is not None and not self.url.startswith(STATE_URL_SCHEMES):
            issues.append(("url", "expected a postgresql:// URL"))
        if self.url_env is not None and not _ENV_NAME.fullmatch(self.url_env):
            issues.append(("url_env", f"{self.url_env!r} is not an environment variable "
                                      "name"))
        if not _SCHEMA_NAME.fullmatch(self.schema):
            issues.append(("schema", f"{self.schema!r} is not a plain identifier (letters, "
                                     "digits and _, at most 63, not starting with a digit)"))
        return issues


MAX_PARALLEL_EXPORTS = 32
"""The most exports one invocation runs at once (``parallel_exports``): each holds its own
source connection(s), threads and file buffers, and past a few dozen a source server or the
machine is the bottleneck, not Rivet."""


@attrs.frozen(kw_only=True)
class Config:
    """A whole ``rivet.toml`` after loading: validated, substituted, resolved."""

    path: Path
    source: SourceConfig
    exports: list[ExportConfig]
    notifications: NotificationsConfig | None = None
    """``[notifications]``: where a run's outcome is sent (:mod:`rivet_core.notify`)."""
    state: StateConfig | None = None
    """``[state]``: where the state store lives (:mod:`rivet_core.state.backend`)."""
    parallel_exports: int = doc(
        "Exports `rivet run` runs at once, each on its own thread and its own source "
        f"connection(s), started in config order (1 to {MAX_PARALLEL_EXPORTS}; "
        "`--parallel-exports N` wins). 1 runs them one after another: one export reads at a "
        "time, the next starting while a small one finishes its files "
        "([cli](cli.md#many-exports-at-once)).",
        default=1,
    )

    @property
    def directory(self) -> Path:
        """The config file's directory: anchors ``query_file`` and the state store."""
        return self.path.parent

    def export(self, name: str) -> ExportConfig:
        for export in self.exports:
            if export.name == name:
                return export
        raise KeyError(name)
