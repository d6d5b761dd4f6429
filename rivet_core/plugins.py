"""The plugin manager: entry point loading, blocking, the plugin API check, and the
registry of backends.

A fresh :class:`Registry` is built per invocation (no module-global manager). Every entry
point load and every hook call is wrapped, so a broken plugin is reported with its
distribution and version and only fails a run whose config needs a backend it was to provide.
A plugin whose declared plugin API range (:data:`rivet_core.hookspecs.API_DECLARATION`)
excludes the running version is imported but never registered: it is a problem naming the
range, the running version and the command that fixes it. Installing and uninstalling
plugin packages is :mod:`rivet_core.cli.install_cmd`.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import json
import os
import re
from collections.abc import Iterable
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

import attrs
import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from rivet_core import hookspecs
from rivet_core.errors import PluginError
from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec, spec_problems

GROUP = "rivet"
DISABLE_ENV = "RIVET_DISABLE_PLUGINS"

BUILT_IN = "rivet-cli"
"""The distribution of Rivet itself, whose plugins are the built-in backends."""


@attrs.frozen
class KnownBackend:
    """Who provides a backend name users commonly write (fsspec's ``known_implementations``):
    turns "unknown type" into an install hint."""

    distribution: str
    """The package to install (what ``rivet install`` takes)."""
    built_in: str | None = None
    """For Rivet's own backends, the built-in plugin module that provides it."""


KNOWN_BACKENDS: dict[tuple[str, str], KnownBackend] = {
    ("source", "postgres"): KnownBackend(BUILT_IN, "rivet_postgres"),
    ("source", "mysql"): KnownBackend(BUILT_IN, "rivet_mysql"),
    ("format", "parquet"): KnownBackend(BUILT_IN, "rivet_parquet"),
    ("format", "csv"): KnownBackend(BUILT_IN, "rivet_csv"),
    ("destination", "local"): KnownBackend(BUILT_IN, "rivet_local"),
    ("destination", "stdout"): KnownBackend(BUILT_IN, "rivet_stdout"),
    ("destination", "s3"): KnownBackend(BUILT_IN, "rivet_objstore"),
    ("destination", "gcs"): KnownBackend(BUILT_IN, "rivet_objstore"),
    ("destination", "azure"): KnownBackend(BUILT_IN, "rivet_objstore"),
    # The example third-party package (examples/rivet-sqlite-jsonl).
    ("source", "sqlite"): KnownBackend("rivet-sqlite-jsonl"),
    ("format", "jsonl"): KnownBackend("rivet-sqlite-jsonl"),
}

KINDS = ("source", "format", "destination")
KIND_HOOKS = {"source": "rivet_sources", "format": "rivet_formats",
              "destination": "rivet_destinations"}
"""The hook that registers each kind of backend."""
S = TypeVar("S", SourceSpec, FormatSpec, DestinationSpec)


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One registered plugin (an entry point, or an object registered by hand in tests)."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    api_range: str | None = None
    """The plugin API range the plugin declares (:data:`~rivet_core.hookspecs.API_DECLARATION`),
    None when it declares none (or is not loaded far enough to tell)."""
    hooks: tuple[str, ...] = ()
    """The hooks it implements, once registered."""

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
    fix: str | None = None
    """The command that fixes it, when there is one (``rivet install --upgrade <dist>``)."""

    @classmethod
    def of(cls, *origins: PluginInfo, message: str, kind: str | None = None,
           backend: str | None = None, fix: str | None = None) -> PluginProblem:
        return cls(plugin=" and ".join(o.origin() for o in origins), message=message,
                   kind=kind, backend=backend, origins=origins, fix=fix)


@attrs.frozen(kw_only=True)
class DistributionInfo:
    """An installed distribution with at least one entry point in the ``rivet`` group."""

    name: str
    version: str
    origin: str
    """``built-in`` (rivet-cli itself), ``editable`` (``pip install -e``: its
    ``direct_url.json`` says so) or ``third-party``."""
    location: str | None = None
    """For an editable install, the project directory it runs from."""

    @classmethod
    def of(cls, dist: importlib.metadata.Distribution, name: str,
           version: str) -> DistributionInfo:
        """``name`` and ``version``: the distribution's (read once by the caller: each
        ``dist.name`` parses its METADATA file again)."""
        if _canonical(name) == BUILT_IN:
            return cls(name=name, version=version, origin="built-in")
        location = _editable_location(dist)
        return cls(name=name, version=version,
                   origin="third-party" if location is None else "editable",
                   location=location)


def _editable_location(dist: importlib.metadata.Distribution) -> str | None:
    """The project directory of an editable install (PEP 610 ``direct_url.json``), else
    None."""
    try:
        text = dist.read_text("direct_url.json")
        data = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    dir_info = data.get("dir_info")
    url = data.get("url")
    if not (isinstance(dir_info, dict) and dir_info.get("editable") is True
            and isinstance(url, str)):
        return None
    parts = urlsplit(url)
    return unquote(parts.path) if parts.scheme == "file" else url


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
    distributions: dict[str, DistributionInfo] = attrs.field(factory=dict)
    """Every distribution with an entry point in the ``rivet`` group, loaded or not, by its
    canonical name (PEP 503)."""
    blocked: list[PluginInfo] = attrs.field(factory=list)
    """The entry points ``RIVET_DISABLE_PLUGINS`` kept from loading."""

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
        # A problem not tied to one backend (a failed import, a plugin API mismatch, a hook
        # that raised) may be what hides this one.
        unloaded = [p for p in self.problems if p.backend is None]
        known = KNOWN_BACKENDS.get((kind, name))
        if known is not None and known.built_in:
            hints.append(f"{name!r} is provided by {BUILT_IN} (built in: plugin "
                         f"{known.built_in})")
        elif known is not None and not any(
                _canonical(o.distribution or "") == _canonical(known.distribution)
                for p in unloaded for o in p.origins):
            hints.append(f"{name!r} is provided by the package {known.distribution}: "
                         f"`rivet install {known.distribution}`")
        for problem in unloaded:
            if problem.fix:
                hints.append(f"{problem.plugin} may provide it: {problem.message}; "
                             f"fix: `{problem.fix}`")
        broken = dict.fromkeys(p.plugin for p in unloaded if not p.fix)
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
    _collect(manager, KIND_HOOKS["source"], "source", SourceSpec, registry, infos)
    _collect(manager, KIND_HOOKS["format"], "format", FormatSpec, registry, infos)
    _collect(manager, KIND_HOOKS["destination"], "destination", DestinationSpec, registry,
             infos)
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
    # The name and version of each distribution, by identity: the entry points of one
    # distribution share its object, and each ``dist.name`` or ``dist.version`` would parse
    # its whole METADATA file (README included) again.
    named: dict[int, tuple[str, str]] = {}
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        distribution = version = None
        if dist is not None:
            if id(dist) not in named:
                metadata = dist.metadata
                named[id(dist)] = (metadata["Name"], metadata["Version"])
                registry.distributions.setdefault(
                    _canonical(named[id(dist)][0]), DistributionInfo.of(dist, *named[id(dist)]))
            distribution, version = named[id(dist)]
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            distribution=distribution,
            version=version,
        )
        same_name = claims.setdefault(ep.name, [])
        if not any(_same_distribution(info, seen) for seen, _ in same_name):
            same_name.append((info, ep))

    candidates: list[_Candidate] = []
    for name, same_name in claims.items():
        loading = [(info, ep) for info, ep in same_name
                   if name not in blocked and info.qualified_name() not in blocked]
        registry.blocked += [info for info, ep in same_name if (info, ep) not in loading]
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
    """Load and register one plugin; its info, or None when it is blocked, broken or built
    for another plugin API."""
    info, target = candidate.info, candidate.target
    if manager.is_blocked(candidate.key):
        return None
    try:
        plugin = target.load() if isinstance(target, importlib.metadata.EntryPoint) else target
    # SystemExit too: a plugin module calling sys.exit() must not end the command with an
    # exit code of its choosing.
    except (Exception, SystemExit) as exc:
        registry.problems.append(_load_failure(info, exc))
        return None
    info, refusal = _api_check(info, plugin)
    if refusal is not None:
        registry.problems.append(refusal)
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
    hooks = sorted(c.name for c in manager.get_hookcallers(plugin) or () if c.has_spec())
    return attrs.evolve(info, hooks=tuple(hooks))


