"""The kits must fail backends whose declarations are false. Each group of liars runs a kit
in a pytest sub-session (pytester), so this suite stays green while proving the failures;
each liar is wrong in one way, and the tests name exactly the checks that must catch it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

LIARS = '''
from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import attrs
import pytest

from rivet_core.backends import CommittedFile, Destination, WriteTarget
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.config import doc
from rivet_core.specs import DestinationSpec
from rivet_core.testing import DestinationTests

pytest_plugins = ["rivet_core.testing"]


@attrs.frozen(kw_only=True)
class DirOptions:
    path: str = doc("directory")


class StraightToFinalName(Destination):
    """Claims atomic, but writes straight to the final name."""

    def __init__(self, options, context):
        self.root = Path(options.path)
        self.root.mkdir(parents=True, exist_ok=True)

    def location(self):
        return self.root.as_uri()

    def open(self, name):
        return DirectTarget(self.root / name, keep_references=False)


class KeepsReferences(StraightToFinalName):
    """Buffers writes by reference (like obstore's writer) and renames at commit: atomic,
    but the bytes it stores are whatever the caller's reused buffer holds at commit."""

    def open(self, name):
        return DirectTarget(self.root / name, keep_references=True)


class DirectTarget(WriteTarget):
    def __init__(self, final, keep_references):
        self.final = final
        self.keep = keep_references
        self.pending = []
        self.temp = final.with_name("." + final.name + ".tmp")
        self.file = None if keep_references else open(final, "wb")

    def write(self, data):
        if self.keep:
            self.pending.append(data)
        else:
            self.file.write(data)
            self.file.flush()

    def commit(self):
        if self.keep:
            self.temp.write_bytes(b"".join(bytes(p) for p in self.pending))
            self.temp.replace(self.final)
        else:
            self.file.close()
        return CommittedFile(name=self.final.name, uri=self.final.as_uri())

    def abort(self):
        if self.file is not None:
            self.file.close()
        self.pending = []


CLAIMS = DestinationCapabilities(commit_protocol=WriteCommitProtocol.ATOMIC,
                                 idempotent_overwrite=True, retry_safe=True,
                                 partial_write_risk=False, multi_file=True)


class DirReader:
    def __init__(self, root):
        self.root = root

    def list(self):
        if not self.root.exists():
            return []
        return [(p.name, p.stat().st_size) for p in self.root.iterdir()
                if p.is_file() and not p.name.startswith(".")]

    def read(self, name):
        return (self.root / name).read_bytes()

    def leftovers(self):
        return []


class LiarKit(DestinationTests):
    factory = None

    @pytest.fixture
    def destination_spec(self):
        return DestinationSpec(name="liar", config_cls=DirOptions, factory=self.factory,
                               capabilities=CLAIMS)

    @pytest.fixture
    def destination_config(self, tmp_path):
        return {"path": str(tmp_path / "out")}

    @pytest.fixture
    def backdoor(self, tmp_path):
        return DirReader(tmp_path / "out")


class TestStraightToFinalName(LiarKit):
    factory = StraightToFinalName


class TestKeepsReferences(LiarKit):
    factory = KeepsReferences


class ZipArchive(StraightToFinalName):
    """Claims idempotent_overwrite, but each commit appends an entry to one zip archive:
    writing a name twice stores two entries under it. A zip reader returns the last one,
    so a name → size listing would look like a clean overwrite."""

    def open(self, name):
        return ZipEntryTarget(self.root / "archive.zip", name)


class ZipEntryTarget(WriteTarget):
    def __init__(self, archive, name):
        self.archive = archive
        self.name = name
        self.buffer = bytearray()  # nothing reaches the archive before commit

    def write(self, data):
        self.buffer += data

    def commit(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            with zipfile.ZipFile(self.archive, "a") as archive:
                archive.writestr(self.name, bytes(self.buffer))
        return CommittedFile(name=self.name, uri=f"{self.archive.as_uri()}#{self.name}")

    def abort(self):
        self.buffer = bytearray()


class ZipReader:
    """Every entry of the archive, duplicates included."""

    def __init__(self, archive):
        self.archive = archive

    def list(self):
        if not self.archive.exists():
            return []
        with zipfile.ZipFile(self.archive) as archive:
            return [(info.filename, info.file_size) for info in archive.infolist()]

    def read(self, name):
        with zipfile.ZipFile(self.archive) as archive:
            return archive.read(name)

    def leftovers(self):
        return []


class TestZipArchive(LiarKit):
    factory = ZipArchive

    @pytest.fixture
    def backdoor(self, tmp_path):
        return ZipReader(tmp_path / "out" / "archive.zip")


class RenamesIntoPlace(StraightToFinalName):
    """Honest: copies what it is given, writes a temp file at commit and renames it."""

    def open(self, name):
        return CopyingTarget(self.root / name, keep_references=True)


class CopyingTarget(DirectTarget):
    def write(self, data):
        self.pending.append(bytes(data))


class DictReader(DirReader):
    """A back door written for the old protocol: name → size."""

    def list(self):
        return dict(super().list())


class TestDictBackdoor(LiarKit):
    factory = RenamesIntoPlace

    @pytest.fixture
    def backdoor(self, tmp_path):
        return DictReader(tmp_path / "out")
'''


LISTING_LIARS = '''
from __future__ import annotations

import os
import time
from pathlib import Path

import attrs
import pytest

from rivet_core.backends import CommittedFile, Destination, WriteTarget
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.config import doc
from rivet_core.errors import DestinationError
from rivet_core.specs import DestinationSpec
from rivet_core.testing import DestinationTests

pytest_plugins = ["rivet_core.testing"]


@attrs.frozen(kw_only=True)
class DirOptions:
    path: str = doc("directory")


class RenameTarget(WriteTarget):
    def __init__(self, final):
        self.final = final
        self.temp = final.with_name("." + final.name + ".tmp")
        self.file = open(self.temp, "wb")

    def write(self, data):
        self.file.write(data)

    def commit(self):
        self.file.close()
        os.replace(self.temp, self.final)
        return CommittedFile(name=self.final.name, uri=self.final.as_uri())

    def abort(self):
        self.file.close()
        self.temp.unlink(missing_ok=True)


class ListingDir(Destination):
    """Honest: temp file and rename, for files and small files alike; the listing is the
    directory tree without hidden (temp) files."""

    def __init__(self, options, context):
        self.root = Path(options.path)
        self.root.mkdir(parents=True, exist_ok=True)

    def location(self):
        return self.root.as_uri()

    def open(self, name):
        return RenameTarget(self.root / name)

    def files(self, hidden=False):
        return {p.relative_to(self.root).as_posix(): p.stat().st_size
                for p in self.root.rglob("*")
                if p.is_file() and (hidden or not p.name.startswith("."))}

    def list_files(self, prefix=""):
        return {n: size for n, size in self.files().items() if n.startswith(prefix)}

    def read_file(self, name):
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise DestinationError(f"reading {name}: {exc}") from exc

    def write_small(self, name, data):
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        target = RenameTarget(path)
        target.write(data)
        target.commit()

    def delete_file(self, name):
        (self.root / name).unlink(missing_ok=True)


class ListsNothing(ListingDir):
    def list_files(self, prefix=""):
        return {}


class IgnoresPrefix(ListingDir):
    def list_files(self, prefix=""):
        return self.files()


class ListsTempFiles(ListingDir):
    def list_files(self, prefix=""):
        return {n: size for n, size in self.files(hidden=True).items()
                if n.startswith(prefix)}


class ReadsMissingAsEmpty(ListingDir):
    def read_file(self, name):
        path = self.root / name
        return path.read_bytes() if path.exists() else b""


class WritesSmallInPlace(ListingDir):
    """Rewrites the file where it stands, a page at a time."""

    def write_small(self, name, data):
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for start in range(0, len(data), 4096):
                out.write(data[start:start + 4096])
                out.flush()
                time.sleep(0.0002)


class DeleteMissingRaises(ListingDir):
    def delete_file(self, name):
        (self.root / name).unlink()


class FlattensNestedNames(ListingDir):
    """Stores "_rivet/kit/manifest.json" as "_rivet__kit__manifest.json"."""

    def flat(self, name):
        return name.replace("/", "__")

    def read_file(self, name):
        return super().read_file(self.flat(name))

    def write_small(self, name, data):
        super().write_small(self.flat(name), data)

    def delete_file(self, name):
        super().delete_file(self.flat(name))


CLAIMS = DestinationCapabilities(commit_protocol=WriteCommitProtocol.ATOMIC,
                                 idempotent_overwrite=True, retry_safe=True,
                                 partial_write_risk=False, multi_file=True)


class TreeReader:
    """The directory tree by the file system; hidden files are temp files."""

    def __init__(self, root):
        self.root = root

    def list(self):
        if not self.root.exists():
            return []
        return [(p.relative_to(self.root).as_posix(), p.stat().st_size)
                for p in self.root.rglob("*") if p.is_file() and not p.name.startswith(".")]

    def read(self, name):
        return (self.root / name).read_bytes()

    def leftovers(self):
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.rglob(".*.tmp"))


class ListingKit(DestinationTests):
    factory = None

    @pytest.fixture
    def destination_spec(self):
        return DestinationSpec(name="lister", config_cls=DirOptions, factory=self.factory,
                               capabilities=CLAIMS)

    @pytest.fixture
    def destination_config(self, tmp_path):
        return {"path": str(tmp_path / "out")}

    @pytest.fixture
    def backdoor(self, tmp_path):
        return TreeReader(tmp_path / "out")

    @pytest.fixture
    def payload_size(self):
        return 256 << 10


class TestListingDir(ListingKit):
    factory = ListingDir


class TestListsNothing(ListingKit):
    factory = ListsNothing


class TestIgnoresPrefix(ListingKit):
    factory = IgnoresPrefix


class TestListsTempFiles(ListingKit):
    factory = ListsTempFiles


class TestReadsMissingAsEmpty(ListingKit):
    factory = ReadsMissingAsEmpty


class TestWritesSmallInPlace(ListingKit):
    factory = WritesSmallInPlace


class TestDeleteMissingRaises(ListingKit):
    factory = DeleteMissingRaises


class TestFlattensNestedNames(ListingKit):
    factory = FlattensNestedNames
'''

FORMAT_LIARS = '''
from __future__ import annotations

import queue
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rivet_csv import CsvOptions
from rivet_csv import build_format as build_csv
from rivet_parquet import ParquetOptions
from rivet_parquet import build_format as build_parquet
from test_formats import decode_csv_text, read_csv

from rivet_core.backends import Compression, Format, FormatWriter
from rivet_core.specs import FormatSpec
from rivet_core.testing import FormatTests

pytest_plugins = ["rivet_core.testing"]


class Wrapped(Format):
    """A built-in format with one thing changed."""

    def __init__(self, inner):
        self.inner = inner

    @property
    def extension(self):
        return self.inner.extension

    def open(self, sink, schema, *, max_file_bytes=None):
        return self.inner.open(sink, schema, max_file_bytes=max_file_bytes)


class Forwarding(FormatWriter):
    def __init__(self, inner):
        self.inner = inner

    def write_batch(self, batch):
        self.inner.write_batch(batch)

    def close(self):
        self.inner.close()

    def abort(self):
        self.inner.abort()


class DropsLastBatch(Wrapped):
    def open(self, sink, schema, *, max_file_bytes=None):
        return HoldsOneBack(super().open(sink, schema, max_file_bytes=max_file_bytes))


class HoldsOneBack(Forwarding):
    held = None

    def write_batch(self, batch):
        if self.held is not None:
            self.inner.write_batch(self.held)
        self.held = batch


class BuffersUntilClose(Wrapped):
    def open(self, sink, schema, *, max_file_bytes=None):
        return Hoards(super().open(sink, schema, max_file_bytes=max_file_bytes))


class Hoards(Forwarding):
    def __init__(self, inner):
        super().__init__(inner)
        self.batches = []

    def write_batch(self, batch):
        self.batches.append(batch)

    def close(self):
        for batch in self.batches:
            self.inner.write_batch(batch)
        self.inner.close()


class EncodesBehindAbort(Wrapped):
    def open(self, sink, schema, *, max_file_bytes=None):
        return Background(super().open(sink, schema, max_file_bytes=max_file_bytes))


class Background(Forwarding):
    """Encodes in its own thread, two batches in flight; abort returns at once and the
    thread carries on with what is queued."""

    def __init__(self, inner):
        super().__init__(inner)
        self.queue = queue.Queue()
        self.room = threading.Semaphore(2)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while (batch := self.queue.get()) is not None:
            time.sleep(0.02)
            self.inner.write_batch(batch)
            self.room.release()

    def write_batch(self, batch):
        self.room.acquire()
        self.queue.put(batch)

    def close(self):
        self.queue.put(None)
        self.thread.join()
        self.inner.close()

    def abort(self):
        pass


class WritesNothingForZeroRows(Wrapped):
    def open(self, sink, schema, *, max_file_bytes=None):
        inner = self.inner
        return Lazy(lambda: inner.open(sink, schema, max_file_bytes=max_file_bytes))


class Lazy(Forwarding):
    def __init__(self, start):
        super().__init__(None)
        self.start = start

    def write_batch(self, batch):
        if self.inner is None:
            self.inner = self.start()
        self.inner.write_batch(batch)

    def close(self):
        if self.inner is not None:
            self.inner.close()

    def abort(self):
        if self.inner is not None:
            self.inner.abort()


class ForgetsTheTimeZone(Wrapped):
    """Writes instants as their UTC wall-clock time, without the zone."""

    def open(self, sink, schema, *, max_file_bytes=None):
        naive = pa.schema([f.with_type(pa.timestamp(f.type.unit))
                           if pa.types.is_timestamp(f.type) else f for f in schema])
        return Recast(super().open(sink, naive, max_file_bytes=max_file_bytes), naive)


class Recast(Forwarding):
    def __init__(self, inner, schema):
        super().__init__(inner)
        self.schema = schema

    def write_batch(self, batch):
        columns = [column.view(field.type) if column.type != field.type else column
                   for column, field in zip(batch.columns, self.schema)]
        self.inner.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))


