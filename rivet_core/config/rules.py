"""Cross-field rules of the core config keys, checked after structuring.

Each check reports through ``add(toml_path, message, hint)`` so every problem is collected;
nothing here raises on bad input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

from rivet_core.config.converter import did_you_mean
from rivet_core.config.models import ChecksConfig, ExportConfig
from rivet_core.config.quality import check_quality_config
from rivet_core.config.values import parse_size
from rivet_core.plugins import Registry
from rivet_core.runner.modes import MODES

Add = Callable[..., None]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
MAX_EXPORT_NAME = 100
_EXPORT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def table_parts(table: str) -> list[str] | None:
    """``schema.name`` split into identifiers, or None if it is not one or two plain idents."""
    parts = table.split(".")
    if not 1 <= len(parts) <= 2 or not all(_IDENT.match(p) for p in parts):
        return None
    return parts


def base_sql(export: ExportConfig, config_dir: Path) -> str | None:
    """The export's SQL before any mode wraps it, or None if the query keys are invalid."""
    if export.query is not None:
        return export.query.strip().rstrip(";").strip()
    if export.query_file is not None:
        try:
            text = read_query_file(export.query_file, config_dir)
        except ValueError:
            return None
        return text.strip().rstrip(";").strip()
    if export.table is not None and table_parts(export.table):
        return f"SELECT * FROM {export.table}"
    return None


