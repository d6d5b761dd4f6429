"""Reading ``rivet.toml``: parse, substitute ``${VAR}``, structure, check, report all at once.

The pipeline is: bytes → UTF-8 text → TOML (``tomllib``), nested at most
:data:`MAX_DEPTH` levels → ``${NAME}`` substitution inside string values (a ``--param`` wins
over the environment; an unset name is an error; no value may hold a NUL character) →
structuring with the one converter, plugin tables in two steps (core keys, then the plugin's
``config_cls``) → the cross-field rules of :mod:`rivet_core.config.rules`. Every problem found
along the way is collected and raised together as one :class:`~rivet_core.errors.ConfigError`.

Commands that only read state use :func:`load_export_names`: the same reading and the same
shape checks of ``source`` and ``exports``, without resolving anything else; and
:func:`load_state_config` for the ``[state]`` table alone.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote

from rivet_core.config import rules
from rivet_core.config.connection import ConnectionConfig
from rivet_core.config.converter import (
    KeyProblem,
    did_you_mean,
    flatten,
    join,
    make_converter,
    toml_kind,
)
from rivet_core.config.models import (
    MAX_PARALLEL_EXPORTS,
    ChecksConfig,
    ChecksReferences,
    Config,
    DestinationConfig,
    ExportConfig,
    FormatConfig,
    SourceConfig,
    StateConfig,
    Tuning,
)
from rivet_core.errors import ConfigError, ConfigIssue
from rivet_core.plugins import Registry

_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_TOP_LEVEL = ("source", "exports", "notifications", "parallel_exports", "state")
_TUNING_KEYS = {f.name for f in attrs.fields(Tuning)}
MAX_DEPTH = 32
"""How deep tables and arrays may nest. Rivet's own keys nest four levels
(``exports[0].destination.path``); the cap keeps every later walk of the document
(substitution, structuring, error messages) far from the interpreter's recursion limit."""


@attrs.frozen(kw_only=True)
class LoadedConfig:
    """The result of loading: the config, the SQL of each export, and load-time warnings."""

    config: Config
    queries: dict[str, str]
    warnings: list[str]


class _Issues:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[ConfigIssue] = []

    def add(self, path: str, message: str, hint: str | None = None, *,
            missing_backend: bool = False) -> None:
        self.items.append(ConfigIssue(self.file, path, message, hint,
                                      missing_backend=missing_backend))