class WrongExtension(Wrapped):
    @property
    def extension(self):
        return "txt"


class StoresDecimalsAsFloats(Wrapped):
    def open(self, sink, schema, *, max_file_bytes=None):
        floats = pa.schema([f.with_type(pa.float64()) if pa.types.is_decimal(f.type) else f
                            for f in schema])
        return Cast(super().open(sink, floats, max_file_bytes=max_file_bytes), floats)


class Cast(Recast):
    def write_batch(self, batch):
        self.inner.write_batch(batch.cast(self.schema))


def csv_liar(cls):
    def build(options, compression):
        return cls(build_csv(options, compression))
    return build


def parquet_liar(cls, *, ignore_compression=False):
    def build(options, compression):
        if ignore_compression:
            compression = Compression(codec="none")
        return cls(build_parquet(options, compression))
    return build


def read_parquet_naively(data, compression):
    """A back door that trusts the file: it reads any codec, or none."""
    return pq.read_table(pa.BufferReader(data))


class CsvLiarKit(FormatTests):
    """CSV with only the codecs that end their file on close, never when collected (zstd
    does: see test_formats.py)."""

    factory = None
    default_codec = "none"

    @pytest.fixture
    def format_spec(self):
        return FormatSpec(name="liar", config_cls=CsvOptions, factory=self.factory,
                          extension="csv", codecs={"none", "gzip"},
                          default_codec=self.default_codec)

    @pytest.fixture
    def reader(self):
        return read_csv

    @pytest.fixture
    def lossless_types(self):
        return pa.types.is_string

    @pytest.fixture
    def decode_value(self):
        return decode_csv_text

    @pytest.fixture
    def streaming_bytes(self):
        return 5 << 19


