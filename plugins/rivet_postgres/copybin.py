"""Binary COPY decoded in C (``_copybin.c``) on a psycopg connection: the batches of one
``COPY (...) TO STDOUT (FORMAT binary)`` as Arrow arrays, with no Python object per row.

The C part calls the libpq psycopg loaded, through function pointers looked up here, on the
connection's own ``PGconn``; ctypes releases the GIL for each call, so a reader thread
decodes while another encodes. The arrays own the C buffers (freed when Arrow lets go of
them).

A row of at least ``batch_bytes`` comes as a batch of its own, whose largest text or bytes
value is the CopyData message libpq returned, in place: that value is in memory twice while
it is read (libpq's input buffer, which keeps its size until the connection is closed, and
the message), never three times.

Which wire format each column has is :data:`Wire`; :func:`rivet_postgres.copyplan.wire_of`
picks it from the column's plan.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import functools
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs
import psycopg
import pyarrow as pa


class Wire(enum.IntEnum):
    """A column's binary COPY format, and the Arrow array it becomes (``_copybin.c``)."""

    BOOL = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    FLOAT32 = 5
    FLOAT64 = 6
    DATE = 7
    TIME = 8
    TIMESTAMP = 9
    TEXT = 10
    JSONB = 11
    UUID = 12
    BYTES = 13
    """Same decoding as TEXT; the array is binary."""
    NUMERIC = 14
    """To the column's ``decimal128`` (precision ≤ 38), exactly, or an error."""


@attrs.frozen
class Layout:
    """The columns of one COPY: each one's wire format, the ``decimal128`` of each
    ``NUMERIC`` (None for the others), and the error for a numeric value that does not fit
    its decimal, given the column's index and the value's text."""

    wires: Sequence[Wire]
    decimals: Sequence[pa.Decimal128Type | None]
    misfit: Callable[[int, str], Exception]


_ARROW: dict[Wire, pa.DataType] = {
    Wire.BOOL: pa.bool_(), Wire.INT16: pa.int16(), Wire.INT32: pa.int32(),
    Wire.INT64: pa.int64(), Wire.FLOAT32: pa.float32(), Wire.FLOAT64: pa.float64(),
    Wire.DATE: pa.date32(), Wire.TIME: pa.time64("us"), Wire.TIMESTAMP: pa.timestamp("us"),
    Wire.TEXT: pa.string(), Wire.JSONB: pa.string(), Wire.UUID: pa.binary(16),
    Wire.BYTES: pa.binary(),
}
_WIDTH = {Wire.INT16: 2, Wire.INT32: 4, Wire.INT64: 8, Wire.FLOAT32: 4, Wire.FLOAT64: 8,
          Wire.DATE: 4, Wire.TIME: 8, Wire.TIMESTAMP: 8, Wire.UUID: 16, Wire.NUMERIC: 16}
_VARIABLE = (Wire.TEXT, Wire.JSONB, Wire.BYTES)

_LIBPQ_FUNCTIONS = (
    "PQgetCopyData", "PQfreemem", "PQexec", "PQgetResult", "PQresultStatus",
    "PQresultErrorField", "PQresultErrorMessage", "PQerrorMessage", "PQclear",
    "PQisnonblocking", "PQsetnonblocking",
)


class _Libpq(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in _LIBPQ_FUNCTIONS]


class CopyError(Exception):
    """A failed COPY: the server's message and SQLSTATE, or a lost connection."""

    def __init__(self, message: str, sqlstate: str | None, lost: bool) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.lost = lost


class Unavailable(Exception):
    """The C decoder cannot run here (not built, or psycopg's libpq not found)."""


def _libpq_path() -> str:
    """The libpq psycopg itself uses: the one its binary wheel bundles, else the system's."""
    import psycopg.pq

    loaded: list[str] = []
    try:
        # Paths are bytes to the kernel: a non-UTF-8 directory name must not stop the read.
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                if Path(path).name.startswith("libpq") and path not in loaded:
                    loaded.append(path)
    except OSError:
        pass
    bundled = [p for p in loaded if "psycopg_binary" in p]
    if psycopg.pq.__impl__ == "binary" and bundled:
        return bundled[0]
    system = [p for p in loaded if p not in bundled]
    if system:
        return system[0]
    found = ctypes.util.find_library("pq")
    if found is None:
        raise Unavailable(f"the libpq psycopg uses was not found (psycopg {psycopg.pq.__impl__})")
    return found


@functools.cache
def libpq() -> ctypes.CDLL:
    """The libpq psycopg uses, loaded with ctypes (:class:`Unavailable` if not found)."""
    return ctypes.CDLL(_libpq_path())


