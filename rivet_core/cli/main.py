"""Entry point of the ``rivet`` command: argument parsing and error → exit code mapping.

Handled errors (:class:`~rivet_core.errors.RivetError`) print one line plus a hint and no
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from rivet_core import __version__
from rivet_core.cli.common import Console
from rivet_core.errors import ConfigError, ExitCode, RivetError
from rivet_core.redact import redact
from rivet_core.runner.signals import SIGNALS, stop_on_signals

DESCRIPTION = """\
Export PostgreSQL and MySQL query results to Parquet or CSV files on local disk, S3, GCS
or stdout: source-safe, resumable and auditable.

examples:
  rivet check -c rivet.toml          validate the config and plan, touch nothing
  rivet run -c rivet.toml            run every export
  rivet run -c rivet.toml -e orders  run one export
  rivet plugins --json               installed backends and their capabilities
"""


COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("rivet_core.cli.run_cmd", "run the exports of a config"),
    "check": ("rivet_core.cli.check_cmd",
              "validate the config and plan; with --type-report, map every column"),
    "validate": ("rivet_core.cli.validate_cmd",
                 "check each export's destination against its run manifest"),
    "reconcile": ("rivet_core.cli.reconcile_cmd",
                  "count each chunk of a chunked run at the source and the destination"),
    "repair": ("rivet_core.cli.reconcile_cmd",
               "re-export the chunks of a chunked run that reconcile found different"),
    "state": ("rivet_core.cli.state_cmd",
              "inspect or reset cursors, files and chunk checkpoints"),
    "journal": ("rivet_core.cli.history_cmd", "the step-by-step event log of recent runs"),
    "metrics": ("rivet_core.cli.history_cmd",
                "run history: status, rows, files, bytes, duration, peak memory"),
    "plugins": ("rivet_core.cli.plugins_cmd",
                "list installed backends and their declared capabilities"),
}
"""Every command: the module that registers and handles it, and its one-line help. Only the
module of the command being run is imported, so ``rivet --version`` and ``rivet --help``
load no pyarrow, no driver and no plugin, and a signal during start-up is already handled
(:func:`main` installs the handlers before it imports the command)."""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with every command listed and the one ``argv`` names fully defined
    (every command fully defined when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        prog="rivet", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rivet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output on stderr (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    if argv is None:
        wanted = set(home for home, _ in COMMANDS.values())
    else:
        chosen = next((arg for arg in argv if arg in COMMANDS), None)
        wanted = {COMMANDS[chosen][0]} if chosen else set()
    registered: set[str] = set()
    for name, (home, help_text) in COMMANDS.items():
        if home not in wanted:
            commands.add_parser(name, help=help_text, add_help=False)
        elif home not in registered:
            registered.add(home)
            importlib.import_module(home).register(commands)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it). SIGTERM and
    SIGINT are handled from the first line to the last: exit 130, open files aborted."""
    console = console or Console()
    argv = list(sys.argv[1:] if argv is None else argv)
    with stop_on_signals() as stop:
        return _run(argv, console, stop)


def _run(argv: list[str], console: Console, stop: threading.Event) -> int:
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        logging.basicConfig(
            level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
            format="rivet: %(levelname)s: %(message)s", stream=console.err, force=True,
        )
        if args.command is None:
            parser.print_help(console.err)
            return ExitCode.USAGE
        args.stop = stop
        return int(args.handler(args, console))
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code or 0)
    except ConfigError as exc:
        for issue in exc.issues:
            console.err.write(f"rivet: config error: {redact(issue.render())}\n")
        if exc.hint:
            console.err.write(f"  hint: {redact(exc.hint)}\n")
        return exc.exit_code
    except RivetError as exc:
        console.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        console.err.write("rivet: interrupted\n")
        return ExitCode.INTERRUPTED


def console_script() -> None:
    """The ``rivet`` command. A signal outside :func:`main`'s own handling (just before it,
    or after the summary) still ends the process the documented way, exit 130; and the
    process ends as soon as its output is flushed, so no interpreter wind-down is left for a
    signal to kill with the default action (-15)."""
    for sig in SIGNALS:
        signal.signal(sig, _exit_interrupted)
    try:
        code = main()
    except SystemExit as exc:  # a signal after main returned
        code = int(exc.code or 0)
    try:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):  # a reader that closed its pipe
                stream.flush()
    except SystemExit as exc:
        code = int(exc.code or 0)
    os._exit(code)


def _exit_interrupted(signum: int, frame: object) -> None:
    raise SystemExit(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    console_script()
