"""The local destination: temp file in the target directory, fsync, rename on commit."""

from __future__ import annotations

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

    def location(self) -> str:
        return self.directory.resolve().as_uri()

    def open(self, name: str) -> WriteTarget:
        if "/" in name or name in ("", ".", ".."):
            raise DestinationError(f"invalid file name {name!r}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"cannot create directory {self.directory}: {exc}") from exc
        self._sweep_orphans()
        return LocalTarget(self.directory, name)

    def list_files(self, prefix: str = "") -> dict[str, int]:
        try:
            if not self.directory.is_dir():
                return {}
            found = {}
            for entry in self.directory.rglob("*"):
                if not entry.is_file() or entry.name.endswith(TEMP_SUFFIX):
                    continue
                name = entry.relative_to(self.directory).as_posix()
                if name.startswith(prefix):
                    found[name] = entry.stat().st_size
            return found
        except OSError as exc:
            raise DestinationError(f"listing {self.directory}: {exc}") from exc

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
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"cannot create directory {path.parent}: {exc}") from exc
        target = LocalTarget(path.parent, path.name)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalTarget(WriteTarget):
    def __init__(self, directory: Path, name: str) -> None:
        self.final = directory / name
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
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.temp, self.final)
            _fsync_directory(self.final.parent)
        except OSError as exc:
            self.abort()
            raise DestinationError(f"committing {self.final}: {exc}") from exc
        return CommittedFile(name=self.final.name, uri=self.final.resolve().as_uri())

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
