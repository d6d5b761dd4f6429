"""The abstract classes a backend implements, and the small values passed across them.

Data moves one way: a :class:`Source` turns a :class:`Query` into a :class:`BatchStream` of
Arrow record batches; a :class:`Format` encodes batches through a :class:`FormatWriter` into
the bytes of one file; a :class:`Destination` hands out a :class:`WriteTarget` per file, which
the runner commits or aborts. No class here knows about TOML, the planner or another plugin.
"""

from __future__ import annotations

import abc
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import attrs

from rivet_core.dialect import Query
from rivet_core.errors import DestinationError

if TYPE_CHECKING:
    import pyarrow as pa

    from rivet_core.types import ColumnInfo

# --------------------------------------------------------------------------------- sources


@attrs.frozen(kw_only=True)
class ReadOptions:
    """How gently to read: batch size, timeouts, pacing and type overrides."""

    batch_size: int = 10_000
    statement_timeout_s: float = 0
    """0 disables the timeout."""
    lock_timeout_s: float = 0
    throttle_ms: int = 0
    """Pause between batches, to spread load on a busy server."""
    column_types: Mapping[str, pa.DataType] = attrs.field(factory=dict)
    """Per-column Arrow type overrides from ``[exports.columns]``."""
    max_batch_bytes: int | None = None
    """Shrink batches so one holds at most this many Arrow bytes (None: rows only)."""
    parallel: int = 1
    """Connections the source may use for this one read (row order is then not kept). Only
    asked for reads whose order does not matter."""


@attrs.frozen(kw_only=True)
class SourceContext:
    """What a source factory gets besides its config."""

    config_dir: Path
    """The config file's directory: anchors relative paths such as ``url_file``."""