class ParquetLiarKit(FormatTests):
    factory = None

    @pytest.fixture
    def format_spec(self):
        return FormatSpec(name="liar", config_cls=ParquetOptions, factory=self.factory,
                          extension="parquet", codecs={"none", "zstd"},
                          default_codec="zstd")

    @pytest.fixture
    def reader(self):
        return read_parquet_naively

    @pytest.fixture
    def streaming_config(self):
        return {"row_group_mb": 1}

    @pytest.fixture
    def streaming_bytes(self):
        return 5 << 19


class TestHonestCsv(CsvLiarKit):
    factory = staticmethod(build_csv)


class TestDropsLastBatch(CsvLiarKit):
    factory = staticmethod(csv_liar(DropsLastBatch))


class TestBuffersUntilClose(CsvLiarKit):
    factory = staticmethod(csv_liar(BuffersUntilClose))


class TestEncodesBehindAbort(CsvLiarKit):
    factory = staticmethod(csv_liar(EncodesBehindAbort))


class TestWritesNothingForZeroRows(CsvLiarKit):
    factory = staticmethod(csv_liar(WritesNothingForZeroRows))


class TestForgetsTheTimeZone(CsvLiarKit):
    factory = staticmethod(csv_liar(ForgetsTheTimeZone))


class TestWrongExtension(CsvLiarKit):
    factory = staticmethod(csv_liar(WrongExtension))


