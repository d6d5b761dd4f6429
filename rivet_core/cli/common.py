"""What every command shares: loading config and plugins, printing, exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from rivet_core.errors import ConfigError, ConfigIssue, RivetError, UsageError
from rivet_core.redact import redact
from rivet_core.runner.timings import phase

if TYPE_CHECKING:
    from rivet_core.config.loader import LoadedConfig
    from rivet_core.planner import Plan
    from rivet_core.plugins import Registry

log = logging.getLogger("rivet.config")
plan_log = logging.getLogger("rivet.plan")


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
        self._out(redact(text) + "\n")

    def json(self, value: Any) -> None:
        self._out(redact(json.dumps(value, indent=2, default=str)) + "\n")

    def _out(self, text: str) -> None:
        try:
            self.out.write(text)
        except BrokenPipeError:
            raise StdoutClosed from None

    def error(self, exc: RivetError) -> None:
        self.err.write(f"rivet: error: {redact(exc.message)}\n")
        if exc.hint:
            self.err.write(f"  hint: {redact(exc.hint)}\n")

    def error_json(self, exc: RivetError, *, exit_code: int | None = None) -> None:
        """A handled error as one JSON object on one line of stderr, for commands run
        with ``--json``: ``error``, ``hint``, ``exit_code``, and for a config error every
        ``issue`` (``file``, ``path``, ``message``, ``hint``)."""
        issues = getattr(exc, "issues", None)
        document: dict[str, Any] = {
            "error": redact("; ".join(i.render() for i in issues) if issues else exc.message),
            "hint": redact(exc.hint) if exc.hint else None,
            "exit_code": int(exc.exit_code if exit_code is None else exit_code),
        }
        if issues:
            document["issues"] = [
                {"file": i.file, "path": i.path, "message": redact(i.message),
                 "hint": redact(i.hint) if i.hint else None} for i in issues]
        self.err.write(redact(json.dumps(document, ensure_ascii=False)) + "\n")


class StdoutClosed(Exception):
    """The reader of stdout closed it before the command had written everything
    (``rivet state files | head``): the command stops, and the CLI exits
    :attr:`~rivet_core.errors.ExitCode.BROKEN_PIPE` without a traceback."""


def release_stdout(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null, so the bytes still buffered for the
    closed pipe (flushed at exit) go nowhere instead of raising again. The pattern the
    Python documentation recommends for SIGPIPE (see the ``signal`` module)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a real file (a test's StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


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

    with phase("config"):
        registry = build_registry()
        loaded = load_config(Path(config_path), registry, params=parse_params(params),
                             connect=connect)
        _ensure_backends(registry, loaded)
    config = loaded.config
    log.info("config loaded: %s (source %s; %d export(s): %s)", config.path,
             config.source.type, len(config.exports),
             ", ".join(e.name for e in config.exports))
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
    with phase("plan"):
        plan = build_plan(loaded, registry, only=list(exports) if exports else None,
                          resume=resume)
    plan_log.info("plan built: %d export(s), %d rejected, %d diagnostic(s)", len(plan.exports),
             len(plan.rejected_exports()), len(plan.diagnostics))
    for p in plan.exports:
        plan_log.debug("export %s: mode %s, %s → %s (%s) → %s, batch_size %d, "
                  "statement_timeout %gs, max_retries %d", p.name, p.config.mode,
                  p.source.spec.name, p.format.spec.name, p.compression.codec,
                  p.destination.spec.name, p.tuning.batch_size, p.tuning.statement_timeout_s,
                  p.tuning.max_retries)
    return plan


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
