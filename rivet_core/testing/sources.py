"""The source conformance kit: what :class:`~rivet_core.backends.Source` promises, proven
against a sandbox database.

A source author subclasses :class:`SourceTests` in a test module and overrides three
fixtures::

    from rivet_core.testing import SourceTests

    class TestMySource(SourceTests):
        @pytest.fixture
        def source_spec(self):                    # the SourceSpec under test
            return my_plugin.SPEC

        @pytest.fixture
        def source_config(self, sandbox):         # [source] keys, without `type`
            return {"url": sandbox.url}

        @pytest.fixture
        def sample_table(self, sample_rows, sandbox):   # through the author's own connection
            sandbox.execute("CREATE TABLE kit_sample (id integer PRIMARY KEY, name text, "
                            "amount numeric(12, 2), day date, seen_at timestamptz)")
            sandbox.executemany("INSERT INTO kit_sample VALUES (%s, %s, %s, %s, %s)",
                                sample_rows)
            return "kit_sample"                   # as a `table` export would name it

The sample is the kit's own (:data:`SAMPLE_COLUMNS`, :data:`SAMPLE_ROWS`): a few hundred
rows the author stores with their own connection, never the source under test, so every
check compares what the source reads with what is known to be there. The kit then checks
the declaration and the config round trip through Rivet's real loader; that ``describe``
maps the columns without running the query; that the schema is known before the first row;
that reading gives exactly the sample, in batches that honour ``batch_size`` and
``max_batch_bytes``; that a column without a faithful mapping fails before the first
batch; one read at a time; that closing a stream early frees the source; that every
statement the runner builds with the spec's dialect runs on the source and returns the
right rows (and each optional ``Supports*`` piece the dialect implements); that a refused
login never shows the password; and that a statement timeout ends the read as a transient
timeout. A check that needs an optional fixture the author did not give is skipped, with the
reason.

Every test gets fresh fixtures: ``sample_table`` must create a table no other test uses.
"""

from __future__ import annotations

import collections
import datetime as dt
import operator
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pytest

from rivet_core.backends import BatchStream, ReadOptions, Source, SourceContext
from rivet_core.dialect import (
    PIECES,
    CursorSpec,
    Query,
    SupportsCatalog,
    SupportsDayArithmetic,
    SupportsExplain,
    SupportsPrimaryKey,
    SupportsServerTime,
)
from rivet_core.errors import (
    ConfigError,
    RivetError,
    SourceError,
    TransientError,
    UnsupportedTypeError,
)
from rivet_core.specs import SourceSpec, spec_problems
from rivet_core.testing.formats import same_value
from rivet_core.testing.kitconfig import load_kit_config
from rivet_core.types import ColumnInfo, schema_of

UTC = dt.UTC

# -------------------------------------------------------------------------------- sample

SAMPLE_COLUMNS: dict[str, str] = {
    "id": "integer primary key, 1..N (no NULL)",
    "name": "text: non-ASCII (up to 4-byte UTF-8), single and double quotes, a newline, "
            "a tab, a backslash, a '%'; one NULL",
    "amount": "exact decimal, precision 12, scale 2 (-9999999999.99..9999999999.99); "
              "one NULL",
    "day": "date, 1969-12-01..1971-01-05 (no NULL)",
    "seen_at": "timestamp of an instant, microseconds, 2024 (given as an aware UTC datetime; "
               "store it as an instant, or as its UTC wall time); one NULL",
}
"""The sample's columns, in table order, each with the neutral description the author maps
to their database's types."""

SAMPLE_SIZE = 300
"""Rows of the sample: several batches at the kit's batch size (64)."""

BATCH_SIZE = 64
"""``batch_size`` of the kit's ordinary reads."""

_NAMES = ["plain", "ünïcødé ✓ 日本語", "O'Brien", 'say "hi"', "line\nbreak", "apple",
          "tab\tand\\backslash", "a 100% match", "αβγ δ", "emoji 🚀"]
"""What names start with; exactly two (lower-case ``a``, nothing else a case-insensitive
collation could take for one) match ``LIKE 'a%'``."""
_NULL_NAME, _NULL_AMOUNT, _NULL_SEEN_AT = 13, 17, 23
_AMOUNT_EDGES = {1: Decimal("9999999999.99"), 2: Decimal("-9999999999.99"),
                 3: Decimal("0.00"), 4: Decimal("-0.01")}
_FIRST_DAY = dt.date(1969, 12, 1)
_FIRST_INSTANT = dt.datetime(2024, 3, 30, 12, 0, tzinfo=UTC)


def _sample_row(i: int) -> tuple[Any, ...]:
    name = None if i == _NULL_NAME else f"{_NAMES[i % len(_NAMES)]} {i}"
    amount = _AMOUNT_EDGES.get(i, Decimal((i * 7919) % 200_003 - 100_000).scaleb(-2))
    # 7919 is prime to both moduli: days spread over 400 days out of id order, and every
    # instant is distinct (distinct seconds), so ordering by either is unambiguous.
    day = _FIRST_DAY + dt.timedelta(days=(i * 37) % 400)
    seen_at = _FIRST_INSTANT + dt.timedelta(seconds=(i * 7919) % 200_000,
                                            microseconds=(i * 104_729) % 1_000_000)
    return (i, name, None if i == _NULL_AMOUNT else amount, day,
            None if i == _NULL_SEEN_AT else seen_at)


SAMPLE_ROWS: tuple[tuple[Any, ...], ...] = tuple(_sample_row(i)
                                                 for i in range(1, SAMPLE_SIZE + 1))
