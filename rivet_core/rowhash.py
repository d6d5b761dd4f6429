"""Row hashes: one stable 64-bit XXH64 per row over chosen columns (:func:`hash_columns`).

The encoding each row is hashed in is specified in docs/row-hash.md, precisely enough to
recompute a hash without Rivet; the hashing itself runs in C (``_rowhash.c``) over the Arrow
buffers. This module reduces each column to a physical layout the C code reads (casting
only where Arrow has several layouts for one kind of value) and says which types have no
encoding (:func:`unsupported_reason`). The meta columns that carry the hash are in
:mod:`rivet_core.meta`.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import importlib.util

import pyarrow as pa
import pyarrow.types as pat


class Tag(enum.IntEnum):
    """The byte before each value of the encoding (docs/row-hash.md; ``_rowhash.c``)."""

    NULL = 0x00
    BOOL = 0x01
    INT = 0x02
    UINT = 0x03
    """An integer at or above 2**63 (below it, any integer is :attr:`INT`)."""
    FLOAT = 0x04
    DECIMAL = 0x05
    DECIMAL_WIDE = 0x06
    """A decimal whose unscaled value does not fit in 128 bits."""
    STRING = 0x07
    BINARY = 0x08
    DATE = 0x09
    TIMESTAMP = 0x0A
    TIMESTAMP_TZ = 0x0B
    TIME = 0x0C
    DURATION = 0x0D
    LIST = 0x0E
    STRUCT = 0x0F


class _Kind(enum.IntEnum):
    """Physical layouts the C code reads (``_rowhash.c``, which must agree)."""

    NULL = 0
    BOOL = 1
    SINT = 2
    UINT = 3
    FLOAT32 = 4
    FLOAT64 = 5
    DEC128 = 6
    DEC256 = 7
    VAR32 = 8
    VAR64 = 9
    FIXED = 10
    DATE32 = 11
    INT64 = 12
    LIST32 = 13
    LIST64 = 14
    FIXLIST = 15
    STRUCT = 16


class _Node(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int32), ("tag", ctypes.c_int32), ("width", ctypes.c_int32),
        ("scale", ctypes.c_int32), ("offset", ctypes.c_int64), ("divisor", ctypes.c_int64),
        ("validity", ctypes.c_void_p), ("data", ctypes.c_void_p), ("offsets", ctypes.c_void_p),
        ("child", ctypes.c_int32), ("nchildren", ctypes.c_int32),
    ]


@functools.cache
def _library() -> ctypes.CDLL:
    spec = importlib.util.find_spec("rivet_core._rowhash")
    if spec is None or spec.origin is None:
        raise ImportError("the row hash (rivet_core._rowhash) is not built; reinstall "
                          "rivet-cli with a C compiler present")
    lib = ctypes.CDLL(spec.origin)
    ints = ctypes.POINTER(ctypes.c_int32)
    lib.rh_hash_rows.restype = None
    lib.rh_hash_rows.argtypes = [ctypes.POINTER(_Node), ints, ints, ctypes.c_int32,
                                 ctypes.c_int64, ctypes.c_void_p]
    return lib


_INT_WIDTHS = {8: 1, 16: 2, 32: 4, 64: 8}
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _unwrapped(typ: pa.DataType) -> pa.DataType:
    """The type whose values a column holds, under its encoding (dictionary, extension)."""
    while True:
        if pat.is_dictionary(typ):
            typ = typ.value_type
        elif isinstance(typ, pa.BaseExtensionType):
            typ = typ.storage_type
        else:
            return typ


def unsupported_reason(typ: pa.DataType) -> str | None:
    """Why values of ``typ`` have no row-hash encoding, or None if they have one."""
    typ = _unwrapped(typ)
    if pat.is_decimal(typ):
        if not -128 <= typ.scale <= 127:
            return f"{typ}: the encoding holds a decimal scale in one byte (-128..127)"
        return None
    if pat.is_list(typ) or pat.is_large_list(typ) or pat.is_fixed_size_list(typ):
        return unsupported_reason(typ.value_type)
    if pat.is_struct(typ):
        for field in typ:
            reason = unsupported_reason(field.type)
            if reason:
                return reason
        return None
    if (pat.is_null(typ) or pat.is_boolean(typ) or pat.is_integer(typ) or pat.is_floating(typ)
            or pat.is_string(typ) or pat.is_large_string(typ) or pat.is_string_view(typ)
            or pat.is_binary(typ) or pat.is_large_binary(typ) or pat.is_binary_view(typ)
            or pat.is_fixed_size_binary(typ) or pat.is_date(typ) or pat.is_time(typ)
            or pat.is_timestamp(typ) or pat.is_duration(typ)):
        return None
    return f"{typ} has no row-hash encoding; cast the column to text in the query"


class _Tree:
    """The C view of some columns: nodes, the child links of nested ones, and the arrays
    (kept here so their buffers live as long as the pointers)."""

    def __init__(self) -> None:
        self.nodes: list[_Node] = []
        self.links: list[int] = []
        self.arrays: list[pa.Array] = []

    def add(self, array: pa.Array) -> int:
        """The node index of ``array``, added with its children."""
        array = self._physical(array)
        self.arrays.append(array)
        typ = array.type
        buffers = array.buffers()
        node = _Node(offset=array.offset, divisor=1, validity=_address(buffers[0]))
        children: list[pa.Array] = []
        if pat.is_null(typ):
            node.kind, node.validity = _Kind.NULL, None
        elif pat.is_boolean(typ):
            node.kind, node.data = _Kind.BOOL, _address(buffers[1])
        elif pat.is_integer(typ):
            node.kind = _Kind.SINT if pat.is_signed_integer(typ) else _Kind.UINT
            node.width, node.data = _INT_WIDTHS[typ.bit_width], _address(buffers[1])
        elif pat.is_float32(typ) or pat.is_float64(typ):
            node.kind = _Kind.FLOAT32 if pat.is_float32(typ) else _Kind.FLOAT64
            node.data = _address(buffers[1])
        elif pat.is_decimal128(typ) or pat.is_decimal256(typ):
            node.kind = _Kind.DEC128 if pat.is_decimal128(typ) else _Kind.DEC256
            node.scale, node.data = typ.scale, _address(buffers[1])
        elif pat.is_string(typ) or pat.is_large_string(typ) or pat.is_binary(typ) or (
                pat.is_large_binary(typ)):
            large = pat.is_large_string(typ) or pat.is_large_binary(typ)
            node.kind = _Kind.VAR64 if large else _Kind.VAR32
            node.tag = Tag.STRING if pat.is_string(typ) or pat.is_large_string(typ) else (
                Tag.BINARY)
            node.offsets, node.data = _address(buffers[1]), _address(buffers[2])
        elif pat.is_fixed_size_binary(typ):
            node.kind, node.tag, node.width = _Kind.FIXED, Tag.BINARY, typ.byte_width
            node.data = _address(buffers[1])
        elif pat.is_date32(typ):
            node.kind, node.data = _Kind.DATE32, _address(buffers[1])
        elif pat.is_timestamp(typ) or pat.is_time64(typ) or pat.is_duration(typ):
            node.kind, node.data = _Kind.INT64, _address(buffers[1])
            node.divisor = _PER_SECOND[typ.unit] // 1_000_000
            node.tag = (Tag.TIME if pat.is_time64(typ) else Tag.DURATION if pat.is_duration(typ)
                        else Tag.TIMESTAMP_TZ if typ.tz else Tag.TIMESTAMP)
        elif pat.is_list(typ) or pat.is_large_list(typ) or pat.is_fixed_size_list(typ):
            node.kind = (_Kind.LIST32 if pat.is_list(typ) else _Kind.LIST64
                         if pat.is_large_list(typ) else _Kind.FIXLIST)
            if node.kind == _Kind.FIXLIST:
                node.width = typ.list_size
            else:
                node.offsets = _address(buffers[1])
            children = [array.values]
        elif pat.is_struct(typ):
            node.kind = _Kind.STRUCT
            # field() slices the child to the struct's offset: children share its index.
            children = [array.field(i) for i in range(typ.num_fields)]
        else:  # unsupported_reason() stops every other type before here
            raise AssertionError(typ)
        child_nodes = [self.add(child) for child in children]
        node.child, node.nchildren = len(self.links), len(child_nodes)
        self.links.extend(child_nodes)
        self.nodes.append(node)
        return len(self.nodes) - 1

    @staticmethod
    def _physical(array: pa.Array) -> pa.Array:
        """``array`` in the one layout the C code reads for its kind of value. The casts
        are exact (a coarser unit to microseconds, a narrower float or decimal to a wider
        one); a value they cannot carry exactly raises ``pa.ArrowInvalid``."""
        typ = array.type
        if pat.is_dictionary(typ):
            return _Tree._physical(array.dictionary_decode())
        if isinstance(typ, pa.BaseExtensionType):
            return _Tree._physical(array.storage)
        if pat.is_string_view(typ):
            return array.cast(pa.string())
        if pat.is_binary_view(typ):
            return array.cast(pa.binary())
        if pat.is_float16(typ):
            return array.cast(pa.float32())
        if pat.is_decimal32(typ) or pat.is_decimal64(typ):
            return array.cast(pa.decimal128(typ.precision, typ.scale))
        if pat.is_date64(typ):
            return array.cast(pa.date32())
        if pat.is_time32(typ):
            return array.cast(pa.time64("us"))
        if (pat.is_timestamp(typ) or pat.is_duration(typ)) and typ.unit in ("s", "ms"):
            unit = pa.timestamp("us", typ.tz) if pat.is_timestamp(typ) else pa.duration("us")
            return array.cast(unit)
        return array


def _address(buffer: pa.Buffer | None) -> int | None:
    return None if buffer is None else buffer.address


def _check(schema: pa.Schema) -> None:
    problems = [f"column {field.name!r}: {reason}" for field in schema
                if (reason := unsupported_reason(field.type))]
    if problems:
        raise TypeError("cannot hash rows: " + "; ".join(problems))


def _hash_batch(batch: pa.RecordBatch | pa.Table, out: pa.Buffer, first: int) -> None:
    tree = _Tree()
    columns = []
    for name, column in zip(batch.column_names, batch.columns, strict=True):
        try:
            columns.append(tree.add(column))
        except pa.ArrowInvalid as exc:  # a cast of _physical() that is not exact
            raise ValueError(f"row hash: column {name!r}: {exc}") from None
    nodes = (_Node * max(1, len(tree.nodes)))(*tree.nodes)
    links = (ctypes.c_int32 * max(1, len(tree.links)))(*tree.links)
    tops = (ctypes.c_int32 * max(1, len(columns)))(*columns)
    _library().rh_hash_rows(nodes, links, tops, len(columns), batch.num_rows,
                            out.address + 8 * first)


def hash_columns(batch: pa.RecordBatch | pa.Table,
                 names: list[str] | None = None) -> pa.UInt64Array:
    """The row hash of every row of ``batch`` over the columns ``names`` (all of them when
    None), in that order: XXH64 of the row's encoding (docs/row-hash.md).

    Raises ``KeyError`` for a name that is not exactly one column of ``batch``,
    ``TypeError`` for a column whose type has no encoding (:func:`unsupported_reason`), and
    ``ValueError`` for a value the encoding cannot hold exactly: a time in seconds or
    milliseconds too far from 1970 to count in int64 microseconds (±292 000 years), a
    ``date64`` that is not whole days (which Arrow forbids).
    The result's buffer is plain ``uint64``; ``.to_numpy()`` reads it without a copy."""
    if names is not None:
        for name in names:
            if len(batch.schema.get_all_field_indices(name)) != 1:
                raise KeyError(f"row hash: {name!r} is not exactly one column of the batch")
        batch = batch.select(names)
    _check(batch.schema)
    out = pa.allocate_buffer(8 * batch.num_rows)
    # A table's to_batches() aligns its columns' chunks by slicing them, without copying
    # (a table without columns has rows but no batch to hold them).
    pieces = batch.to_batches() if isinstance(batch, pa.Table) and batch.num_columns else [batch]
    first = 0
    for piece in pieces:
        _hash_batch(piece, out, first)
        first += piece.num_rows
    return pa.Array.from_buffers(pa.uint64(), batch.num_rows, [None, out])


__all__ = ["Tag", "hash_columns", "unsupported_reason"]