def _load_failure(info: PluginInfo, exc: BaseException) -> PluginProblem:
    message = f"failed to load: {exc!r}"
    if isinstance(exc, ImportError) and "rivet_core" in str(exc) and info.distribution:
        # A name the plugin imports from Rivet is not there: most often a plugin built for
        # another plugin API that predates declaring its range.
        return PluginProblem.of(
            info, fix=f"rivet install --upgrade {info.distribution}",
            message=f"{message}; it may be built for another plugin API than this Rivet's "
            f"{hookspecs.PLUGIN_API_VERSION}")
    return PluginProblem.of(info, message=message)


def _api_check(info: PluginInfo, plugin: object) -> tuple[PluginInfo, PluginProblem | None]:
    """``info`` with the plugin API range ``plugin`` declares, and the problem that keeps it
    from being registered (None when it may be)."""
    if info.distribution and _canonical(info.distribution) == BUILT_IN:
        return info, None  # Rivet's own plugins ship with the API they implement
    declared = inspect.getattr_static(plugin, hookspecs.API_DECLARATION, None)
    info = attrs.evolve(info, api_range=declared if isinstance(declared, str) else None)
    running = hookspecs.PLUGIN_API_VERSION
    verdict = api_verdict(declared, running)
    if verdict.compatible:
        return info, None
    fix = None
    if info.distribution and verdict.needs == "newer rivet" and info.version:
        fix = f"rivet install '{info.distribution}<{info.version}'"
    elif info.distribution and verdict.needs != "a valid declaration":
        fix = f"rivet install --upgrade {info.distribution}"
    return info, PluginProblem.of(info, message=verdict.reason, fix=fix)


