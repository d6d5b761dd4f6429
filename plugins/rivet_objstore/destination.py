"""The object-store destination and its write target, over obstore's multipart writer.

A :class:`ObjectStoreTarget` wraps ``obstore.open_writer``: bytes are buffered up to
``part_size`` and shipped as multipart parts while the file is written; :meth:`commit`
completes the upload (a file smaller than one part becomes a single PUT), :meth:`abort`
aborts it through the writer's exception path: S3 and GCS discard every uploaded part; on
Azure the parts are staged blocks, which stay uncommitted (invisible) until Azure discards
them itself. Calling the writer's ``close()`` on an error would instead *commit* a partial
object, so it is only ever called by :meth:`commit`.

obstore errors are mapped here: authentication and permission failures become permanent
:class:`DestinationError` naming the credential source; a TLS failure (a certificate that
does not chain to a trusted CA or does not name the endpoint, a handshake that fails) is
permanent too, named as such with the CAs trusted, although obstore words it as a
connection error; failures obstore already retried (5xx, connection, timeout) become
:class:`TransientDestinationError`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rivet_core.api import (
    CommittedFile,
    Destination,
    DestinationContext,
    DestinationError,
    TransientDestinationError,
    WriteTarget,
    redact,
)
from rivet_objstore.config import StoreOptions
from rivet_objstore.store import StoreHandle

log = logging.getLogger("rivet.objstore")

_AUTH = re.compile(
    r"status(?: code)?:? 40[13]\b|\b40[13] (?:Forbidden|Unauthorized)|AccessDenied|"
    r"InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|InvalidToken|"
    r"error getting credentials|failed to load credentials|invalid_grant|"
    r"metadata\.google\.internal|169\.254\.169\.254",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"status(?: code)?:? (?:5\d\d|429)\b|\b(?:5\d\d|429) [A-Z]|SlowDown|timed out|timeout|"
    r"error sending request|connection (?:reset|refused|closed)|broken pipe|"
    r"dispatch task is gone|unexpected eof|incomplete message",
    re.IGNORECASE,
)


_TLS = re.compile(
    # rustls' error names, from obstore's debug dump (the headline only says "error sending
    # request").
    r"InvalidCertificate\(\s*(\w+)|\b(AlertReceived|PeerIncompatible|PeerMisbehaved|"
    r"InvalidMessage|InvalidContentType|CorruptMessage)\b|certificate verify failed")
_TLS_CHECKS = {
    "UnknownIssuer": "the certificate is not signed by a trusted CA",
    "BadSignature": "the certificate is not signed by a trusted CA (a trusted CA bears its "
                    "issuer's name, but did not sign it)",
    "NotValidForName": "the certificate does not name the endpoint's host",
    "NotValidForNameContext": "the certificate does not name the endpoint's host",
    "Expired": "the certificate has expired",
    "ExpiredContext": "the certificate has expired",
    "NotValidYet": "the certificate is not valid yet",
    "Revoked": "the certificate is revoked",
}


def tls_error(exc: BaseException, action: str, handle: StoreHandle) -> DestinationError | None:
    """A TLS failure as a permanent error saying which check failed and which CAs were
    trusted, or None."""
    found = _TLS.search(str(exc))
    if found is None:
        return None
    kind = found.group(1) or found.group(2) or "handshake"
    reason = _TLS_CHECKS.get(kind, f"the TLS handshake failed ({kind})")
    if kind in ("InvalidContentType", "CorruptMessage", "InvalidMessage"):
        reason += "; is the endpoint plain HTTP?"
    return DestinationError(
        f"{action}: TLS certificate check failed: {reason} (trusted: {handle.trust})",
        hint="set ca_file to the PEM file of the CA that signed the endpoint's certificate "
             "(or SSL_CERT_FILE to a bundle, for the whole process), and use a host name "
             "the certificate lists")


class _Abort(Exception):
    """Handed to the obstore writer's ``__exit__`` so it aborts instead of completing."""


def _headline(exc: BaseException) -> str:
    """obstore's message without its ``Debug source:`` dump (whose field names, such as
    ``retry_timeout``, would fool the classification)."""
    return str(exc).split("\n\nDebug source", 1)[0]


_XML_ERROR = re.compile(r"<\?xml[^>]*\?>\s*<Error>(.*?)</Error>", re.DOTALL)


def _xml_error(found: re.Match[str]) -> str:
    """An S3/GCS/Azure XML error body as ``Code: Message`` (request ids, host ids and the
    request id and time Azure appends to its message dropped)."""
    parts = [m.group(1).split("\nRequestId:", 1)[0].strip() for tag in ("Code", "Message")
             if (m := re.search(rf"<{tag}>(.*?)</{tag}>", found.group(1), re.DOTALL))]
    return ": ".join(parts) or "an XML error document"


def describe_error(exc: BaseException) -> str:
    """obstore's message, redacted and cut to its first lines (it can carry a whole
    response body; an XML error document is cut to its code and message)."""
    text = _XML_ERROR.sub(_xml_error, redact(_headline(exc))).strip()
    lines = text.splitlines()
    short = " ".join(line.strip() for line in lines[:3])
    return short[:600] + ("…" if len(short) > 600 else "")