class TestDefaultCodecNotDeclared(CsvLiarKit):
    factory = staticmethod(build_csv)
    default_codec = "zstd"


class TestIgnoresCompression(ParquetLiarKit):
    factory = staticmethod(parquet_liar(Wrapped, ignore_compression=True))


class TestStoresDecimalsAsFloats(ParquetLiarKit):
    factory = staticmethod(parquet_liar(StoresDecimalsAsFloats))
'''

def failed_tests(result: pytest.RunResult) -> set[str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {r.nodeid.split("::", 1)[1] for r in reports if r.failed}


def of(failed: set[str], cls: str) -> set[str]:
    """The failed tests of one liar class, by test name."""
    return {name.split("::", 1)[1] for name in failed if name.startswith(cls + "::")}


def test_kit_fails_each_liar_on_exactly_the_claims_it_breaks(pytester: pytest.Pytester):
    # One sub-session for all these liars: pytester runs are the slow part.
    pytester.makepyfile(test_liars=textwrap.dedent(LIARS))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    failed = failed_tests(result)

    # Claims atomic, writes to the final name: every visibility check fails, nothing else.
    assert of(failed, "TestStraightToFinalName") == {
        "test_nothing_visible_before_commit",
        "test_abort_leaves_nothing",
        "test_failure_mid_stream_leaves_nothing",
        "test_abandoned_write_shows_nothing",
    }
    # Keeps references to the caller's reused buffer: every read-back check catches the
    # corrupted bytes, while its (honest) abort passes.
    assert "TestKeepsReferences::test_committed_file_reads_back_exactly" in failed
    assert "TestKeepsReferences::test_overwrite_leaves_one_file_with_the_second_content" \
        in failed
    assert "TestKeepsReferences::test_abort_leaves_nothing" not in failed
    # A corrupted read-back names where the bytes part, instead of diffing a megabyte.
    result.stdout.fnmatch_lines(["*the committed file: * bytes read back, * written; "
                                 "first difference at offset *"])
    # The checks the liars keep (declaration, config) pass in the same run.
    assert result.parseoutcomes()["passed"] >= 10
    assert "TestStraightToFinalName::test_config_round_trips_through_the_loader" not in failed

    # Two entries under one name after a rewrite: only the overwrite claim is false, and
    # only a listing of pairs shows it (a name → size map keeps the last entry).
    assert of(failed, "TestZipArchive") == {
        "test_overwrite_leaves_one_file_with_the_second_content"}
    result.stdout.fnmatch_lines(["*after overwriting kit_file.bin, a reader sees "
                                 "[[]('kit_file.bin', *), ('kit_file.bin', *)[]]*"])
    # A back door still returning name → size is refused with the fix, not misread.
    assert "test_committed_file_reads_back_exactly" in of(failed, "TestDictBackdoor")
    assert "test_config_round_trips_through_the_loader" not in of(failed, "TestDictBackdoor")
    result.stdout.fnmatch_lines(["*the back door's list() returned a dict; return a list of "
                                 "(name, size) pairs, one per stored object*"])


def test_kit_fails_each_wrong_listing_on_exactly_the_check_it_breaks(
        pytester: pytest.Pytester):
    pytester.makepyfile(test_listing_liars=textwrap.dedent(LISTING_LIARS))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    failed = failed_tests(result)

    # The honest implementation passes every check, listing included.
    assert of(failed, "TestListingDir") == set()
    assert result.parseoutcomes()["passed"] >= 100
    assert of(failed, "TestListsNothing") == {
        "test_listing_shows_exactly_the_committed_files_with_their_sizes",
        "test_listing_with_a_prefix_shows_only_names_under_it",
        "test_listing_hides_unfinished_and_aborted_writes",
        "test_write_small_is_seen_whole_old_or_new_never_a_mix",
        "test_delete_file_removes_and_a_missing_name_is_not_an_error",
        "test_nested_names_work_for_every_listing_method",
    }
    # Ignoring the prefix also shows the committed file under a prefix it does not match.
    assert of(failed, "TestIgnoresPrefix") == {
        "test_listing_with_a_prefix_shows_only_names_under_it",
        "test_listing_hides_unfinished_and_aborted_writes",
    }
    assert of(failed, "TestListsTempFiles") == {
        "test_listing_hides_unfinished_and_aborted_writes"}
    # The delete check reads the deleted name back, which must raise too.
    assert of(failed, "TestReadsMissingAsEmpty") == {
        "test_read_file_of_a_missing_name_raises_destination_error",
        "test_delete_file_removes_and_a_missing_name_is_not_an_error",
    }
    assert of(failed, "TestWritesSmallInPlace") == {
        "test_write_small_is_seen_whole_old_or_new_never_a_mix"}
    result.stdout.fnmatch_lines(["*a reader saw a mix while _rivet/kit/manifest.json was "
                                 "overwritten*"])
    assert of(failed, "TestDeleteMissingRaises") == {
        "test_delete_file_removes_and_a_missing_name_is_not_an_error"}
    assert of(failed, "TestFlattensNestedNames") == {
        "test_listing_shows_exactly_the_committed_files_with_their_sizes",
        "test_read_file_returns_the_exact_bytes",
        "test_write_small_is_seen_whole_old_or_new_never_a_mix",
        "test_nested_names_work_for_every_listing_method",
    }


# The Parquet writer's own abort problem (see test_formats.py) fails this check for every
# Parquet-based liar too; it is not what those liars plant.
COLLECTED = "test_nothing_reaches_the_sink_after_abort_even_when_collected"


def test_format_kit_fails_each_wrong_format_on_the_check_it_breaks(pytester: pytest.Pytester):
    # The liars are read by the same back doors as the built-in formats.
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(test_format_liars=textwrap.dedent(FORMAT_LIARS))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    failed = failed_tests(result)

    # The honest CSV writer, under the liars' declaration, passes everything.
    assert of(failed, "TestHonestCsv") == set()
    round_trip = "test_every_codec_level_and_profile_round_trips"
    streams = "test_bytes_reach_the_sink_before_close"
    # A lost batch: rows missing from the round trip and from the large file, and the
    # one-batch compressible file comes out empty.
    assert of(failed, "TestDropsLastBatch") == {
        round_trip, streams, "test_compression_shrinks_compressible_data"}
    result.stdout.fnmatch_lines(["*300 rows read back, 1200 written*"])
    # The header it writes at open is not streaming.
    assert of(failed, "TestBuffersUntilClose") == {streams}
    result.stdout.fnmatch_lines(["*no data reached the sink before the last of * batches*"])
    # Its thread may also write after the next check's collection, so only this one is
    # certain.
    assert "test_abort_never_raises_and_stops_background_work" in of(
        failed, "TestEncodesBehindAbort")
    assert round_trip not in of(failed, "TestEncodesBehindAbort")
    result.stdout.fnmatch_lines(["*threads still running after abort*"])
    assert of(failed, "TestWritesNothingForZeroRows") == {
        "test_zero_rows_make_a_valid_file_with_the_column_names"}
    # Values are compared after decoding: a timestamp without its zone is not the instant.
    assert of(failed, "TestForgetsTheTimeZone") == {round_trip}
    result.stdout.fnmatch_lines(["*at_utc (timestamp[[]us, tz=UTC[]]): row 0: wrote *"])
    assert of(failed, "TestWrongExtension") == {round_trip}
    result.stdout.fnmatch_lines(["*extension 'txt' does not start with the spec's 'csv'*"])
    # The registry refuses it as well, so every check that loads a config fails with it.
    assert "test_declaration_is_coherent" in of(failed, "TestDefaultCodecNotDeclared")
    result.stdout.fnmatch_lines(["*default_codec 'zstd' is not in codecs*"])
    # A Parquet file without compression reads back fine; only its size gives it away.
    assert of(failed, "TestIgnoresCompression") - {COLLECTED} == {
        "test_compression_shrinks_compressible_data"}
    # A lossless type must come back as itself.
    assert of(failed, "TestStoresDecimalsAsFloats") - {COLLECTED} == {round_trip}
    result.stdout.fnmatch_lines(["*amount: decimal128(18, 2) read back as double*"])


# ------------------------------------------------------------------------------- sources

# A toy source over sqlite3, written here so the kit's liars need no server: it declares
# its columns' types in the table (an INTEGER, TEXT, exact decimals as DECIMAL_TEXT(p,s)
# text, dates as JULIAN_DAY numbers, instants as UTC_TEXT), logs in with a password kept in
# the database, reads through the toolkit's FetchingBatchStream, and honours a statement
# timeout with sqlite's progress handler. Each liar changes one thing.
SOURCE_LIARS = '''
from __future__ import annotations

