"""The plugin manager: entry point loading, blocking, and the registry of backends.

A fresh :class:`Registry` is built per invocation (no module-global manager). Every entry
point load and every hook call is wrapped, so a broken plugin is reported with its
distribution and version and only fails a run whose config needs a backend it was to provide.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
import re
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import attrs
import pluggy

from rivet_core import hookspecs
from rivet_core.errors import PluginError
from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec, spec_problems

GROUP = "rivet"
DISABLE_ENV = "RIVET_DISABLE_PLUGINS"

# Backend names users commonly write, and the package that provides each (fsspec's
# ``known_implementations``): turns "unknown type" into an install hint.
KNOWN_BACKENDS: dict[tuple[str, str], str] = {
    ("source", "postgres"): "rivet-cli (built in: plugin rivet_postgres)",
    ("source", "mysql"): "rivet-cli (built in: plugin rivet_mysql)",
    ("format", "parquet"): "rivet-cli (built in: plugin rivet_parquet)",
    ("format", "csv"): "rivet-cli (built in: plugin rivet_csv)",
    ("destination", "local"): "rivet-cli (built in: plugin rivet_local)",
    ("destination", "stdout"): "rivet-cli (built in: plugin rivet_stdout)",
    ("destination", "s3"): "rivet-cli (built in: plugin rivet_objstore)",
    ("destination", "gcs"): "rivet-cli (built in: plugin rivet_objstore)",
}

KINDS = ("source", "format", "destination")
S = TypeVar("S", SourceSpec, FormatSpec, DestinationSpec)


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One registered plugin (an entry point, or an object registered by hand in tests)."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None

    def origin(self) -> str:
        if self.distribution:
            return f"{self.name} ({self.distribution} {self.version})"
        return self.name

    def qualified_name(self) -> str:
        """``<distribution>:<name>``: tells apart entry points of one name shipped by
        different distributions (a ``RIVET_DISABLE_PLUGINS`` value blocks just that one)."""
        return f"{self.distribution or self.module}:{self.name}"


@attrs.frozen(kw_only=True)
class PluginProblem:
    """A plugin that failed to load, a failing hook, a bad declaration or a name clash.

    ``plugin`` names every plugin involved with its distribution and version
    (:meth:`PluginInfo.origin`); ``origins`` holds the same as data. ``kind`` and
    ``backend`` are set when the problem is about one backend, which is then unusable."""

    plugin: str
    message: str
    kind: str | None = None
    backend: str | None = None
    origins: tuple[PluginInfo, ...] = ()

    @classmethod
    def of(cls, *origins: PluginInfo, message: str, kind: str | None = None,
           backend: str | None = None) -> PluginProblem:
        return cls(plugin=" and ".join(o.origin() for o in origins), message=message,
                   kind=kind, backend=backend, origins=origins)


@attrs.frozen(kw_only=True)
class Registered(Generic[S]):
    spec: S
    plugin: PluginInfo


@attrs.define
class Registry:
    """Every backend installed and usable in this invocation, by kind and name."""

    sources: dict[str, Registered[SourceSpec]] = attrs.field(factory=dict)
    formats: dict[str, Registered[FormatSpec]] = attrs.field(factory=dict)
    destinations: dict[str, Registered[DestinationSpec]] = attrs.field(factory=dict)
    plugins: list[PluginInfo] = attrs.field(factory=list)
    problems: list[PluginProblem] = attrs.field(factory=list)

    def table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {
            "source": self.sources, "format": self.formats, "destination": self.destinations,
        }
        return tables[kind]

    def names(self, kind: str) -> list[str]:
        return sorted(self.table(kind))

    def get(self, kind: str, name: str) -> Registered:  # type: ignore[type-arg]
        """The backend ``name`` of ``kind``, or a :class:`PluginError` saying why not."""
        table = self.table(kind)
        if name in table:
            return table[name]
        raise PluginError(self.missing_message(kind, name), hint=self.missing_hint(kind, name))

    def missing_message(self, kind: str, name: str) -> str:
        for problem in self.problems:
            if problem.kind == kind and problem.backend == name:
                return f"{kind} type {name!r} is unusable: {problem.message}"
        installed = ", ".join(self.names(kind)) or "none"
        return f"unknown {kind} type {name!r} (installed: {installed})"

    def missing_hint(self, kind: str, name: str) -> str | None:
        hints = []
        if (kind, name) in KNOWN_BACKENDS:
            hints.append(f"{name!r} is provided by {KNOWN_BACKENDS[(kind, name)]}")
        # A problem not tied to one backend (a failed import, a hook that raised) may be
        # what hides this one.
        broken = dict.fromkeys(p.plugin for p in self.problems if p.backend is None)
        if broken:
            names = ", ".join(broken)
            hints.append(f"plugin(s) with problems (see `rivet plugins`) that may provide it: "
                         f"{names}")
        disabled = os.environ.get(DISABLE_ENV)
        if disabled:
            hints.append(f"{DISABLE_ENV}={disabled} blocks some plugins")
        return "; ".join(hints) or None


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    return manager


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=GROUP)


def build_registry(
    *, autoload: bool = True, extra: Iterable[tuple[str, object]] = ()
) -> Registry:
    """Load plugins and collect their specs; never raises for a plugin's mistake.

    ``autoload`` loads the ``rivet`` entry point group (built-ins included); ``extra`` adds
    ``(name, plugin object)`` pairs, as tests do with autoload off. Plugins named in
    ``RIVET_DISABLE_PLUGINS`` (comma separated; an entry point name, or
    ``<distribution>:<name>`` for one of several of that name) are blocked. Every mistake a
    plugin can make is a :class:`PluginProblem` in ``Registry.problems``.
    """
    manager = new_manager()
    registry = Registry()
    blocked = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    for name in blocked:
        manager.set_blocked(name)

    candidates: list[_Candidate] = []
    if autoload:
        candidates += _entry_point_candidates(blocked, registry)
    for name, plugin in extra:
        module = getattr(plugin, "__name__", type(plugin).__name__)
        candidates.append(_Candidate(name, PluginInfo(name=name, module=module), plugin))

    infos: dict[str, PluginInfo] = {}
    for candidate in candidates:
        info = _register(manager, candidate, infos, registry)
        if info is not None:
            infos[candidate.key] = info
            registry.plugins.append(info)

    registry.problems += _hook_name_problems(manager, infos)
    _collect(manager, "rivet_sources", "source", SourceSpec, registry, infos)
    _collect(manager, "rivet_formats", "format", FormatSpec, registry, infos)
    _collect(manager, "rivet_destinations", "destination", DestinationSpec, registry, infos)
    return registry


@attrs.frozen
class _Candidate:
    key: str
    """The name it is registered under in the plugin manager (unique)."""
    info: PluginInfo
    target: object
    """An entry point to load, or the plugin object itself."""


def _same_distribution(a: PluginInfo, b: PluginInfo) -> bool:
    if a.distribution and b.distribution:
        return _canonical(a.distribution) == _canonical(b.distribution)
    return a.distribution == b.distribution and a.module == b.module


def _canonical(distribution: str) -> str:
    """The distribution name as installers compare it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _entry_point_candidates(blocked: set[str], registry: Registry) -> list[_Candidate]:
    """The entry points to load, each with a unique registration name.

    One distribution found twice on ``sys.path`` is loaded once. Different distributions
    using one entry point name are all loaded (pluggy needs unique names, so each after the
    first is registered under its qualified name) and the clash is reported, because
    blocking that name blocks them all."""
    claims: dict[str, list[tuple[PluginInfo, importlib.metadata.EntryPoint]]] = {}
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
        same_name = claims.setdefault(ep.name, [])
        if not any(_same_distribution(info, seen) for seen, _ in same_name):
            same_name.append((info, ep))

    candidates: list[_Candidate] = []
    for name, same_name in claims.items():
        loading = [(info, ep) for info, ep in same_name
                   if name not in blocked and info.qualified_name() not in blocked]
        for index, (info, ep) in enumerate(loading):
            key = name if index == 0 else info.qualified_name()
            candidates.append(_Candidate(key, info, ep))
        if len(loading) > 1:
            registry.problems.append(_name_clash(name, [info for info, _ in loading]))
    return candidates