class BatchStream(abc.ABC):
    """Record batches of one query, with the schema known before the first row."""

    columns: list[ColumnInfo]
    schema: pa.Schema
    read_path: str = ""
    """Which way the source reads (e.g. ``"binary COPY, 2 connections"``), for the summary;
    a source with a fast and a compatible path says which one it chose, and why."""

    _started: bool = False

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._started:
            raise RuntimeError(f"a {type(self).__name__} can be iterated only once")
        self._started = True
        return self.batches()

    @abc.abstractmethod
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the record batches, once: iterating the stream calls this. A stream reads
        forward from the server and cannot restart.

        .. versionadded:: 1.0
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the server-side cursor early (after an error downstream).

        .. versionadded:: 1.0
        """

    def cancel(self) -> None:  # noqa: B027 - optional hook
        """Ask the server to stop the statement in flight. Called from another thread than
        the one reading, when the run is interrupted (a signal), while a read may be
        blocked waiting for rows: the read then ends (with an error the runner ignores) and
        the stream is closed. Never raises. Without it, a signal waits for the statement's
        next rows, or its end.

        .. versionadded:: 1.0
        """

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Source(abc.ABC):
    """A connection to one database. Built by ``SourceSpec.factory(config, context)`` with a
    :class:`SourceContext`.

    A source connects lazily and may be closed and rebuilt between attempts (retries happen
    on a fresh connection). It never writes to the database.
    """

    @abc.abstractmethod
    def describe(self, query: Query, options: ReadOptions) -> list[ColumnInfo]:
        """Map the query's result columns without reading a row (a zero-row probe).

        .. versionadded:: 1.0
        """

    @abc.abstractmethod
    def read(self, query: Query, options: ReadOptions) -> BatchStream:
        """Start the query and return its batches. Raises
        :class:`~rivet_core.errors.UnsupportedTypeError` before returning if a column cannot
        be mapped, so no file is started.

        .. versionadded:: 1.0
        """

    def fetch_rows(self, query: Query, options: ReadOptions) -> list[dict[str, Any]]:
        """Run one of the runner's small statements (a probe, key statistics, a histogram,
        a catalog lookup: see :mod:`rivet_core.dialect`) and return every row as a dict of
        plain Python values (``int``, ``Decimal``, ``float``, ``str``, ``date``,
        ``datetime``; an instant as an aware UTC ``datetime``, or as the naive UTC wall time
        where the driver gives no zone), with the same read-only
        transaction, timeouts and session settings as :meth:`read`.

        The default reads through :meth:`read` with no column overrides, so it needs the
        source to type expression columns (``MIN(x)``, ``COUNT(*)``, ``1 AS found``). A
        source whose driver cannot, overrides it (rows straight from the driver's cursor).

        .. versionadded:: 1.0
        """
        import pyarrow as pa

        with self.read(query, attrs.evolve(options, column_types={}, parallel=1)) as stream:
            batches = list(stream)
        if not batches:
            return []
        return pa.Table.from_batches(batches).to_pylist()

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection the source opened.

        .. versionadded:: 1.0
        """

    def display_name(self) -> str:
        """Where this source reads from, safe to print (no password).

        .. versionadded:: 1.0
        """
        return type(self).__name__

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------- formats


@attrs.frozen(kw_only=True)
class Compression:
    """The codec and level a format should use, already validated against its spec."""

    codec: str
    level: int | None = None


class FormatWriter(abc.ABC):
    """Encodes the batches of one file into an Arrow output stream."""

    @abc.abstractmethod
    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Encode one batch into the file.

        .. versionadded:: 1.0
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Write buffered data and the file trailer. Does not close the output stream.

        .. versionadded:: 1.0
        """

    def abort(self) -> None:  # noqa: B027 - optional hook
        """The file is being discarded: stop writing to the output stream (a writer that
        encodes in the background waits for it here). Called before the target is aborted;
        never raises.

        .. versionadded:: 1.0
        """


class SinkGate:
    """A gate between a format's encoder and the sink it was given, for ``pa.PythonFile``:
    bytes pass until :meth:`shut`; after it, writes are dropped.

    A format whose encoding library may still write after :meth:`FormatWriter.abort` (a
    pyarrow Parquet writer writes its footer when it is collected; a compressed stream ends
    its frame) writes through a gate and shuts it in ``abort``, so a discarded file never
    gains a trailer that would make partial data look complete. ``close`` does not close the
    sink: committing or aborting is the runner's decision."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self.open = True
        """False once :meth:`shut`."""
        self._size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if self.open:
            self._sink.write(data)
            self._size += size
        return size

    def shut(self) -> None:
        """Drop every later write."""
        self.open = False

    def tell(self) -> int:
        """Bytes passed to the sink."""
        return self._size

    def flush(self) -> None:
        if self.open and hasattr(self._sink, "flush"):
            self._sink.flush()

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


class Format(abc.ABC):
    """A configured file format. Built by ``FormatSpec.factory(config, compression)``."""

    @property
    @abc.abstractmethod
    def extension(self) -> str:
        """Full file extension without the dot, including any compression suffix.

        .. versionadded:: 1.0
        """

    @abc.abstractmethod
    def open(
        self, sink: pa.NativeFile, schema: pa.Schema, *, max_file_bytes: int | None = None
    ) -> FormatWriter:
        """Start a file. ``max_file_bytes`` is the part size the runner rolls at, so the
        writer can keep its internal buffers (row groups) well below it.

        .. versionadded:: 1.0
        """


@runtime_checkable
class SupportsCredentialSource(Protocol):
    """A destination that can say which credentials it uses (``rivet doctor``
    prints it). Tested with ``isinstance``.

    .. versionadded:: 1.0
    """

    def credential_source(self) -> str:
        """Where the credentials come from (``access key from environment variables A /
        B``, ``service account file /x.json``, ``the default AWS chain``), never a
        secret.

        .. versionadded:: 1.0
        """


@runtime_checkable
class SupportsRowCount(Protocol):
    """A format that can count the rows of one of its finished files, as a reader would
    (``rivet run --validate`` re-reads every committed file with it). Tested with
    ``isinstance``; a format without it is validated by checksum only.

    .. versionadded:: 1.0
    """

    def count_rows(self, data: bytes) -> int:
        """The number of data rows in the whole file ``data`` (its header not counted);
        raises :class:`~rivet_core.errors.FormatError` when ``data`` is not a readable file
        of this format.

        .. versionadded:: 1.0
        """


# ---------------------------------------------------------------------------- destinations


_BRACED = re.compile(r"(?<!\$)\{[^{}]*\}")
"""A ``{...}`` of a path template; ``${NAME}`` is the config's own substitution."""


@attrs.frozen(kw_only=True)
class DestinationContext:
    """What a destination needs to resolve its location for one export run."""

    export: str
    run_id: str
    started_at: dt.datetime
    config_dir: Path

    PLACEHOLDERS: ClassVar[tuple[str, ...]] = ("{export}", "{date}", "{run_id}")
    """What :meth:`render` fills in a path template."""

    @classmethod
    def template_problem(cls, template: str) -> str | None:
        """Why ``template`` is not a path template :meth:`render` can fill (a ``{...}`` that
        is not one of :attr:`PLACEHOLDERS`), or None. A destination's ``config_issues``
        reports it under the key holding the template, so ``rivet check`` names it
        before anything runs.

        .. versionadded:: 1.0
        """
        unknown = [m for m in dict.fromkeys(_BRACED.findall(template))
                   if m not in cls.PLACEHOLDERS]
        if not unknown:
            return None
        return (f"unknown placeholder{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"(known: {', '.join(cls.PLACEHOLDERS)})")

    def render(self, template: str) -> str:
        """Fill the path placeholders ``{export}``, ``{date}`` (UTC ``YYYY-MM-DD``) and
        ``{run_id}``. Any other ``{...}`` is a :class:`DestinationError` (a directory named
        ``{table}`` is never what was meant); see :meth:`template_problem`."""
        problem = self.template_problem(template)
        if problem is not None:
            raise DestinationError(f"path template {template!r}: {problem}")
        values = {
            "{export}": self.export,
            "{date}": self.started_at.strftime("%Y-%m-%d"),
            "{run_id}": self.run_id,
        }
        for token, value in values.items():
            template = template.replace(token, value)
        return template


@attrs.frozen(kw_only=True)
class CommittedFile:
    """A file the destination has made visible."""

    name: str
    """Name relative to the destination's location (what ``open`` was given)."""
    uri: str
    """Where a reader finds it (``file:///…``, ``s3://…``, ``stdout``)."""


class WriteTarget(abc.ABC):
    """One file being written. The runner calls :meth:`write` many times, then exactly one of
    :meth:`commit` or :meth:`abort`. Visibility follows the destination's commit protocol."""

    @abc.abstractmethod
    def write(self, data: bytes | memoryview) -> None:
        """Append bytes. The buffer may be reused by the caller after the call returns.

        .. versionadded:: 1.0
        """

    @abc.abstractmethod
    def commit(self) -> CommittedFile:
        """Make the file visible under its final name (no-op for streaming).

        .. versionadded:: 1.0
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard the file; never raises for a target that is already gone.

        .. versionadded:: 1.0
        """


class Destination(abc.ABC):
    """A configured place to put files. Built by ``DestinationSpec.factory(config, context)``."""

    @abc.abstractmethod
    def open(self, name: str) -> WriteTarget:
        """Start writing the file ``name`` (a plain file name, no directories).

        .. versionadded:: 1.0
        """

    @abc.abstractmethod
    def location(self) -> str:
        """The resolved location files go to, safe to print (``file:///out/orders/…``).

        .. versionadded:: 1.0
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections.

        .. versionadded:: 1.0
        """


@runtime_checkable
class SupportsListing(Protocol):
    """A destination whose committed files can be listed, read back, removed, and which can
    store a small file in one atomic step: what run manifests and ``rivet validate`` need.
    Tested with ``isinstance``; a streaming destination does not implement it.

    Names are relative to :meth:`Destination.location` and may contain ``/`` (the manifest
    lives under ``_rivet/<export>/``).
    """

    def list_files(self, prefix: str = "") -> dict[str, int]:
        """Map of name → size in bytes of every committed file whose name starts with
        ``prefix``, at any depth. Files a reader cannot see (temp files, incomplete uploads)
        are not listed.

        .. versionadded:: 1.0
        """

    def read_file(self, name: str) -> bytes:
        """The whole content of a committed file; raises
        :class:`~rivet_core.errors.DestinationError` if it does not exist.

        .. versionadded:: 1.0
        """

    def delete_file(self, name: str) -> None:
        """Remove a file; a file that does not exist is not an error.

        .. versionadded:: 1.0
        """

    def write_small(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` so a reader sees the old content or the new one,
        never a mix (local: temp file and rename; object stores: one PUT).

        .. versionadded:: 1.0
        """


@runtime_checkable
class SupportsScratchWrite(Protocol):
    """A listing destination that can store a small object atomically without making it
    durable: :meth:`write_scratch` is ``write_small`` less the flushes to disk. Optional.

    ``rivet run`` probes the destination before every export (it writes, reads back and
    deletes an object under ``_rivet/<export>/``); that object is deleted within
    milliseconds and means nothing after a crash, so a durable write (two ``fsync`` s on a
    local disk) is pure cost, paid per export. The write must go through the same steps
    as ``write_small`` (create, write, rename), so it needs, and proves, the same
    permissions. Tested with ``isinstance``; a destination without it is probed with
    ``write_small`` (an object store's PUT has no cheaper form).

    .. versionadded:: 1.1
    """

    def write_scratch(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` as ``write_small`` does, a reader seeing the whole
        object or none, but without waiting for it to reach the disk.

        .. versionadded:: 1.1
        """
