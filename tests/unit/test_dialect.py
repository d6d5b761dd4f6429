"""The dialect contract: the standard-SQL statement shapes a plugin inherits, bound
parameters in the driver's style, and the planner refusing a mode whose statements need a
piece the source's dialect lacks (before anything runs, naming the plugin)."""

from __future__ import annotations

import datetime as dt
import textwrap

import attrs
import pytest

from rivet_core import hookimpl
from rivet_core.config import load_config
from rivet_core.dialect import CursorSpec, Dialect, DialectMissing, Query
from rivet_core.errors import ExitCode, PlanRejected
from rivet_core.planner import build_plan
from rivet_core.plugins import build_registry
from rivet_core.specs import SourceSpec


class QmarkDialect(Dialect):
    """Standard SQL only, with sqlite3's placeholders: none of the optional pieces."""

    name = "qmark"
    placeholder = "?"


class ClockDialect(QmarkDialect):
    name = "clock"

    def now_minus(self, seconds: float) -> tuple[str, object]:
        return "datetime('now', ?)", f"-{seconds} seconds"


def test_standard_statements_bind_every_value_in_the_drivers_style():
    d = QmarkDialect()
    q = d.incremental("SELECT * FROM t WHERE s LIKE 'a%'", CursorSpec(column="u"),
                      after=5, lag_seconds=None, include_nulls=True)
    # qmark drivers take a literal % as it is: nothing is doubled.
    assert q.sql == ("SELECT * FROM (SELECT * FROM t WHERE s LIKE 'a%') AS _rivet "
                     'WHERE (_rivet."u" > ?) OR _rivet."u" IS NULL ORDER BY _rivet."u"')
    assert q.params == (5,)
    chunk = d.chunk("SELECT 1", 'we"ird', 1, 9, label="c")
    assert chunk.sql.endswith('WHERE _rivet."we""ird" >= ? AND _rivet."we""ird" < ?')
    assert chunk.params == (1, 9)
    assert d.null_cursor_probe("SELECT 1", CursorSpec(column="u")).sql.endswith("LIMIT 1")
    assert d.row_count("SELECT 1").sql == "SELECT COUNT(*) AS n FROM (SELECT 1) AS _rivet"
    hist = d.key_histogram("SELECT 1", "k", origin=10, width=100)
    assert hist.sql.startswith('SELECT FLOOR((_rivet."k" - ?) / ?) AS bucket')
    assert hist.params == (10, 100)


def test_a_percent_is_doubled_only_where_a_format_style_driver_reads_placeholders():
    d = Dialect()  # placeholder "%s"
    base = "SELECT * FROM t WHERE s LIKE 'a%'"
    with_params = d.chunk(base, "id", 1, 2, label="c")
    assert "LIKE 'a%%'" in with_params.sql
    without = d.key_stats(base, "id")  # no parameters: the text is sent as written
    assert "LIKE 'a%'" in without.sql and without.params == ()
    assert d.full(base).sql == base


def test_time_window_binds_an_instant_or_epoch_seconds():
    d = QmarkDialect()
    start = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert d.time_window("SELECT 1", "ts", start=start, unix=True).params == (1767312000,)
    assert d.time_window("SELECT 1", "ts", start=start, unix=False).params == (start,)


def test_count_wraps_a_whole_statement_and_keeps_its_placeholders():
    d = Dialect()  # placeholder "%s"
    chunk = d.chunk("SELECT * FROM t WHERE s LIKE 'a%'", "id", 1, 9, label="chunk 0 [1..9)")
    counted = d.count(chunk)
    # The chunk's text, its doubled % included, goes in unchanged, so its parameters bind
    # to it as they are.
    assert counted.sql == f"SELECT COUNT(*) AS n FROM ({chunk.sql}) AS _rivet"
    assert counted.params == (1, 9) and counted.label == "chunk 0 [1..9) row count"
    assert d.count(d.full("SELECT * FROM t", table="t")).table == "t"
    whole = QmarkDialect().count(Query(sql="SELECT 1"))
    assert whole.sql == "SELECT COUNT(*) AS n FROM (SELECT 1) AS _rivet" and whole.params == ()


def test_an_incremental_count_stops_at_the_newest_cursor_read():
    d = Dialect()
    spec = CursorSpec(column="ts")
    first = d.incremental("SELECT * FROM t WHERE s LIKE 'a%'", spec, after=None,
                          lag_seconds=None, include_nulls=False)
    assert first.params == ()
    counted = d.count(first, cursor=spec, until=7)
    # The first run's statement had no parameter, so its % is doubled now that it has one.
    assert "LIKE 'a%%'" in counted.sql
    assert counted.sql.endswith('WHERE _rivet."ts" <= %s OR _rivet."ts" IS NULL')
    assert counted.params == (7,)
    later = d.incremental("SELECT 1", spec, after=3, lag_seconds=None, include_nulls=True)
    assert d.count(later, cursor=spec, until=9).params == (3, 9)


