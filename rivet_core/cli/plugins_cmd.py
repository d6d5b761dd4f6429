"""``rivet plugins``: installed plugins, their backends and declared capabilities."""

from __future__ import annotations

import argparse
from typing import Any

import attrs

from rivet_core.cli.common import Console
from rivet_core.errors import ExitCode
from rivet_core.plugins import KINDS, Registry, build_registry
from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "plugins", help="list installed backends and their declared capabilities",
        description="Every plugin loaded from the 'rivet' entry point group (built-ins "
        "included), the backends each provides, and every plugin problem (a failed load, a "
        "hook that raised, a bad declaration, a name clash), each with its distribution "
        "and version. Problems are listed, not failed on: the exit status is 0.",
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


def as_json(registry: Registry) -> dict[str, Any]:
    backends = []
    for kind in KINDS:
        for name, registered in sorted(registry.table(kind).items()):
            backends.append({
                "kind": kind, "name": name, "description": registered.spec.description,
                "plugin": registered.plugin.name, "module": registered.plugin.module,
                "distribution": registered.plugin.distribution,
                "version": registered.plugin.version, "origin": "entry point"
                if registered.plugin.distribution else "registered in process",
                **_spec_details(registered.spec),
            })
    return {
        "plugins": [attrs.asdict(p) for p in registry.plugins],
        "backends": backends,
        "problems": [attrs.asdict(p) for p in registry.problems],
    }


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
    for problem in registry.problems:
        about = f"{problem.kind} {problem.backend!r}: " if problem.backend else ""
        console.print(f"problem: {problem.plugin}: {about}{problem.message}")
