"""Built-in ``local`` destination: files in a directory on this machine, committed atomically.

Each file is written to a hidden temp file in the target directory, fsynced, and renamed
onto its final name at commit, so a reader sees the whole file or nothing.
"""

from __future__ import annotations

from rivet_core import hookimpl
from rivet_core.api import DestinationCapabilities, DestinationSpec, WriteCommitProtocol

CAPABILITIES = DestinationCapabilities(
    commit_protocol=WriteCommitProtocol.ATOMIC,
    # os.replace onto the same name leaves one file with the new bytes.
    idempotent_overwrite=True,
    # A failed write is aborted (temp file removed) before any retry starts afresh.
    retry_safe=True,
    # Readers never see the temp file's name; a killed process leaves only a hidden
    # `.name.<pid>.<token>.rivet-tmp`, swept by the next run.
    partial_write_risk=False,
    multi_file=True,
)


def _factory(config, context):  # type: ignore[no-untyped-def]
    from rivet_local.destination import LocalDestination

    return LocalDestination(config, context)


@hookimpl
def rivet_destinations() -> list[DestinationSpec]:
    from rivet_local.config import LocalOptions

    return [
        DestinationSpec(
            name="local",
            config_cls=LocalOptions,
            factory=_factory,
            capabilities=CAPABILITIES,
            seekable=True,
            description="Directory on local disk; atomic rename on commit.",
        )
    ]
