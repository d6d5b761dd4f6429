"""The fixed cost of the destination probe every run starts with, on the ``local``
destination: the probe object is written without flushes to disk (``write_scratch``), yet
the probe still catches what it is there to catch; and ``list_files(prefix)`` reads only
what the prefix can match, yet lists exactly what a walk of the whole tree would."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rivet_local import destination as local
from rivet_local.config import LocalOptions
from rivet_local.destination import TEMP_SUFFIX, LocalDestination

from rivet_core import probe as probe_module
from rivet_core.api import SupportsScratchWrite
from rivet_core.backends import DestinationContext
from rivet_core.errors import DestinationError
from rivet_core.probe import Status
from rivet_core.probe import probe_destination as doctor_probe
from rivet_core.runner.preflight import probe_destination as run_probe

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def local_destination(config_dir: Path, path: str = "out/{export}",
                      export: str = "orders") -> LocalDestination:
    context = DestinationContext(export=export, run_id="20260102T030405Z-abcdef",
                                 started_at=NOW, config_dir=config_dir)
    return LocalDestination(LocalOptions(path=path), context)


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def fsyncs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(local.os, "fsync", counted)
    return calls


# ------------------------------------------------------------------ the probe's write


def test_the_local_destination_offers_a_scratch_write():
    assert isinstance(local_destination(Path("/nonexistent")), SupportsScratchWrite)


def test_the_run_probe_flushes_nothing_to_disk_and_leaves_nothing(tmp_path, fsyncs):
    destination = local_destination(tmp_path)
    destination.write_small("_rivet/orders/manifest.json", b"{}")
    before = tree(tmp_path)
    fsyncs.clear()
    assert run_probe(destination, export="orders", run_id="run1") == []
    assert fsyncs == []
    assert tree(tmp_path) == before


def test_the_doctor_probe_passes_every_check_without_a_flush(tmp_path, fsyncs):
    checks = doctor_probe(local_destination(tmp_path))
    assert fsyncs == []
    assert {c.name: c.status for c in checks} == {
        "list": Status.OK, "write": Status.OK, "free space": Status.OK}
    assert tree(tmp_path) == []  # the directories the probe created went too


def test_only_the_doctor_probe_measures_free_space(tmp_path, monkeypatch):
    """A run acts on failures only, and free space is never one: it is not measured."""
    measured: list[Path] = []
    real = probe_module.shutil.disk_usage

    def disk_usage(path: Any) -> Any:
        measured.append(Path(path))
        return real(path)

    monkeypatch.setattr(probe_module.shutil, "disk_usage", disk_usage)
    run_probe(local_destination(tmp_path), export="orders", run_id="run1")
    assert measured == []
    doctor_probe(local_destination(tmp_path))
    assert measured


def test_write_small_stays_durable(tmp_path, fsyncs):
    """The manifest and ``_SUCCESS`` are the record: file, then directory, flushed."""
    local_destination(tmp_path).write_small("_rivet/orders/_SUCCESS", b"{}")
    assert len(fsyncs) == 2


def test_a_scratch_write_is_atomic_and_hides_its_temp_file(tmp_path, fsyncs, monkeypatch):
    destination = local_destination(tmp_path)
    renamed: list[tuple[str, str]] = []
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        renamed.append((Path(src).name, Path(dst).name))
        real(src, dst)

    monkeypatch.setattr(local.os, "replace", replace)
    destination.write_scratch("_rivet/orders/_probe-x", b"probe")
    ((temp, final),) = renamed
    assert temp.startswith("._probe-x.") and temp.endswith(TEMP_SUFFIX)
    assert final == "_probe-x"
    assert destination.read_file("_rivet/orders/_probe-x") == b"probe"
    assert fsyncs == []


def test_a_destination_without_scratch_writes_is_probed_with_write_small(tmp_path):
    """Only a destination that says so skips the durable write."""

    class Durable:
        def __init__(self, inner: LocalDestination) -> None:
            self.inner, self.writes = inner, []

        def location(self) -> str:
            return "memory://probe"

        def list_files(self, prefix: str = "") -> dict[str, int]:
            return self.inner.list_files(prefix)

        def read_file(self, name: str) -> bytes:
            return self.inner.read_file(name)

        def delete_file(self, name: str) -> None:
            self.inner.delete_file(name)

        def write_small(self, name: str, data: bytes) -> None:
            self.writes.append(name)
            self.inner.write_small(name, data)

    durable = Durable(local_destination(tmp_path))
    assert not isinstance(durable, SupportsScratchWrite)
    checks = doctor_probe(durable, name="_probe-y")  # type: ignore[arg-type]
    assert durable.writes == ["_probe-y"]
    assert [c.status for c in checks] == [Status.OK, Status.OK]


@pytest.mark.parametrize(("code", "text"), [(errno.EACCES, "Permission denied"),
                                            (errno.EROFS, "Read-only file system")])
def test_a_directory_that_refuses_writes_still_fails_the_probe_clearly(
        tmp_path, monkeypatch, code, text):
    """A read-only directory or file system refuses the temp file the scratch write
    creates, as it would refuse the run's files (simulated: the tests may run as root,
    whom permission bits do not stop)."""
    destination = local_destination(tmp_path)

    def refused(path: Any, mode: str) -> Any:
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(local, "open", refused, raising=False)
    checks = {c.name: c for c in doctor_probe(destination, subject="orders")}
    assert checks["list"].status is Status.OK
    assert checks["write"].status is Status.FAIL
    assert "cannot create" in checks["write"].detail and text in checks["write"].detail
    assert "may write there" in (checks["write"].hint or "")
    assert tree(tmp_path) == []
    with pytest.raises(DestinationError, match=f"cannot create .*{text}"):
        run_probe(destination, export="orders", run_id="run1")


@contextlib.contextmanager
def immutable(directory: Path) -> Iterator[None]:
    """``directory`` made immutable (``chattr +i``): no entry can be created, renamed or
    removed in it, by root either; the test is skipped where that cannot be done."""
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(directory)],
                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)


def test_an_immutable_location_fails_the_run_probe(tmp_path):
    """A directory where nothing may be created, as a read-only one, even for root."""
    destination = local_destination(tmp_path, path="out")
    (tmp_path / "out").mkdir()
    with immutable(tmp_path / "out"):
        with pytest.raises(DestinationError, match="Operation not permitted"):
            run_probe(destination, export="orders", run_id="run1")
        checks = {c.name: c for c in doctor_probe(destination, subject="orders")}
    assert checks["list"].status is Status.OK
    assert checks["write"].status is Status.FAIL
    assert "Operation not permitted" in checks["write"].detail
    assert tree(tmp_path) == ["out"]


def test_an_immutable_manifest_directory_fails_the_run_probe(tmp_path):
    """After a first run: the scratch write's temp file is refused there, as the
    manifest's would be."""
    destination = local_destination(tmp_path, path="out")
    destination.write_small("_rivet/orders/manifest.json", b"{}")
    refused = pytest.raises(DestinationError, match=r"cannot create .*Operation not permitted")
    with immutable(tmp_path / "out" / "_rivet" / "orders"), refused:
        run_probe(destination, export="orders", run_id="run1")
    assert tree(tmp_path) == ["out", "out/_rivet", "out/_rivet/orders",
                              "out/_rivet/orders/manifest.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root is not stopped by permission bits")
