"""``rivet schema config``: print the JSON Schema of ``rivet.toml``.

The schema itself is built by :mod:`rivet_core.config.schema` from the config models and the
installed plugins; this module only prints it.
"""

from __future__ import annotations

import argparse
import json

from rivet_core.cli.common import Console
from rivet_core.errors import ExitCode

SUBJECTS = ("config",)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "schema", help="print the JSON Schema of rivet.toml, installed plugins' keys included",
        description="Print the JSON Schema (draft 2020-12) of a config file on stdout: "
        "every key of Rivet's tables and, per `type`, of every installed source, format "
        "and destination, with its documentation. Editors and CI can check a config "
        "with it (TOML parsed to JSON); `rivet check` also applies the rules across keys.",
    )
    parser.add_argument("subject", choices=SUBJECTS, help="what to describe: the config file")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    from rivet_core.config.schema import config_schema
    from rivet_core.plugins import build_registry

    console.print(json.dumps(config_schema(build_registry()), indent=2, ensure_ascii=False))
    return ExitCode.OK
