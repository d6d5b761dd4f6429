"""The byte path between a format writer and a write target: counting and hashing.

Format writers write into a pyarrow stream; :func:`open_sink` wraps the destination's
:class:`~rivet_core.backends.WriteTarget` so every byte is counted and hashed (SHA-256) on its
way, without a second copy of the file anywhere.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from rivet_core.backends import SinkGate, WriteTarget


class HashingSink(SinkGate):
    """File-like object for ``pa.PythonFile``: forwards writes to the target, keeps size and
    SHA-256. Like every :class:`~rivet_core.backends.SinkGate`, ``close`` only marks it
    closed (committing or aborting the target is the runner's decision, never the format
    writer's), and once :meth:`shut` (the file is being aborted) nothing more reaches the
    target, whatever a format writer still writes."""

    def __init__(self, target: WriteTarget) -> None:
        super().__init__(target)
        self._hash = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        if self.open:
            self._hash.update(view)
        return super().write(view)

    @property
    def size(self) -> int:
        return self.tell()

    def sha256(self) -> str:
        return self._hash.hexdigest()


def open_sink(target: WriteTarget) -> tuple[HashingSink, pa.NativeFile]:
    """The hashing sink over ``target`` and the pyarrow stream format writers write to."""
    sink = HashingSink(target)
    return sink, pa.PythonFile(sink, mode="w")