def test_a_read_only_directory_fails_the_probe(tmp_path):
    destination = local_destination(tmp_path, path="out")
    (tmp_path / "out").mkdir()
    (tmp_path / "out").chmod(0o555)
    try:
        with pytest.raises(DestinationError, match="Permission denied"):
            run_probe(destination, export="orders", run_id="run1")
    finally:
        (tmp_path / "out").chmod(0o755)


def test_a_delete_that_fails_still_fails_the_run_probe(tmp_path, monkeypatch):
    destination = local_destination(tmp_path)

    def refused(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refused)
    with pytest.raises(DestinationError, match=r"deleting .*Permission denied"):
        run_probe(destination, export="orders", run_id="run1")


def test_a_read_back_that_fails_is_a_warning_of_the_run_probe(tmp_path, monkeypatch):
    destination = local_destination(tmp_path)

    def refused(self: Path) -> bytes:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refused)
    (warning,) = run_probe(destination, export="orders", run_id="run1")
    assert "cannot be read back" in warning and "--validate" in warning


# ------------------------------------------------------------------ listing a prefix


@pytest.fixture
def site(tmp_path) -> LocalDestination:
    """A location after a few runs: data files, two exports' manifest directories, a temp
    file, a hidden file, a symlinked directory and a nested directory."""
    destination = local_destination(tmp_path, path="site")
    for name in ("orders_r1.parquet", "orders_r2.parquet", "other_r1.parquet",
                 "_rivet/orders/manifest.json", "_rivet/orders/_SUCCESS",
                 "_rivet/orders_eu/manifest.json", "_rivet/other/manifest.json",
                 "deep/a/b/c.bin", ".hidden"):
        destination.write_small(name, name.encode())
    root = destination.directory
    (root / f".orders_r3.parquet.1.abcd{TEMP_SUFFIX}").write_bytes(b"unfinished")
    (root / "_rivet" / "orders" / f"._SUCCESS.1.abcd{TEMP_SUFFIX}").write_bytes(b"x")
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "orders_link.parquet").symlink_to(root / "orders_r1.parquet")
    return destination


