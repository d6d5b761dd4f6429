"""Pure logic of the modes: SQL shapes, cursor encoding, chunk planning."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from rivet_mysql.dialect import DIALECT as MYSQL
from rivet_postgres.dialect import DIALECT as POSTGRES

from rivet_core.dialect import CursorSpec
from rivet_core.runner import chunks
from rivet_core.runner import cursor as cursors
from rivet_core.runner.chunks import Bucket, KeyStats
from rivet_core.runner.modes.time_window import window_start

# --------------------------------------------------------------------------- SQL shapes


def test_incremental_first_run_takes_every_non_null_row_in_cursor_order():
    q = POSTGRES.incremental("SELECT * FROM t", CursorSpec(column="u"),
                             after=None, lag_seconds=None, include_nulls=False)
    assert q.sql == ('SELECT * FROM (SELECT * FROM t) AS _rivet WHERE _rivet."u" IS NOT NULL '
                     'ORDER BY _rivet."u"')
    assert q.params == ()


def test_incremental_binds_the_cursor_and_the_lag_never_splices_them():
    after = dt.datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC)
    q = MYSQL.incremental("SELECT 1", CursorSpec(column="u`x", fallback="c"),
                          after=after, lag_seconds=300, include_nulls=True)
    assert "COALESCE(_rivet.`u``x`, _rivet.`c`) > %s" in q.sql
    assert "UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND" in q.sql
    assert q.sql.endswith("IS NULL ORDER BY COALESCE(_rivet.`u``x`, _rivet.`c`)")
    # MySQL gets naive UTC datetimes and an integer count of microseconds.
    assert q.params == (dt.datetime(2024, 1, 1, 0, 0, 0, 123456), 300_000_000)


def test_window_start_is_utc_midnight_n_days_back():
    now = dt.datetime(2026, 11, 27, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    assert window_start(now, 2) == dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    q = POSTGRES.time_window("SELECT 1", "ts",
                             start=dt.datetime(2026, 11, 24, tzinfo=dt.UTC), unix=True)
    assert q.params == (int(dt.datetime(2026, 11, 24, tzinfo=dt.UTC).timestamp()),)


def test_chunk_query_is_half_open_and_has_a_null_key_form():
    q = POSTGRES.chunk("SELECT 1", "id", 10, 20, label="c")
    assert q.sql.endswith('WHERE _rivet."id" >= %s AND _rivet."id" < %s') and q.params == (10, 20)
    assert POSTGRES.chunk("SELECT 1", "id", None, None, label="c").sql.endswith(
        'WHERE _rivet."id" IS NULL')


@pytest.mark.parametrize(("name", "integer"), [("bigint", True), ("int(11) unsigned", True),
                                               ("integer", True), ("numeric(10,0)", False),
                                               ("uuid", False), ("SMALLINT", True), ("int2", True)])
def test_integer_type_names(name, integer):
    dialect = MYSQL if "unsigned" in name else POSTGRES
    assert dialect.is_integer_type(name) is integer

# -------------------------------------------------------------------------------- cursor


@pytest.mark.parametrize("value", [
    42, -(2**63), decimal.Decimal("12345678901234567890.000000001"), 0.1, "abc",
    dt.date(2024, 2, 29), dt.datetime(2024, 1, 1, 0, 0, 0, 1),
    dt.datetime(2024, 1, 1, 23, 59, 59, 999999, tzinfo=dt.UTC),
])
def test_cursor_round_trips_with_full_precision_and_type(value):
    back = cursors.decode(cursors.encode(value))
    assert back == value and type(back) is type(value)


def test_cursor_keeps_the_instant_of_an_offset_timestamp():
    value = dt.datetime(2024, 1, 1, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert cursors.decode(cursors.encode(value)) == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_boolean_cannot_be_a_cursor():
    with pytest.raises(TypeError):
        cursors.encode(True)

# -------------------------------------------------------------------------------- chunks


def no_histogram(origin, width):
    raise AssertionError("dense keys must not need a histogram")


def test_dense_keys_make_contiguous_half_open_windows():
    plan = chunks.plan_integer_chunks(KeyStats(lo=1, hi=1000, count=1000, nulls=0),
                                      no_histogram, chunk_size=300, chunk_count=None)
    assert [(c.lo, c.hi) for c in plan] == [(1, 301), (301, 601), (601, 901), (901, 1001)]


def test_sparse_keys_do_not_make_thousands_of_empty_chunks():
    # 100 rows at 1..50 and 10**9..10**9+49: 10**7 windows of 100 keys, 2 of them non-empty.
    def histogram(origin, width):
        assert (origin, width) == (1, 100)
        return [Bucket(index=0, n=50, lo=1, hi=50),
                Bucket(index=9_999_999, n=50, lo=1_000_000_000, hi=1_000_000_049)]

    plan = chunks.plan_integer_chunks(KeyStats(lo=1, hi=1_000_000_049, count=100, nulls=0),
                                      histogram, chunk_size=100, chunk_count=None)
    assert [(c.lo, c.hi, c.expected_rows) for c in plan] == [(1, 1_000_000_050, 100)]
    many = chunks.merge_buckets(
        [Bucket(index=i, n=60, lo=i * 1000, hi=i * 1000 + 5) for i in range(5)],
        target_rows=100, first=0, end=4006)
    assert [(c.lo, c.hi) for c in many] == [(0, 1000), (1000, 2000), (2000, 3000),
                                            (3000, 4000), (4000, 4006)]


def test_null_keys_get_their_own_chunk():
    plan = chunks.plan_integer_chunks(KeyStats(lo=1, hi=10, count=10, nulls=3), no_histogram,
                                      chunk_size=100, chunk_count=None)
    assert plan[-1].null_keys and plan[-1].expected_rows == 3 and len(plan) == 2
    assert chunks.plan_integer_chunks(KeyStats(lo=None, hi=None, count=0, nulls=2),
                                      no_histogram, chunk_size=5, chunk_count=None)[0].null_keys


def test_chunk_count_splits_the_range_evenly():
    plan = chunks.plan_integer_chunks(KeyStats(lo=0, hi=99, count=100, nulls=0), no_histogram,
                                      chunk_size=None, chunk_count=3)
    assert [(c.lo, c.hi) for c in plan] == [(0, 34), (34, 68), (68, 100)]


def test_day_chunks_cover_the_dates_in_windows():
    stats = KeyStats(lo=dt.datetime(2024, 1, 1, 12), hi=dt.date(2024, 1, 7), count=9, nulls=0)
    plan = chunks.plan_day_chunks(stats, no_histogram, days=3)
    assert [(c.lo, c.hi) for c in plan] == [
        (dt.date(2024, 1, 1), dt.date(2024, 1, 4)), (dt.date(2024, 1, 4), dt.date(2024, 1, 7)),
        (dt.date(2024, 1, 7), dt.date(2024, 1, 8))]


def test_plan_hash_changes_with_anything_that_moves_boundaries():
    base = dict(sql="SELECT 1", chunk_column="id", chunk_size=10, chunk_count=None,
                chunk_by_days=None)
    assert chunks.plan_hash(**base) == chunks.plan_hash(**base)
    for key, value in [("sql", "SELECT 2"), ("chunk_column", "k"), ("chunk_size", 11)]:
        assert chunks.plan_hash(**{**base, key: value}) != chunks.plan_hash(**base)


def test_retry_policy_bounds_attempts_and_spares_timeouts_unless_asked():
    from rivet_core.errors import SourceError, TransientSourceError
    from rivet_core.runner.retry import RetryPolicy

    policy = RetryPolicy(max_retries=2, backoff_ms=100)
    lost = TransientSourceError("connection lost")
    timeout = TransientSourceError("statement timeout")
    timeout.reason = "timeout"
    assert policy.should_retry(lost, 0) and policy.should_retry(lost, 1)
    assert not policy.should_retry(lost, 2)
    assert not policy.should_retry(SourceError("syntax error"), 0)
    assert not policy.should_retry(timeout, 0)
    assert RetryPolicy(max_retries=2, backoff_ms=100, retry_timeouts=True).should_retry(
        timeout, 0)
    delays = [policy.delay(n) for n in (1, 2, 3)]
    assert 0.05 <= delays[0] <= 0.1 and 0.1 <= delays[1] <= 0.2 and 0.2 <= delays[2] <= 0.4


def test_chunk_size_from_catalog_targets_bytes_per_chunk_within_bounds():
    from rivet_core.runner import chunks

    # 10M rows of 160 bytes: ~209k rows make 32 MiB.
    assert chunks.size_from_catalog(10_000_000, 1_600_000_000) == 209_000
    # 2 KB rows: fewer keys per chunk; tiny rows: capped; huge rows: floored.
    assert chunks.size_from_catalog(2_000_000, 4_300_000_000) == 15_000
    assert chunks.size_from_catalog(10**9, 10**9) == chunks.MAX_CATALOG_CHUNK
    assert chunks.size_from_catalog(1000, 10**12) == chunks.MIN_CATALOG_CHUNK
    assert chunks.size_from_catalog(None, 100) is None
    assert chunks.size_from_catalog(0, 100) is None
    assert chunks.size_from_catalog(100, None) is None
