"""Test support for Rivet and for backend authors (opt-in pytest plugin).

Enable with ``pytest_plugins = ["rivet_core.testing"]``. It provides:

- the ``rivet_project`` fixture (:mod:`rivet_core.testing.project`): a temporary project
  directory that runs the CLI in-process;
- the destination conformance kit (:mod:`rivet_core.testing.destinations`):
  :class:`DestinationTests`, an abstract test class a destination author subclasses with
  three fixtures (the spec, a sandbox config, an independent back-door reader) to have every
  declared capability proven against the real backend, plus the fault-injection wrappers
  :class:`FaultyTarget` / :class:`FaultyDestination`;
- the format conformance kit (:mod:`rivet_core.testing.formats`): :class:`FormatTests`, an
  abstract test class a format author subclasses with two fixtures (the spec, an
  independent reader of the bytes written) to have every declared codec, level and profile
  round-trip a table of the types sources produce, and streaming and abort proven.
"""

from __future__ import annotations

from rivet_core.testing.destinations import (
    Backdoor,
    DestinationTests,
    FaultyDestination,
    FaultyTarget,
    InjectedFault,
    drive_write,
)
from rivet_core.testing.formats import (
    FormatReader,
    FormatTests,
    compression_cases,
    round_trip_table,
)
from rivet_core.testing.project import Outcome, RivetProject, rivet_project

__all__ = [
    "Backdoor",
    "DestinationTests",
    "FaultyDestination",
    "FaultyTarget",
    "FormatReader",
    "FormatTests",
    "InjectedFault",
    "Outcome",
    "RivetProject",
    "compression_cases",
    "drive_write",
    "rivet_project",
    "round_trip_table",
]
