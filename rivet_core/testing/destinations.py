"""The destination conformance kit: every capability a destination declares, proven.

A destination author subclasses :class:`DestinationTests` in a test module and overrides
three fixtures::

    from rivet_core.testing import DestinationTests

    class TestMyDestination(DestinationTests):
        @pytest.fixture
        def destination_spec(self):          # the DestinationSpec under test
            return my_plugin.SPEC

        @pytest.fixture
        def destination_config(self, tmp_path):   # sandbox keys of [exports.destination]
            return {"path": str(tmp_path / "out")}

        @pytest.fixture
        def backdoor(self, tmp_path):        # independent reader, never the backend itself
            return MyReader(tmp_path / "out")

The kit then checks the declaration, the config round trip through Rivet's real loader and
its error paths, that committed bytes read back exactly (even when the caller reuses its
buffer), each declared capability with injected faults, and, for a destination implementing
:class:`~rivet_core.backends.SupportsListing`, that listing, reading, small writes and
deletes agree with what a reader sees. A capability the destination does not declare (or
the listing it does not implement) is skipped, with the reason. Checks observe the
destination only through the back door (:class:`Backdoor`), so a destination cannot vouch
for itself.

Every test gets fresh fixtures: the sandbox must be empty at the start of each test.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs
import pytest

from rivet_core.backends import (
    CommittedFile,
    Destination,
    DestinationContext,
    SupportsListing,
    SupportsScratchWrite,
    WriteTarget,
)
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.errors import ConfigError, DestinationError, TransientDestinationError
from rivet_core.specs import DestinationSpec, spec_problems
from rivet_core.testing.kitconfig import load_kit_export

# --------------------------------------------------------------------------- back door


@runtime_checkable
class Backdoor(Protocol):
    """An independent view of the sandbox, as a reader of the destination sees it.

    It must not use the backend under test (for an object store: plain HTTP or another
    client; for a directory: the file system; for a stream: the other end of the pipe).
    """

    def list(self) -> builtins.list[tuple[str, int]]:
        """One ``(name, size)`` pair per object a reader can see, names relative to the
        destination's location (nested names with ``/``). Two objects stored under one
        name (a zip archive with a second entry of that name, two versions both live) are
        two pairs: a mapping would hide the second one, so the kit refuses it. A
        single-stream destination lists its stream (any name) once bytes arrived."""

    def read(self, name: str) -> bytes:
        """The content of a listed object."""

    def leftovers(self) -> builtins.list[str]:
        """Storage held by unfinished writes that no reader sees but someone must clean up:
        incomplete multipart uploads, temp files. Empty when the storage has no such
        thing."""


# ------------------------------------------------------------------------ fault injection


class InjectedFault(Exception):
    """The failure the kit injects mid-stream (stands for anything: source error, crash of
    the format writer, network failure)."""


class FaultyTarget(WriteTarget):
    """Wraps a target and raises ``error`` from the write that would take the total past
    ``fail_after`` bytes (the bytes before that point are written through)."""

    def __init__(self, inner: WriteTarget, fail_after: int,
                 error: Callable[[], BaseException] = lambda: InjectedFault("injected")) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.error = error
        self.written = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        room = self.fail_after - self.written
        if view.nbytes > room:
            if room > 0:
                self.inner.write(view[:room])
                self.written += room
            raise self.error()
        self.inner.write(view)
        self.written += view.nbytes

    def commit(self) -> CommittedFile:
        return self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


class FaultyDestination(Destination):
    """Wraps a destination so the first ``failures`` targets it opens fail after
    ``fail_after`` bytes; later targets are untouched (a transient failure, then a retry)."""

    def __init__(self, inner: Destination, *, fail_after: int, failures: int = 1,
                 error: Callable[[], BaseException] = lambda: InjectedFault("injected")) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.failures = failures
        self.error = error

    def open(self, name: str) -> WriteTarget:
        target = self.inner.open(name)
        if self.failures > 0:
            self.failures -= 1
            return FaultyTarget(target, self.fail_after, self.error)
        return target

    def location(self) -> str:
        return self.inner.location()

    def close(self) -> None:
        self.inner.close()


def drive_write(destination: Destination, name: str, data: bytes, *,
                chunk: int = 64 << 10) -> CommittedFile:
    """Write ``data`` the way the runner does: open, write in chunks from one reused
    buffer, commit; on any exception abort the target and re-raise."""
    target = destination.open(name)
    try:
        _write_chunks(target, data, chunk)
        return target.commit()
    except BaseException:
        target.abort()
        raise


def _write_chunks(target: WriteTarget, data: bytes, chunk: int) -> None:
    # One buffer, overwritten for every chunk: a target that keeps a reference instead of
    # the bytes (obstore's writer does) stores garbage, and the read-back checks catch it.
    buffer = bytearray(chunk)
    for start in range(0, len(data), chunk):
        piece = data[start:start + chunk]
        buffer[:len(piece)] = piece
        target.write(memoryview(buffer)[:len(piece)])


def payload_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def assert_same_bytes(got: bytes | None, want: bytes, what: str) -> None:
    """Fails naming the first differing offset. A plain ``assert got == want`` on a megabyte
    of bytes makes pytest diff their reprs, which takes hours where pytest does not truncate
    (``CI`` set in the environment)."""
    if got is None:
        pytest.fail(f"{what}: the file is not visible", pytrace=False)
    if got == want:
        return
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
              min(len(got), len(want)))
    pytest.fail(f"{what}: {len(got)} bytes read back, {len(want)} written; "
                f"first difference at offset {at}", pytrace=False)


def backdoor_listing(backdoor: Backdoor) -> builtins.list[tuple[str, int]]:
    """The back door's listing, checked for shape and sorted: one ``(name, size)`` pair per
    stored object, duplicates kept."""
    listing = backdoor.list()
    if isinstance(listing, Mapping):
        pytest.fail(f"the back door's list() returned a {type(listing).__name__}; return a "
                    "list of (name, size) pairs, one per stored object, so that two objects "
                    "stored under one name show up as two pairs", pytrace=False)
    pairs = []
    for item in listing:
        if not (isinstance(item, tuple | builtins.list) and len(item) == 2
                and isinstance(item[0], str) and isinstance(item[1], int)):
            pytest.fail(f"the back door's list() holds {item!r}; each entry must be a "
                        "(name: str, size: int) pair", pytrace=False)
        pairs.append((item[0], item[1]))
    return sorted(pairs)


def unique_listing(backdoor: Backdoor) -> dict[str, int]:
    """The back door's listing as name → size, failing if a name holds several objects
    (which no ``dict`` a destination returns could show)."""
    pairs = backdoor_listing(backdoor)
    names = [name for name, _ in pairs]
    doubled = sorted({name for name in names if names.count(name) > 1})
    assert not doubled, f"several objects are stored under one name: {doubled} ({pairs})"
    return dict(pairs)


# ----------------------------------------------------------------------- config helpers


def load_destination_options(spec: DestinationSpec, keys: dict[str, Any],
                             directory: Path) -> Any:
    """Structure ``keys`` as ``[exports.destination]`` through Rivet's real loader."""
    return load_kit_export(directory, destination=spec, destination_keys=keys
                           ).destination.options


