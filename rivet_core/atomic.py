"""Writing a small local file in one step: a reader sees the old content or the new one.

Atomicity and durability are separate promises. The rename gives atomicity on its own: a
reader finds the old file or the new one, never half of one. Durability, the same after a
power loss or a kernel crash, takes an ``fsync`` of the bytes before the rename: a disk
flush per file (milliseconds on most disks), worth it only for a file that is a record.
``durable=False`` is for convenience copies whose record lives elsewhere (the per-export
run reports: the state store and the destination's manifest are the record): readers still
see it whole or not at all, but after a power loss it may hold its old content, or be empty
on some file systems.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` in one step: a temporary file beside it (created like
    any new file, mode 0o666 less the umask, so the rename stays within one file system),
    flushed to disk unless ``durable`` is false, then renamed over ``path``. The temporary
    file never outlives a failure; the :class:`OSError` is raised."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
