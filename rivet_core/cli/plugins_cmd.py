"""``rivet plugins``: installed plugins, their backends and declared capabilities, and per
distribution its version, origin, plugin API range and the hooks each plugin implements.

The JSON document (:func:`as_json`) is also what ``rivet install`` and ``rivet uninstall``
compare before and after pip runs (:mod:`rivet_core.cli.install_cmd`).
"""

from __future__ import annotations

import argparse
from typing import Any

import attrs
from packaging.utils import canonicalize_name

from rivet_core import __version__, hookspecs
from rivet_core.cli.common import Console
from rivet_core.errors import ExitCode
from rivet_core.plugins import (
    BUILT_IN,
    KIND_HOOKS,
    KINDS,
    DistributionInfo,
    PluginInfo,
    Registry,
    build_registry,
)
from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "plugins", help="list installed backends and their declared capabilities",
        description="Every plugin loaded from the 'rivet' entry point group (built-ins "
        "included), the backends each provides, and per distribution its version, origin "
        "(built-in, editable, third-party), the plugin API range it supports and the hooks "
        "each of its plugins implements; then every plugin problem (a failed load, a plugin "
        "built for another plugin API, a hook that raised, a bad declaration, a name clash), "
        "each with its distribution and version and, when there is one, the command that "
        "fixes it. Problems are listed, not failed on: the exit status is 0.",
    )
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    # Exit 0 even with problems: this command is how a user looks at them, and a problem
    # only fails the commands whose config needs the backend concerned.
    registry = build_registry()
    if args.json:
        console.json(as_json(registry))
    else:
        print_registry(console, registry)
    return ExitCode.OK


def _spec_details(spec: SourceSpec | FormatSpec | DestinationSpec) -> dict[str, Any]:
    if isinstance(spec, SourceSpec):
        return {"dialect": spec.dialect.name, "modes": sorted(spec.modes)}
    if isinstance(spec, FormatSpec):
        return {"extension": spec.extension, "codecs": sorted(spec.codecs),
                "default_codec": spec.default_codec, "profiles": sorted(spec.profiles)}
    caps = attrs.asdict(spec.capabilities)
    caps["commit_protocol"] = spec.capabilities.commit_protocol.value
    return {"capabilities": caps, "seekable": spec.seekable,
            "accepts_formats": sorted(spec.accepts_formats) if spec.accepts_formats else None}


def _origin(registry: Registry, plugin: PluginInfo) -> str:
    if plugin.distribution is None:
        return "in-process"
    dist = registry.distributions.get(canonicalize_name(plugin.distribution))
    return dist.origin if dist else "third-party"


def as_json(registry: Registry) -> dict[str, Any]:
    backends = []
    for kind in KINDS:
        for name, registered in sorted(registry.table(kind).items()):
            backends.append({
                "kind": kind, "name": name, "description": registered.spec.description,
                "hook": KIND_HOOKS[kind],
                "plugin": registered.plugin.name, "module": registered.plugin.module,
                "distribution": registered.plugin.distribution,
                "version": registered.plugin.version,
                "origin": _origin(registry, registered.plugin),
                **_spec_details(registered.spec),
            })
    return {
        "rivet_version": __version__,
        "plugin_api": hookspecs.PLUGIN_API_VERSION,
        "distributions": [_distribution_json(registry, d)
                          for d in sorted(registry.distributions.values(),
                                          key=lambda d: canonicalize_name(d.name))],
        "plugins": [attrs.asdict(p) for p in registry.plugins],
        "backends": backends,
        "problems": [attrs.asdict(p) for p in registry.problems],
    }


def _ours(dist: DistributionInfo, plugin: PluginInfo) -> bool:
    return (plugin.distribution is not None
            and canonicalize_name(plugin.distribution) == canonicalize_name(dist.name))