def _name_clash(name: str, infos: list[PluginInfo]) -> PluginProblem:
    def label(info: PluginInfo) -> str:
        return f"{info.distribution} {info.version}" if info.distribution else info.module

    both = "both" if len(infos) == 2 else f"all {len(infos)}"
    later = ", ".join(repr(info.qualified_name()) for info in infos[1:])
    return PluginProblem.of(
        *infos,
        message=f"entry point name {name!r} is used by {' and '.join(map(label, infos))}; "
        f"{both} are loaded (registered as {name!r}, {later}), but {DISABLE_ENV}={name} "
        f"would block {both}: block one by its qualified name "
        f"({DISABLE_ENV}={infos[-1].qualified_name()}) or uninstall one",
    )


def _register(manager: pluggy.PluginManager, candidate: _Candidate,
              infos: dict[str, PluginInfo], registry: Registry) -> PluginInfo | None:
    """Load and register one plugin; its info, or None when it is blocked or broken."""
    info, target = candidate.info, candidate.target
    if manager.is_blocked(candidate.key):
        return None
    try:
        plugin = target.load() if isinstance(target, importlib.metadata.EntryPoint) else target
    # SystemExit too: a plugin module calling sys.exit() must not end the command with an
    # exit code of its choosing.
    except (Exception, SystemExit) as exc:
        registry.problems.append(PluginProblem.of(info, message=f"failed to load: {exc!r}"))
        return None
    if manager.is_registered(plugin):
        # pluggy registers an object once; two entry points loading one module (two
        # distributions shipping the same package) provide its hooks once.
        first = infos[str(manager.get_name(plugin))]
        registry.problems.append(PluginProblem.of(
            info, first, message=f"loads {info.module}, which {first.origin()} already "
            "loaded; its hooks are called once"))
        return None
    if manager.has_plugin(candidate.key):
        registry.problems.append(PluginProblem.of(
            info, infos[candidate.key],
            message=f"plugin name {candidate.key!r} is taken; not loaded"))
        return None
    try:
        manager.register(plugin, name=candidate.key)
    except pluggy.PluginValidationError as exc:  # a hook with arguments the spec lacks
        registry.problems.append(PluginProblem.of(info, message=f"not loaded: {exc}"))
        return None
    return info