# ---------------------------------------------------------------------------- the kit


class DestinationTests:
    """Abstract conformance tests for a destination; see the module docstring.

    Override ``destination_spec``, ``destination_config`` and ``backdoor``; optionally
    ``invalid_configs`` (bad configs and the key each must be reported under),
    ``payload_size`` (make it exceed one multipart part for an object store),
    ``config_dir`` and ``build_destination``.
    """

    # ------------------------------------------------------------ fixtures to override

    @pytest.fixture
    def destination_spec(self) -> DestinationSpec:
        raise NotImplementedError("override the destination_spec fixture")

    @pytest.fixture
    def destination_config(self) -> dict[str, Any]:
        """Keys of ``[exports.destination]`` (without ``type``) pointing at an empty
        sandbox."""
        raise NotImplementedError("override the destination_config fixture")

    @pytest.fixture
    def backdoor(self) -> Backdoor:
        raise NotImplementedError("override the backdoor fixture")

    @pytest.fixture
    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        """``(keys, key)`` pairs: each config must fail to load with an issue at ``key``."""
        return []

    @pytest.fixture
    def payload_size(self) -> int:
        return 1 << 20

    @pytest.fixture
    def config_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "kit-config"

    # ------------------------------------------------------------------ kit fixtures

    @pytest.fixture
    def capabilities(self, destination_spec: DestinationSpec) -> DestinationCapabilities:
        return destination_spec.capabilities

    @pytest.fixture
    def destination_options(self, destination_spec: DestinationSpec,
                            destination_config: dict[str, Any], config_dir: Path) -> Any:
        return load_destination_options(destination_spec, destination_config, config_dir)

    @pytest.fixture
    def destination_context(self, config_dir: Path) -> DestinationContext:
        return DestinationContext(export="kit", run_id="20260101T000000Z-c0ffee",
                                  started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                                  config_dir=config_dir)

    @pytest.fixture
    def build_destination(self, destination_spec: DestinationSpec, destination_options: Any,
                          destination_context: DestinationContext
                          ) -> Iterator[Callable[[], Destination]]:
        """Builds a fresh destination from the loaded config (each one closed at the end),
        as each run of the runner does."""
        built: list[Destination] = []

        def build() -> Destination:
            destination = destination_spec.factory(destination_options, destination_context)
            built.append(destination)
            return destination

        yield build
        for destination in built:
            destination.close()

    @pytest.fixture
    def destination(self, build_destination: Callable[[], Destination]) -> Destination:
        return build_destination()

    @pytest.fixture
    def payload(self, payload_size: int) -> bytes:
        return payload_bytes(payload_size, 1)

    @pytest.fixture
    def other_payload(self, payload_size: int) -> bytes:
        return payload_bytes(payload_size // 2 + 7, 2)

    # ------------------------------------------------------------------------ helpers

    @staticmethod
    def require(condition: bool, spec: DestinationSpec, what: str) -> None:
        if not condition:
            pytest.skip(f"{spec.name!r} does not declare {what}")

    @staticmethod
    def visible(backdoor: Backdoor, caps: DestinationCapabilities, name: str) -> bytes | None:
        """The content a reader sees for file ``name`` (for a single stream: the stream)."""
        listing = backdoor_listing(backdoor)
        if caps.multi_file:
            sizes = [size for listed, size in listing if listed == name]
            assert len(sizes) <= 1, f"{len(sizes)} objects are stored under {name!r}: {listing}"
            if not sizes:
                return None
            data = backdoor.read(name)
            assert sizes[0] == len(data), (
                f"{name!r} is listed with {sizes[0]} bytes but {len(data)} read back")
            return data
        assert len(listing) <= 1, f"a single-stream destination shows {listing}"
        return backdoor.read(listing[0][0]) if listing else None

    @staticmethod
    def assert_nothing_left(backdoor: Backdoor, when: str) -> None:
        listing = backdoor_listing(backdoor)
        assert listing == [], f"{when}, a reader sees {listing}"
        leftovers = backdoor.leftovers()
        assert leftovers == [], f"{when}, unfinished writes hold storage: {leftovers}"

    # ---------------------------------------------------------------- declaration, config

    def test_declaration_is_coherent(self, destination_spec: DestinationSpec) -> None:
        assert isinstance(destination_spec, DestinationSpec)
        problems = spec_problems(destination_spec)
        assert problems == [], "incoherent declaration:\n" + "\n".join(problems)

    def test_config_round_trips_through_the_loader(
            self, destination_spec: DestinationSpec, destination_config: dict[str, Any],
            destination_options: Any, config_dir: Path) -> None:
        assert isinstance(destination_options, destination_spec.config_cls)
        for key, value in destination_config.items():
            assert getattr(destination_options, key) == value, key
        if attrs.has(type(destination_options)):
            keys = attrs.asdict(destination_options)  # type: ignore[arg-type]
            again = load_destination_options(destination_spec, keys, config_dir / "again")
            assert again == destination_options

    def test_unknown_config_key_is_an_error_naming_it(
            self, destination_spec: DestinationSpec, destination_config: dict[str, Any],
            config_dir: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            load_destination_options(destination_spec,
                                     {**destination_config, "no_such_key_zz": 1}, config_dir)
        paths = [issue.path for issue in caught.value.issues]
        assert "exports[0].destination.no_such_key_zz" in paths, paths

    def test_invalid_configs_are_errors_naming_the_key(
            self, destination_spec: DestinationSpec,
            invalid_configs: list[tuple[dict[str, Any], str]], config_dir: Path) -> None:
        if not invalid_configs:
            pytest.skip("no invalid_configs fixture given")
        for index, (keys, key) in enumerate(invalid_configs):
            with pytest.raises(ConfigError) as caught:
                load_destination_options(destination_spec, keys, config_dir / str(index))
            paths = [issue.path for issue in caught.value.issues]
            assert f"exports[0].destination.{key}" in paths, (keys, paths)

    # --------------------------------------------------------------------- plain writes

    def test_committed_file_reads_back_exactly(
            self, destination: Destination, backdoor: Backdoor,
            capabilities: DestinationCapabilities, payload: bytes) -> None:
        location = destination.location()
        assert isinstance(location, str) and location
        committed = drive_write(destination, "kit_file.bin", payload)
        assert committed.name == "kit_file.bin"
        got = self.visible(backdoor, capabilities, "kit_file.bin")
        assert_same_bytes(got, payload, "the committed file")

    def test_abort_after_commit_is_harmless(
            self, destination: Destination, backdoor: Backdoor,
            capabilities: DestinationCapabilities, other_payload: bytes) -> None:
        target = destination.open("kit_file.bin")
        _write_chunks(target, other_payload, 64 << 10)
        target.commit()
        target.abort()
        target.abort()
        assert_same_bytes(self.visible(backdoor, capabilities, "kit_file.bin"), other_payload,
                          "after commit then abort")

    # ---------------------------------------------------------- atomic, finalize_on_close

    def test_nothing_visible_before_commit(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, capabilities: DestinationCapabilities, payload: bytes) -> None:
        self.require(capabilities.commit_protocol is not WriteCommitProtocol.STREAMING,
                     destination_spec, "a commit point (atomic or finalize_on_close)")
        target = destination.open("kit_file.bin")
        try:
            _write_chunks(target, payload, 64 << 10)
            listing = backdoor_listing(backdoor)
            assert listing == [], f"before commit, a reader already sees {listing}"
            target.commit()
        except BaseException:
            target.abort()
            raise
        assert_same_bytes(self.visible(backdoor, capabilities, "kit_file.bin"), payload,
                          "the committed file")

    def test_abort_leaves_nothing(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, capabilities: DestinationCapabilities, payload: bytes) -> None:
        self.require(capabilities.commit_protocol is not WriteCommitProtocol.STREAMING,
                     destination_spec, "a commit point (atomic or finalize_on_close)")
        target = destination.open("kit_file.bin")
        _write_chunks(target, payload, 64 << 10)
        target.abort()
        self.assert_nothing_left(backdoor, "after abort")

    def test_failure_mid_stream_leaves_nothing(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, capabilities: DestinationCapabilities, payload: bytes) -> None:
        self.require(capabilities.commit_protocol is not WriteCommitProtocol.STREAMING
                     or not capabilities.partial_write_risk, destination_spec,
                     "a commit point or partial_write_risk=False")
        faulty = FaultyDestination(destination, fail_after=len(payload) * 2 // 3)
        with pytest.raises(InjectedFault):
            drive_write(faulty, "kit_file.bin", payload)
        self.assert_nothing_left(backdoor, "after a failure mid-stream")

    def test_abandoned_write_shows_nothing(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, capabilities: DestinationCapabilities, payload: bytes) -> None:
        """A process that dies mid-write never calls commit or abort."""
        self.require(not capabilities.partial_write_risk, destination_spec,
                     "partial_write_risk=False")
        target = destination.open("kit_file.bin")
        try:
            _write_chunks(target, payload, 64 << 10)
            listing = backdoor_listing(backdoor)
            assert listing == [], f"a write that never finished shows {listing}"
        finally:
            target.abort()

    # -------------------------------------------------------------- idempotent overwrite

    def test_overwrite_leaves_one_file_with_the_second_content(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, payload: bytes, other_payload: bytes,
            capabilities: DestinationCapabilities) -> None:
        self.require(capabilities.idempotent_overwrite, destination_spec,
                     "idempotent_overwrite")
        drive_write(destination, "kit_file.bin", payload)
        drive_write(destination, "kit_file.bin", other_payload)
        # Pairs, not a mapping: a second object under the same name must show.
        listing = backdoor_listing(backdoor)
        assert listing == [("kit_file.bin", len(other_payload))], (
            f"after overwriting kit_file.bin, a reader sees {listing}")
        assert_same_bytes(backdoor.read("kit_file.bin"), other_payload, "the overwritten file")
        assert backdoor.leftovers() == []

    # ---------------------------------------------------------------------- retry safe

    def test_transient_failure_then_retry_equals_a_clean_write(
            self, destination_spec: DestinationSpec,
            build_destination: Callable[[], Destination], backdoor: Backdoor,
            capabilities: DestinationCapabilities, payload: bytes) -> None:
        self.require(capabilities.retry_safe, destination_spec, "retry_safe")
        faulty = FaultyDestination(
            build_destination(), fail_after=len(payload) // 2,
            error=lambda: TransientDestinationError("injected transient failure"))
        with pytest.raises(TransientDestinationError):
            drive_write(faulty, "kit_file.bin", payload)
        drive_write(build_destination(), "kit_file.bin", payload)  # the retry: a fresh run
        listing = backdoor_listing(backdoor)
        if capabilities.multi_file:
            assert listing == [("kit_file.bin", len(payload))], listing
        assert_same_bytes(self.visible(backdoor, capabilities, "kit_file.bin"), payload,
                          "the retried file")
        assert backdoor.leftovers() == []

    # ----------------------------------------------------------------------- streaming

    def test_bytes_are_visible_before_commit(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, capabilities: DestinationCapabilities, payload: bytes) -> None:
        self.require(capabilities.commit_protocol is WriteCommitProtocol.STREAMING,
                     destination_spec, "streaming")
        target = destination.open("kit_file.bin")
        _write_chunks(target, payload, 64 << 10)
        deadline = time.monotonic() + 5
        seen = b""
        while time.monotonic() < deadline:
            seen = self.visible(backdoor, capabilities, "kit_file.bin") or b""
            if seen:
                break
            time.sleep(0.02)
        assert seen, "a streaming destination showed no byte before commit"
        assert payload.startswith(seen), "the visible bytes are not a prefix of the written ones"
        target.commit()

    # ----------------------------------------------------------------------- multi file

    def test_two_files_coexist(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, capabilities: DestinationCapabilities, payload: bytes,
            other_payload: bytes) -> None:
        self.require(capabilities.multi_file, destination_spec, "multi_file")
        drive_write(destination, "kit_a.bin", payload)
        drive_write(destination, "kit_b.bin", other_payload)
        listing = backdoor_listing(backdoor)
        assert listing == [("kit_a.bin", len(payload)), ("kit_b.bin", len(other_payload))], (
            listing)
        assert_same_bytes(backdoor.read("kit_a.bin"), payload, "kit_a.bin")
        assert_same_bytes(backdoor.read("kit_b.bin"), other_payload, "kit_b.bin")

    # ------------------------------------------------------------------------- listing

    @staticmethod
    def listing_api(spec: DestinationSpec, destination: Destination) -> SupportsListing:
        """The destination as :class:`SupportsListing`; the test is skipped if it is not."""
        if not isinstance(destination, SupportsListing):
            pytest.skip(f"{spec.name!r} does not implement SupportsListing (list_files, "
                        "read_file, write_small, delete_file)")
        return destination

    @staticmethod
    def listed(api: SupportsListing, prefix: str = "") -> dict[str, int]:
        found = api.list_files(prefix)
        assert isinstance(found, Mapping), (
            f"list_files({prefix!r}) returned a {type(found).__name__}, not a name → size map")
        return dict(found)

    def test_listing_shows_exactly_the_committed_files_with_their_sizes(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, payload: bytes) -> None:
        api = self.listing_api(destination_spec, destination)
        assert self.listed(api) == {}, "list_files() of an empty sandbox is not empty"
        drive_write(destination, "kit_a.bin", payload)
        api.write_small("kit_b.bin", b"small file")
        api.write_small("_rivet/kit/manifest.json", b'{"files": []}')
        seen = unique_listing(backdoor)
        assert seen == {"kit_a.bin": len(payload), "kit_b.bin": 10,
                        "_rivet/kit/manifest.json": 13}, f"the back door sees {seen}"
        assert self.listed(api) == seen

    def test_listing_with_a_prefix_shows_only_names_under_it(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, other_payload: bytes) -> None:
        api = self.listing_api(destination_spec, destination)
        drive_write(destination, "kit_a.bin", other_payload)
        for name in ("kit_b.bin", "other.bin", "_rivet/kit/manifest.json",
                     "_rivet/kit/_SUCCESS", "_rivet/kitten/manifest.json"):
            api.write_small(name, name.encode())
        seen = unique_listing(backdoor)
        wrong = []
        # A prefix is a string prefix, not a directory: "_rivet/kit" also matches
        # "_rivet/kitten/...".
        for prefix in ("", "kit_", "kit_a.bin", "_rivet/", "_rivet/kit/", "_rivet/kit",
                       "_rivet/kit/_S", "no_such_prefix", "_rivet/none/"):
            want = {name: size for name, size in seen.items() if name.startswith(prefix)}
            got = self.listed(api, prefix)
            if got != want:
                wrong.append(f"list_files({prefix!r}) = {got}, a reader sees {want}")
        assert not wrong, "\n".join(wrong)

    def test_listing_hides_unfinished_and_aborted_writes(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, capabilities: DestinationCapabilities, payload: bytes,
            other_payload: bytes) -> None:
        api = self.listing_api(destination_spec, destination)
        self.require(capabilities.commit_protocol is not WriteCommitProtocol.STREAMING,
                     destination_spec, "a commit point (atomic or finalize_on_close)")
        drive_write(destination, "kit_a.bin", other_payload)
        committed = {"kit_a.bin": len(other_payload)}
        target = destination.open("kit_b.bin")
        try:
            _write_chunks(target, payload, 64 << 10)
            assert self.listed(api) == committed, "list_files() shows an unfinished write"
            assert self.listed(api, "kit_b") == {}, "list_files() shows an unfinished write"
        finally:
            target.abort()
        assert self.listed(api) == committed, "list_files() shows an aborted write"
        assert unique_listing(backdoor) == committed

    def test_read_file_returns_the_exact_bytes(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, payload: bytes) -> None:
        api = self.listing_api(destination_spec, destination)
        drive_write(destination, "kit_a.bin", payload)
        manifest = json.dumps({"run": "kit", "text": "ünïcødé"}).encode()
        api.write_small("_rivet/kit/manifest.json", manifest)
        assert_same_bytes(backdoor.read("kit_a.bin"), payload, "kit_a.bin (back door)")
        assert_same_bytes(api.read_file("kit_a.bin"), payload, "read_file('kit_a.bin')")
        assert backdoor.read("_rivet/kit/manifest.json") == manifest
        assert api.read_file("_rivet/kit/manifest.json") == manifest

    def test_read_file_of_a_missing_name_raises_destination_error(
            self, destination_spec: DestinationSpec, destination: Destination) -> None:
        api = self.listing_api(destination_spec, destination)
        api.write_small("_rivet/kit/manifest.json", b"{}")
        for name in ("kit_missing.bin", "_rivet/kit/missing.json", "_rivet/none/x.json"):
            with pytest.raises(DestinationError):
                got = api.read_file(name)
                pytest.fail(f"read_file({name!r}) of a missing file returned {len(got)} bytes",
                            pytrace=False)

    def test_write_small_is_seen_whole_old_or_new_never_a_mix(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor) -> None:
        """A reader polls the name while it is overwritten again and again: every read
        must be one complete version (a read that fails, e.g. a connection cut by the
        replacement, is not an observation)."""
        api = self.listing_api(destination_spec, destination)
        name = "_rivet/kit/manifest.json"
        old = payload_bytes(256 << 10, 3)
        new = payload_bytes((192 << 10) + 5, 4)  # shorter: an in-place rewrite shows a tail
        api.write_small(name, old)
        assert_same_bytes(backdoor.read(name), old, f"{name} after write_small")
        mixes: list[str] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                try:
                    seen = backdoor.read(name)
                except Exception:
                    continue
                if seen != old and seen != new:
                    mixes.append(f"{len(seen)} bytes, neither version "
                                 f"({len(old)} or {len(new)} bytes)")

        reader = threading.Thread(target=poll, name="kit-poller", daemon=True)
        reader.start()
        try:
            for version in (new, old, new, old, new):
                api.write_small(name, version)
        finally:
            stop.set()
            reader.join(30)
        assert not mixes, f"a reader saw a mix while {name} was overwritten: {mixes[:5]}"
        assert [pair for pair in backdoor_listing(backdoor) if pair[0] == name] == [
            (name, len(new))], "the overwritten small file is not one object of the new size"
        assert_same_bytes(backdoor.read(name), new, f"{name} after the last write_small")
        assert self.listed(api, "_rivet/") == {name: len(new)}

    def test_write_scratch_is_a_whole_object_listed_read_and_deleted(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor) -> None:
        """``write_scratch`` (optional, :class:`SupportsScratchWrite`: the run's probe
        object) stores what ``write_small`` would, minus the flush: the object is there
        whole, listed at its size, read back exactly, and gone after ``delete_file``."""
        api = self.listing_api(destination_spec, destination)
        if not isinstance(destination, SupportsScratchWrite):
            pytest.skip(f"{destination_spec.name!r} does not implement SupportsScratchWrite")
        name = "_rivet/kit/_probe-scratch"
        data = payload_bytes((64 << 10) + 3, 5)
        destination.write_scratch(name, data)
        assert_same_bytes(backdoor.read(name), data, f"{name} after write_scratch")
        assert self.listed(api, "_rivet/kit/_probe") == {name: len(data)}
        assert_same_bytes(api.read_file(name), data, f"read_file({name!r})")
        api.delete_file(name)
        assert self.listed(api, "_rivet/kit/_probe") == {}, "deleted, yet still listed"

    def test_delete_file_removes_and_a_missing_name_is_not_an_error(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor, other_payload: bytes) -> None:
        api = self.listing_api(destination_spec, destination)
        drive_write(destination, "kit_a.bin", other_payload)
        api.write_small("kit_b.bin", b"kept")
        api.write_small("_rivet/kit/manifest.json", b"{}")
        api.delete_file("kit_a.bin")
        api.delete_file("_rivet/kit/manifest.json")
        seen = unique_listing(backdoor)
        assert seen == {"kit_b.bin": 4}, f"after delete_file, a reader sees {seen}"
        assert self.listed(api) == {"kit_b.bin": 4}
        with pytest.raises(DestinationError):
            api.read_file("kit_a.bin")
        for name in ("kit_a.bin", "_rivet/kit/manifest.json", "never_was.bin",
                     "_rivet/none/never_was.json"):
            api.delete_file(name)  # gone already, or never there: not an error
        assert unique_listing(backdoor) == {"kit_b.bin": 4}

    def test_nested_names_work_for_every_listing_method(
            self, destination_spec: DestinationSpec, destination: Destination,
            backdoor: Backdoor) -> None:
        """The manifest lives at ``_rivet/<export>/manifest.json``."""
        api = self.listing_api(destination_spec, destination)
        name = "_rivet/kit/manifest.json"
        api.write_small(name, b'{"kit": true}')
        seen = backdoor_listing(backdoor)
        assert seen == [(name, 13)], f"after write_small({name!r}), a reader sees {seen}"
        assert self.listed(api) == {name: 13}
        assert self.listed(api, "_rivet/kit/") == {name: 13}
        assert api.read_file(name) == b'{"kit": true}'
        api.delete_file(name)
        seen = backdoor_listing(backdoor)
        assert seen == [], f"after delete_file({name!r}), a reader sees {seen}"
        assert self.listed(api) == {}
