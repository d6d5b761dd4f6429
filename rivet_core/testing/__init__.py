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
  round-trip a table of the types sources produce, and streaming and abort proven;
- the source conformance kit (:mod:`rivet_core.testing.sources`): :class:`SourceTests`, an
  abstract test class a source author subclasses with three fixtures (the spec, a sandbox
  config, a table holding the kit's sample, :data:`SAMPLE_ROWS`, created through the
  author's own connection) to have reading, batching, one read at a time, every statement
  of the runner built with the spec's dialect, secrets in errors and timeouts proven
  against the real database.

The config checks of every kit load through Rivet's real loader
(:mod:`rivet_core.testing.kitconfig`).
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
from rivet_core.testing.sources import (
    SAMPLE_COLUMNS,
    SAMPLE_ROWS,
    SourceTests,
    expected_sample,
)

__all__ = [
    "SAMPLE_COLUMNS",
    "SAMPLE_ROWS",
    "Backdoor",
    "DestinationTests",
    "FaultyDestination",
    "FaultyTarget",
    "FormatReader",
    "FormatTests",
    "InjectedFault",
    "Outcome",
    "RivetProject",
    "SourceTests",
    "compression_cases",
    "drive_write",
    "expected_sample",
    "rivet_project",
    "round_trip_table",
]
