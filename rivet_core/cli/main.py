"""Entry point of the ``rivet`` command: argument parsing and error → exit code mapping.

Handled errors (:class:`~rivet_core.errors.RivetError`) print one line plus a hint and no
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from rivet_core import __version__
from rivet_core.cli import check_cmd, history_cmd, plugins_cmd, run_cmd, state_cmd, validate_cmd
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rivet", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rivet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output on stderr (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (run_cmd, check_cmd, validate_cmd, state_cmd, history_cmd, plugins_cmd):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    console = console or Console()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code or 0)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="rivet: %(levelname)s: %(message)s", stream=console.err, force=True,
    )
    if args.command is None:
        parser.print_help(console.err)
        return ExitCode.USAGE
    try:
        with stop_on_signals() as stop:
            args.stop = stop
            return int(args.handler(args, console))
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
    # Outside main's own handling (while the interpreter winds down after the summary), a
    # SIGTERM still ends the process the documented way: exit 130, output flushed.
    for sig in SIGNALS:
        signal.signal(sig, _exit_interrupted)
    sys.exit(main())


def _exit_interrupted(signum: int, frame: object) -> None:
    raise SystemExit(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    console_script()