def read_query_file(query_file: str, config_dir: Path) -> str:
    """The text of ``query_file``; ``ValueError`` saying why it cannot be the export's SQL:
    outside the config's directory, missing, unreadable, not UTF-8, or holding a NUL byte
    (libpq and the MySQL protocol end the statement there, or refuse it)."""
    candidate = Path(query_file)
    if "\x00" in query_file:
        raise ValueError("contains a NUL character")
    if candidate.is_absolute():
        raise ValueError("must be a path relative to the config file's directory")
    if ".." in candidate.parts:
        raise ValueError("must not contain '..'")
    try:
        # Python 3.11 raises RuntimeError for a symlink loop.
        resolved = (config_dir / candidate).resolve()
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"cannot be read: {exc}") from None
    if not resolved.is_relative_to(config_dir.resolve()):
        raise ValueError("resolves outside the config file's directory")
    try:
        # is_file() lets some OSErrors through: a name too long, a directory denied.
        if not resolved.is_file():
            raise ValueError(f"file {query_file!r} does not exist")
        data = resolved.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 text (byte {data[exc.start]:#04x} at offset "
                         f"{exc.start})") from None
    if "\x00" in text:
        raise ValueError(f"contains a NUL byte at offset {data.index(0)}")
    return text


def check_export(
    export: ExportConfig, path: str, registry: Registry, config_dir: Path, add: Add
) -> None:
    if not _EXPORT_NAME.match(export.name):
        add(f"{path}.name", f"{export.name!r} is not a usable export name",
            "use letters, digits, '_', '-' and '.', starting with a letter, digit or '_'")
    elif len(export.name) > MAX_EXPORT_NAME:
        add(f"{path}.name", f"must be at most {MAX_EXPORT_NAME} characters, got "
            f"{len(export.name)}: every file name embeds it (with the run id, chunk and part "
            "numbers), and file systems cap a name at 255 bytes")

    given = [k for k in ("query", "query_file", "table") if getattr(export, k) is not None]
    if len(given) != 1:
        add(path, "specify exactly one of 'query', 'query_file' or 'table'"
            + (f" (got {', '.join(given)})" if given else ""))
    if export.query is not None and not export.query.strip():
        add(f"{path}.query", "must not be empty")
    if export.query_file is not None:
        try:
            read_query_file(export.query_file, config_dir)
        except ValueError as exc:
            add(f"{path}.query_file", str(exc))
    if export.table is not None and table_parts(export.table) is None:
        add(f"{path}.table", f"{export.table!r} must be `name` or `schema.name` "
            "(letters, digits and '_')")

    _check_compression(export, path, registry, add)
    if export.quality is not None:
        check_quality_config(export.quality, f"{path}.quality", add)
    if not (math.isfinite(export.shape_drift_factor) and export.shape_drift_factor >= 0):
        add(f"{path}.shape_drift_factor", "must be a finite number of at least 0 (0 turns "
            f"the check off), got {export.shape_drift_factor}")

    if export.max_file_size is not None:
        try:
            parse_size(export.max_file_size)
        except ValueError as exc:
            add(f"{path}.max_file_size", str(exc))

    for column, text in export.columns.items():
        # pyarrow parses the type: loaded only for a config that overrides a column's type.
        from rivet_core.types import parse_override

        try:
            parse_override(text)
        except ValueError as exc:
            add(f"{path}.columns.{column}", str(exc))

    if export.tuning is not None:
        check_tuning(export.tuning, f"{path}.tuning", add)

    _check_mode_keys(export, path, add)

    for key, options in (("format", export.format.options), ("destination",
                                                              export.destination.options)):
        if isinstance(options, ChecksConfig):
            for sub, message in options.config_issues(config_dir):
                add(f"{path}.{key}.{sub}", message)


def _check_compression(export: ExportConfig, path: str, registry: Registry, add: Add) -> None:
    registered = registry.formats.get(export.format.type)
    if registered is None:
        return
    spec = registered.spec
    codec = export.compression
    if codec is not None and codec not in spec.codecs:
        add(f"{path}.compression", f"{codec!r} is not supported by format {spec.name!r} "
            f"(supported: {', '.join(sorted(spec.codecs))})")
        return
    if export.compression_profile is not None and export.compression_profile not in spec.profiles:
        add(f"{path}.compression_profile",
            f"{export.compression_profile!r} is not defined by format {spec.name!r} "
            f"(defined: {', '.join(sorted(spec.profiles)) or 'none'})")
    if export.compression_level is not None:
        effective = codec or spec.default_codec
        bounds = spec.level_ranges.get(effective)
        if bounds is None:
            add(f"{path}.compression_level", f"codec {effective!r} takes no level")
        elif not bounds[0] <= export.compression_level <= bounds[1]:
            add(f"{path}.compression_level", f"must be {bounds[0]}..{bounds[1]} for "
                f"{effective!r}, got {export.compression_level}")


def _check_mode_keys(export: ExportConfig, path: str, add: Add) -> None:
    """The export's mode checks its own keys; keys of another mode are errors (a forgotten
    key hides a misunderstanding)."""
    mode = MODES.get(export.mode)
    if mode is None:
        choices = ", ".join(repr(name) for name in MODES)
        add(f"{path}.mode", f"must be one of {choices}, got {export.mode!r}",
            did_you_mean(export.mode, list(MODES)))
        return
    for other in MODES.values():
        if other is mode:
            continue
        set_keys = [key for key in other.keys if getattr(export, key) is not None]
        set_keys += [key for key, default in other.settings if getattr(export, key) != default]
        for key in set_keys:
            add(f"{path}.{key}", f"only applies to mode = \"{other.name}\" "
                f"(this export's mode is {export.mode!r})")

    if export.parallel < 1:
        add(f"{path}.parallel", f"must be at least 1, got {export.parallel}")
    elif export.parallel > 1 and not mode.parallel:
        names = " and ".join(f'"{m.name}"' for m in MODES.values() if m.parallel)
        add(f"{path}.parallel", f"applies to mode = {names} (this export's mode is "
            f"{export.mode!r}, whose rows are read in order)")
    mode.check(export, path, add)


TUNING_BOUNDS: dict[str, tuple[float, float]] = {
    "batch_size": (1, 10_000_000),
    "throttle_ms": (0, 3_600_000),
    "statement_timeout_s": (0, 7 * 86_400),
    "lock_timeout_s": (0, 7 * 86_400),
    "max_retries": (0, 100),
    "retry_backoff_ms": (0, 3_600_000),
    "max_batch_memory_mb": (1, 1 << 16),
}
"""Inclusive bounds of each tuning value: beyond them a value is a mistake (a week-long
statement timeout, an hour between batches), and a driver would overflow on it."""


def check_tuning(tuning: object, path: str, add: Add) -> None:
    """The values of a ``tuning`` table (``[source.tuning]`` or ``[exports.tuning]``)."""
    for key, (low, high) in TUNING_BOUNDS.items():
        value = getattr(tuning, key)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            add(f"{path}.{key}", f"must be a finite number, got {value}")
        elif value < low:
            add(f"{path}.{key}", f"must be at least {low:,}, got {value:,}")
        elif value > high:
            add(f"{path}.{key}", f"must be at most {high:,}, got {value:,}")


def check_export_set(exports: list[tuple[int, ExportConfig]], add: Add) -> None:
    seen: dict[str, int] = {}
    for index, export in exports:
        if export.name in seen:
            add(f"exports[{index}].name",
                f"duplicate export name {export.name!r} (also exports[{seen[export.name]}]); "
                "state is keyed by name")
        else:
            seen[export.name] = index
