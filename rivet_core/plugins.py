"""The plugin manager: entry point loading, blocking, and the registry of backends.

A fresh :class:`Registry` is built per invocation (no module-global manager). Every entry
point load and every hook call is wrapped, so a broken plugin is reported with its
distribution and version and only fails a run whose config needs a backend it was to provide.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import attrs
import pluggy

from rivet_core import hookspecs
from rivet_core.capabilities import check_declaration
from rivet_core.errors import PluginError
from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec

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


@attrs.frozen(kw_only=True)
class PluginProblem:
    """A plugin that failed to load, a failing hook, a bad declaration or a name clash."""

    plugin: str
    message: str
    kind: str | None = None
    backend: str | None = None


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
        broken = [p for p in self.problems if p.backend is None]
        if broken:
            names = ", ".join(p.plugin for p in broken)
            hints.append(f"plugin(s) that failed to load and may provide it: {names}")
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
    """Load plugins and collect their specs.

    ``autoload`` loads the ``rivet`` entry point group (built-ins included); ``extra`` adds
    ``(name, plugin object)`` pairs, as tests do with autoload off. Plugins named in
    ``RIVET_DISABLE_PLUGINS`` (comma separated) are blocked.
    """
    manager = new_manager()
    registry = Registry()
    blocked = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    for name in blocked:
        manager.set_blocked(name)
    infos: dict[str, PluginInfo] = {}

    candidates: list[tuple[PluginInfo, object | importlib.metadata.EntryPoint]] = []
    if autoload:
        seen: set[str] = set()
        for ep in _entry_points():
            if ep.name in seen:
                continue  # the same distribution visible twice on sys.path
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            candidates.append((info, ep))
    for name, plugin in extra:
        module = getattr(plugin, "__name__", type(plugin).__name__)
        candidates.append((PluginInfo(name=name, module=module), plugin))

    for info, target in candidates:
        if info.name in blocked or manager.is_blocked(info.name):
            continue
        try:
            plugin = target.load() if isinstance(target, importlib.metadata.EntryPoint) else target
            manager.register(plugin, name=info.name)
        except Exception as exc:  # a broken plugin must not take the tool down
            registry.problems.append(
                PluginProblem(plugin=info.origin(), message=f"failed to load: {exc!r}")
            )
            continue
        infos[info.name] = info
        registry.plugins.append(info)

    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        registry.problems.append(PluginProblem(plugin=str(exc.plugin), message=str(exc)))

    _collect(manager, "rivet_sources", "source", SourceSpec, registry, infos)
    _collect(manager, "rivet_formats", "format", FormatSpec, registry, infos)
    _collect(manager, "rivet_destinations", "destination", DestinationSpec, registry, infos)
    return registry


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
        info = infos.get(impl.plugin_name) or PluginInfo(name=impl.plugin_name, module="?")
        try:
            specs: list[Any] = impl.function() or []
        except Exception as exc:
            registry.problems.append(
                PluginProblem(plugin=info.origin(), message=f"{hook_name}() raised {exc!r}")
            )
            continue
        for spec in specs:
            if not isinstance(spec, spec_cls):
                registry.problems.append(
                    PluginProblem(
                        plugin=info.origin(),
                        message=f"{hook_name}() returned {type(spec).__name__}, "
                        f"expected {spec_cls.__name__}",
                    )
                )
                continue
            if isinstance(spec, DestinationSpec):
                bad = check_declaration(spec.capabilities)
                if bad:
                    registry.problems.append(
                        PluginProblem(
                            plugin=info.origin(),
                            kind=kind,
                            backend=spec.name,
                            message="incoherent capabilities: " + "; ".join(bad),
                        )
                    )
                    continue
            owners.setdefault(spec.name, []).append(Registered(spec=spec, plugin=info))
    for name, claims in owners.items():
        if len(claims) == 1:
            table[name] = claims[0]
            continue
        who = " and ".join(c.plugin.origin() for c in claims)
        registry.problems.append(
            PluginProblem(
                plugin=who,
                kind=kind,
                backend=name,
                message=f"{kind} type {name!r} is provided by both {who}; "
                f"uninstall one or block it with {DISABLE_ENV}",
            )
        )