"""The sample: one tuple per row, values in :data:`SAMPLE_COLUMNS` order (``int``,
``str``, ``Decimal``, ``date``, aware UTC ``datetime``; ``None`` for NULL), ordered by
``id``. Insert exactly these."""


def expected_sample(rows: Sequence[Sequence[Any]] = SAMPLE_ROWS, *,
                    naive_instants: bool = False) -> list[dict[str, Any]]:
    """How the sample reads back, one dict per row in ``id`` order: by default every value as
    inserted (``seen_at`` an aware UTC ``datetime``, what a ``timestamp[us, UTC]`` column
    gives); with ``naive_instants``, ``seen_at`` as its naive UTC wall time (what a source
    mapping the column to a zone-less ``timestamp[us]`` gives)."""
    out = []
    for row in rows:
        values = dict(zip(SAMPLE_COLUMNS, row, strict=True))
        if naive_instants and values["seen_at"] is not None:
            values["seen_at"] = values["seen_at"].astimezone(UTC).replace(tzinfo=None)
        out.append(values)
    return out


# ----------------------------------------------------------------------------- reading


def read_batches(source: Source, query: Query, options: ReadOptions
                 ) -> tuple[BatchStream, list[pa.RecordBatch]]:
    """Every batch of ``query`` (the stream closed afterwards, whatever happens)."""
    stream = source.read(query, options)
    with stream:
        return stream, list(stream)


def rows_of(batches: Sequence[pa.RecordBatch]) -> list[dict[str, Any]]:
    """The rows of ``batches`` as dicts of Python values, in the order read."""
    return [row for batch in batches for row in batch.to_pylist()]


def _sort_key(row: Mapping[str, Any]) -> tuple[str, Any]:
    value = row.get("id")
    return type(value).__name__, value