def load_config(
    path: str | Path,
    registry: Registry,
    *,
    params: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    connect: bool = True,
) -> LoadedConfig:
    """Load and validate a config file; raise :class:`ConfigError` listing every problem.

    ``connect=False`` is for commands that never open the source (``rivet validate`` reads
    destinations only): the environment variables and files the source's connection points
    at need not exist then, so a monitoring job can run without database credentials."""
    path = Path(path)
    issues = _Issues(path.name)
    params = dict(params or {})
    environ = os.environ if environ is None else environ
    raw = _read_document(path)
    state_as_written = raw.get("state")

    used: set[str] = set()
    # Unset ${VAR}s inside [source] only matter to a command that connects.
    unused_source = _Issues(path.name)
    nul = _Issues(path.name)
    raw = {key: _substitute(value, key, params, environ, used,
                            unused_source if key == "source" and not connect else issues, nul)
           for key, value in raw.items()}
    if nul.items:
        # Stop before any check or plugin sees the value: a path, a URL or SQL holding a NUL
        # is refused by the OS and the drivers with an exception far from the config.
        raise ConfigError([*issues.items, *nul.items])
    warnings = [
        f"--param {name!r} was not referenced by any ${{{name}}} placeholder in {path.name}"
        for name in sorted(set(params) - used)
    ]

    config_dir = path.resolve().parent
    converter = make_converter()
    _register_plugin_tables(converter, registry)

    _check_top_level(raw, issues)
    source = _structure_source(raw, converter, issues, config_dir, connect)
    exports = _structure_exports(raw, converter, issues)
    notifications = None
    if "notifications" in raw:
        from rivet_core.notify import check_notification_references, structure_notifications

        notifications = structure_notifications(raw["notifications"], converter,
                                                "notifications", issues.add)
        if connect and notifications is not None:
            check_notification_references(notifications, "notifications", issues.add,
                                          config_dir)
    parallel_exports = _parallel_exports(raw, issues)
    state = _structure_state(raw, converter, issues, config_dir)
    queries: dict[str, str] = {}
    for index, export in exports:
        rules.check_export(export, f"exports[{index}]", registry, config_dir, issues.add)
        sql = rules.base_sql(export, config_dir)
        if sql is not None and export.query_file is not None:
            # Inline values were substituted with the rest of the file; a query file's
            # text is substituted here, once.
            sql = _substitute_text(
                sql, f"exports[{index}].query_file", params, environ, used, issues, issues
            )
        if sql is not None:
            queries[export.name] = sql
    rules.check_export_set(exports, issues.add)
    if issues.items:
        raise ConfigError(issues.items)
    assert source is not None
    config = Config(path=path.resolve(), source=source, exports=[e for _, e in exports],
                    notifications=notifications, parallel_exports=parallel_exports,
                    state=state)
    if isinstance(source.options, ConnectionConfig) and source.options.plaintext_password():
        warnings.append(
            f"{path.name}: source holds a plaintext password; prefer password_env, url_env "
            "or url_file"
        )
    if _plaintext_password(state_as_written):
        warnings.append(f"{path.name}: state.url holds a plaintext password; prefer url_env")
    return LoadedConfig(config=config, queries=queries, warnings=warnings)


def load_export_names(path: str | Path) -> tuple[Path, list[str]]:
    """The config's directory and export names, for commands that read only state
    (``rivet state``, ``journal``, ``metrics``): no ``${VAR}`` needs to be set and no
    backend to be installed, but the file must be one :func:`load_config` could read —
    readable, UTF-8, TOML, a ``[source]`` table, ``[[exports]]`` tables with string names,
    no NUL — and each problem is reported with the message :func:`load_config` gives it."""
    path = Path(path)
    raw = _read_document(path)
    issues = _Issues(path.name)
    nul = _Issues(path.name)
    # The substitution walk finds NULs; unset ${VAR}s do not matter here.
    for key, value in raw.items():
        _substitute(value, key, {}, {}, set(), _Issues(path.name), nul)
    if nul.items:
        raise ConfigError(nul.items)
    _check_top_level(raw, issues)
    if "source" not in raw:
        _source_missing(issues)
    elif not isinstance(raw["source"], dict):
        issues.add("source", _not_a_table(raw["source"]))
    converter = make_converter()
    names = []
    for index, entry in enumerate(_export_tables(raw, issues)):
        if "name" not in entry:
            issues.add(f"exports[{index}].name", "required field missing")
            continue
        try:
            names.append(converter.structure(entry["name"], str))
        except TypeError as exc:
            issues.add(f"exports[{index}].name", str(exc))
    if issues.items:
        raise ConfigError(issues.items)
    return path.resolve().parent, names


def load_state_config(path: str | Path,
                      environ: Mapping[str, str] | None = None) -> StateConfig | None:
    """The ``[state]`` table of a config file (None when it has none), ``${VAR}``s
    substituted from the environment, checked as :func:`load_config` checks it; for the
    commands that read only state."""
    path = Path(path)
    raw = _read_document(path)
    if "state" not in raw:
        return None
    issues = _Issues(path.name)
    nul = _Issues(path.name)
    value = _substitute(raw["state"], "state", {}, os.environ if environ is None else environ,
                        set(), issues, nul)
    state = _structure_state({"state": value}, make_converter(), issues,
                             path.resolve().parent)
    if issues.items or nul.items:
        raise ConfigError([*issues.items, *nul.items])
    return state


