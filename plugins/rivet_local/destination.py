"""The local destination: temp file in the target directory, fsync, rename on commit (the
destination probe's scratch object skips the fsyncs: :meth:`LocalDestination.write_scratch`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from rivet_core.api import (
    CommittedFile,
    Destination,
    DestinationContext,
    DestinationError,
    WriteTarget,
)
from rivet_local.config import LocalOptions

TEMP_SUFFIX = ".rivet-tmp"


class LocalDestination(Destination):
    def __init__(self, options: LocalOptions, context: DestinationContext) -> None:
        rendered = Path(context.render(options.path)).expanduser()
        self.directory = rendered if rendered.is_absolute() else context.config_dir / rendered
        self._resolved: Path | None = None

    def location(self) -> str:
        return self._resolved_directory().as_uri()

    def _resolved_directory(self) -> Path:
        """The directory with its symlinks resolved, worked out once: a run asks for its
        location (and each committed file's URI) several times, and resolving costs a
        ``lstat`` per path component."""
        if self._resolved is None:
            self._resolved = self.directory.resolve()
        return self._resolved

    def open(self, name: str) -> WriteTarget:
        if "/" in name or name in ("", ".", ".."):
            raise DestinationError(f"invalid file name {name!r}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"cannot create directory {self.directory}: {exc}") from exc
        self._sweep_orphans()
        return LocalTarget(self.directory, name, resolved=self._resolved_directory())

    def list_files(self, prefix: str = "") -> dict[str, int]:
        """Every committed file whose name starts with ``prefix``. Only what the prefix can
        match is read: the directory its last ``/`` names, and below it the subdirectories
        whose names start with the rest. A run lists its probe object, its manifest
        directory and its own files, in a location that holds every earlier run's files.
        The names are those a walk of the whole tree finds: symlinked directories are not
        entered (a loop would never end), whether the prefix names one or not, and an
        unreadable directory below the one the prefix names is skipped. That directory
        failing to open is an error, not an empty listing."""
        *folders, leaf = prefix.split("/")
        if any(part in ("", ".", "..") for part in folders):
            return {}  # no name has an empty, "." or ".." segment, or starts with "/"
        start = self.directory.joinpath(*folders)
        found: dict[str, int] = {}
        try:
            if _through_a_symlink(self.directory, folders):
                return {}
            _list_into(found, start, "".join(f"{part}/" for part in folders), leaf)
        except (FileNotFoundError, NotADirectoryError):
            return {}  # nothing was ever written under the prefix
        except OSError as exc:
            raise DestinationError(f"listing {start}: {exc}") from exc
        return found

    def read_file(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except OSError as exc:
            raise DestinationError(f"reading {self.directory / name}: {exc}") from exc

    def delete_file(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise DestinationError(f"deleting {self.directory / name}: {exc}") from exc
        # A directory the delete left empty goes too, as a prefix does in a bucket (a run's
        # destination probe leaves no _rivet/<export>/ behind); the location itself stays.
        for parent in path.parents:
            if parent == self.directory:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty, or not ours to remove
                break

    def write_small(self, name: str, data: bytes) -> None:
        self._store(name, data, durable=True)

    def write_scratch(self, name: str, data: bytes) -> None:
        """:meth:`write_small` without the two flushes to disk (file, then directory): for
        an object deleted moments later that means nothing after a crash, the destination
        probe's (:class:`rivet_core.backends.SupportsScratchWrite`). It still creates,
        writes and renames, so it needs, and proves, the same permissions."""
        self._store(name, data, durable=False)

    def _store(self, name: str, data: bytes, *, durable: bool) -> None:
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"cannot create directory {path.parent}: {exc}") from exc
        # The committed file's URI is not returned: the resolved location stands in for
        # the lstat of every path component that resolving the file's own path costs.
        resolved = self._resolved_directory().joinpath(*Path(name).parent.parts)
        target = LocalTarget(path.parent, path.name, durable=durable, resolved=resolved)
        try:
            target.write(data)
        except BaseException:
            target.abort()
            raise
        target.commit()

    def _path(self, name: str) -> Path:
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise DestinationError(f"invalid file name {name!r}")
        return self.directory / relative

    def _sweep_orphans(self) -> None:
        """Remove temp files left by killed runs: their writer process no longer exists."""
        for entry in self.directory.glob(f".*{TEMP_SUFFIX}"):
            parts = entry.name.split(".")
            try:
                pid = int(parts[-3])
            except (IndexError, ValueError):
                continue
            if pid != os.getpid() and not _alive(pid):
                entry.unlink(missing_ok=True)


def _through_a_symlink(directory: Path, folders: list[str]) -> bool:
    """Whether one of ``folders``, the path below ``directory``, is a symlink."""
    for part in folders:
        directory = directory / part
        if directory.is_symlink():
            return True
    return False


def _list_into(found: dict[str, int], directory: Path, relative: str, leaf: str = "", *,
               top: bool = True) -> None:
    """Add to ``found`` the committed files of ``directory`` whose names start with
    ``leaf``, and every committed file below its subdirectories whose names do, named
    ``relative`` + their path from ``directory``. Below the top, a directory that cannot
    be read is skipped, as a walk of the tree skips it; one removed, or a file removed,
    while it is listed is not listed."""
    try:
        entries = os.scandir(directory)
    except (PermissionError, FileNotFoundError):
        if top:
            raise
        return
    with entries:
        for entry in entries:
            if not entry.name.startswith(leaf):
                continue
            name = relative + entry.name
            if entry.is_dir(follow_symlinks=False):
                _list_into(found, Path(entry.path), f"{name}/", top=False)
            elif entry.is_file() and not entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    found[name] = entry.stat().st_size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalTarget(WriteTarget):
    """A hidden temp file renamed onto ``name`` at :meth:`commit`. ``durable`` (the default)
    flushes the bytes before the rename and the directory after it, so a committed file
    survives a power loss; without it the commit is atomic but not durable."""

    def __init__(self, directory: Path, name: str, *, durable: bool = True,
                 resolved: Path | None = None) -> None:
        self.final = directory / name
        self.durable = durable
        self.resolved = resolved
        """``directory`` with its symlinks resolved, when the caller knows it (the URI of
        the committed file); else it is resolved at commit."""
        self.temp = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            self._file = open(self.temp, "xb")  # noqa: SIM115 - closed in commit/abort
        except OSError as exc:
            raise DestinationError(f"cannot create {self.temp}: {exc}") from exc

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise DestinationError(f"writing {self.temp}: {exc}") from exc

    def commit(self) -> CommittedFile:
        try:
            self._file.flush()
            if self.durable:
                os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.temp, self.final)
            if self.durable:
                _fsync_directory(self.final.parent)
        except OSError as exc:
            self.abort()
            raise DestinationError(f"committing {self.final}: {exc}") from exc
        resolved = (self.resolved / self.final.name if self.resolved is not None
                    else self.final.resolve())
        return CommittedFile(name=self.final.name, uri=resolved.as_uri())

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.temp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (the directory entry), not just the file's bytes."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