import datetime as dt
import functools
import sqlite3
import time
import uuid
from decimal import Decimal
from pathlib import Path

import attrs
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rivet_core.api import (
    ColumnInfo,
    Dialect,
    FetchingBatchStream,
    Fidelity,
    Source,
    SourceError,
    SourceSpec,
    apply_overrides,
    doc,
    source_error,
    unsupported_error,
)
from rivet_core.testing import SourceTests

pytest_plugins = ["rivet_core.testing"]

UTC = dt.UTC
INSTANT = "%Y-%m-%d %H:%M:%S.%f"
JULIAN_OF_ORDINAL_0 = 1721424.5
JULIAN_OF_EPOCH = 2440587.5


def julian(day):
    return day.toordinal() + JULIAN_OF_ORDINAL_0


def from_julian(value):
    return dt.date.fromordinal(int(value - JULIAN_OF_ORDINAL_0))


def utc_text(value):
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(INSTANT)


def days(values):
    return pc.subtract(pa.array(values, pa.float64()), JULIAN_OF_EPOCH).cast(
        pa.int32()).cast(pa.date32())


def instants(values):
    return pa.array(values, pa.string()).cast(pa.timestamp("us")).cast(
        pa.timestamp("us", tz="UTC"))


# Declared type: (Arrow type, the column built from the stored values).
TYPES = {
    "INTEGER": (pa.int64(), lambda values: pa.array(values, pa.int64())),
    "TEXT": (pa.string(), lambda values: pa.array(values, pa.string())),
    "DECIMAL_TEXT(12,2)": (pa.decimal128(12, 2),
                           lambda values: pa.array(values, pa.string()).cast(
                               pa.decimal128(12, 2))),
    "JULIAN_DAY": (pa.date32(), days),
    "UTC_TEXT": (pa.timestamp("us", tz="UTC"), instants),
}


