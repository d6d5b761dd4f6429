"""What every command shares: loading config and plugins, printing, exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from rivet_core.errors import ConfigError, ConfigIssue, RivetError, UsageError
from rivet_core.redact import redact

if TYPE_CHECKING:
    from rivet_core.config.loader import LoadedConfig
    from rivet_core.planner import Plan
    from rivet_core.plugins import Registry


@attrs.define
class Console:
    """Where a command writes: data and JSON to ``out``, people-facing text to ``err``."""

    out: TextIO = attrs.field(factory=lambda: sys.stdout)
    err: TextIO = attrs.field(factory=lambda: sys.stderr)

    def say(self, text: str = "") -> None:
        """A line for people (stderr)."""
        self.err.write(redact(text) + "\n")

    def print(self, text: str = "") -> None:
        """A line of the command's result (stdout)."""
        self.out.write(redact(text) + "\n")

    def json(self, value: Any) -> None:
        self.out.write(redact(json.dumps(value, indent=2, default=str)) + "\n")

    def error(self, exc: RivetError) -> None:
        self.err.write(f"rivet: error: {redact(exc.message)}\n")
        if exc.hint:
            self.err.write(f"  hint: {redact(exc.hint)}\n")


def parse_params(items: Sequence[str] | None) -> dict[str, str]:
    """``--param key=value`` pairs; a later key wins."""
    params: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError([ConfigIssue("--param", "", f"expected KEY=VALUE, got {item!r}")])
        params[key] = value
    return params


def load(config_path: str, params: Sequence[str] | None, *,
         connect: bool = True) -> tuple[Registry, LoadedConfig]:
    # Imported here: the config loader and the planner pull in the runner and pyarrow,
    # which commands that never load a config (--version, --help) must not pay for.
    from rivet_core.config.loader import load_config
    from rivet_core.plugins import build_registry

    registry = build_registry()
    loaded = load_config(Path(config_path), registry, params=parse_params(params),
                         connect=connect)
    _ensure_backends(registry, loaded)
    return registry, loaded


def _ensure_backends(registry: Registry, loaded: LoadedConfig) -> None:
    """Fail with a plugin error if a backend the config needs is unusable (the loader already
    reported unknown names as config errors)."""
    config = loaded.config
    registry.get("source", config.source.type)
    for export in config.exports:
        registry.get("format", export.format.type)
        registry.get("destination", export.destination.type)


def plan_for(config_path: str, params: Sequence[str] | None,
             exports: Sequence[str] | None, *, resume: bool = False,
             connect: bool = True) -> Plan:
    """The checked plan. ``connect=False``: the command never opens the source, so the
    source's credentials need not be set (see :func:`load_config`)."""
    from rivet_core.planner import build_plan

    registry, loaded = load(config_path, params, connect=connect)
    names = [e.name for e in loaded.config.exports]
    for name in exports or ():
        if name not in names:
            raise UsageError(f"export {name!r} not found in {Path(config_path).name}",
                             hint=f"known exports: {', '.join(names)}")
    return build_plan(loaded, registry, only=list(exports) if exports else None, resume=resume)


def add_config_arguments(parser: argparse.ArgumentParser, *, exports: bool = True) -> None:
    parser.add_argument("-c", "--config", default="rivet.toml", metavar="PATH",
                        help="config file (default: ./rivet.toml)")
    if exports:
        parser.add_argument("-e", "--export", action="append", metavar="NAME", dest="exports",
                            help="only this export (repeatable; default: all)")
    parser.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", dest="params",
                        help="value for ${KEY} in the config; wins over the environment "
                             "(repeatable)")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