def _hook_name_problems(
    manager: pluggy.PluginManager, infos: dict[str, PluginInfo]
) -> list[PluginProblem]:
    """Every ``rivet_*`` function that is not a hook, or is a hook pluggy will not call.

    pluggy's ``check_pending()`` raises on the first marked function whose name is not a
    hook; this reports each one, and also the unmarked ``rivet_*`` functions pluggy skips
    without a word (a forgotten ``@hookimpl`` or a misspelt name)."""
    callers = {n: c for n, c in vars(manager.hook).items() if not n.startswith("_")}
    hooks = sorted(name for name, caller in callers.items() if caller.has_spec())
    problems = []
    for name, caller in callers.items():
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                problems.append(PluginProblem.of(infos[impl.plugin_name],
                                                 message=_not_a_hook(name, hooks)))
    for key, plugin in manager.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        for name in dir(plugin):
            if not name.startswith("rivet_") or manager.parse_hookimpl_opts(plugin, name):
                continue
            value = inspect.getattr_static(plugin, name, None)
            if not (callable(value) or isinstance(value, staticmethod | classmethod)):
                continue
            if name in hooks:
                message = (f"{name}() is not marked with @rivet_core.hookimpl, so it is "
                           "never called")
            else:
                message = _not_a_hook(name, hooks)
            problems.append(PluginProblem.of(infos[key], message=message))
    return problems


def _not_a_hook(name: str, hooks: list[str]) -> str:
    close = difflib.get_close_matches(name, hooks, n=1, cutoff=0.6)
    if close:
        return f"{name} is not a Rivet hook; did you mean {close[0]}?"
    return (f"{name} is not a Rivet hook (the hooks are {', '.join(hooks)}; the rivet_ prefix "
            "is theirs)")


def _collect(
    manager: pluggy.PluginManager,
    hook_name: str,
    kind: str,
    spec_cls: type[Any],
    registry: Registry,
    infos: dict[str, PluginInfo],
) -> None:
    table = registry.table(kind)
    owners: dict[str, list[Registered[Any]]] = {}
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        info = infos[impl.plugin_name]
        try:
            result = impl.function()
        except (Exception, SystemExit) as exc:
            registry.problems.append(
                PluginProblem.of(info, message=f"{hook_name}() raised {exc!r}")
            )
            continue
        if not isinstance(result, list | tuple):
            # A lone spec says which backend the author meant, so a config naming it learns
            # why it is unusable instead of reading "unknown type".
            lone = isinstance(result, spec_cls) and isinstance(result.name, str)
            registry.problems.append(PluginProblem.of(
                info, kind=kind if lone else None, backend=result.name if lone else None,
                message=f"{hook_name}() returned {_type_name(result)}, expected a list of "
                f"{spec_cls.__name__}",
            ))
            continue
        for spec in result:
            if not isinstance(spec, spec_cls):
                registry.problems.append(PluginProblem.of(
                    info, message=f"{hook_name}() returned a list holding "
                    f"{_type_name(spec)}, expected only {spec_cls.__name__}",
                ))
                continue
            problems = spec_problems(spec)
            if problems:
                registry.problems.append(PluginProblem.of(
                    info, kind=kind, message="; ".join(problems),
                    backend=spec.name if isinstance(spec.name, str) else None,
                ))
                continue
            owners.setdefault(spec.name, []).append(Registered(spec=spec, plugin=info))
    for name, claims in owners.items():
        if len(claims) == 1:
            table[name] = claims[0]
            continue
        who = " and ".join(c.plugin.origin() for c in claims)
        registry.problems.append(PluginProblem.of(
            *(c.plugin for c in claims),
            kind=kind,
            backend=name,
            message=f"{kind} type {name!r} is provided by both {who}; "
            f"uninstall one or block it with {DISABLE_ENV}",
        ))


def _type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__
