"""The format conformance kit: every codec, level and profile a format declares, proven.

A format author subclasses :class:`FormatTests` in a test module and overrides two
fixtures::

    from rivet_core.testing import FormatTests

    class TestMyFormat(FormatTests):
        @pytest.fixture
        def format_spec(self):            # the FormatSpec under test
            return my_plugin.SPEC

        @pytest.fixture
        def reader(self):                 # independent decoder, never the plugin's code
            return read_my_format         # (data: bytes, compression) -> pyarrow.Table

The kit writes batches through ``spec.factory(config, compression).open(sink, schema)`` the
way the runner does (the runner's own byte path, :func:`rivet_core.runner.sink.open_sink`,
into a memory target), and checks: the declaration, the config round trip through Rivet's
real loader, that every declared codec, level (each range's two ends and its middle) and
profile loads and round-trips a table covering the types sources produce (NULLs in every
column, NaN, non-ASCII, quotes and newlines), that zero rows still make a valid file with
the column names, that compression shrinks compressible data, that bytes reach the sink
before the file is closed (unless the spec says it needs a seekable sink), and that
``abort`` stops the writer for good.

Formats that cannot keep every Arrow type (CSV is text) declare which types their back door
reads back exactly (``lossless_types``) and how to turn what it returns for the others into
the written value (``decode_value``): the comparison stays value by value, NULL by NULL.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import itertools
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pytest

from rivet_core.backends import CommittedFile, Compression, Format, FormatWriter, WriteTarget
from rivet_core.errors import ConfigError
from rivet_core.specs import FormatSpec, spec_problems
from rivet_core.testing.kitconfig import load_kit_export

FormatReader = Callable[[bytes, Compression], pa.Table]
"""The back door: decodes the bytes of one file written with ``compression`` into a table,
without the plugin's code (another library, the standard library, a second implementation).
"""

UTC = dt.UTC
MIB = 1 << 20

# ------------------------------------------------------------------------------- payload

# The values each column cycles through; lengths differ so rows combine them differently.
# Every list holds None: NULL must survive in every type.
_TEXTS: list[str | None] = [
    "plain", "", 'say "hi"', "line\nbreak", "crlf\r\nend", "comma,semi;pipe|tab\t",
    "ünïcødé ✓ 日本語 🚀", "  padded  ", None, "NULL", "\\N", "'single'", "a" * 300,
]
_BINARIES: list[bytes | None] = [
    b"\x00", b"", b"\xff\xfe", None, b'rivet\n,"', bytes(range(256)), b"\x00" * 17,
]
_FLOATS: list[float | None] = [
    0.1, math.nan, None, -0.0, math.inf, -math.inf, 1e20, 5e-324, 1.7976931348623157e308,
    1 / 3, -2.5, 0.0, 123456789.125,
]
_AMOUNTS: list[Decimal | None] = [
    Decimal("0.00"), Decimal("-0.01"), Decimal("9999999999999999.99"), None,
    Decimal("-1.10"), Decimal("12345.67"),
]
_PRECISE: list[Decimal | None] = [
    Decimal("0.0000000001"), Decimal("-1234567890123456789012345678.0123456789"), None,
    Decimal("0E-10"), Decimal("1.5000000000"), Decimal("-7.0000000300"),
]
_FLAGS: list[bool | None] = [True, False, None, True]
_DAYS: list[dt.date | None] = [
    dt.date(1970, 1, 1), dt.date(2024, 2, 29), dt.date(1, 1, 1), dt.date(9999, 12, 31),
    None, dt.date(1969, 12, 31),
]
_TIMES: list[dt.datetime | None] = [
    dt.datetime(1970, 1, 1), dt.datetime(2024, 5, 1, 13, 45, 0, 250),
    dt.datetime(1900, 1, 1, 0, 0, 0, 1), None, dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    dt.datetime(1, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59, 500000),
]

ROUND_TRIP_SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("ratio", pa.float64()),
    ("amount", pa.decimal128(18, 2)),
    ("precise", pa.decimal128(38, 10)),
    ("label", pa.string()),
    ("blob", pa.binary()),
    ("flag", pa.bool_()),
    ("day", pa.date32()),
    ("at", pa.timestamp("us")),
    ("at_utc", pa.timestamp("us", tz="UTC")),
])
"""The columns every format is checked with: the types Rivet's sources produce most."""


