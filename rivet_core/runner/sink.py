"""The byte path between a format writer and a write target: counting and hashing.

Format writers write into a pyarrow stream; :func:`open_sink` wraps the destination's
:class:`~rivet_core.backends.WriteTarget` so every byte is counted and hashed (SHA-256) on its
way, without a second copy of the file anywhere.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from rivet_core.backends import WriteTarget


class HashingSink:
    """File-like object for ``pa.PythonFile``: forwards writes, keeps size and SHA-256.

    ``close`` only marks the sink closed; committing or aborting the target is the runner's
    decision, never the format writer's.
    """

    def __init__(self, target: WriteTarget) -> None:
        self.target = target
        self.size = 0
        self._hash = hashlib.sha256()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        self._hash.update(view)
        self.target.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._closed = True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def sha256(self) -> str:
        return self._hash.hexdigest()


def open_sink(target: WriteTarget) -> tuple[HashingSink, pa.NativeFile]:
    """The hashing sink over ``target`` and the pyarrow stream format writers write to."""
    sink = HashingSink(target)
    return sink, pa.PythonFile(sink, mode="w")
