"""Reading through ConnectorX: the batch stream of the fast path, its session statements,
its errors, and how it stops the server when a read ends early.

What is carried and how is decided by :mod:`rivet_mysql.carriers`, which statements a read
runs by :mod:`rivet_mysql.cxplan`; the choice between this path and the pymysql one is made
by :mod:`rivet_mysql.source`. Here:

- :func:`connection_url` says exactly where ConnectorX connects and how: the host and port
  of the config, never a Unix socket (``prefer_socket=false``: the driver would otherwise
  reconnect to 127.0.0.1 through the socket path the server reports, which may belong to
  another server, and would skip TLS on it), and TLS as the mode asks (:func:`tls_query`).
- :func:`session_statements` are run by ConnectorX on each of its connections before the
  query (``pre_execution_query``): when the connection must be encrypted, first a statement
  that fails unless the server reports a TLS cipher for the session
  (:func:`tls_check_statement`); then ``SET NAMES utf8mb4``, the session time zone +00:00,
  the statement and lock timeouts, then ``START TRANSACTION READ ONLY``. ConnectorX opens its
  own connections for one call and closes them when the call's last batch is read, so the
  settings end with the connection and nothing needs restoring.
- A read is one or more *waves*: each wave is one ConnectorX call over up to ``parallel``
  statements, read at once on as many connections, their batches interleaved. A plain read
  is one wave of one statement; a parallel read of a table is a wave per ``parallel`` key
  ranges.
- Every statement starts with a comment ``/* rivet-cx <token> */``. Closing a stream before
  its end cannot stop ConnectorX's reader threads (they stay blocked on the server), so
  :meth:`CxBatchStream.close` finds the statements carrying its token in
  ``information_schema.PROCESSLIST`` and ends their connections with ``KILL`` from the
  source's own connection (a user may always kill its own sessions).
- ConnectorX reports server errors as text, raised as ``RuntimeError`` or as pyo3's
  ``PanicException`` (a ``BaseException``);
  :func:`~rivet_mysql.errors.connectorx_error` reads the error number back so retries are
  classified as on the pymysql path.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import pyarrow as pa

from rivet_core.api import (
    BatchStream,
    ColumnInfo,
    ConnectionParams,
    ReadOptions,
    SourceError,
    schema_of,
)
from rivet_mysql.carriers import Carrier
from rivet_mysql.errors import NOT_ENCRYPTED, connectorx_error


def tls_query(params: ConnectionParams, encrypted: bool) -> dict[str, str]:
    """ConnectorX's TLS parameters (``ssl-mode``, ``ssl-ca``) for the mode; ``encrypted``:
    the source's own connection is, which is what the mode-less default means for
    ConnectorX's connections too. A verifying mode gets the system bundle as its CA file:
    ConnectorX trusts it in addition to its own default store (so a ``ca_file`` of the
    config, which must be trusted alone, is never given to it; see :mod:`.cxplan`)."""
    mode = params.tls_mode
    if params.tls_verified():
        bundle = params.trust_file()
        assert params.ca_file is None and bundle is not None
        return {"ssl-mode": "VERIFY_IDENTITY" if mode == "verify-full" else "VERIFY_CA",
                "ssl-ca": bundle}
    if mode == "require" or (mode is None and encrypted):
        return {"ssl-mode": "REQUIRED"}
    return {}


def connection_url(params: ConnectionParams, connect_timeout_s: int,
                   tls: dict[str, str] | None = None) -> str:
    """The URL ConnectorX connects with (user and password percent-encoded): TCP to the
    configured host and port only, and the ``tls`` parameters (:func:`tls_query`)."""
    user = quote(params.user, safe="")
    password = f":{quote(params.password, safe='')}" if params.password else ""
    database = quote(params.database or "", safe="")
    query = {"tcp_connect_timeout_ms": str(max(1, connect_timeout_s) * 1000),
             "prefer_socket": "false", **(tls or {})}
    return (f"mysql://{user}{password}@{params.host}:{params.port}/{database}"
            f"?{urlencode(query, quote_via=quote)}")


def tls_check_statement(mariadb: bool) -> str:
    """A statement that fails (with :data:`~rivet_mysql.errors.NOT_ENCRYPTED` in the
    server's error) unless the server reports a TLS cipher for the session: the session
    time zone is set to an invalid name otherwise."""
    table = ("information_schema.SESSION_STATUS" if mariadb
             else "performance_schema.session_status")
    return (f"SET SESSION time_zone = IF((SELECT VARIABLE_VALUE FROM {table} WHERE "
            f"VARIABLE_NAME = 'Ssl_cipher') <> '', '+00:00', '{NOT_ENCRYPTED}')")


def session_statements(settings: Sequence[tuple[str, Any]],
                       tls_check: str | None = None) -> list[str]:
    """The statements ConnectorX runs on each connection before the query: the TLS check
    when the connection must be encrypted, the session settings (names Rivet chose,
    numeric values or the fixed zone, so written as literals), then the read-only
    transaction."""
    def literal(value: Any) -> str:
        return f"'{value}'" if isinstance(value, str) else repr(value)

    assignments = ", ".join(f"SESSION {name} = {literal(value)}" for name, value in settings)
    first = [tls_check] if tls_check else []
    return [*first, "SET NAMES utf8mb4", f"SET {assignments}", "START TRANSACTION READ ONLY"]


MALLOC_ARENAS = 2
"""glibc malloc arenas the process may use once ConnectorX reads (``M_ARENA_MAX``)."""
_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's <malloc.h>


@functools.cache
def _share_malloc_arenas() -> None:
    """Cap glibc's malloc arenas, once per process, before the first ConnectorX read.

    Each ConnectorX call decodes on new threads, and glibc gives new threads new arenas
    (up to 8 per core), each keeping what it freed: peak RSS crept up wave after wave.
    Trimming after every wave (``malloc_trim``) held RSS down but handed every page back,
    so the next wave faulted them all in again: a third of a wide export's CPU went to the
    kernel (measured: 5.6 s of system time on the 2M-row wide table, 2.2 s with shared
    arenas and no trim, and 15.5 s -> 14.1 s wall). With a few shared arenas, freed memory is
    reused by the next wave instead. Arrow's buffers come from its own pool, not these."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(
            _M_ARENA_MAX, MALLOC_ARENAS)