def _ids(rows: int, seed: int) -> list[int | None]:
    extremes: list[int | None] = [-(2 ** 63), 2 ** 63 - 1, 0, -1, None]
    rng = random.Random(seed)
    return [extremes[i] if i < len(extremes) else
            None if i % 11 == 0 else rng.randrange(-(2 ** 62), 2 ** 62) for i in range(rows)]


def round_trip_table(rows: int = 1200, seed: int = 0) -> pa.Table:
    """``rows`` rows of :data:`ROUND_TRIP_SCHEMA`: edge values, NULLs in every column. A
    different ``seed`` shifts the combinations and the random ids."""

    def cycle(values: list[Any]) -> list[Any]:
        return [values[(i + seed) % len(values)] for i in range(rows)]

    return pa.table({
        "id": _ids(rows, seed),
        "ratio": cycle(_FLOATS),
        "amount": cycle(_AMOUNTS),
        "precise": cycle(_PRECISE),
        "label": cycle(_TEXTS),
        "blob": cycle(_BINARIES),
        "flag": cycle(_FLAGS),
        "day": cycle(_DAYS),
        "at": cycle(_TIMES),
        "at_utc": [None if t is None else t.replace(tzinfo=UTC) for t in cycle(_TIMES)],
    }, schema=ROUND_TRIP_SCHEMA)


