"""What a destination promises about its writes, and the checks that keep promises coherent.

A capability is defined by what a reader of the destination, or a re-run of Rivet, can
observe. The planner reasons only from these declarations; the conformance kit
(:mod:`rivet_core.testing`) proves each one against the real backend.
"""

from __future__ import annotations

import enum

import attrs


class WriteCommitProtocol(enum.Enum):
    """How a file becomes visible to readers of the destination."""

    ATOMIC = "atomic"
    """The file appears whole at :meth:`WriteTarget.commit` or never: before commit a reader
    sees no file under the final name (and never a shorter one); after
    :meth:`WriteTarget.abort`, or if the process dies before commit, nothing is left under the
    final name. Example: temp file in the target directory, fsync, rename."""

    FINALIZE_ON_CLOSE = "finalize_on_close"
    """Bytes are shipped while the file is written but stay invisible until commit completes
    the upload (S3/GCS multipart). Abort discards every uploaded part; a reader never sees a
    partial object."""

    STREAMING = "streaming"
    """Bytes are visible to the reader as soon as they are written and there is no commit
    point (stdout, a pipe). A failure leaves whatever was already written."""


@attrs.frozen(kw_only=True)
class DestinationCapabilities:
    """The promises a destination makes. Every field is required: an author must take a
    position on each one. Fields added in later versions default to the cautious value."""

    commit_protocol: WriteCommitProtocol
    """See :class:`WriteCommitProtocol`."""

    idempotent_overwrite: bool
    """Writing the same file name twice leaves exactly one file holding the second write's
    bytes; no duplicate object, no concatenation."""

    retry_safe: bool
    """A write that fails with a transient error and is then retried from the start leaves the
    destination exactly as one clean write would (no orphaned object, part or byte)."""

    partial_write_risk: bool
    """A failure (exception, crash, kill) during a write can leave bytes a reader may see.
    Must be true for ``streaming``."""

    multi_file: bool = False
    """The destination stores named files, so one run may produce several (``max_file_size``
    parts, chunk files). False for a single anonymous stream such as stdout.
    ``versionadded: 0.1``; cautious default False."""

    def label(self) -> str:
        return self.commit_protocol.value


def check_declaration(caps: object) -> list[str]:
    """Return every inconsistency in a capability declaration (empty when it is coherent).

    The checks are the implications that follow from the definitions above, so a destination
    cannot declare, say, a streaming commit that is free of partial writes.
    """
    if not isinstance(caps, DestinationCapabilities):
        return [f"capabilities must be a DestinationCapabilities, got {type(caps).__name__}"]
    problems: list[str] = []
    if not isinstance(caps.commit_protocol, WriteCommitProtocol):
        problems.append(
            f"commit_protocol must be a WriteCommitProtocol, got {caps.commit_protocol!r}"
        )
    for field in attrs.fields(DestinationCapabilities):
        if field.type in ("bool", bool) and not isinstance(getattr(caps, field.name), bool):
            value = getattr(caps, field.name)
            problems.append(f"{field.name} must be True or False, got {value!r}")
    if caps.commit_protocol is WriteCommitProtocol.STREAMING:
        if not caps.partial_write_risk:
            problems.append(
                "a streaming destination shows bytes before the end of the write, so it must "
                "declare partial_write_risk=True"
            )
        if caps.retry_safe:
            problems.append(
                "a streaming destination cannot take back bytes it already emitted, so it "
                "cannot be retry_safe"
            )
        if caps.idempotent_overwrite:
            problems.append(
                "a streaming destination has no named file to overwrite, so it cannot declare "
                "idempotent_overwrite"
            )
    return problems
