"""Built-in ``s3``, ``gcs`` and ``azure`` destinations: objects in a bucket (blobs in a
container), uploaded with obstore.

Each file streams into a multipart upload (Azure: staged blocks) while it is written (no
local copy; memory is bounded by ``part_size`` x (``upload_concurrency`` + 1)); commit
completes the upload (Azure: commits the block list), abort aborts it, so a reader sees the
whole object or none. This module only declares the specs: obstore is imported inside the
factory so ``rivet --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

from rivet_core import hookimpl
from rivet_core.api import DestinationCapabilities, DestinationSpec, WriteCommitProtocol

CAPABILITIES = DestinationCapabilities(
    commit_protocol=WriteCommitProtocol.FINALIZE_ON_CLOSE,
    # A completed upload replaces the object under the same key: one object, new bytes.
    idempotent_overwrite=True,
    # A failed write is aborted (the multipart upload and its parts discarded) before a
    # retry starts from scratch, so the retry leaves what one clean write leaves.
    retry_safe=True,
    # Parts are invisible until completion; a killed process leaves at most an incomplete
    # upload, which no reader lists or reads (see docs/destinations.md for cleaning it up).
    partial_write_risk=False,
    multi_file=True,
)

AZURE_CAPABILITIES = DestinationCapabilities(
    commit_protocol=WriteCommitProtocol.FINALIZE_ON_CLOSE,
    # A blob becomes visible only when Put Blob (a file smaller than one block) or Put Block
    # List (the staged blocks) commits it, and the commit replaces it whole.
    idempotent_overwrite=True,
    # Staged blocks stay invisible; a retry's commit of the same name discards the failed
    # attempt's uncommitted blocks, so it leaves what one clean write leaves.
    retry_safe=True,
    # Uncommitted blocks are never listed or read. Abort cannot delete them (Azure has no
    # call for it): the next commit of the name, or Azure after a week, discards them.
    partial_write_risk=False,
    multi_file=True,
)


def _s3_factory(config: Any, context: Any) -> Any:
    from rivet_objstore.destination import ObjectStoreDestination
    from rivet_objstore.store import build_s3

    return ObjectStoreDestination(build_s3(config, context), config, context)


def _gcs_factory(config: Any, context: Any) -> Any:
    from rivet_objstore.destination import ObjectStoreDestination
    from rivet_objstore.store import build_gcs

    return ObjectStoreDestination(build_gcs(config, context), config, context)


def _azure_factory(config: Any, context: Any) -> Any:
    from rivet_objstore.destination import ObjectStoreDestination
    from rivet_objstore.store import build_azure

    return ObjectStoreDestination(build_azure(config, context), config, context)


@hookimpl
def rivet_destinations() -> list[DestinationSpec]:
    from rivet_objstore.config import AzureOptions, GCSOptions, S3Options

    return [
        DestinationSpec(
            name="s3",
            config_cls=S3Options,
            factory=_s3_factory,
            capabilities=CAPABILITIES,
            description="Amazon S3 or an S3-compatible store (MinIO, R2); multipart upload "
            "completed on commit.",
        ),
        DestinationSpec(
            name="gcs",
            config_cls=GCSOptions,
            factory=_gcs_factory,
            capabilities=CAPABILITIES,
            description="Google Cloud Storage (XML API); multipart upload completed on commit.",
        ),
        DestinationSpec(
            name="azure",
            config_cls=AzureOptions,
            factory=_azure_factory,
            capabilities=AZURE_CAPABILITIES,
            description="Azure Blob Storage (block blobs; or Azurite, its emulator); staged "
            "blocks committed on commit.",
        ),
    ]