def round_trip_batches(table: pa.Table) -> list[pa.RecordBatch]:
    """The table as the runner would hand it over: batches of uneven sizes, one of a single
    row and one empty (a source may yield one)."""
    cuts = [0, 1, 1, table.num_rows // 4, table.num_rows]
    return [table.slice(start, end - start).combine_chunks().to_batches()[0]
            if end > start else pa.RecordBatch.from_pylist([], schema=table.schema)
            for start, end in itertools.pairwise(cuts)]


def compressible_table(rows: int = 600) -> pa.Table:
    """Text that any codec shrinks several times: each value unique (so dictionary
    encoding alone cannot), but made of the same words."""
    words = "rivet exports query results to parquet and csv files on disk or buckets "
    return pa.table({"line": [f"{i:06d} {words * 4}{i}" for i in range(rows)]})


def _bulk_batches(total_bytes: int, rows_per_batch: int = 2048) -> Iterator[pa.RecordBatch]:
    """``total_bytes`` of Arrow data in batches of the round-trip schema, three different
    batches in turn so that compression does not collapse the file."""
    bases = [round_trip_table(rows_per_batch, seed).combine_chunks().to_batches()[0]
             for seed in (1, 2, 3)]
    sent = 0
    index = 0
    while sent < total_bytes:
        batch = bases[index % len(bases)]
        index += 1
        sent += batch.nbytes
        yield batch


# ---------------------------------------------------------------------------------- sink


class MemoryTarget(WriteTarget):
    """A write target in memory: keeps a copy of every byte (the caller may reuse its
    buffer), and counts the bytes that arrive after :meth:`abort`, which no writer may
    send."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.late_bytes = 0
        self.discarded = False
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        with self._lock:
            return len(self.buffer)

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        with self._lock:
            if self.discarded:
                self.late_bytes += view.nbytes
            else:
                self.buffer += view

    def commit(self) -> CommittedFile:
        return CommittedFile(name="kit-file", uri="memory:kit-file")

    def abort(self) -> None:
        with self._lock:
            self.discarded = True

    def value(self) -> bytes:
        with self._lock:
            return bytes(self.buffer)


class _SeekableView(io.RawIOBase):
    """A seekable file over a :class:`MemoryTarget`'s buffer, for a format that declares
    ``needs_seekable`` (the runner's byte path cannot seek)."""

    def __init__(self, target: MemoryTarget) -> None:
        self.target = target
        self.position = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.target.size}
        self.position = base[whence] + offset
        return self.position

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.target.discarded:
            self.target.write(view)
        else:
            buffer = self.target.buffer
            end = self.position + view.nbytes
            if len(buffer) < self.position:
                buffer += bytes(self.position - len(buffer))
            buffer[self.position:end] = view
            self.position = end
        return view.nbytes

    def close(self) -> None:
        """The file stays readable; closing it is not the writer's decision."""


def open_kit_sink(seekable: bool = False) -> tuple[MemoryTarget, pa.NativeFile]:
    """A memory target and the pyarrow stream a format writes into: the runner's own byte
    path (:func:`~rivet_core.runner.sink.open_sink`), or a seekable file when the format
    needs one."""
    from rivet_core.runner.sink import open_sink

    target = MemoryTarget()
    if seekable:
        return target, pa.PythonFile(_SeekableView(target), mode="w")
    _, stream = open_sink(target)
    return target, stream


def write_file(fmt: Format, batches: list[pa.RecordBatch], schema: pa.Schema, *,
               seekable: bool = False) -> bytes:
    """Open a file, write ``batches``, close it; the file's bytes."""
    target, stream = open_kit_sink(seekable)
    writer = fmt.open(stream, schema)
    for batch in batches:
        writer.write_batch(batch)
    writer.close()
    return target.value()


# ------------------------------------------------------------------------- compression


def compression_cases(spec: FormatSpec) -> dict[Compression, list[str]]:
    """Every compression a format declares, with the names it goes by: each codec at its
    default level, each level range's two ends and middle, each profile."""
    cases: dict[Compression, list[str]] = {}
    for codec in sorted(spec.codecs):
        cases.setdefault(Compression(codec=codec), []).append(f"compression={codec!r}")
    for codec, (low, high) in sorted(spec.level_ranges.items()):
        for level in sorted({low, (low + high) // 2, high}):
            cases.setdefault(Compression(codec=codec, level=level), []).append(
                f"compression={codec!r} level {level}")
    for profile, (codec, preset) in sorted(spec.profiles.items()):
        cases.setdefault(Compression(codec=codec, level=preset), []).append(
            f"profile {profile!r}")
    return cases


def _case(compression: Compression, names: list[str]) -> str:
    return " = ".join(names) if names else repr(compression)


# --------------------------------------------------------------------------- comparison


def _kind(value: Any) -> str:
    """A value's kind for comparison: ``True == 1`` and ``date == datetime`` must not pass."""
    for kind in (bool, int, float, Decimal, str, bytes, dt.datetime, dt.date):
        if isinstance(value, kind):
            return kind.__name__
    return type(value).__name__


def same_value(written: Any, read: Any) -> bool:
    """Equal values of one kind; floats bit-for-bit in meaning (NaN is NaN, -0.0 is not
    0.0); aware datetimes as instants, and never equal to naive ones."""
    if _kind(written) != _kind(read):
        return False
    if isinstance(written, float):
        if math.isnan(written) or math.isnan(read):
            return math.isnan(written) and math.isnan(read)
        return bool(written == read and math.copysign(1, written) == math.copysign(1, read))
    if isinstance(written, dt.datetime) and (written.tzinfo is None) != (read.tzinfo is None):
        return False
    return bool(written == read)


def compare_tables(written: pa.Table, read: Any, *, lossless: Callable[[pa.DataType], bool],
                   decode: Callable[[pa.DataType, Any], Any], limit: int = 3) -> list[str]:
    """Every difference between the table written and what the back door read, at most
    ``limit`` values per column: names, row count, then each column by type (a lossless
    type must come back as the same Arrow type) and value by value (NULL must stay NULL;
    other values of a lossy type go through ``decode`` first)."""
    if not isinstance(read, pa.Table):
        return [f"the back door returned a {type(read).__name__}, not a pyarrow.Table"]
    if read.column_names != written.column_names:
        return [f"columns {read.column_names} read back, {written.column_names} written"]
    if read.num_rows != written.num_rows:
        return [f"{read.num_rows} rows read back, {written.num_rows} written"]
    problems = []
    for field in written.schema:
        got = read.column(field.name)
        exact = lossless(field.type)
        if exact and got.type != field.type:
            problems.append(f"{field.name}: {field.type} read back as {got.type}")
            continue
        wrong = []
        for row, (want, have) in enumerate(zip(written.column(field.name).to_pylist(),
                                               got.to_pylist(), strict=True)):
            if want is None or have is None:
                ok = want is None and have is None
            elif exact:
                ok = same_value(want, have)
            else:
                try:
                    decoded = decode(field.type, have)
                except Exception as exc:
                    wrong.append(f"row {row}: wrote {want!r}, the back door read {have!r}, "
                                 f"which decode_value refused: {exc!r}")
                    continue
                ok = same_value(want, decoded)
                have = f"{have!r} (decoded: {decoded!r})"
            if not ok:
                wrong.append(f"row {row}: wrote {want!r}, read back {have}")
        if wrong:
            more = f" (+{len(wrong) - limit} more)" if len(wrong) > limit else ""
            problems.append(f"{field.name} ({field.type}): " + "; ".join(wrong[:limit]) + more)
    return problems


def _lossless_everything(_: pa.DataType) -> bool:
    return True


def _no_decoder(typ: pa.DataType, value: Any) -> Any:
    raise NotImplementedError(
        f"{typ} is not declared lossless, so the kit needs the decode_value fixture to "
        f"turn the back door's {value!r} into the written value")


# ------------------------------------------------------------------------------ config


def load_format_export(spec: FormatSpec, keys: dict[str, Any], directory: Path, *,
                       export_keys: dict[str, Any] | None = None) -> Any:
    """The export of a one-export config whose ``[exports.format]`` table is ``keys``,
    loaded through Rivet's real loader (with ``export_keys`` such as ``compression``)."""
    return load_kit_export(directory, format_spec=spec, format_keys=keys,
                           export_keys=export_keys)


def load_format_options(spec: FormatSpec, keys: dict[str, Any], directory: Path) -> Any:
    """Structure ``keys`` as ``[exports.format]`` through Rivet's real loader."""
    return load_format_export(spec, keys, directory).format.options


# ---------------------------------------------------------------------------- the kit


class FormatTests:
    """Abstract conformance tests for a format; see the module docstring.

    Override ``format_spec`` and ``reader``; optionally ``format_config`` (the format's
    own keys, default none), ``lossless_types`` and ``decode_value`` (for a back door that
    cannot return every type as written), ``streaming_config`` (the config under which the
    writer must stream a few MiB; default ``format_config``), ``invalid_configs`` and
    ``config_dir``.
    """

    # ------------------------------------------------------------ fixtures to override

    @pytest.fixture
    def format_spec(self) -> FormatSpec:
        raise NotImplementedError("override the format_spec fixture")

    @pytest.fixture
    def reader(self) -> FormatReader:
        raise NotImplementedError("override the reader fixture")

    @pytest.fixture
    def format_config(self) -> dict[str, Any]:
        """Keys of ``[exports.format]`` (without ``type``)."""
        return {}

    @pytest.fixture
    def lossless_types(self) -> Callable[[pa.DataType], bool]:
        """Whether the back door returns columns of an Arrow type as that same type with the
        same values. Default: every type. Other columns are compared through
        ``decode_value``."""
        return _lossless_everything

    @pytest.fixture
    def decode_value(self) -> Callable[[pa.DataType, Any], Any]:
        """``decode_value(arrow_type, value)``: the written Python value (as pyarrow's
        ``as_py()`` gives it) that the back door's non-NULL ``value`` stands for, in a
        column that is not lossless. Write it from the format's documented rules, not with
        the plugin's code."""
        return _no_decoder

    @pytest.fixture
    def streaming_config(self, format_config: dict[str, Any]) -> dict[str, Any]:
        """The config under which the writer must hand bytes to the sink before close, for
        a few MiB of input. A format that buffers a configured amount (Parquet row groups)
        sets that amount below a MiB here."""
        return format_config

    @pytest.fixture
    def streaming_bytes(self) -> int:
        """Arrow bytes written by the streaming and abort checks."""
        return 6 * MIB

    @pytest.fixture
    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        """``(keys, key)`` pairs: each ``[exports.format]`` table must fail to load with an
        issue at ``key``."""
        return []

    @pytest.fixture
    def config_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "kit-config"

    # ------------------------------------------------------------------ kit fixtures

    @pytest.fixture
    def format_options(self, format_spec: FormatSpec, format_config: dict[str, Any],
                       config_dir: Path) -> Any:
        return load_format_options(format_spec, format_config, config_dir)

    @pytest.fixture
    def build_format(self, format_spec: FormatSpec, format_options: Any
                     ) -> Callable[[Compression], Format]:
        """Builds the format from the loaded config, as the planner does."""

        def build(compression: Compression) -> Format:
            return format_spec.factory(format_options, compression)

        return build

    # ------------------------------------------------------------------------ helpers

    @staticmethod
    def check_extension(spec: FormatSpec, fmt: Format) -> list[str]:
        extension = fmt.extension
        if not isinstance(extension, str) or not (
                extension == spec.extension or extension.startswith(spec.extension + ".")):
            return [f"extension {extension!r} does not start with the spec's "
                    f"{spec.extension!r} (a compression suffix follows a dot: 'csv.gz')"]
        return []

    # ---------------------------------------------------------------- declaration, config

    def test_declaration_is_coherent(self, format_spec: FormatSpec) -> None:
        assert isinstance(format_spec, FormatSpec), type(format_spec)
        problems = spec_problems(format_spec)
        extension = format_spec.extension
        if not (isinstance(extension, str) and extension and not extension.startswith(".")):
            problems.append(f"extension must be a non-empty name without the dot, "
                            f"got {extension!r}")
        assert problems == [], "incoherent declaration:\n" + "\n".join(problems)

    def test_config_round_trips_through_the_loader(
            self, format_spec: FormatSpec, format_config: dict[str, Any],
            format_options: Any, config_dir: Path) -> None:
        assert isinstance(format_options, format_spec.config_cls)
        for key, value in format_config.items():
            assert getattr(format_options, key) == value, key
        if attrs.has(type(format_options)):
            keys = attrs.asdict(format_options)  # type: ignore[arg-type]
            again = load_format_options(format_spec, keys, config_dir / "again")
            assert again == format_options

    def test_unknown_config_key_is_an_error_naming_it(
            self, format_spec: FormatSpec, format_config: dict[str, Any],
            config_dir: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            load_format_options(format_spec, {**format_config, "no_such_key_zz": 1},
                                config_dir)
        paths = [issue.path for issue in caught.value.issues]
        assert "exports[0].format.no_such_key_zz" in paths, paths

    def test_invalid_configs_are_errors_naming_the_key(
            self, format_spec: FormatSpec,
            invalid_configs: list[tuple[dict[str, Any], str]], config_dir: Path) -> None:
        if not invalid_configs:
            pytest.skip("no invalid_configs fixture given")
        for index, (keys, key) in enumerate(invalid_configs):
            with pytest.raises(ConfigError) as caught:
                load_format_options(format_spec, keys, config_dir / str(index))
            paths = [issue.path for issue in caught.value.issues]
            assert f"exports[0].format.{key}" in paths, (keys, paths)

    def test_every_declared_codec_level_and_profile_loads(
            self, format_spec: FormatSpec, format_config: dict[str, Any],
            config_dir: Path) -> None:
        """What the spec declares, a config can select: the loader accepts it and the
        planner resolves it to that codec and level."""
        from rivet_core.planner import resolve_compression

        settings: list[tuple[dict[str, Any], Compression]] = []
        for codec in sorted(format_spec.codecs):
            settings.append(({"compression": codec}, Compression(codec=codec)))
        for codec, (low, high) in sorted(format_spec.level_ranges.items()):
            for level in sorted({low, high}):
                settings.append(({"compression": codec, "compression_level": level},
                                 Compression(codec=codec, level=level)))
        for profile, (codec, preset) in sorted(format_spec.profiles.items()):
            settings.append(({"compression_profile": profile},
                             Compression(codec=codec, level=preset)))
        wrong = []
        for index, (keys, want) in enumerate(settings):
            try:
                export = load_format_export(format_spec, format_config,
                                            config_dir / f"c{index}", export_keys=keys)
            except ConfigError as exc:
                wrong.append(f"{keys}: {exc}")
                continue
            got = resolve_compression(export, format_spec)
            if got != want:
                wrong.append(f"{keys}: resolved to {got}, declared {want}")
        assert not wrong, "declared but not usable:\n" + "\n".join(wrong)

    # ------------------------------------------------------------------------ round trip

    def test_every_codec_level_and_profile_round_trips(
            self, format_spec: FormatSpec, build_format: Callable[[Compression], Format],
            reader: FormatReader, lossless_types: Callable[[pa.DataType], bool],
            decode_value: Callable[[pa.DataType, Any], Any]) -> None:
        table = round_trip_table()
        batches = round_trip_batches(table)
        failures = []
        for compression, names in compression_cases(format_spec).items():
            case = _case(compression, names)
            try:
                fmt = build_format(compression)
                problems = self.check_extension(format_spec, fmt)
                data = write_file(fmt, batches, table.schema,
                                  seekable=format_spec.needs_seekable)
            except Exception as exc:
                failures.append(f"{case}: writing raised {exc!r}")
                continue
            try:
                read = reader(data, compression)
            except Exception as exc:
                failures.append(f"{case}: the back door could not read the {len(data)} "
                                f"bytes written: {exc!r}")
                continue
            problems += compare_tables(table, read, lossless=lossless_types,
                                       decode=decode_value)
            failures += [f"{case}: {problem}" for problem in problems]
        assert not failures, "\n".join(failures)

    def test_zero_rows_make_a_valid_file_with_the_column_names(
            self, format_spec: FormatSpec, build_format: Callable[[Compression], Format],
            reader: FormatReader) -> None:
        """A query that returns nothing still produces a file readers accept."""
        failures = []
        for compression, names in compression_cases(format_spec).items():
            case = _case(compression, names)
            try:
                data = write_file(build_format(compression), [], ROUND_TRIP_SCHEMA,
                                  seekable=format_spec.needs_seekable)
                read = reader(data, compression)
            except Exception as exc:
                failures.append(f"{case}: {exc!r}")
                continue
            if not isinstance(read, pa.Table):
                failures.append(f"{case}: the back door returned {type(read).__name__}")
            elif read.num_rows or read.column_names != ROUND_TRIP_SCHEMA.names:
                failures.append(f"{case}: read back {read.num_rows} rows of "
                                f"{read.column_names}")
        assert not failures, "\n".join(failures)

    def test_compression_shrinks_compressible_data(
            self, format_spec: FormatSpec, build_format: Callable[[Compression], Format],
            reader: FormatReader) -> None:
        """A codec that is declared but not applied is caught by size: each compressed
        file of repetitive text must be less than half the uncompressed one."""
        if "none" not in format_spec.codecs:
            pytest.skip(f"{format_spec.name!r} declares no 'none' codec to compare with")
        table = compressible_table()
        batches = table.to_batches()
        plain = len(write_file(build_format(Compression(codec="none")), batches,
                               table.schema, seekable=format_spec.needs_seekable))
        failures = []
        for compression, names in compression_cases(format_spec).items():
            if compression.codec == "none":
                continue
            data = write_file(build_format(compression), batches, table.schema,
                              seekable=format_spec.needs_seekable)
            if not len(data) < plain / 2:
                failures.append(f"{_case(compression, names)}: {len(data)} bytes, "
                                f"uncompressed {plain}")
            elif reader(data, compression).num_rows != table.num_rows:
                failures.append(f"{_case(compression, names)}: rows lost")
        assert not failures, "compression not applied:\n" + "\n".join(failures)

    # ------------------------------------------------------------------------- streaming

    def test_bytes_reach_the_sink_before_close(
            self, format_spec: FormatSpec, streaming_config: dict[str, Any],
            streaming_bytes: int, config_dir: Path, reader: FormatReader) -> None:
        """Memory stays bounded whatever the size of the result: for each codec, bytes
        reach the sink while batches are still being written, not all at close."""
        if format_spec.needs_seekable:
            pytest.skip(f"{format_spec.name!r} declares needs_seekable (it finishes the file "
                        "by seeking back)")
        options = load_format_options(format_spec, streaming_config, config_dir / "stream")
        failures = []
        for codec in sorted(format_spec.codecs):
            target, stream = open_kit_sink()
            writer = format_spec.factory(options, Compression(codec=codec)).open(
                stream, ROUND_TRIP_SCHEMA)
            # What open wrote (a header, a magic number) does not count as streaming.
            after_open = target.size
            rows = 0
            batches = 0
            before_last = 0
            for batch in _bulk_batches(streaming_bytes):
                before_last = target.size
                writer.write_batch(batch)
                rows += batch.num_rows
                batches += 1
            writer.close()
            if before_last <= after_open:
                failures.append(f"compression={codec!r}: no data reached the sink before the "
                                f"last of {batches} batches ({streaming_bytes} Arrow bytes): "
                                f"{after_open} bytes after open, {before_last} before the "
                                f"last batch, {target.size} after close")
            read = reader(target.value(), Compression(codec=codec))
            if read.num_rows != rows:
                failures.append(f"compression={codec!r}: {read.num_rows} rows read back, "
                                f"{rows} written")
        assert not failures, "\n".join(failures)

    @staticmethod
    def aborted_writers(spec: FormatSpec, options: Any, size: int
                        ) -> Iterator[tuple[str, MemoryTarget, list[FormatWriter]]]:
        """For each codec, a writer aborted after ``size`` Arrow bytes and one aborted right
        after open, the target then discarded as the runner does: ``(case, target,
        holder)``, where ``holder`` is the only reference to the writer (clear it to let
        the writer go). A failing ``abort`` fails the test, naming the case."""
        for codec in sorted(spec.codecs):
            for label, amount in (("after some batches", size), ("right after open", 0)):
                case = f"compression={codec!r}, abort {label}"
                target, stream = open_kit_sink(spec.needs_seekable)
                writer = spec.factory(options, Compression(codec=codec)).open(
                    stream, ROUND_TRIP_SCHEMA)
                for batch in _bulk_batches(amount):
                    writer.write_batch(batch)
                try:
                    writer.abort()
                except Exception as exc:
                    pytest.fail(f"{case}: abort raised {exc!r}", pytrace=False)
                target.abort()  # what the runner does next: any later byte is a late one
                holder = [writer]
                del writer, stream
                yield case, target, holder

    def test_abort_never_raises_and_stops_background_work(
            self, format_spec: FormatSpec, streaming_config: dict[str, Any],
            streaming_bytes: int, config_dir: Path) -> None:
        """``abort`` after some batches (and right after open) never raises; once it
        returns, no thread the writer started still runs and no byte reaches the sink."""
        options = load_format_options(format_spec, streaming_config, config_dir / "abort")
        failures = []
        threads = set(threading.enumerate())
        for case, target, _holder in self.aborted_writers(format_spec, options,
                                                          streaming_bytes // 3):
            # The writer stays alive meanwhile: collecting it is the next test's business.
            time.sleep(0.05)  # a thread that was not stopped writes meanwhile
            running = [t.name for t in threading.enumerate()
                       if t not in threads and t.is_alive()]
            if running:
                failures.append(f"{case}: threads still running after abort: {running}")
            if target.late_bytes:
                failures.append(f"{case}: {target.late_bytes} bytes reached the sink after "
                                f"abort returned")
        assert not failures, "\n".join(failures)

    def test_nothing_reaches_the_sink_after_abort_even_when_collected(
            self, format_spec: FormatSpec, streaming_config: dict[str, Any],
            streaming_bytes: int, config_dir: Path) -> None:
        """An aborted writer that is garbage-collected must not finish its file (write a
        trailer, end a compressed frame) into the discarded target: on a stream the reader
        would see a complete-looking file of partial data."""
        options = load_format_options(format_spec, streaming_config, config_dir / "abort")
        failures = []
        for case, target, holder in self.aborted_writers(format_spec, options,
                                                         streaming_bytes // 3):
            holder.clear()
            gc.collect()
            if target.late_bytes:
                failures.append(f"{case}: {target.late_bytes} bytes reached the sink when "
                                f"the aborted writer was collected")
        assert not failures, "\n".join(failures)