@functools.cache
def stored(sample_rows):
    """The sample as the toy stores it."""
    return [(i, name, None if amount is None else str(amount), julian(day),
             None if seen_at is None else utc_text(seen_at))
            for i, name, amount, day, seen_at in sample_rows]


@attrs.frozen(kw_only=True)
class LiteOptions:
    path: str = doc("database file")
    password: str | None = doc("must match the one kept in the database", default=None)


class LiteDialect(Dialect):
    name = "lite"
    placeholder = "?"

    def bind(self, value):
        if isinstance(value, dt.datetime):
            return utc_text(value)
        if isinstance(value, dt.date):
            return julian(value)
        return value

    def primary_key(self, table):
        from rivet_core.api import Query

        return Query(sql="SELECT name AS column_name, type AS data_type "
                         "FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
                     params=(table,), label="primary key")

    def is_integer_type(self, data_type):
        return data_type.upper() == "INTEGER"


class LiteStream(FetchingBatchStream):
    def __init__(self, source, cursor, columns, decoders, options, label):
        super().__init__(columns, options, label)
        self.source = source
        self.cursor = cursor
        self.decoders = decoders

    def fetch(self, rows):
        try:
            return self.cursor.fetchmany(rows)
        except sqlite3.Error as exc:
            self.open = False
            self.release()
            raise self.source.error(exc, self.label) from None

    def to_batch(self, rows):
        arrays = [build([row[index] for row in rows]).cast(field.type)
                  for index, (field, (_, build)) in enumerate(zip(self.schema, self.decoders))]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def finish(self):
        self.release()

    def abandon(self):
        self.release()

    def release(self):
        self.cursor.close()
        self.source.conn.set_progress_handler(None, 0)
        if self.source.active is self:
            self.source.active = None


class LiteSource(Source):
    """Honest."""

    stream_class = LiteStream
    read_only = True

    def __init__(self, options, context):
        self.path = Path(options.path)
        self.password = options.password
        self.conn = None
        self.active = None

    def display_name(self):
        return f"lite:{self.path.name}"

    def connection(self):
        if self.conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            (stored,) = conn.execute("SELECT password FROM kit_login").fetchone()
            if stored != self.password:
                conn.close()
                raise self.login_refused()
            if self.read_only:
                conn.execute("PRAGMA query_only = ON")
            self.conn = conn
        return self.conn

    def login_refused(self):
        return SourceError(f"cannot open {self.display_name()}: login refused",
                           hint="check the password")

    def error(self, exc, label):
        if str(exc) == "interrupted":
            return source_error(f"{label}: statement timeout", transient=True,
                                reason="timeout")
        return SourceError(f"{label}: {exc}")

    def begin(self):
        if self.active is not None:
            raise RuntimeError("lite source: a read is still open")

    def type_of(self, declared):
        return TYPES.get(declared)

    def columns(self, conn, query, options):
        """The result's names from a probe that stops before the first row; their types
        from the declared types of the database's columns of those names."""
        try:
            probe = conn.execute(f"SELECT * FROM ({query.sql}) LIMIT 0", query.params)
        except sqlite3.Error as exc:
            raise self.error(exc, query.label) from None
        declared = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for name, kind in conn.execute("SELECT name, type FROM pragma_table_info(?)",
                                           (table,)):
                declared.setdefault(name, kind)
        naturals, decoders = [], []
        for (name, *_) in probe.description:
            known = self.type_of(declared.get(name))
            naturals.append(ColumnInfo(
                name=name, source_type=declared.get(name) or "none",
                arrow_type=known[0] if known else None,
                fidelity=Fidelity.EXACT if known else Fidelity.UNSUPPORTED,
                note="" if known else "a type the toy does not know"))
            decoders.append(known)
        error = unsupported_error(naturals, query.label, [])
        if error is not None:
            raise error
        columns = [c for c, _ in apply_overrides(naturals, options.column_types, query.label)]
        return columns, decoders

    def arm_timeout(self, conn, options):
        if options.statement_timeout_s > 0:
            deadline = time.monotonic() + options.statement_timeout_s
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)

    def describe(self, query, options):
        self.begin()
        return self.columns(self.connection(), query, options)[0]

    def read(self, query, options):
        self.begin()
        conn = self.connection()
        columns, decoders = self.columns(conn, query, options)
        self.arm_timeout(conn, options)
        try:
            cursor = conn.execute(query.sql, query.params)
        except sqlite3.Error as exc:
            conn.set_progress_handler(None, 0)
            raise self.error(exc, query.label) from None
        self.active = self.stream_class(self, cursor, columns, decoders, options, query.label)
        return self.active

    def fetch_rows(self, query, options):
        self.begin()
        conn = self.connection()
        self.arm_timeout(conn, options)
        try:
            cursor = conn.execute(query.sql, query.params)
            names = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall() if names else []
        except sqlite3.Error as exc:
            raise self.error(exc, query.label) from None
        finally:
            conn.set_progress_handler(None, 0)
        return [dict(zip(names, map(self.plain, row))) for row in rows]

    @staticmethod
    def plain(value):
        # The toy's only REAL values are dates, kept as Julian days.
        return from_julian(value) if isinstance(value, float) else value

    def close(self):
        if self.active is not None:
            self.active.close()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@pytest.fixture(scope="class")