def _is_control(exc: BaseException) -> bool:
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


class SchemaMismatch(Exception):
    """ConnectorX handed a column in another Arrow type than the carrier reads: the read
    goes to the pymysql path instead (nothing has been read yet)."""


Killer = Callable[[str], None]
"""Ends the server sessions whose statement carries the given token."""
TlsErrors = Callable[[BaseException], SourceError | None]
"""A ConnectorX failure about TLS as the source's error, or None."""


class CxBatchStream(BatchStream):
    """Batches of one read over ConnectorX: its waves in order, each wave's batches as
    ConnectorX interleaves them. The first wave starts in the constructor, so a type
    mismatch is known before the caller gets the stream."""

    def __init__(self, *, columns: list[ColumnInfo], carriers: list[Carrier],
                 waves: list[list[str]], url: str, session: list[str], options: ReadOptions,
                 label: str, read_path: str, kill: Killer, dates: Sequence[str] = (),
                 on_end: Callable[[CxBatchStream], None],
                 tls_errors: TlsErrors = lambda exc: None) -> None:
        import connectorx

        _share_malloc_arenas()

        self.columns = columns
        self.schema = schema_of(columns)
        self.read_path = read_path
        self.label = label
        self._cx = connectorx
        self._carriers = carriers
        self._token = uuid.uuid4().hex
        self._waves = [[f"/* rivet-cx {self._token} */ {sql}" for sql in wave]
                       for wave in waves]
        self._url = url
        self._session = session
        self._options = options
        self._batch_rows = max(1, options.batch_size)
        self._kill = kill
        self._dates = list(dates)
        self._on_end = on_end
        self._tls_errors = tls_errors
        self._reader: pa.RecordBatchReader | None = None
        self._open = True
        self._reader = self._start(self._waves[0])
        self._check(self._reader.schema)

    # ------------------------------------------------------------------ ConnectorX calls

    def _start(self, wave: list[str]) -> pa.RecordBatchReader:
        try:
            reader = self._cx.read_sql(self._url, wave if len(wave) > 1 else wave[0],
                                       return_type="arrow_stream", protocol="binary",
                                       pre_execution_query=self._session,
                                       batch_size=self._batch_rows)
        except BaseException as exc:
            if _is_control(exc):
                raise
            self._abandon()
            raise self._error(exc) from None
        return reader  # type: ignore[no-any-return]

    def _error(self, exc: BaseException) -> SourceError:
        return self._tls_errors(exc) or connectorx_error(exc, self.label, self._dates)

    def _check(self, schema: pa.Schema) -> None:
        if len(schema) != len(self._carriers):
            self._abandon()
            raise SchemaMismatch(f"ConnectorX returned {len(schema)} columns, the query "
                                 f"has {len(self._carriers)}")
        for field, carrier in zip(schema, self._carriers, strict=True):
            if not carrier.accepts(field.type):
                self._abandon()
                raise SchemaMismatch(f"ConnectorX returned column {carrier.name} as "
                                     f"{field.type}")

    # ------------------------------------------------------------------ iteration

    def batches(self) -> Iterator[pa.RecordBatch]:
        throttle_s = self._options.throttle_ms / 1000
        try:
            for index, wave in enumerate(self._waves):
                if index:
                    self._reader = self._start(wave)
                    self._check(self._reader.schema)
                reader = self._reader
                assert reader is not None
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    except BaseException as exc:
                        if _is_control(exc):
                            raise
                        self._abandon()
                        raise self._error(exc) from None
                    if batch.num_rows:
                        yield from self._fit(self._convert(batch))
                        if throttle_s > 0:
                            time.sleep(throttle_s)
                self._reader = None
            self._open = False
            self._on_end(self)
        finally:
            # An error, or the consumer stopping early (GeneratorExit), ends up here.
            self.close()

    def _convert(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [carrier.convert(batch.column(i))
                  for i, carrier in enumerate(self._carriers)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _fit(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        """``batch``, cut into slices of at most ``max_batch_bytes`` (by average row size);
        the following waves then ask ConnectorX for that many rows per batch."""
        limit = self._options.max_batch_bytes
        if limit is None or batch.nbytes <= limit or batch.num_rows <= 1:
            yield batch
            return
        rows = max(1, int(limit * batch.num_rows / batch.nbytes))
        self._batch_rows = min(self._batch_rows, rows)
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)

    # ------------------------------------------------------------------ ending

    def _abandon(self) -> None:
        """Stop ConnectorX's reader and end its server sessions."""
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()
        self._kill(self._token)

    def cancel(self) -> None:
        """End ConnectorX's server sessions from another thread: its reader then fails,
        and the stream is closed by its reader's thread."""
        self._kill(self._token)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._abandon()
            self._on_end(self)


def kill_sessions(execute: Callable[[str, tuple[Any, ...]], list[dict[str, Any]]],
                  token: str, *, wait_s: float = 0.5) -> int:
    """``KILL`` every other session running a statement tagged with ``token``, watching for
    ``wait_s`` so a connection still setting up (its statement not yet started) is caught
    too. Returns how many sessions were ended."""
    killed: set[int] = set()
    deadline = time.monotonic() + wait_s
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        rows = execute("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE INFO LIKE "
                       "%s AND ID <> CONNECTION_ID()", (f"/* rivet-cx {token} */%",))
        ids = {int(row["id"]) for row in rows} - killed
        quiet = 0 if ids else quiet + 1
        for session in ids:
            with contextlib.suppress(Exception):
                execute(f"KILL CONNECTION {session}", ())
            killed.add(session)
        time.sleep(0.05)
    return len(killed)