def test_a_missing_piece_is_a_plan_rejection_not_a_traceback():
    d = QmarkDialect()
    with pytest.raises(DialectMissing) as caught:
        d.incremental("SELECT 1", CursorSpec(column="u"), after=None, lag_seconds=60,
                      include_nulls=False)
    assert isinstance(caught.value, PlanRejected)
    assert "cursor_lag" in str(caught.value) and "'qmark'" in str(caught.value)
    with pytest.raises(DialectMissing):
        d.key_histogram("SELECT 1", "day", origin=dt.date(2024, 1, 1), width=7, by_days=True)
    lag = ClockDialect().incremental("SELECT 1", CursorSpec(column="u"), after=None,
                                     lag_seconds=60, include_nulls=False)
    assert "<= datetime('now', ?)" in lag.sql and lag.params == ("-60 seconds",)


@attrs.frozen
class NoOptions:
    pass


class ThinSource:
    """A source plugin whose dialect has none of the optional pieces."""

    @hookimpl
    def rivet_sources(self):
        return [SourceSpec(name="thin", config_cls=NoOptions, factory=lambda c, x: None,
                           dialect=QmarkDialect())]


def plan_of(tmp_path, export_keys):
    registry = build_registry(extra=[("thin-plugin", ThinSource())])
    path = tmp_path / "rivet.toml"
    path.write_text(textwrap.dedent(f"""
        [source]
        type = "thin"

        [[exports]]
        name = "t"
        format = "csv"
        {export_keys}
        [exports.destination]
        type = "local"
        path = "out"
        """))
    return build_plan(load_config(path, registry), registry)


@pytest.mark.parametrize(("keys", "key", "piece"), [
    ('query = "SELECT 1"\nmode = "incremental"\ncursor_column = "u"\ncursor_lag = "5m"',
     "cursor_lag", "the server's current time"),
    ('table = "t"\nmode = "chunked"', "chunk_column", "a table's primary key"),
    ('query = "SELECT 1"\nmode = "chunked"\nchunk_column = "d"\nchunk_by_days = 7',
     "chunk_by_days", "whole days between two dates"),
])
def test_the_planner_rejects_a_mode_needing_a_piece_the_dialect_lacks(tmp_path, keys, key,
                                                                       piece):
    plan = plan_of(tmp_path, keys)
    (diag,) = plan.rejected()
    assert diag.rule == "dialect-lacks-piece"
    assert diag.toml_path == f"exports[0].{key}"
    assert piece in diag.message and "'thin'" in diag.message and "'qmark'" in diag.message
    assert diag.origin == "thin-plugin"


def test_modes_that_need_no_piece_plan_cleanly_on_a_standard_dialect(tmp_path):
    for keys in ('query = "SELECT 1"\nmode = "incremental"\ncursor_column = "u"',
                 'query = "SELECT 1"\nmode = "chunked"\nchunk_column = "id"',
                 'query = "SELECT 1"\nmode = "time_window"\ntime_column = "t"\n'
                 'days_window = 2',
                 'table = "t"'):
        assert plan_of(tmp_path, keys).rejected() == [], keys


def test_an_unknown_mode_is_a_config_error_with_a_suggestion(rivet_project):
    rivet_project.write_config("""
        [source]
        type = "postgres"
        url = "postgresql://postgres@127.0.0.1:1/x"
        [[exports]]
        name = "t"
        query = "SELECT 1"
        format = "csv"
        mode = "incremantal"
        [exports.destination]
        type = "local"
        path = "out"
        """)
    outcome = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert "exports[0].mode: must be one of 'full', 'incremental'" in outcome.err
    assert "incremental" in outcome.err.split("incremantal")[-1]


def test_query_is_importable_from_the_dialect_and_the_backends():
    from rivet_core.backends import Query as FromBackends

    assert FromBackends is Query


def test_the_mode_names_plugins_declare_are_the_modes_the_runner_has():
    """``SourceSpec.modes`` is checked against :data:`rivet_core.specs.MODES` when plugins
    register (the registry sits below the runner); the two lists must not drift."""
    from rivet_core.runner.modes import MODES as RUNNER_MODES
    from rivet_core.specs import MODES as DECLARABLE

    assert set(RUNNER_MODES) == set(DECLARABLE)