def by_id(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``rows`` ordered by ``id`` (ids of mixed types are kept apart, not compared)."""
    try:
        return sorted(rows, key=_sort_key)
    except TypeError:
        return sorted(rows, key=repr)


def same(want: Any, got: Any) -> bool:
    """NULL only equals NULL; other values are equal in kind and value (``Decimal`` is not
    ``float``, ``datetime`` is not ``date``, aware is not naive)."""
    if want is None or got is None:
        return want is None and got is None
    # Two values of one exact type (as pyarrow returns them) compare directly, a naive and
    # an aware datetime as unequal; anything else takes the kind-aware comparison.
    if type(want) is type(got) and not isinstance(want, float):
        return bool(want == got)
    return same_value(want, got)


def row_differences(got: Sequence[Mapping[str, Any]], want: Sequence[Mapping[str, Any]],
                    *, limit: int = 6) -> list[str]:
    """Every difference between rows read and rows expected, compared in the order given:
    which ids are missing or doubled, then value by value (at most ``limit`` lines)."""
    problems: list[str] = []
    got_ids = collections.Counter(repr(row.get("id")) for row in got)
    want_ids = collections.Counter(repr(row.get("id")) for row in want)
    if got_ids != want_ids:
        missing = sorted((want_ids - got_ids).elements())
        extra = sorted((got_ids - want_ids).elements())
        problems.append(f"{len(got)} rows read, {len(want)} expected; ids missing: "
                        f"{_few(missing)}; ids read but not expected (or more than once): "
                        f"{_few(extra)}")
        return problems
    for index, (have, expect) in enumerate(zip(got, want, strict=True)):
        if list(have) != list(expect):
            problems.append(f"row {index}: columns {list(have)}, expected {list(expect)}")
            break
        for column, value in expect.items():
            if not same(value, have.get(column)):
                problems.append(f"row {index} (id {expect.get('id')!r}): {column}: expected "
                                f"{value!r}, read {have.get(column)!r}")
    if len(problems) > limit:
        problems = [*problems[:limit], f"... and {len(problems) - limit} more"]
    return problems


def _few(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit]) or "none"
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _integral(value: Any) -> int | None:
    """``value`` as an int when it is a number holding a whole value (``FLOOR`` gives an
    int, a float or a Decimal depending on the database), else None (a ``str`` is not a
    number, whatever it spells)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _instant(value: dt.datetime) -> dt.datetime:
    """An aware instant; a naive value is the UTC wall time of one."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _unquoted(identifier: str) -> str:
    return identifier.strip().strip('"`[]')


def load_source_options(spec: SourceSpec, keys: dict[str, Any], directory: Path) -> Any:
    """Structure ``keys`` as ``[source]`` through Rivet's real loader."""
    return load_kit_config(directory, source=spec, source_keys=keys).source.options


# ---------------------------------------------------------------------------- the kit

TIMEOUT_GRACE_S = 3.0
"""How long after ``statement_timeout_s`` the timed-out read may still take to fail."""

SESSIONS_SETTLE_S = 5.0
"""How long a server may take to forget the sessions of a closed source."""

ONE_AT_A_TIME = (RuntimeError, RivetError)
"""What a source may raise for a second statement while a stream is open."""


class SourceTests:
    """Abstract conformance tests for a source; see the module docstring.

    Override ``source_spec``, ``source_config`` and ``sample_table``; optionally
    ``expected_rows`` (how the sample reads back, when not as inserted), and the fixtures
    of the checks that need one (each check is skipped with the reason when its fixture
    returns None): ``unsupported_query``, ``failing_query``, ``wrong_password_config``,
    ``open_sessions`` and ``slow_query``.
    """

    # ------------------------------------------------------------ fixtures to override

    @pytest.fixture
    def source_spec(self) -> SourceSpec:
        raise NotImplementedError("override the source_spec fixture")

    @pytest.fixture
    def source_config(self) -> dict[str, Any]:
        """Keys of ``[source]`` (without ``type``) pointing at the sandbox database."""
        raise NotImplementedError("override the source_config fixture")

    @pytest.fixture
    def sample_table(self, sample_rows: Sequence[Sequence[Any]]) -> str:
        """Create, through your own connection, a table holding exactly ``sample_rows``
        (columns as :data:`SAMPLE_COLUMNS` describes them, in that order) and return its
        name as a ``table`` export would write it (``name`` or ``schema.name``)."""
        raise NotImplementedError("override the sample_table fixture")

    @pytest.fixture
    def expected_rows(self, sample_rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """The sample as the source reads it back, one dict per row in ``id`` order; by
        default as inserted (see :func:`expected_sample`)."""
        return expected_sample(sample_rows)

    @pytest.fixture
    def unsupported_query(self) -> str | None:
        """A query returning a column the source cannot map faithfully."""
        return None

    @pytest.fixture
    def failing_query(self) -> str | None:
        """A query that describes fine but fails while its rows are read (e.g. a division
        by zero on one row of the sample)."""
        return None

    @pytest.fixture
    def wrong_password_config(self) -> tuple[dict[str, Any], str] | None:
        """``(config, password)``: ``[source]`` keys holding ``password`` (in a URL or a
        key) with which the login is refused."""
        return None

    @pytest.fixture
    def open_sessions(self) -> Callable[[], int] | None:
        """A callable counting, through your own connection, the server sessions the
        source under test holds right now (tell them apart by the config: an application
        name, a database of their own)."""
        return None

    @pytest.fixture
    def slow_query(self) -> str | None:
        """A query that runs for several seconds (and returns a row, if any, only at the
        end), for the statement-timeout check."""
        return None

    @pytest.fixture
    def config_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "kit-config"

    # ------------------------------------------------------------------ kit fixtures

    @pytest.fixture
    def sample_rows(self) -> tuple[tuple[Any, ...], ...]:
        """The kit's sample, :data:`SAMPLE_ROWS`."""
        return SAMPLE_ROWS

    @pytest.fixture
    def source_options(self, source_spec: SourceSpec, source_config: dict[str, Any],
                       config_dir: Path) -> Any:
        return load_source_options(source_spec, source_config, config_dir)

    @pytest.fixture
    def build_source(self, source_spec: SourceSpec, source_options: Any, config_dir: Path,
                     sample_table: str) -> Iterator[Callable[[], Source]]:
        """Builds a fresh source from the loaded config (each one closed at the end), as
        each attempt of the runner does."""
        # Depending on sample_table sets it up first, so it is torn down after the sources
        # are closed: a table dropped while a source still holds a transaction on it waits.
        built: list[Source] = []

        def build() -> Source:
            source = source_spec.factory(source_options, SourceContext(config_dir=config_dir))
            built.append(source)
            return source

        yield build
        for source in built:
            source.close()

    @pytest.fixture
    def source(self, build_source: Callable[[], Source]) -> Source:
        return build_source()

    @pytest.fixture
    def read_options(self) -> ReadOptions:
        return ReadOptions(batch_size=BATCH_SIZE)

    @pytest.fixture
    def sample_sql(self, sample_table: str) -> str:
        """The sample as a ``table`` export's query."""
        return f"SELECT * FROM {sample_table}"

    @pytest.fixture
    def sample_query(self, source_spec: SourceSpec, sample_sql: str,
                     sample_table: str) -> Query:
        """The read of a ``table`` export in ``full`` mode."""
        return source_spec.dialect.full(sample_sql, table=sample_table)

    # ------------------------------------------------------------------------ helpers

    @staticmethod
    def given(value: Any, fixture: str) -> Any:
        """``value``, the optional fixture's; the test is skipped if it is None."""
        if value is None:
            pytest.skip(f"no {fixture} fixture given")
        return value

    @staticmethod
    def piece(spec: SourceSpec, piece: type) -> Any:
        """The spec's dialect as the optional ``piece``; the test is skipped if it is not."""
        if not isinstance(spec.dialect, piece):
            pytest.skip(f"dialect {spec.dialect.name!r} of {spec.name!r} does not implement "
                        f"{piece.__name__} ({PIECES[piece]})")
        return spec.dialect

    @staticmethod
    def fetch(source: Source, query: Query) -> list[dict[str, Any]]:
        rows = source.fetch_rows(query, ReadOptions())
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows), (
            f"fetch_rows({query.label!r}) returned {rows!r}, not a list of dicts")
        return rows

    @staticmethod
    def one(rows: list[dict[str, Any]], what: str) -> dict[str, Any]:
        assert len(rows) == 1, f"{what}: {len(rows)} rows, one expected: {rows[:3]}"
        return rows[0]

    @staticmethod
    def assert_rows(got: Sequence[Mapping[str, Any]], want: Sequence[Mapping[str, Any]],
                    what: str) -> None:
        problems = row_differences(got, want)
        assert not problems, f"{what}:\n" + "\n".join(problems)

    @staticmethod
    def assert_values(row: Mapping[str, Any], want: Mapping[str, Any], what: str) -> None:
        wrong = [f"{key}: expected {value!r}, got {row.get(key)!r}"
                 for key, value in want.items() if not same(value, row.get(key))]
        assert not wrong, f"{what} ({row}):\n" + "\n".join(wrong)

    @staticmethod
    def read_rows(source: Source, query: Query) -> list[dict[str, Any]]:
        """The rows of ``query``, in the order read."""
        return rows_of(read_batches(source, query, ReadOptions(batch_size=BATCH_SIZE))[1])

    # ---------------------------------------------------------------- declaration, config

    def test_declaration_is_coherent(self, source_spec: SourceSpec) -> None:
        assert isinstance(source_spec, SourceSpec), type(source_spec)
        problems = spec_problems(source_spec)
        assert problems == [], "incoherent declaration:\n" + "\n".join(problems)

    def test_config_round_trips_through_the_loader(
            self, source_spec: SourceSpec, source_config: dict[str, Any],
            source_options: Any, config_dir: Path) -> None:
        assert isinstance(source_options, source_spec.config_cls)
        for key, value in source_config.items():
            got = getattr(source_options, key)
            if isinstance(value, dict) and attrs.has(type(got)):
                got = {k: v for k, v in attrs.asdict(got).items() if k in value}
            assert got == value, key
        if attrs.has(type(source_options)):
            keys = attrs.asdict(source_options)  # type: ignore[arg-type]
            again = load_source_options(source_spec, keys, config_dir / "again")
            assert again == source_options

    def test_unknown_config_key_is_an_error_naming_it(
            self, source_spec: SourceSpec, source_config: dict[str, Any],
            config_dir: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            load_source_options(source_spec, {**source_config, "no_such_key_zz": 1},
                                config_dir)
        paths = [issue.path for issue in caught.value.issues]
        assert "source.no_such_key_zz" in paths, paths

    # ------------------------------------------------------------------------ describe

    def test_describe_maps_every_sample_column_to_an_arrow_type(
            self, source: Source, sample_query: Query, read_options: ReadOptions) -> None:
        columns = source.describe(sample_query, read_options)
        assert all(isinstance(c, ColumnInfo) for c in columns), (
            f"describe returned {columns!r}, not a list of ColumnInfo")
        assert [c.name for c in columns] == list(SAMPLE_COLUMNS)
        untyped = [c.name for c in columns if not isinstance(c.arrow_type, pa.DataType)]
        assert not untyped, f"columns without an Arrow type: {untyped}"

    def test_describe_runs_none_of_the_query(
            self, source: Source, failing_query: str | None,
            read_options: ReadOptions) -> None:
        """A zero-row probe: a query that fails only when its rows are produced describes
        fine, and reading it then fails with a SourceError."""
        query = Query(sql=self.given(failing_query, "failing_query"), label="failing query")
        try:
            columns = source.describe(query, read_options)
        except RivetError as exc:
            pytest.fail(f"describe(failing_query) failed, so it ran the query: {exc!r}",
                        pytrace=False)
        assert columns, "describe(failing_query) returned no column"
        try:
            _, batches = read_batches(source, query, read_options)
        except SourceError:
            return
        pytest.fail(f"read(failing_query) gave {sum(b.num_rows for b in batches)} rows and "
                    "no SourceError: the failing_query fixture does not fail when read",
                    pytrace=False)

    # --------------------------------------------------------------------------- reading

    def test_schema_is_known_before_the_first_row(
            self, source: Source, sample_query: Query, read_options: ReadOptions) -> None:
        described = source.describe(sample_query, read_options)
        want = [(f.name, f.type) for f in schema_of(described)]
        stream = source.read(sample_query, read_options)
        with stream:
            schema = getattr(stream, "schema", None)
            assert isinstance(schema, pa.Schema), (
                f"before the first batch, stream.schema is {schema!r}, not a pyarrow.Schema")
            assert [(f.name, f.type) for f in schema] == want, (
                f"before the first batch, stream.schema is {schema}; describe gave {want}")
            columns = getattr(stream, "columns", None)
            assert [(c.name, c.arrow_type) for c in columns or ()] == want, (
                f"stream.columns before the first batch: {columns!r}")
            batches = list(stream)
        wrong = [f"batch {i}: {[(f.name, f.type) for f in b.schema]}"
                 for i, b in enumerate(batches) if [(f.name, f.type) for f in b.schema] != want]
        assert not wrong, f"batches whose schema is not the stream's {want}:\n" + "\n".join(
            wrong)

    def test_reading_the_sample_gives_exactly_the_expected_rows(
            self, source: Source, sample_query: Query, read_options: ReadOptions,
            expected_rows: list[dict[str, Any]]) -> None:
        _, batches = read_batches(source, sample_query, read_options)
        self.assert_rows(by_id(rows_of(batches)), expected_rows, "the sample read back")

    def test_column_type_override_changes_the_arrow_type(
            self, source: Source, sample_query: Query, read_options: ReadOptions,
            expected_rows: list[dict[str, Any]]) -> None:
        """``ReadOptions.column_types`` (``[exports.columns]``) sets a column's Arrow
        type; the values stay the same."""
        options = attrs.evolve(read_options, column_types={"id": pa.int64()})
        assert {c.name: c.arrow_type for c in source.describe(sample_query, options)
                }["id"] == pa.int64(), "describe ignores the override of id to int64"
        stream, batches = read_batches(source, sample_query, options)
        assert stream.schema.field("id").type == pa.int64(), stream.schema
        self.assert_rows(by_id(rows_of(batches)), expected_rows, "the sample read back")

    def test_override_naming_no_column_is_a_source_error(
            self, source: Source, sample_query: Query, read_options: ReadOptions) -> None:
        """A typo in ``[exports.columns]`` must not pass unnoticed."""
        options = attrs.evolve(read_options, column_types={"no_such_column": pa.int64()})
        with pytest.raises(SourceError, match="no_such_column"):
            read_batches(source, sample_query, options)

    def test_unsupported_column_fails_before_the_first_batch(
            self, source: Source, unsupported_query: str | None,
            read_options: ReadOptions) -> None:
        """From ``read`` itself (or at the latest instead of the first batch), and from
        ``describe``: an UnsupportedTypeError naming the column, and carrying every
        column's mapping for the type report."""
        query = Query(sql=self.given(unsupported_query, "unsupported_query"),
                      label="unsupported query")
        errors: list[UnsupportedTypeError] = []
        for how in ("read", "describe"):
            try:
                if how == "describe":
                    source.describe(query, read_options)
                else:
                    with source.read(query, read_options) as stream:
                        batch = next(iter(stream), None)
                    pytest.fail(f"read(unsupported_query) yielded "
                                f"{'no batch' if batch is None else 'a batch'} without an "
                                "UnsupportedTypeError", pytrace=False)
            except UnsupportedTypeError as exc:
                errors.append(exc)
                continue
            pytest.fail(f"{how}(unsupported_query) raised no UnsupportedTypeError",
                        pytrace=False)
        for how, error in zip(("read", "describe"), errors, strict=True):
            unmapped = [c.name for c in error.columns if getattr(c, "arrow_type", 1) is None]
            assert unmapped, (
                f"{how}: the UnsupportedTypeError carries no column without an Arrow type "
                f"(columns={error.columns!r}); raise it with every column's mapping "
                "(rivet_core.api.unsupported_error)")
            unnamed = [name for name in unmapped if name not in error.message]
            assert not unnamed, f"{how}: the error does not name {unnamed}: {error.message}"

    def test_a_second_statement_while_a_stream_is_open_is_refused(
            self, source: Source, sample_query: Query, sample_sql: str,
            source_spec: SourceSpec, expected_rows: list[dict[str, Any]]) -> None:
        """One read at a time: ``read``, ``describe`` and ``fetch_rows`` raise while a
        stream is open, and the open stream still yields exactly its remaining rows."""
        options = ReadOptions(batch_size=7)
        stream = source.read(sample_query, options)
        allowed = []
        with stream:
            batches = iter(stream)
            first = next(batches)
            attempts: dict[str, Callable[[], Any]] = {
                "read": lambda: source.read(sample_query, options),
                "describe": lambda: source.describe(sample_query, options),
                "fetch_rows": lambda: source.fetch_rows(
                    source_spec.dialect.row_count(sample_sql), ReadOptions()),
            }
            for what, attempt in attempts.items():
                try:
                    result = attempt()
                except ONE_AT_A_TIME:
                    continue
                allowed.append(what)
                if isinstance(result, BatchStream):
                    result.close()
            rest = list(batches)
        self.assert_rows(by_id(rows_of([first, *rest])), expected_rows,
                         "the first stream, after the refused statements")
        assert not allowed, (f"while a stream was open, {', '.join(allowed)} ran instead of "
                             "raising (RuntimeError or a RivetError)")

    def test_closing_a_stream_early_frees_the_source_for_the_next_read(
            self, source: Source, sample_query: Query, read_options: ReadOptions,
            expected_rows: list[dict[str, Any]]) -> None:
        stream = source.read(sample_query, ReadOptions(batch_size=7))
        next(iter(stream))
        stream.close()
        _, batches = read_batches(source, sample_query, read_options)
        self.assert_rows(by_id(rows_of(batches)), expected_rows,
                         "the read after a stream closed early")

    def test_close_ends_every_session_the_source_opened(
            self, build_source: Callable[[], Source], sample_query: Query,
            read_options: ReadOptions, open_sessions: Callable[[], int] | None) -> None:
        count = self.given(open_sessions, "open_sessions")
        before = count()
        source = build_source()
        stream = source.read(sample_query, ReadOptions(batch_size=7))
        # The iterator is kept: a generator dropped after its first batch is closed at
        # once, and with it a read that streams on the source's own connection.
        batches = iter(stream)
        next(batches)
        during = count()
        stream.close()
        del batches
        read_batches(source, sample_query, read_options)
        assert during > before, (
            f"open_sessions() counts {during} sessions while a read is open, {before} before "
            "the source connected: it does not see the source's sessions")
        source.close()
        deadline = time.monotonic() + SESSIONS_SETTLE_S
        while (now := count()) > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert now <= before, (f"{now} sessions still open {SESSIONS_SETTLE_S:g} s after "
                               f"close(), {before} before the source connected")

    def test_batches_never_exceed_batch_size(
            self, source: Source, sample_query: Query,
            expected_rows: list[dict[str, Any]]) -> None:
        for size in (7, 1):
            _, batches = read_batches(source, sample_query, ReadOptions(batch_size=size))
            over = [b.num_rows for b in batches if b.num_rows > size]
            assert not over, f"batch_size={size}: batches of {over} rows"
            self.assert_rows(by_id(rows_of(batches)), expected_rows,
                             f"the sample read with batch_size={size}")

    def test_batches_shrink_to_max_batch_bytes(
            self, source: Source, sample_query: Query, read_options: ReadOptions,
            expected_rows: list[dict[str, Any]]) -> None:
        """Under a byte cap far below one batch (and below one row), batches shrink after
        the first that exceeds it, never below one row, and every row arrives once."""
        _, plain = read_batches(source, sample_query, read_options)
        first = next(b for b in plain if b.num_rows)
        caps = {"an eighth of a batch": first.nbytes // 8,
                "half a row": max(1, first.nbytes // (first.num_rows * 2))}
        for what, cap in caps.items():
            options = attrs.evolve(read_options, max_batch_bytes=cap)
            _, batches = read_batches(source, sample_query, options)
            self.assert_rows(by_id(rows_of(batches)), expected_rows,
                             f"the sample read with max_batch_bytes={cap} ({what})")
            sizes = [(b.num_rows, b.nbytes) for b in batches if b.num_rows]
            over = next((i for i, (_, size) in enumerate(sizes) if size > cap), None)
            if over is None:
                continue
            rows = sizes[over][0]
            later = [n for n, _ in sizes[over + 1:]]
            assert rows == 1 or all(n < rows for n in later), (
                f"max_batch_bytes={cap} ({what}): after a batch of {rows} rows "
                f"({sizes[over][1]} bytes), batches of {later[:12]} rows followed")

    # ------------------------------------------------------------- the runner's statements

    def test_key_statistics_and_row_count_through_fetch_rows(
            self, source: Source, source_spec: SourceSpec, sample_sql: str,
            expected_rows: list[dict[str, Any]]) -> None:
        dialect = source_spec.dialect
        for column in ("id", "day"):
            values = [r[column] for r in expected_rows if r[column] is not None]
            row = self.one(self.fetch(source, dialect.key_stats(sample_sql, column)),
                           f"key_stats of {column}")
            self.assert_values(row, {"lo": min(values), "hi": max(values), "n": len(values),
                                     "nulls": len(expected_rows) - len(values)},
                               f"key_stats of {column}")
        row = self.one(self.fetch(source, dialect.row_count(sample_sql)), "row_count")
        self.assert_values(row, {"n": len(expected_rows)}, "row_count")

    def test_null_cursor_probe_finds_a_null_and_only_a_null(
            self, source: Source, source_spec: SourceSpec, sample_sql: str) -> None:
        dialect = source_spec.dialect
        found = self.fetch(source, dialect.null_cursor_probe(sample_sql,
                                                             CursorSpec(column="amount")))
        assert len(found) == 1 and "found" in found[0], (
            f"the probe on amount (one NULL) returned {found}, one row (found) expected")
        found = self.fetch(source, dialect.null_cursor_probe(sample_sql,
                                                             CursorSpec(column="id")))
        assert found == [], f"the probe on id (no NULL) returned {found}"

    @staticmethod
    def expected_buckets(keys: Sequence[Any], bucket: Callable[[Any], int]
                         ) -> list[dict[str, Any]]:
        groups: dict[int, list[Any]] = collections.defaultdict(list)
        for key in keys:
            groups[bucket(key)].append(key)
        return [{"bucket": k, "n": len(v), "lo": min(v), "hi": max(v)}
                for k, v in sorted(groups.items())]

    def assert_histogram(self, rows: list[dict[str, Any]], want: list[dict[str, Any]],
                         what: str) -> None:
        got = []
        for row in rows:
            bucket = _integral(row.get("bucket"))
            assert bucket is not None, f"{what}: bucket {row.get('bucket')!r} is not a number"
            got.append({**row, "bucket": bucket})
        assert len(got) == len(want), f"{what}: {len(got)} buckets, {len(want)} expected"
        for have, expect in zip(got, want, strict=True):
            self.assert_values(have, expect, what)

    def test_integer_key_histogram_counts_every_key(
            self, source: Source, source_spec: SourceSpec, sample_sql: str,
            expected_rows: list[dict[str, Any]]) -> None:
        ids = [r["id"] for r in expected_rows]
        origin, width = min(ids), 50
        rows = self.fetch(source, source_spec.dialect.key_histogram(
            sample_sql, "id", origin=origin, width=width))
        self.assert_histogram(rows, self.expected_buckets(ids, lambda k: (k - origin) // width),
                              "key_histogram of id")

    def test_incremental_reads_the_rows_after_the_cursor_in_cursor_order(
            self, source: Source, source_spec: SourceSpec, sample_sql: str,
            expected_rows: list[dict[str, Any]]) -> None:
        dialect = source_spec.dialect
        for column in ("id", "seen_at"):
            ordered = sorted((r for r in expected_rows if r[column] is not None),
                             key=operator.itemgetter(column))
            after = ordered[len(ordered) // 2][column]
            query = dialect.incremental(sample_sql, CursorSpec(column=column), after=after,
                                        lag_seconds=None, include_nulls=False)
            self.assert_rows(self.read_rows(source, query),
                             [r for r in ordered if r[column] > after],
                             f"incremental on {column} after {after!r}, in {column} order")

    def test_chunks_cover_the_sample_exactly_once(
            self, source: Source, source_spec: SourceSpec, sample_sql: str,
            expected_rows: list[dict[str, Any]]) -> None:
        """Integer ranges of ``id`` and date ranges of ``day``, each with its NULL-key
        chunk, and the NULL-key chunk of ``amount``."""
        dialect = source_spec.dialect
        ids = [r["id"] for r in expected_rows]
        days = [r["day"] for r in expected_rows]
        step = dt.timedelta(days=30)
        ranges: dict[str, list[tuple[Any, Any]]] = {
            "id": [(lo, min(lo + 64, max(ids) + 1)) for lo in range(min(ids), max(ids) + 1, 64)],
            "day": [],
        }
        start = min(days)
        while start <= max(days):
            ranges["day"].append((start, min(start + step, max(days) + dt.timedelta(days=1))))
            start += step
        for column, bounds in ranges.items():
            got = []
            for index, (lo, hi) in enumerate(bounds):
                rows = self.read_rows(source, dialect.chunk(sample_sql, column, lo, hi,
                                                            label=f"chunk {index}"))
                outside = [r.get("id") for r in rows
                           if not (isinstance(r.get(column), type(lo)) and lo <= r[column] < hi)]
                assert not outside, f"chunk [{lo!r}, {hi!r}) of {column} holds ids {outside}"
                got += rows
            got += self.read_rows(source, dialect.chunk(sample_sql, column, None, None,
                                                        label="NULL chunk"))
            self.assert_rows(by_id(got), expected_rows, f"the chunks of {column}")
        nulls = self.read_rows(source, dialect.chunk(sample_sql, "amount", None, None,
                                                     label="NULL chunk"))
        self.assert_rows(nulls, [r for r in expected_rows if r["amount"] is None],
                         "the NULL-key chunk of amount")

    def test_time_window_reads_the_rows_at_or_after_its_start(
            self, source: Source, source_spec: SourceSpec, sample_sql: str,
            expected_rows: list[dict[str, Any]]) -> None:
        instants = sorted(_instant(r["seen_at"]) for r in expected_rows
                          if r["seen_at"] is not None)
        start = instants[len(instants) // 3]  # the runner's start: an aware UTC datetime
        query = source_spec.dialect.time_window(sample_sql, "seen_at", start=start,
                                                unix=False)
        self.assert_rows(by_id(self.read_rows(source, query)),
                         [r for r in expected_rows
                          if r["seen_at"] is not None and _instant(r["seen_at"]) >= start],
                         f"time_window on seen_at from {start.isoformat()}")

    def test_literal_percent_survives_statements_with_parameters(
            self, source: Source, source_spec: SourceSpec, sample_table: str,
            expected_rows: list[dict[str, Any]]) -> None:
        """A user's ``LIKE 'a%'`` is sent as written without parameters, and escaped for
        the driver with them."""
        dialect = source_spec.dialect
        base = f"SELECT * FROM {sample_table} WHERE name LIKE 'a%'"
        want = [r for r in expected_rows if r["name"] is not None and r["name"][:1] == "a"]
        ids = [r["id"] for r in want]
        row = self.one(self.fetch(source, dialect.row_count(base)), "row_count")
        self.assert_values(row, {"n": len(want)}, "row_count without parameters")
        self.assert_rows(by_id(self.read_rows(source, dialect.chunk(
            base, "id", min(ids), max(ids) + 1, label="chunk"))), want,
            "a chunk (two parameters)")
        self.assert_rows(self.read_rows(source, dialect.incremental(
            base, CursorSpec(column="id"), after=min(ids) - 1, lag_seconds=None,
            include_nulls=False)), want, "incremental (one parameter)")
        buckets = self.fetch(source, dialect.key_histogram(base, "id", origin=min(ids),
                                                           width=len(expected_rows)))
        self.assert_histogram(buckets, self.expected_buckets(ids, lambda _: 0),
                              "key_histogram (two parameters)")

    def test_primary_key_of_the_sample_is_its_integer_id(
            self, source: Source, source_spec: SourceSpec, sample_table: str) -> None:
        dialect = self.piece(source_spec, SupportsPrimaryKey)
        rows = self.fetch(source, dialect.primary_key(sample_table))
        assert [r.get("column_name") for r in rows] == ["id"], rows
        assert dialect.is_integer_type(str(rows[0]["data_type"])) is True, (
            f"is_integer_type({rows[0]['data_type']!r}) is not True")

    def test_catalog_lists_the_sample_and_its_columns_in_order(
            self, source: Source, source_spec: SourceSpec, sample_table: str) -> None:
        dialect = self.piece(source_spec, SupportsCatalog)
        schema, _, name = sample_table.rpartition(".")
        tables = self.fetch(source, dialect.tables(_unquoted(schema) if schema else None))
        found = [t for t in tables
                 if str(t.get("table_name")).lower() == _unquoted(name).lower()]
        assert len(found) == 1, (f"tables({schema or None!r}) lists {len(found)} rows named "
                                 f"{name!r}: {tables[:5]}")
        table = found[0]
        assert table.get("table_kind") == "table", table
        for key in ("estimated_rows", "total_bytes"):
            value = table.get(key)
            assert value is None or (_is_count(value) and value >= 0), (
                f"{key} is {value!r}, not a count or None")
        columns = self.fetch(source, dialect.columns(sample_table))
        assert [c.get("column_name") for c in columns] == list(SAMPLE_COLUMNS), columns
        given = {c["column_name"]: c.get("is_nullable") for c in columns}
        # A bool, or 0/1 where the database has no boolean type (MySQL).
        wrong = {k: v for k, v in given.items() if not isinstance(v, bool) and v not in (0, 1)}
        assert not wrong, f"is_nullable must be a bool (or 0/1): {wrong}"
        nullable = {k: bool(v) for k, v in given.items()}
        assert nullable["id"] is False, "the primary key id is listed as nullable"
        holding_nulls = [k for k in ("name", "amount", "seen_at") if nullable[k] is not True]
        assert not holding_nulls, f"columns holding NULLs listed as not nullable: {holding_nulls}"

    def test_explain_runs_through_fetch_rows_and_estimates_rows(
            self, source: Source, source_spec: SourceSpec, sample_sql: str,
            sample_query: Query) -> None:
        dialect = self.piece(source_spec, SupportsExplain)
        chunk = source_spec.dialect.chunk(sample_sql, "id", 1, 100, label="chunk")
        for query in (sample_query, chunk):
            plan = self.fetch(source, dialect.explain(query))
            assert plan, f"explain({query.label!r}) returned no row"
            estimate = dialect.estimated_rows(plan)
            assert estimate is None or (_is_count(estimate) and estimate >= 0), (
                f"estimated_rows of the plan of {query.label!r} is {estimate!r}, not a "
                "count or None")

    def test_incremental_with_a_lag_reads_the_rows_before_the_server_time(
            self, source: Source, source_spec: SourceSpec, sample_sql: str,
            expected_rows: list[dict[str, Any]]) -> None:
        """The sample's instants are all long past: a lag of a minute keeps every one."""
        self.piece(source_spec, SupportsServerTime)
        query = source_spec.dialect.incremental(sample_sql, CursorSpec(column="seen_at"),
                                                after=None, lag_seconds=60,
                                                include_nulls=False)
        want = sorted((r for r in expected_rows if r["seen_at"] is not None),
                      key=lambda r: _instant(r["seen_at"]))
        self.assert_rows(self.read_rows(source, query), want,
                         "incremental on seen_at with cursor_lag, in seen_at order")

    def test_histogram_by_days_counts_every_day(
            self, source: Source, source_spec: SourceSpec, sample_sql: str,
            expected_rows: list[dict[str, Any]]) -> None:
        self.piece(source_spec, SupportsDayArithmetic)
        days = [r["day"] for r in expected_rows]
        origin, width = min(days), 7
        rows = self.fetch(source, source_spec.dialect.key_histogram(
            sample_sql, "day", origin=origin, width=width, by_days=True))
        self.assert_histogram(
            rows, self.expected_buckets(days, lambda d: (d - origin).days // width),
            "key_histogram of day by days")

    # ---------------------------------------------------------------------- read only

    def test_a_writing_statement_is_refused_and_changes_nothing(
            self, source: Source, build_source: Callable[[], Source], sample_table: str,
            sample_query: Query, read_options: ReadOptions,
            expected_rows: list[dict[str, Any]]) -> None:
        """A source never writes: a DELETE sent as a small statement fails, and another
        connection still sees every row."""
        delete = Query(sql=f"DELETE FROM {sample_table} WHERE id = {expected_rows[0]['id']}",
                       label="delete")
        try:
            source.fetch_rows(delete, ReadOptions())
            refused = False
        except RivetError:
            refused = True
        _, batches = read_batches(build_source(), sample_query, read_options)
        self.assert_rows(by_id(rows_of(batches)), expected_rows, "the sample after a DELETE")
        assert refused, "fetch_rows ran a DELETE without an error"

    # ------------------------------------------------------------------------- secrets

    def failed_login(self, source_spec: SourceSpec, config: dict[str, Any],
                     config_dir: Path, sample_query: Query
                     ) -> tuple[Source, list[tuple[str, BaseException]]]:
        """A source with the refused login, and what each entry point raised."""
        options = load_source_options(source_spec, config, config_dir / "refused")
        source: Source = source_spec.factory(options, SourceContext(config_dir=config_dir))
        attempts: dict[str, Callable[[], Any]] = {
            "describe": lambda: source.describe(sample_query, ReadOptions()),
            "read": lambda: read_batches(source, sample_query, ReadOptions()),
            "fetch_rows": lambda: source.fetch_rows(sample_query, ReadOptions()),
        }
        raised: list[tuple[str, BaseException]] = []
        for what, attempt in attempts.items():
            try:
                attempt()
            except Exception as exc:
                raised.append((what, exc))
                continue
            source.close()
            pytest.fail(f"{what} succeeded with wrong_password_config: the fixture's login "
                        "is not refused", pytrace=False)
        return source, raised

    def test_refused_login_never_shows_the_password(
            self, source_spec: SourceSpec, config_dir: Path, sample_query: Query,
            wrong_password_config: tuple[dict[str, Any], str] | None) -> None:
        config, password = self.given(wrong_password_config, "wrong_password_config")
        source, raised = self.failed_login(source_spec, config, config_dir, sample_query)
        try:
            leaks = [f"display_name(): {source.display_name()}",
                     f"repr(source): {source!r}"]
            for what, exc in raised:
                assert isinstance(exc, SourceError), f"{what} raised {exc!r}, not a SourceError"
                leaks += [f"{what}: message: {exc.message}", f"{what}: hint: {exc.hint}",
                          f"{what}: str: {exc}", f"{what}: repr: {exc!r}"]
            leaks = [text for text in leaks if password in text]
            assert not leaks, "the password shows in:\n" + "\n".join(leaks)
        finally:
            source.close()

    def test_refused_login_is_a_permanent_error(
            self, source_spec: SourceSpec, config_dir: Path, sample_query: Query,
            wrong_password_config: tuple[dict[str, Any], str] | None) -> None:
        """Retrying a refused password cannot help (and may lock the account)."""
        config, _ = self.given(wrong_password_config, "wrong_password_config")
        source, raised = self.failed_login(source_spec, config, config_dir, sample_query)
        source.close()
        transient = [f"{what}: {exc!r}" for what, exc in raised
                     if isinstance(exc, TransientError)]
        assert not transient, "a refused login is reported as transient:\n" + "\n".join(
            transient)

    # ------------------------------------------------------------------------- timeouts

    def test_statement_timeout_ends_the_read_as_a_transient_timeout(
            self, source: Source, slow_query: str | None) -> None:
        query = Query(sql=self.given(slow_query, "slow_query"), label="slow query")
        options = ReadOptions(statement_timeout_s=1)
        started = time.monotonic()
        try:
            read_batches(source, query, options)
        except RivetError as exc:
            error: RivetError = exc
        else:
            pytest.fail(f"slow_query completed in {time.monotonic() - started:.1f} s under "
                        "statement_timeout_s=1", pytrace=False)
        elapsed = time.monotonic() - started
        assert isinstance(error, TransientError), (
            f"the timeout is not a TransientError (the runner would not retry it with "
            f"retry_timeouts): {error!r}")
        assert error.reason == "timeout", f"reason is {error.reason!r}: {error!r}"
        assert elapsed < options.statement_timeout_s + TIMEOUT_GRACE_S, (
            f"the read failed only after {elapsed:.1f} s")