def map_error(exc: BaseException, action: str, handle: StoreHandle) -> DestinationError:
    """The Rivet error for an obstore failure during ``action``."""
    from obstore import exceptions as oe

    detail = describe_error(exc)
    headline = _headline(exc)
    tls = tls_error(exc, action, handle)
    if tls is not None:
        return tls
    if isinstance(exc, oe.PermissionDeniedError | oe.UnauthenticatedError | PermissionError) \
            or _AUTH.search(headline):
        return DestinationError(
            f"{action}: access denied ({detail}); credentials: {handle.credential_source}",
            hint=f"check that these credentials may write to {handle.container_key} "
                 f"{handle.bucket!r}",
        )
    # A write reports it as not found; a listing as a generic 404 naming the same code.
    if "NoSuchBucket" in headline or "ContainerNotFound" in headline:
        what = handle.container_key
        return DestinationError(f"{action}: {what} {handle.bucket!r} not found ({detail})",
                                hint=f"create the {what}, or fix `{what}`/`endpoint`")
    if _TRANSIENT.search(headline):
        return TransientDestinationError(f"{action}: {detail}")
    return DestinationError(f"{action}: {detail}")


class ObjectStoreDestination(Destination):
    """Files as objects under ``<bucket or container>/<prefix>/``; implements
    ``SupportsListing``."""

    def __init__(self, handle: StoreHandle, options: StoreOptions,
                 context: DestinationContext) -> None:
        self.handle = handle
        self.options = options
        self.part_size = options.part_bytes()

    def key(self, name: str) -> str:
        return f"{self.handle.prefix}/{name}" if self.handle.prefix else name

    def uri(self, name: str) -> str:
        return f"{self.handle.root}/{self.key(name)}"

    def location(self) -> str:
        prefix = f"/{self.handle.prefix}" if self.handle.prefix else ""
        return f"{self.handle.root}{prefix}"

    def credential_source(self) -> str:
        """Which credentials are in use, never a secret (``rivet doctor``)."""
        return self.handle.credential_source

    def open(self, name: str) -> WriteTarget:
        if "/" in name or name in ("", ".", ".."):
            raise DestinationError(f"invalid file name {name!r}")
        return ObjectStoreTarget(self, name)

    # ------------------------------------------------------------------ SupportsListing

    def list_files(self, prefix: str = "") -> dict[str, int]:
        import obstore

        base = f"{self.handle.prefix}/" if self.handle.prefix else ""
        # obstore matches a list prefix by whole path segments, so list the directory part
        # and filter by the string prefix here.
        directory = (base + prefix).rpartition("/")[0]
        found: dict[str, int] = {}
        try:
            for page in obstore.list(self.handle.store, prefix=directory or None):
                for meta in page:
                    name = meta["path"][len(base):]
                    if meta["path"].startswith(base) and name.startswith(prefix):
                        found[name] = meta["size"]
        except Exception as exc:
            raise map_error(exc, f"listing {self.location()}", self.handle) from exc
        return found

    def read_file(self, name: str) -> bytes:
        import obstore

        try:
            return bytes(obstore.get(self.handle.store, self.key(name)).bytes())
        except Exception as exc:
            raise map_error(exc, f"reading {self.uri(name)}", self.handle) from exc

    def delete_file(self, name: str) -> None:
        import obstore

        try:
            obstore.delete(self.handle.store, self.key(name))
        except FileNotFoundError:  # S3 answers 204 for a missing key, GCS and Azure 404
            pass
        except Exception as exc:
            raise map_error(exc, f"deleting {self.uri(name)}", self.handle) from exc

    def write_small(self, name: str, data: bytes) -> None:
        import obstore

        try:
            # One PUT: the object is replaced whole or not at all.
            obstore.put(self.handle.store, self.key(name), data, use_multipart=False)
        except Exception as exc:
            raise map_error(exc, f"writing {self.uri(name)}", self.handle) from exc


class ObjectStoreTarget(WriteTarget):
    """One object being uploaded; invisible until :meth:`commit`."""

    def __init__(self, destination: ObjectStoreDestination, name: str) -> None:
        import obstore

        self.destination = destination
        self.name = name
        self.uri = destination.uri(name)
        self._done = False
        try:
            self._writer: Any = obstore.open_writer(
                destination.handle.store, destination.key(name),
                buffer_size=destination.part_size,
                max_concurrency=destination.options.upload_concurrency,
            )
        except Exception as exc:
            raise map_error(exc, f"starting upload of {self.uri}", destination.handle) from exc

    def write(self, data: bytes | memoryview) -> None:
        if self._done:
            raise DestinationError(f"writing {self.uri}: the upload is already finished")
        try:
            # obstore keeps a reference and sends later; the caller reuses its buffer, so copy.
            self._writer.write(bytes(data))
        except Exception as exc:
            raise map_error(exc, f"uploading {self.uri}", self.destination.handle) from exc

    def commit(self) -> CommittedFile:
        if self._done:
            raise DestinationError(f"committing {self.uri}: the upload is already finished")
        try:
            self._writer.close()
        except Exception as exc:
            error = map_error(exc, f"completing upload of {self.uri}",
                              self.destination.handle)
            self.abort()
            raise error from exc
        self._done = True
        return CommittedFile(name=self.name, uri=self.uri)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._writer.__exit__(_Abort, _Abort("aborted by rivet"), None)
        except Exception as exc:  # the failure being handled matters more than the cleanup
            log.warning("aborting upload of %s failed: %s", self.uri, describe_error(exc))