def _distribution_json(registry: Registry, dist: DistributionInfo) -> dict[str, Any]:
    """One distribution: its plugins (loaded, not loaded, blocked), the backends they
    registered, the plugin API range and the problems naming it."""
    problems = [p for p in registry.problems if any(_ours(dist, o) for o in p.origins)]
    plugins: dict[tuple[str, str], dict[str, Any]] = {}
    for info in registry.plugins:
        if _ours(dist, info):
            plugins[info.name, info.module] = _plugin_json(info, "loaded")
    for info in registry.blocked:
        if _ours(dist, info):
            plugins.setdefault((info.name, info.module), _plugin_json(info, "blocked"))
    for problem in problems:
        for info in problem.origins:
            if _ours(dist, info):
                plugins.setdefault((info.name, info.module), _plugin_json(info, "not loaded"))
    backends = [{"kind": kind, "name": name, "hook": KIND_HOOKS[kind],
                 "plugin": registered.plugin.name}
                for kind in KINDS for name, registered in sorted(registry.table(kind).items())
                if _ours(dist, registered.plugin)]
    built_in = canonicalize_name(dist.name) == BUILT_IN
    ranges = {info.api_range for info in [*registry.plugins, *registry.blocked,
                                           *(o for p in problems for o in p.origins)]
              if _ours(dist, info)}
    if built_in:
        # Rivet's own plugins implement exactly the API they ship with.
        api_range: str | None = f"=={hookspecs.PLUGIN_API_VERSION}"
    elif ranges == {None}:
        api_range = hookspecs.UNDECLARED_API_RANGE
    else:
        api_range = " | ".join(sorted(r for r in ranges if r is not None)) or None
    return {
        "name": dist.name, "version": dist.version, "origin": dist.origin,
        "location": dist.location,
        "plugin_api": api_range,
        "plugin_api_declared": not built_in and None not in ranges,
        "plugins": sorted(plugins.values(), key=lambda p: p["name"]),
        "backends": backends,
        "problems": [{"plugin": p.plugin, "message": p.message, "kind": p.kind,
                      "backend": p.backend, "fix": p.fix} for p in problems],
    }


def _plugin_json(info: PluginInfo, status: str) -> dict[str, Any]:
    return {"name": info.name, "module": info.module, "status": status,
            "plugin_api": info.api_range, "hooks": list(info.hooks)}


def print_registry(console: Console, registry: Registry) -> None:
    for kind in KINDS:
        console.print(f"{kind}s:")
        for name, registered in sorted(registry.table(kind).items()):
            details = ""
            if isinstance(registered.spec, DestinationSpec):
                caps = registered.spec.capabilities
                details = (f"  [{caps.commit_protocol.value}, idempotent_overwrite="
                           f"{caps.idempotent_overwrite}, retry_safe={caps.retry_safe}, "
                           f"partial_write_risk={caps.partial_write_risk}, "
                           f"multi_file={caps.multi_file}]")
            console.print(f"  {name:<10} {registered.plugin.origin()}{details}")
    document = as_json(registry)
    console.print(f"distributions (Rivet runs plugin API {document['plugin_api']}):")
    for dist in document["distributions"]:
        console.print(f"  {distribution_line(dist)}")
        for plugin in dist["plugins"]:
            console.print(f"    {plugin_line(plugin, dist['backends'])}")
    for problem in registry.problems:
        about = f"{problem.kind} {problem.backend!r}: " if problem.backend else ""
        console.print(f"problem: {problem.plugin}: {about}{problem.message}")
        if problem.fix:
            console.print(f"  fix: {problem.fix}")


def distribution_line(dist: dict[str, Any]) -> str:
    """``rivet-sqlite-jsonl 0.1.0  editable /src/rivet-sqlite-jsonl  plugin API >=1.0,<2``
    (a distribution of :func:`as_json`)."""
    where = f" {dist['location']}" if dist["location"] else ""
    if dist["origin"] == "built-in":
        api = f"plugin API {hookspecs.PLUGIN_API_VERSION}"
    elif dist["plugin_api"] is None:
        api = "plugin API unknown"
    elif dist["plugin_api_declared"]:
        api = f"plugin API {dist['plugin_api']}"
    else:
        api = f"plugin API {dist['plugin_api']} (not declared: assumed)"
    return f"{dist['name']} {dist['version']}  {dist['origin']}{where}  {api}"


def plugin_line(plugin: dict[str, Any], backends: list[dict[str, Any]]) -> str:
    """``sqlite_jsonl (rivet_sqlite_jsonl): rivet_formats, rivet_sources → source sqlite,
    format jsonl``: a plugin of a distribution of :func:`as_json`, its hooks and backends."""
    head = f"{plugin['name']} ({plugin['module']})"
    if plugin["status"] != "loaded":
        return f"{head}: {plugin['status']}"
    provided = ", ".join(f"{b['kind']} {b['name']}" for b in backends
                         if b["plugin"] == plugin["name"])
    hooks = ", ".join(plugin["hooks"]) or "no hooks"
    return f"{head}: {hooks}" + (f" → {provided}" if provided else "")