# ----------------------------------------------------------------------------- reading


def _read_document(path: Path) -> dict[str, Any]:
    """The parsed TOML of a config file, or a :class:`ConfigError` naming the file: missing,
    unreadable, not UTF-8, not TOML, or nested deeper than :data:`MAX_DEPTH`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [ConfigIssue(str(path), "", "config file not found")],
            hint="check the path given to -c/--config",
        ) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), "", f"cannot read config file: {exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(
            path.name, "", f"cannot read config file: not UTF-8 text (byte "
            f"{data[exc.start]:#04x} at offset {exc.start})")], hint="save it as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(path.name, "", f"invalid TOML: {exc}")]) from None
    except ValueError:
        # Not a TOMLDecodeError: int() refused an integer of more than 4300 digits.
        raise ConfigError([ConfigIssue(path.name, "", "invalid TOML: an integer has too many "
                                       "digits")]) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError([ConfigIssue(path.name, "", f"invalid TOML: nested more than "
                                       f"{MAX_DEPTH} levels deep")]) from None
    deep = _too_deep(raw)
    if deep is not None:
        raise ConfigError([ConfigIssue(path.name, deep,
                                       f"nested more than {MAX_DEPTH} levels deep")])
    return raw


def _too_deep(document: dict[str, Any]) -> str | None:
    """The TOML path of the first table or array nested deeper than :data:`MAX_DEPTH` (dotted
    keys nest without limit in TOML), found without recursion; None if there is none."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict):
            children = [(v, join(path, str(k))) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(v, join(path, i)) for i, v in enumerate(value)]
        else:
            continue
        if depth >= MAX_DEPTH and children:
            return path
        stack.extend((child, where, depth + 1) for child, where in children)
    return None


def _check_top_level(raw: dict[str, Any], issues: _Issues) -> None:
    for key in raw:
        if key not in _TOP_LEVEL:
            issues.add(key, "unknown key", did_you_mean(key, list(_TOP_LEVEL)))


def _parallel_exports(raw: dict[str, Any], issues: _Issues) -> int:
    """The top-level ``parallel_exports`` (1 when absent or wrong, the problem reported)."""
    value = raw.get("parallel_exports", 1)
    if isinstance(value, bool) or not isinstance(value, int):
        issues.add("parallel_exports",
                   f"expected an integer, got {toml_kind(type(value).__name__)}")
        return 1
    if not 1 <= value <= MAX_PARALLEL_EXPORTS:
        issues.add("parallel_exports",
                   f"must be from 1 to {MAX_PARALLEL_EXPORTS}, got {value}",
                   "1 runs the exports one after another; each export run at once holds "
                   "its own source connection(s)")
        return 1
    return value


def _source_missing(issues: _Issues) -> None:
    issues.add("source", "required table missing", "add a [source] table with a type")


def _not_a_table(value: Any) -> str:
    return f"expected a table, got {toml_kind(type(value).__name__)}"