def walk_all(root: Path) -> dict[str, int]:
    """What a reader walking the whole tree sees (symlinked directories not followed)."""
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(TEMP_SUFFIX)}


@pytest.mark.parametrize("prefix", [
    "", "orders", "orders_r1.parquet", "orders_", "o", "_", "_rivet", "_rivet/",
    "_rivet/orders", "_rivet/orders/", "_rivet/orders/_S", "_rivet/orders/_probe-run1",
    "_rivet/none/", "deep/a/", "deep/a/b/c.bin", "deep/a/b/c.bin/", ".", ".hid", "loop",
    "loop/", "missing/dir/x", "/abs", "../site/orders", "./orders", "_rivet//orders",
    "deep/./a", "orders_r1.parquet/x"])
def test_a_prefix_lists_exactly_what_a_walk_of_the_tree_would(site, prefix):
    want = {name: size for name, size in walk_all(site.directory).items()
            if name.startswith(prefix)}
    assert site.list_files(prefix) == want


def test_a_prefix_reads_only_the_directories_it_can_match(site, monkeypatch):
    read: list[str] = []
    real = os.scandir

    def scandir(path: Any) -> Any:
        read.append(Path(path).relative_to(site.directory).as_posix())
        return real(path)

    monkeypatch.setattr(local.os, "scandir", scandir)
    assert site.list_files("_rivet/orders/_probe-run1") == {}
    assert read == ["_rivet/orders"]
    read.clear()
    assert set(site.list_files("orders_r")) == {"orders_r1.parquet", "orders_r2.parquet"}
    assert read == ["."]
    read.clear()
    assert set(site.list_files("_rivet/orders")) == {
        "_rivet/orders/manifest.json", "_rivet/orders/_SUCCESS",
        "_rivet/orders_eu/manifest.json"}
    assert sorted(read) == ["_rivet", "_rivet/orders", "_rivet/orders_eu"]


def test_a_missing_location_lists_nothing(tmp_path):
    assert local_destination(tmp_path).list_files() == {}
    assert local_destination(tmp_path).list_files("_rivet/orders/") == {}
    (tmp_path / "file").write_text("not a directory")
    assert local_destination(tmp_path, path="file").list_files() == {}


def test_a_directory_that_cannot_be_listed_is_an_error(site, monkeypatch):
    """Not an empty listing: the probe's ``list`` check must fail on it."""
    real = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path).name == "orders":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(local.os, "scandir", scandir)
    with pytest.raises(DestinationError, match=r"listing .*orders.*Permission denied"):
        site.list_files("_rivet/orders/_probe-x")
    checks = {c.name: c for c in doctor_probe(site, name="_rivet/orders/_probe-x")}
    assert checks["list"].status is Status.FAIL
    # Below the directory the prefix names, an unreadable directory is skipped, as a walk
    # of the tree skips it.
    listed = site.list_files("_rivet/")
    assert "_rivet/other/manifest.json" in listed
    assert not [name for name in listed if name.startswith("_rivet/orders/")]


def test_a_file_removed_while_it_is_listed_is_not_listed(site, monkeypatch):
    real = os.scandir

    class Vanishing:
        def __init__(self, entries: Any) -> None:
            self.entries = entries

        def __enter__(self) -> Vanishing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.entries.close()

        def __iter__(self) -> Any:
            for entry in self.entries:
                if entry.name == "orders_r2.parquet":
                    os.unlink(entry.path)
                yield entry

    monkeypatch.setattr(local.os, "scandir", lambda path: Vanishing(real(path)))
    assert set(site.list_files("orders_r")) == {"orders_r1.parquet"}


# ------------------------------------------------------------------ resolved once


def test_the_location_and_file_uris_resolve_symlinks_once(tmp_path, monkeypatch):
    """The location is resolved once per destination; a committed file's URI is that
    location and its name, as resolving the file's own path gives."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    destination = local_destination(tmp_path, path="link/{export}")
    assert destination.location() == (tmp_path / "real" / "orders").as_uri()
    target = destination.open("orders_1.parquet")
    target.write(b"data")
    committed = target.commit()
    through_link = tmp_path / "link" / "orders" / "orders_1.parquet"
    assert committed.uri == through_link.resolve().as_uri()
    assert committed.uri == (tmp_path / "real" / "orders" / "orders_1.parquet").as_uri()
    calls: list[Path] = []
    real = Path.resolve

    def resolve(self: Path, strict: bool = False) -> Path:
        calls.append(self)
        return real(self, strict)

    monkeypatch.setattr(Path, "resolve", resolve)
    for _ in range(3):
        destination.location()
    destination.write_small("_rivet/orders/manifest.json", b"{}")
    target = destination.open("orders_2.parquet")
    target.write(b"data")
    target.commit()
    assert calls == []