@functools.cache
def _library() -> tuple[ctypes.CDLL, _Libpq, Callable[[int], object]]:
    spec = importlib.util.find_spec("rivet_postgres._copybin")
    if spec is None or spec.origin is None:
        raise Unavailable("the C decoder (rivet_postgres._copybin) is not built; reinstall "
                          "rivet-cli with a C compiler present")
    lib = ctypes.CDLL(spec.origin)
    pq = libpq()
    table = _Libpq(*(ctypes.cast(getattr(pq, name), ctypes.c_void_p)
                     for name in _LIBPQ_FUNCTIONS))
    freemem = pq.PQfreemem
    freemem.restype = None
    freemem.argtypes = [ctypes.c_void_p]
    lib.rvt_open.restype = ctypes.c_void_p
    ints = ctypes.POINTER(ctypes.c_int32)
    lib.rvt_open.argtypes = [ctypes.POINTER(_Libpq), ctypes.c_void_p, ctypes.c_char_p,
                             ctypes.c_int32, ints, ints, ints]
    lib.rvt_next.restype = ctypes.c_int64
    lib.rvt_next.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
    pointer = ctypes.POINTER(ctypes.c_void_p)
    lib.rvt_take.restype = None
    lib.rvt_take.argtypes = [ctypes.c_void_p, ctypes.c_int32, pointer, pointer, pointer,
                             pointer, ctypes.POINTER(ctypes.c_int64),
                             ctypes.POINTER(ctypes.c_int64)]
    lib.rvt_free.restype = None
    lib.rvt_free.argtypes = [ctypes.c_void_p]
    for name in ("rvt_lost", "rvt_bad_column"):
        getattr(lib, name).restype = ctypes.c_int32
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    for name in ("rvt_error", "rvt_sqlstate", "rvt_bad_value"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.rvt_close.restype = None
    lib.rvt_close.argtypes = [ctypes.c_void_p]
    return lib, table, freemem


def unavailable() -> str | None:
    """Why the C decoder cannot be used here, or None."""
    try:
        _library()
    except (Unavailable, OSError, AttributeError) as exc:
        return str(exc)
    return None


class _Owned:
    """Frees one C buffer when the last Arrow buffer over it goes."""

    __slots__ = ("address", "free")

    def __init__(self, address: int, free: Callable[[int], object]) -> None:
        self.address = address
        self.free = free

    def __del__(self) -> None:
        self.free(self.address)


def _buffer(address: int | None, size: int, free: Callable[[int], object], *,
            owner: int | None = None) -> pa.Buffer:
    """``size`` bytes at ``address``, freed with ``free`` once Arrow lets go of them: the
    block ``owner`` they lie in when given, else the one at ``address``."""
    if not address:  # nothing was ever written to it (e.g. the data of empty strings)
        return pa.py_buffer(b"")
    return pa.foreign_buffer(address, size, base=_Owned(owner or address, free))


def copy_batches(conn: psycopg.Connection, sql: str, layout: Layout, *,
                 batch_rows: int, batch_bytes: int) -> Iterator[pa.RecordBatch]:
    """The batches of ``COPY (sql) TO STDOUT (FORMAT binary)`` on ``conn`` (idle, in the
    transaction the caller began). Raises :class:`CopyError`, or ``layout.misfit(...)``.
    Abandoned before its end, the connection is left mid-COPY: cancel and close it.

    A row of ``batch_bytes`` or more is a batch of its own, its largest text or bytes value
    not copied."""
    lib, table, freemem = _library()
    wires = list(layout.wires)
    size = max(1, len(wires))
    kinds = (ctypes.c_int32 * size)(*wires)
    precisions = (ctypes.c_int32 * size)(*[d.precision if d else 0 for d in layout.decimals])
    scales = (ctypes.c_int32 * size)(*[d.scale if d else 0 for d in layout.decimals])
    types = [layout.decimals[i] if w is Wire.NUMERIC else _ARROW[w]
             for i, w in enumerate(wires)]
    statement = f"COPY (\n{sql}\n) TO STDOUT (FORMAT binary)".encode()
    pgconn = conn.pgconn.pgconn_ptr  # type: ignore[attr-defined]  # in every pq implementation
    reader = lib.rvt_open(ctypes.byref(table), pgconn, statement,
                          len(wires), kinds, precisions, scales)
    if not reader:
        raise MemoryError("binary COPY: cannot allocate the reader")
    names = [f"c{i}" for i in range(len(wires))]
    validity, values, offsets = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    owner = ctypes.c_void_p()
    values_len, null_count = ctypes.c_int64(), ctypes.c_int64()
    try:
        while True:
            rows = lib.rvt_next(reader, batch_rows, batch_bytes)
            if rows < 0 and lib.rvt_bad_column(reader) >= 0:
                raise layout.misfit(lib.rvt_bad_column(reader),
                                    (lib.rvt_bad_value(reader) or b"").decode())
            if rows < 0:
                sqlstate = (lib.rvt_sqlstate(reader) or b"").decode() or None
                message = (lib.rvt_error(reader) or b"").decode(errors="replace").strip()
                raise CopyError(message, sqlstate, bool(lib.rvt_lost(reader)))
            if rows == 0:
                return
            arrays = []
            for i, wire in enumerate(wires):
                lib.rvt_take(reader, i, ctypes.byref(validity), ctypes.byref(values),
                             ctypes.byref(offsets), ctypes.byref(owner),
                             ctypes.byref(values_len), ctypes.byref(null_count))
                bitmap = _buffer(validity.value, (rows + 7) // 8, lib.rvt_free)
                if wire in _VARIABLE:
                    data = _buffer(values.value, values_len.value,
                                   freemem if owner.value else lib.rvt_free, owner=owner.value)
                    buffers = [bitmap, _buffer(offsets.value, 4 * (rows + 1), lib.rvt_free),
                               data]
                elif wire is Wire.BOOL:
                    buffers = [bitmap, _buffer(values.value, (rows + 7) // 8, lib.rvt_free)]
                else:
                    buffers = [bitmap, _buffer(values.value, _WIDTH[wire] * rows,
                                               lib.rvt_free)]
                arrays.append(pa.Array.from_buffers(types[i], rows, buffers,
                                                    null_count=null_count.value))
            yield pa.RecordBatch.from_arrays(arrays, names=names)
    finally:
        lib.rvt_close(reader)


__all__ = ["CopyError", "Layout", "Unavailable", "Wire", "copy_batches", "libpq",
           "unavailable"]