def _export_tables(raw: dict[str, Any], issues: _Issues) -> list[dict[str, Any]]:
    """The ``[[exports]]`` tables, or [] with the problem reported."""
    if "exports" not in raw:
        issues.add("exports", "required: at least one [[exports]] entry", None)
        return []
    entries = raw["exports"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        issues.add("exports", "must be an array of tables: write [[exports]] entries")
        return []
    if not entries:
        issues.add("exports", "at least one export must be defined")
    return entries


# ------------------------------------------------------------------------ substitution


def _substitute(
    value: Any,
    path: str,
    params: Mapping[str, str],
    environ: Mapping[str, str],
    used: set[str],
    issues: _Issues,
    nul: _Issues,
) -> Any:
    """``value`` with ``${NAME}`` replaced in every string (unset names reported to
    ``issues``); every string and key holding a NUL is reported to ``nul``."""
    if isinstance(value, str):
        return _substitute_text(value, path, params, environ, used, issues, nul)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if "\x00" in k:
                # json.dumps writes the key as TOML would quote it, with \u0000 visible.
                nul.add(join(path, json.dumps(k)), "key contains a NUL character (\\u0000)")
            out[k] = _substitute(v, join(path, k), params, environ, used, issues, nul)
        return out
    if isinstance(value, list):
        return [
            _substitute(v, join(path, i), params, environ, used, issues, nul)
            for i, v in enumerate(value)
        ]
    return value


def _substitute_text(
    text: str,
    path: str,
    params: Mapping[str, str],
    environ: Mapping[str, str],
    used: set[str],
    issues: _Issues,
    nul: _Issues,
) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if name in params:
            used.add(name)
            return params[name]
        if name in environ:
            return environ[name]
        issues.add(
            path,
            f"${{{name}}}: environment variable {name!r} is not set",
            f"export {name}=... or pass --param {name}=...",
        )
        return match.group(0)

    result = _VAR.sub(replace, text)
    if "\x00" in result:
        nul.add(path, "contains a NUL character (\\u0000)")
    return result


# -------------------------------------------------------------------------- structuring


class _MissingBackend(KeyProblem):
    """A ``type`` naming a backend the registry does not have: not installed, failed to
    load, or refused. Kept apart from other key problems so the issue it becomes is marked
    (the command then exits :attr:`~rivet_core.errors.ExitCode.PLUGIN`)."""


def _register_plugin_tables(converter: cattrs.Converter, registry: Registry) -> None:
    def plugin_options(value: Any, kind: str, core_keys: tuple[str, ...]) -> tuple[str, Any, dict]:
        if not isinstance(value, dict):
            raise TypeError(_not_a_table(value))
        if "type" not in value:
            installed = ", ".join(registry.names(kind))
            raise KeyProblem("type", "required field missing", f"installed: {installed}")
        name = value["type"]
        if not isinstance(name, str):
            raise KeyProblem("type", f"expected a string, got {name!r}")
        if name not in registry.table(kind):
            guess = did_you_mean(name, registry.names(kind))
            hint = guess or registry.missing_hint(kind, name)
            raise _MissingBackend("type", registry.missing_message(kind, name), hint)
        spec = registry.table(kind)[name].spec
        rest = {k: v for k, v in value.items() if k not in ("type", *core_keys)}
        core = {k: value[k] for k in core_keys if k in value}
        return name, converter.structure(rest, spec.config_cls), core

    def source_hook(value: Any, _: Any) -> SourceConfig:
        name, options, core = plugin_options(value, "source", ("tuning",))
        tuning = None
        if "tuning" in core:
            if not isinstance(core["tuning"], dict):
                raise KeyProblem("tuning", _not_a_table(core["tuning"]))
            try:
                tuning = converter.structure(core["tuning"], Tuning)
            except cattrs.BaseValidationError as exc:
                raise _under("tuning", exc, Tuning) from None
        return SourceConfig(type=name, tuning=tuning, options=options)

    def format_hook(value: Any, _: Any) -> FormatConfig:
        if isinstance(value, str):
            value = {"type": value}
        name, options, _core = plugin_options(value, "format", ())
        return FormatConfig(type=name, options=options)

    def destination_hook(value: Any, _: Any) -> DestinationConfig:
        name, options, _core = plugin_options(value, "destination", ())
        return DestinationConfig(type=name, options=options)

    converter.register_structure_hook(SourceConfig, source_hook)
    converter.register_structure_hook(FormatConfig, format_hook)
    converter.register_structure_hook(DestinationConfig, destination_hook)


def _under(key: str, exc: Exception, cls: type) -> cattrs.ClassValidationError:
    """``exc``, raised structuring the table under ``key`` by hand in a hook, located under
    ``key`` the way cattrs locates a field's errors, so :func:`flatten` names
    ``source.tuning.batch_size`` and not ``source.batch_size``."""
    exc.__notes__ = [*getattr(exc, "__notes__", []),
                     AttributeValidationNote(f"Structuring {key}", key, cls)]
    return cattrs.ClassValidationError(f"While structuring {key}", [exc], cls)


def _misplaced_hint(key: str, cls: type) -> str | None:
    if key in _TUNING_KEYS and cls in (ExportConfig, SourceConfig):
        return "tuning keys belong in a `tuning` table, e.g. [exports.tuning] or [source.tuning]"
    return None


def _record(exc: BaseException, path: str, issues: _Issues) -> None:
    missing: BaseException | None
    rest: BaseException | None
    if isinstance(exc, BaseExceptionGroup):
        # split() keeps the groups' nesting and the notes that locate each leaf.
        missing, rest = exc.split(_MissingBackend)
    elif isinstance(exc, _MissingBackend):
        missing, rest = exc, None
    else:
        missing, rest = None, exc
    if missing is not None:
        for where, message, hint in flatten(missing, path):
            issues.add(where, message, hint, missing_backend=True)
    if rest is not None:
        for where, message, hint in flatten(rest, path, _misplaced_hint):
            issues.add(where, message, hint)


def _structure_source(
    raw: dict[str, Any], converter: cattrs.Converter, issues: _Issues, config_dir: Path,
    connect: bool,
) -> SourceConfig | None:
    if "source" not in raw:
        _source_missing(issues)
        return None
    value = raw["source"]
    if isinstance(value, dict):
        for key in value:
            if key in _TUNING_KEYS:
                issues.add(f"source.{key}", "unknown key", _misplaced_hint(key, SourceConfig))
        value = {k: v for k, v in value.items() if k not in _TUNING_KEYS}
    try:
        source = converter.structure(value, SourceConfig)
    except (cattrs.BaseValidationError, KeyProblem, TypeError, ValueError) as exc:
        _record(exc, "source", issues)
        return None
    if source.tuning is not None:
        rules.check_tuning(source.tuning, "source.tuning", issues.add)
    if isinstance(source.options, ChecksConfig):
        for key, message in source.options.config_issues(config_dir):
            issues.add(f"source.{key}", message)
    if connect and isinstance(source.options, ChecksReferences):
        for key, message in source.options.reference_issues(config_dir):
            issues.add(f"source.{key}", message)
    return source


def _structure_state(raw: dict[str, Any], converter: cattrs.Converter, issues: _Issues,
                     config_dir: Path) -> StateConfig | None:
    """The ``[state]`` table (None when absent or wrong, the problem reported)."""
    if "state" not in raw:
        return None
    try:
        state = converter.structure(raw["state"], StateConfig)
    except (cattrs.BaseValidationError, KeyProblem, TypeError, ValueError) as exc:
        _record(exc, "state", issues)
        return None
    for key, message in state.config_issues(config_dir):
        issues.add(f"state.{key}", message)
    return state


def _plaintext_password(state: Any) -> bool:
    """Whether a ``[state]`` table's ``url`` holds a password (before substitution: one
    from a ``${VAR}`` is not in the file)."""
    url = state.get("url") if isinstance(state, dict) else None
    return isinstance(url, str) and bool(re.match(r"[a-z]+://[^/@]*:[^/@]+@", url))


def _structure_exports(
    raw: dict[str, Any], converter: cattrs.Converter, issues: _Issues
) -> list[tuple[int, ExportConfig]]:
    out: list[tuple[int, ExportConfig]] = []
    for index, entry in enumerate(_export_tables(raw, issues)):
        try:
            out.append((index, converter.structure(entry, ExportConfig)))
        except (cattrs.BaseValidationError, KeyProblem, TypeError, ValueError) as exc:
            _record(exc, f"exports[{index}]", issues)
    return out
