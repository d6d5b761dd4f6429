"""Built-in ``stdout`` destination: the file's bytes streamed to standard output.

For pipes (``rivet run ... | duckdb``). There is no commit point: bytes are visible as
written, so the planner refuses what needs one (several files, cursors, retries).
"""

from __future__ import annotations

import contextlib
import sys

import attrs

from rivet_core import hookimpl
from rivet_core.api import (
    CommittedFile,
    Destination,
    DestinationCapabilities,
    DestinationContext,
    DestinationError,
    DestinationSpec,
    WriteCommitProtocol,
    WriteTarget,
)

CAPABILITIES = DestinationCapabilities(
    commit_protocol=WriteCommitProtocol.STREAMING,
    idempotent_overwrite=False,
    retry_safe=False,
    partial_write_risk=True,
    multi_file=False,
)


@attrs.frozen(kw_only=True)
class StdoutOptions:
    """``type = "stdout"`` takes no keys."""


class StdoutDestination(Destination):
    def __init__(self, options: StdoutOptions, context: DestinationContext) -> None:
        self.stream = sys.stdout.buffer

    def location(self) -> str:
        return "stdout"

    def open(self, name: str) -> WriteTarget:
        return StdoutTarget(self.stream, name)


class StdoutTarget(WriteTarget):
    def __init__(self, stream, name: str) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream
        self.name = name

    def write(self, data: bytes | memoryview) -> None:
        try:
            self.stream.write(data)
        except BrokenPipeError:
            raise _closed() from None

    def commit(self) -> CommittedFile:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise _closed() from None
        return CommittedFile(name=self.name, uri="stdout")

    def abort(self) -> None:
        # Nothing can be taken back from a stream; flush so the reader sees where it stopped
        # (unless the reader is gone: a closed pipe takes nothing more).
        with contextlib.suppress(BrokenPipeError):
            self.stream.flush()


def _closed() -> DestinationError:
    """The reader of the pipe closed it (``rivet run | head``): the file is incomplete."""
    return DestinationError("stdout was closed by its reader before the whole file was "
                            "written: the export is incomplete",
                            hint="read the whole stream, or use a file destination to "
                                 "read part of an export")


@hookimpl
def rivet_destinations() -> list[DestinationSpec]:
    return [
        DestinationSpec(
            name="stdout",
            config_cls=StdoutOptions,
            factory=StdoutDestination,
            capabilities=CAPABILITIES,
            description="Standard output, for pipes; streaming, one file per run.",
        )
    ]