@attrs.frozen(kw_only=True)
class ApiVerdict:
    """Whether a plugin's declared plugin API range admits the running version, and why
    not."""

    range: str | None
    """The range that applies: the declaration, or
    :data:`~rivet_core.hookspecs.UNDECLARED_API_RANGE`; None for a declaration that is not a
    range."""
    declared: bool
    compatible: bool
    needs: str | None = None
    """What would make it compatible: ``"newer rivet"``, ``"newer plugin"`` (the plugin
    predates the running API), ``"another version"`` (the range excludes it on both sides)
    or ``"a valid declaration"``."""
    reason: str = ""


def api_verdict(declared: object, running: str) -> ApiVerdict:
    """Judge a plugin's :data:`~rivet_core.hookspecs.API_DECLARATION` value (None: not
    declared) against the running plugin API version. Pure: no plugin is touched."""
    name = hookspecs.API_DECLARATION
    if declared is None:
        text, is_declared = hookspecs.UNDECLARED_API_RANGE, False
    elif isinstance(declared, str):
        text, is_declared = declared, True
    else:
        return ApiVerdict(range=None, declared=True, compatible=False,
                          needs="a valid declaration",
                          reason=f"not loaded: {name} = {declared!r} is not a version range "
                          "(a string such as \">=1.0,<2\")")
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier as exc:
        return ApiVerdict(range=None, declared=True, compatible=False,
                          needs="a valid declaration",
                          reason=f"not loaded: {name} = {declared!r} is not a version range "
                          f"({exc}; e.g. \">=1.0,<2\")")
    version = Version(running)
    if spec.contains(version, prereleases=True):
        return ApiVerdict(range=text, declared=is_declared, compatible=True)
    needs = _what_it_needs(spec, version)
    supports = (f"supports plugin API {text}" if is_declared else
                f"declares no plugin API range ({name}), so it is taken to support {text}")
    why = {"newer rivet": "the plugin needs a newer Rivet: upgrade rivet-cli, or install an "
                          "earlier release of the plugin",
           "newer plugin": "the plugin predates this API",
           "another version": "the plugin excludes this version"}[needs]
    return ApiVerdict(range=text, declared=is_declared, compatible=False, needs=needs,
                      reason=f"not loaded: it {supports}, and this Rivet runs plugin API "
                      f"{running} ({why})")


def _what_it_needs(spec: SpecifierSet, running: Version) -> str:
    """Which side of ``running`` the versions a range admits lie on."""
    probes = [Version(f"{major}.{minor}") for major in range(running.major + 10)
              for minor in range(50)]
    admitted = list(spec.filter(probes, prereleases=True))
    if admitted and all(v > running for v in admitted):
        return "newer rivet"
    if admitted and all(v < running for v in admitted):
        return "newer plugin"
    return "another version"


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