def sandboxes(tmp_path_factory):
    # One directory per class, a database file per test: a tmp_path for each of four
    # hundred tests costs seconds.
    return tmp_path_factory.mktemp("sandboxes")


class LiteKit(SourceTests):
    source_class = LiteSource
    dialect = LiteDialect()
    slow = False

    @pytest.fixture
    def source_spec(self):
        return SourceSpec(name="lite", config_cls=LiteOptions, factory=self.source_class,
                          dialect=self.dialect)

    @pytest.fixture
    def config_dir(self, sandboxes):
        return sandboxes

    @pytest.fixture
    def database(self, sandboxes):
        return sandboxes / f"{uuid.uuid4().hex}.db"

    @pytest.fixture
    def source_config(self, database):
        return {"path": str(database), "password": "right-password"}

    @pytest.fixture
    def source_options(self, source_config):
        # Built directly: the config checks still load through Rivet's loader, which would
        # cost seconds if each of these four hundred tests loaded the same two keys.
        return LiteOptions(**source_config)

    @pytest.fixture
    def sample_table(self, sample_rows, database):
        rows = stored(tuple(sample_rows))
        with sqlite3.connect(database) as conn:
            conn.execute("PRAGMA synchronous = OFF")  # a sandbox: no need to wait for the disk
            conn.execute("CREATE TABLE kit_login (password TEXT)")
            conn.execute("INSERT INTO kit_login VALUES ('right-password')")
            conn.execute("CREATE TABLE kit_sample (id INTEGER PRIMARY KEY, name TEXT, "
                         "amount DECIMAL_TEXT(12,2), day JULIAN_DAY, seen_at UTC_TEXT)")
            conn.executemany("INSERT INTO kit_sample VALUES (?, ?, ?, ?, ?)", rows)
        conn.close()
        return "kit_sample"

    @pytest.fixture
    def unsupported_query(self, sample_table):
        return f"SELECT id, zeroblob(4) AS blob FROM {sample_table}"

    @pytest.fixture
    def failing_query(self, sample_table):
        # json() of a name that is not JSON fails on the row of id 150 only.
        return (f"SELECT id, name FROM {sample_table} "
                "WHERE CASE WHEN id = 150 THEN json(name) ELSE 1 END")

    @pytest.fixture
    def wrong_password_config(self, database):
        password = f"kit-secret-{uuid.uuid4().hex}"
        return {"path": str(database), "password": password}, password

    @pytest.fixture
    def slow_query(self):
        if not self.slow:
            # The 1 s check runs only on the liar it must fail; test_sources.py shows it
            # passing on PostgreSQL and MariaDB.
            return None
        return ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                "WHERE x < 1000000000) SELECT max(x) AS id FROM c")


class TestHonestLite(LiteKit):
    pass


class DescribeRunsTheQuery(LiteSource):
    def describe(self, query, options):
        self.begin()
        try:
            self.connection().execute(query.sql, query.params).fetchall()
        except sqlite3.Error as exc:
            raise self.error(exc, query.label) from None
        return super().describe(query, options)


class TestDescribeRunsTheQuery(LiteKit):
    source_class = DescribeRunsTheQuery


class AllAtOnce(LiteStream):
    def fetch(self, rows):
        return super().fetch(1 << 30)


class IgnoresBatchSize(LiteSource):
    stream_class = AllAtOnce


class TestIgnoresBatchSize(LiteKit):
    source_class = IgnoresBatchSize


class RowsOnly(LiteStream):
    def __init__(self, source, cursor, columns, decoders, options, label):
        super().__init__(source, cursor, columns, decoders,
                         attrs.evolve(options, max_batch_bytes=None), label)


class IgnoresMaxBatchBytes(LiteSource):
    stream_class = RowsOnly


class TestIgnoresMaxBatchBytes(LiteKit):
    source_class = IgnoresMaxBatchBytes


class LateSchema(LiteStream):
    def __init__(self, *args):
        super().__init__(*args)
        self.known, self.schema = self.schema, None

    def to_batch(self, rows):
        self.schema = self.known
        return super().to_batch(rows)


class SchemaAfterFirstBatch(LiteSource):
    stream_class = LateSchema


class TestSchemaAfterFirstBatch(LiteKit):
    source_class = SchemaAfterFirstBatch


class TwoReadsAtOnce(LiteSource):
    def begin(self):
        pass  # sqlite runs a second statement beside the first without a complaint


class TestTwoReadsAtOnce(LiteKit):
    source_class = TwoReadsAtOnce


class StaysBusy(LiteStream):
    def abandon(self):
        self.cursor.close()  # the source still takes the read for open


class StaysBusyAfterClose(LiteSource):
    stream_class = StaysBusy


class TestStaysBusyAfterClose(LiteKit):
    source_class = StaysBusyAfterClose


class UnknownAsText(LiteSource):
    def type_of(self, declared):
        return super().type_of(declared) or (pa.string(), lambda values: pa.array(
            [None if v is None else str(v) for v in values], pa.string()))


class TestUnknownAsText(LiteKit):
    source_class = UnknownAsText


class PasswordInError(LiteSource):
    def login_refused(self):
        return SourceError(f"cannot open {self.path} with password {self.password!r}")


class TestPasswordInError(LiteKit):
    source_class = PasswordInError


class StringNumbers(LiteSource):
    def fetch_rows(self, query, options):
        return [{k: str(v) if isinstance(v, int | float | Decimal) else v
                 for k, v in row.items()} for row in super().fetch_rows(query, options)]


class TestStringNumbers(LiteKit):
    source_class = StringNumbers


class TimeoutIsPermanent(LiteSource):
    def error(self, exc, label):
        return SourceError(f"{label}: {exc}")


class TestTimeoutIsPermanent(LiteKit):
    source_class = TimeoutIsPermanent
    slow = True


class Writable(LiteSource):
    read_only = False


class TestWritable(LiteKit):
    source_class = Writable


class UnorderedDialect(LiteDialect):
    def incremental(self, *args, **kwargs):
        query = super().incremental(*args, **kwargs)
        return attrs.evolve(query, sql=query.sql.split(" ORDER BY ")[0])


class TestForgetsCursorOrder(LiteKit):
    dialect = UnorderedDialect()
'''


def test_source_kit_fails_each_wrong_source_on_the_check_it_breaks(pytester: pytest.Pytester):
    pytester.makepyfile(test_source_liars=textwrap.dedent(SOURCE_LIARS))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    failed = failed_tests(result)

    # The honest toy passes everything it is asked (it has no sessions to count and no
    # catalog; its timeout, proven by the liar below, is not timed again here).
    assert of(failed, "TestHonestLite") == set()
    assert result.parseoutcomes()["passed"] >= 200
    assert of(failed, "TestDescribeRunsTheQuery") == {"test_describe_runs_none_of_the_query"}
    result.stdout.fnmatch_lines(["*describe(failing_query) failed, so it ran the query*"])
    assert of(failed, "TestIgnoresBatchSize") == {"test_batches_never_exceed_batch_size"}
    assert of(failed, "TestIgnoresMaxBatchBytes") == {"test_batches_shrink_to_max_batch_bytes"}
    result.stdout.fnmatch_lines(["*after a batch of 64 rows (* bytes), batches of *"])
    assert of(failed, "TestSchemaAfterFirstBatch") == {
        "test_schema_is_known_before_the_first_row"}
    assert of(failed, "TestTwoReadsAtOnce") == {
        "test_a_second_statement_while_a_stream_is_open_is_refused"}
    result.stdout.fnmatch_lines(["*while a stream was open, read, describe, fetch_rows ran*"])
    assert of(failed, "TestStaysBusyAfterClose") == {
        "test_closing_a_stream_early_frees_the_source_for_the_next_read"}
    assert of(failed, "TestUnknownAsText") == {
        "test_unsupported_column_fails_before_the_first_batch"}
    assert of(failed, "TestPasswordInError") == {"test_refused_login_never_shows_the_password"}
    result.stdout.fnmatch_lines(["*the password shows in:*"])
    # Every statement whose numbers the kit reads through fetch_rows.
    assert of(failed, "TestStringNumbers") == {
        "test_key_statistics_and_row_count_through_fetch_rows",
        "test_integer_key_histogram_counts_every_key",
        "test_literal_percent_survives_statements_with_parameters",
    }
    assert of(failed, "TestTimeoutIsPermanent") == {
        "test_statement_timeout_ends_the_read_as_a_transient_timeout"}
    result.stdout.fnmatch_lines(["*the timeout is not a TransientError*SourceError('slow query: "
                                 "interrupted')*"])
    assert of(failed, "TestWritable") == {
        "test_a_writing_statement_is_refused_and_changes_nothing"}
    # Rows come back in id order without the ORDER BY: only the seen_at cursor shows it.
    assert of(failed, "TestForgetsCursorOrder") == {
        "test_incremental_reads_the_rows_after_the_cursor_in_cursor_order"}
    result.stdout.fnmatch_lines(["*incremental on seen_at after *, in seen_at order*"])
