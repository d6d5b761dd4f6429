"""Quality gates: the ``[exports.quality]`` table (shapes, config errors, schema checks) and
the engine (every gate passing and failing, severities, threads, forks, exact uniqueness in
bounded memory). ``RIVET_QUALITY_BENCH=1`` also measures observe() over 10M rows."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rivet_core.config.converter import flatten, make_converter
from rivet_core.config.quality import QualityConfig, check_quality_config, gate_columns
from rivet_core.errors import PlanRejected
from rivet_core.quality import GateResult, QualityCheck, schema_problems
from rivet_core.quality_unique import KeySet, MemoryBudget
from rivet_core.rowhash import hash_columns

STARTED = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
MIX = pa.scalar(0x9E3779B97F4A7C15, pa.uint64())


def config(**raw: Any) -> QualityConfig:
    converter = make_converter()
    return converter.structure(raw, QualityConfig)


def structure_errors(**raw: Any) -> list[tuple[str, str, str | None]]:
    converter = make_converter()
    with pytest.raises(Exception) as caught:
        converter.structure(raw, QualityConfig)
    return flatten(caught.value, "exports[0].quality")


def config_issues(**raw: Any) -> list[tuple[str, str]]:
    issues: list[tuple[str, str]] = []
    check_quality_config(config(**raw), "exports[0].quality",
                         lambda path, message, hint=None: issues.append((path, message)))
    return issues


def run(quality: QualityConfig | dict[str, Any], *batches: pa.RecordBatch,
        schema: pa.Schema | None = None, **kwargs: Any) -> dict[str, GateResult]:
    if isinstance(quality, dict):
        quality = config(**quality)
    schema = schema if schema is not None else batches[0].schema
    with QualityCheck(quality, schema, started_at=STARTED, **kwargs) as check:
        for part in batches:
            check.observe(part)
        return {result.gate: result for result in check.results()}


def batch(**columns: Any) -> pa.RecordBatch:
    return pa.record_batch({name: values if isinstance(values, pa.Array) else pa.array(values)
                            for name, values in columns.items()})


def scrambled(n: int) -> pa.Array:
    """``n`` distinct int64 values in no order (1..n times an odd constant, wrapping)."""
    ids = pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.uint64()), n))
    return pc.multiply(ids, MIX).view(pa.int64())


# ---------------------------------------------------------------------------------- config


def test_every_gate_takes_its_plain_value_or_a_table_with_severity():
    quality = config(
        severity="warn",
        row_count_min=1,
        row_count_max={"value": 10, "severity": "fail"},
        null_ratio_max={"email": 0.05, "customer_id": {"value": 0, "severity": "fail"}},
        unique_columns=["id", ["order_id", "line_no"], {"columns": ["sku"], "severity": "fail"}],
        bounds={"amount": {"min": 0, "max": 1e9}, "created_at": {"min": "2000-01-01"}},
        freshness={"column": "updated_at", "max_age": "26h"},
    )
    assert quality.row_count_min is not None and quality.row_count_min.value == 1
    assert quality.row_count_min.severity is None
    assert quality.row_count_max is not None and quality.row_count_max.severity == "fail"
    assert quality.null_ratio_max["customer_id"].value == 0.0
    assert [key.columns for key in quality.unique_columns] == [
        ["id"], ["order_id", "line_no"], ["sku"]]
    assert quality.bounds["amount"].max == 1e9
    assert quality.freshness is not None and quality.freshness.max_age == "26h"
    assert quality.has_fail_gates()
    assert not config(severity="warn", row_count_min=1).has_fail_gates()
    assert config(severity="warn", row_count_min={"value": 1, "severity": "fail"}
                  ).has_fail_gates()


@pytest.mark.parametrize(("raw", "path", "fragment"), [
    ({"row_count_min": "1"}, "exports[0].quality.row_count_min",
     "expected an integer or a table"),
    ({"row_count_min": True}, "exports[0].quality.row_count_min",
     "expected an integer or a table"),
    ({"row_count_min": 1.5}, "exports[0].quality.row_count_min",
     "expected an integer or a table"),
    ({"row_count_max": {"value": 1, "sev": "warn"}}, "exports[0].quality.row_count_max.sev",
     "unknown key"),
    ({"null_ratio_max": {"email": "5%"}}, "exports[0].quality.null_ratio_max.email",
     "expected a number or a table"),
    ({"unique_columns": [1]}, "exports[0].quality.unique_columns[0]",
     "expected a column name, an array of names or a table"),
    ({"unique_columns": [["a", 2]]}, "exports[0].quality.unique_columns[0][1]",
     "expected a string"),
    ({"severity": "error"}, "exports[0].quality.severity", "must be one of 'fail', 'warn'"),
    ({"bounds": {"amount": {"minimum": 0}}}, "exports[0].quality.bounds.amount.minimum",
     "unknown key"),
    ({"freshness": {"column": "t"}}, "exports[0].quality.freshness.max_age",
     "required field missing"),
    ({"row_count": 1}, "exports[0].quality.row_count", "unknown key"),
])
def test_a_malformed_table_is_reported_at_its_key(raw, path, fragment):
    errors = structure_errors(**raw)
    assert any(where == path and fragment in message for where, message, _ in errors), errors


@pytest.mark.parametrize(("raw", "path", "fragment"), [
    ({}, "exports[0].quality", "names no gate"),
    ({"row_count_min": -1}, "exports[0].quality.row_count_min", "at least 0"),
    ({"row_count_min": 5, "row_count_max": 3}, "exports[0].quality.row_count_max",
     "at least row_count_min (5)"),
    ({"null_ratio_max": {"email": 1.5}}, "exports[0].quality.null_ratio_max.email",
     "ratio from 0 to 1"),
    ({"null_ratio_max": {"email": -0.1}}, "exports[0].quality.null_ratio_max.email",
     "ratio from 0 to 1"),
    ({"null_ratio_max": {"email": float("nan")}}, "exports[0].quality.null_ratio_max.email",
     "ratio from 0 to 1"),
    ({"unique_columns": [[]]}, "exports[0].quality.unique_columns[0]", "names no column"),
    ({"unique_columns": [{"columns": []}]}, "exports[0].quality.unique_columns[0]",
     "names no column"),
    ({"unique_columns": [["a", "a"]]}, "exports[0].quality.unique_columns[0]",
     "'a' more than once"),
    ({"unique_columns": [["a", "b"], ["b", "a"]]}, "exports[0].quality.unique_columns[1]",
     "repeats the key of unique_columns[0]"),
    ({"bounds": {"x": {}}}, "exports[0].quality.bounds.x", "neither min nor max"),
    ({"bounds": {"x": {"min": 10, "max": 1}}}, "exports[0].quality.bounds.x",
     "min (10) is greater than max (1)"),
    ({"bounds": {"x": {"min": "2024-02-01", "max": dt.date(2024, 1, 1)}}},
     "exports[0].quality.bounds.x", "greater than max"),
    ({"bounds": {"x": {"min": 0, "max": "2024-01-01"}}}, "exports[0].quality.bounds.x",
     "both must be numbers or both dates/timestamps"),
    ({"bounds": {"x": {"min": "soon"}}}, "exports[0].quality.bounds.x.min",
     "neither a number nor an ISO 8601 date"),
    ({"bounds": {"x": {"max": True}}}, "exports[0].quality.bounds.x.max",
     "must be a number, a date, a datetime or a string"),
    ({"bounds": {"x": {"max": float("inf")}}}, "exports[0].quality.bounds.x.max",
     "finite number"),
    ({"bounds": {"x": {"max": [1]}}}, "exports[0].quality.bounds.x.max", "got an array"),
    ({"bounds": {"x": {"max": dt.time(12, 0)}}}, "exports[0].quality.bounds.x.max",
     "got a time"),
    ({"bounds": {"x": {"min": "0001-01-01T00:00:00+01:00"}}}, "exports[0].quality.bounds.x.min",
     "neither a number nor an ISO 8601 date"),
    ({"freshness": {"column": "t", "max_age": "26x"}}, "exports[0].quality.freshness.max_age",
     "invalid duration '26x'"),
    ({"freshness": {"column": "t", "max_age": 0}}, "exports[0].quality.freshness.max_age",
     "longer than zero"),
    ({"freshness": {"column": "", "max_age": "1h"}}, "exports[0].quality.freshness.column",
     "must name a column"),
])
def test_config_problems_are_reported_at_their_key(raw, path, fragment):
    issues = config_issues(**raw)
    assert any(where == path and fragment in message for where, message in issues), issues


def test_a_sound_table_has_no_config_problem():
    assert config_issues(row_count_min=0, row_count_max=0, null_ratio_max={"a": 0, "b": 1},
                         unique_columns=["a", ["a", "b"]],
                         bounds={"a": {"min": "0.01", "max": 5},
                                 "t": {"min": "2000-01-01", "max": "2100-01-01T00:00:00Z"}},
                         freshness={"column": "t", "max_age": 3600}) == []


def test_gate_columns_names_every_column_with_the_keys_naming_it():
    quality = config(null_ratio_max={"email": 0.1}, unique_columns=["id", ["id", "email"]],
                     bounds={"amount": {"min": 0}},
                     freshness={"column": "updated at", "max_age": "1h"})
    assert gate_columns(quality) == {
        "email": ["null_ratio_max.email", "unique_columns[1]"],
        "id": ["unique_columns[0]", "unique_columns[1]"],
        "amount": ["bounds.amount"],
        "updated at": ["freshness.column"],
    }


SCHEMA = pa.schema([("id", pa.int64()), ("email", pa.string()), ("amount", pa.decimal128(12, 2)),
                    ("created", pa.date32()), ("tags", pa.map_(pa.string(), pa.string())),
                    ("updated_at", pa.timestamp("us", tz="UTC"))])


def test_schema_problems_name_unknown_columns_and_types_that_do_not_fit():
    quality = config(null_ratio_max={"emial": 0.1}, unique_columns=[["id", "tags"]],
                     bounds={"email": {"min": 0}, "amount": {"min": "2000-01-01"},
                             "created": {"min": 5}, "updated_at": {"max": 3}},
                     freshness={"column": "amount", "max_age": "1h"})
    problems = {key: (message, hint) for key, message, hint in schema_problems(quality, SCHEMA)}
    assert problems["null_ratio_max.emial"] == ("no column 'emial' in the query's result",
                                                "did you mean 'email'?")
    assert "has no row-hash encoding" in problems["unique_columns[0]"][0]
    assert "bounds apply to numeric, date and timestamp" in problems["bounds.email"][0]
    assert "'2000-01-01' is not a number" in problems["bounds.amount.min"][0]
    assert "must be a date" in problems["bounds.created.min"][0]
    assert "must be a date or timestamp" in problems["bounds.updated_at.max"][0]
    assert "needs a date or timestamp column" in problems["freshness.column"][0]
    with pytest.raises(PlanRejected, match=r"quality\.null_ratio_max\.emial: no column") as caught:
        QualityCheck(quality, SCHEMA, started_at=STARTED)
    assert caught.value.hint == "did you mean 'email'?"


def test_a_fitting_config_has_no_schema_problem():
    quality = config(null_ratio_max={"tags": 0.1}, unique_columns=["id", ["id", "email"]],
                     bounds={"amount": {"min": "0.01"}, "created": {"min": "2000-01-01"},
                             "updated_at": {"min": dt.date(2000, 1, 1)}},
                     freshness={"column": "created", "max_age": "2d"})
    assert schema_problems(quality, SCHEMA) == []


def test_a_naive_start_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        QualityCheck(config(row_count_min=1), SCHEMA, started_at=dt.datetime(2024, 1, 1))


# ---------------------------------------------------------------------------- row count


@pytest.mark.parametrize(("rows", "passed"), [(0, False), (2, False), (3, True), (4, True)])
def test_row_count_min_is_inclusive_and_checked_on_zero_rows(rows, passed):
    result = run({"row_count_min": 3}, batch(id=pa.array(range(rows), pa.int64())))
    gate = result["row_count_min"]
    assert (gate.passed, gate.observed, gate.expected) == (passed, rows, ">= 3")
    assert f"row count {rows}" in gate.message and "minimum 3" in gate.message


@pytest.mark.parametrize(("rows", "passed"), [(2, True), (3, True), (4, False)])
def test_row_count_max_is_inclusive(rows, passed):
    result = run({"row_count_max": 3}, *[batch(id=[1])] * rows, schema=pa.schema(
        [("id", pa.int64())]))
    gate = result["row_count_max"]
    assert (gate.passed, gate.observed) == (passed, rows)
    assert ("exceeds the maximum 3" in gate.message) is not passed


def test_with_no_stream_opened_every_gate_sees_zero_rows():
    quality = config(row_count_min=1, null_ratio_max={"a": 0}, unique_columns=["a"],
                     bounds={"a": {"min": 0}}, freshness={"column": "t", "max_age": "1h"})
    with QualityCheck(quality, None, started_at=STARTED) as check:
        with pytest.raises(RuntimeError, match="without a schema"):
            check.observe(batch(a=[1]))
        results = {r.gate: r for r in check.results()}
    assert not results["row_count_min"].passed
    assert results["null_ratio_max[a]"].passed
    assert results["unique[a]"].passed
    assert results["bounds[a]"].passed
    assert not results["freshness[t]"].passed


# ---------------------------------------------------------------------------- severities


def test_each_gate_takes_the_table_severity_unless_it_sets_its_own():
    results = run({"severity": "warn", "row_count_min": 5,
                   "row_count_max": {"value": 0, "severity": "fail"}}, batch(id=[1]))
    low, high = results["row_count_min"], results["row_count_max"]
    assert (low.severity, low.passed, low.blocking) == ("warn", False, False)
    assert (high.severity, high.passed, high.blocking) == ("fail", False, True)


def test_results_are_json_and_repeatable():
    quality = config(row_count_min=1, null_ratio_max={"a": 0.5}, unique_columns=["a", "s"],
                     bounds={"a": {"min": 0}, "f": {"max": 1.5}, "d": {"min": "1.00"}},
                     freshness={"column": "t", "max_age": "1d"})
    data = batch(a=[1, 1], s=["x", "x"], f=[1.0, float("nan")],
                 d=pa.array([decimal.Decimal("0.50"), None], pa.decimal128(5, 2)),
                 t=pa.array([STARTED, None], pa.timestamp("ns", tz="UTC")))
    with QualityCheck(quality, data.schema, started_at=STARTED) as check:
        check.observe(data)
        first = check.results()
        assert check.results() == first
        with pytest.raises(RuntimeError, match="after results"):
            check.observe(data)
    text = json.dumps([result.as_dict() for result in first])
    assert set(json.loads(text)[0]) == {"gate", "severity", "passed", "observed", "expected",
                                        "message"}


# ---------------------------------------------------------------------------- null ratio


def test_null_ratio_fails_above_the_maximum_and_passes_at_it():
    data = batch(email=["a", None, None, "b"], cid=[1, 2, 3, None])
    results = run({"null_ratio_max": {"email": 0.5, "cid": 0.2}}, data)
    email, cid = results["null_ratio_max[email]"], results["null_ratio_max[cid]"]
    assert (email.passed, email.observed, email.expected) == (True, 0.5, "<= 0.5")
    assert (cid.passed, cid.observed) == (False, 0.25)
    assert cid.message == ("column 'cid': null ratio 0.25 (1 of 4 rows) exceeds the maximum "
                           "0.2")


def test_null_ratio_passes_on_zero_rows_with_no_observed_ratio():
    result = run({"null_ratio_max": {"email": 0}}, batch(email=pa.array([], pa.string())))
    gate = result["null_ratio_max[email]"]
    assert (gate.passed, gate.observed) == (True, None)
    assert "no rows" in gate.message


# ---------------------------------------------------------------------------- uniqueness


def test_a_unique_integer_key_passes_and_a_duplicate_is_shown():
    assert run({"unique_columns": ["id"]}, batch(id=[3, 1, 2]))["unique[id]"].passed
    gate = run({"unique_columns": ["id"]}, batch(id=[3, 1, 2]), batch(id=[7, 2, 2]))["unique[id]"]
    assert not gate.passed
    assert gate.observed == {"duplicates": 2, "rows": 6, "null_key_rows": 0, "example": 2,
                             "exact": True}
    assert gate.message == "column 'id': 2 duplicate keys among 6 rows, e.g. 2 appears more " \
                           "than once"


def test_nulls_in_a_key_never_collide_and_are_counted():
    gate = run({"unique_columns": ["id"]}, batch(id=[1, None, None, 2]))["unique[id]"]
    assert gate.passed
    assert gate.observed["null_key_rows"] == 2 and gate.observed["rows"] == 2
    assert "2 rows with a NULL in the key skipped" in gate.message


def test_a_string_key_is_hashed_and_an_empty_string_is_not_a_null():
    passing = run({"unique_columns": ["s"]}, batch(s=["", None, None, "a", "A"]))["unique[s]"]
    assert passing.passed and passing.observed["exact"] is False
    failing = run({"unique_columns": ["s"]}, batch(s=["", "a", None]),
                  batch(s=["b", ""]))["unique[s]"]
    assert not failing.passed and failing.observed["duplicates"] == 1
    assert failing.observed["example"] is None
    assert "compared by 64-bit hash" in failing.message


def test_a_composite_key_is_unique_when_no_two_rows_share_every_column():
    data = batch(order_id=[1, 1, 2, 2, 3], line_no=[1, 2, 1, 2, None])
    gate = run({"unique_columns": [["order_id", "line_no"]]}, data)["unique[order_id,line_no]"]
    assert gate.passed and gate.observed["null_key_rows"] == 1
    again = batch(order_id=[2, 3, 3], line_no=[1, None, None])
    gate = run({"unique_columns": [["order_id", "line_no"]]}, data,
               again)["unique[order_id,line_no]"]
    assert not gate.passed and gate.observed["duplicates"] == 1
    assert gate.observed["null_key_rows"] == 3
    assert gate.message.startswith("columns (order_id, line_no): 1 duplicate key among 5 rows")


def test_a_composite_key_tells_its_columns_apart():
    # (1, 12) and (11, 2) must not collide the way "1"+"12" and "11"+"2" would.
    data = batch(a=["1", "11"], b=["12", "2"])
    assert run({"unique_columns": [["a", "b"]]}, data)["unique[a,b]"].passed


@pytest.mark.parametrize(("typ", "values", "example"), [
    (pa.date32(), [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 1)],
     "2024-01-01"),
    (pa.timestamp("us", tz="Europe/Paris"),
     [dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)],
     "2024-01-01T00:00:00+00:00"),
    (pa.uint64(), [2**64 - 1, 0, 2**64 - 1], 2**64 - 1),
    (pa.int8(), [-1, 5, -1], -1),
])
def test_temporal_and_integer_keys_are_compared_by_value(typ, values, example):
    gate = run({"unique_columns": ["k"]}, batch(k=pa.array(values, typ)))["unique[k]"]
    assert not gate.passed
    assert gate.observed["exact"] is True and gate.observed["example"] == example


def test_nanosecond_keys_are_exact():
    data = batch(k=pa.array([1, 2, 1_000], pa.timestamp("ns")))
    assert run({"unique_columns": ["k"]}, data)["unique[k]"].passed


def test_batches_in_key_order_need_no_sort_but_overlapping_ones_are_compared():
    ordered = [batch(id=pa.array(range(i, i + 10), pa.int64())) for i in (20, 0, 10)]
    assert run({"unique_columns": ["id"]}, *ordered)["unique[id]"].passed
    overlapping = [batch(id=pa.array(range(0, 10), pa.int64())),
                   batch(id=pa.array(range(9, 19), pa.int64()))]
    gate = run({"unique_columns": ["id"]}, *overlapping)["unique[id]"]
    assert not gate.passed and gate.observed["example"] == 9


def spill_schema() -> pa.Schema:
    return pa.schema([("id", pa.int64())])


def test_two_million_keys_spill_to_disk_and_stay_exact(tmp_path):
    n, budget, rows = 2_000_000, 4 << 20, 50_000
    ids = scrambled(n)
    planted = pa.concat_arrays([ids, ids.slice(123_456, 1)])
    keys = KeySet(["id"], spill_schema(), budget=MemoryBudget(budget), spill_dir=tmp_path)
    for offset in range(0, len(planted), rows):
        keys.add(pa.record_batch({"id": planted.slice(offset, rows)}))
    found = keys.count()
    # Memory never held more than the budget and the batch that tipped it over.
    assert found.spilled_bytes > 0 and found.peak_bytes <= budget + 8 * rows
    assert found.rows == n + 1 and found.duplicates == 1
    assert found.example is not None and found.example.as_py() == ids[123_456].as_py()
    keys.close()
    assert list(tmp_path.iterdir()) == []

    clean = KeySet(["id"], spill_schema(), budget=MemoryBudget(budget), spill_dir=tmp_path)
    for offset in range(0, n, rows):
        clean.add(pa.record_batch({"id": ids.slice(offset, rows)}))
    found = clean.count()
    assert found.spilled_bytes > 0 and found.duplicates == 0 and found.rows == n
    clean.close()
    assert list(tmp_path.iterdir()) == []


def test_hashed_keys_spill_and_stay_exact(tmp_path):
    strings = pc.cast(scrambled(200_000), pa.string())
    planted = pa.concat_arrays([strings, strings.slice(7, 1), strings.slice(99_999, 1)])
    gate = run({"unique_columns": ["s"]}, *[pa.record_batch({"s": planted.slice(i, 10_000)})
                                            for i in range(0, len(planted), 10_000)],
               spill_dir=tmp_path, memory_budget=64 << 10)["unique[s]"]
    assert gate.observed["duplicates"] == 2 and gate.observed["rows"] == 200_002
    assert list(tmp_path.iterdir()) == []


def test_one_key_repeated_beyond_the_budget_is_counted(tmp_path):
    # No split can shrink the partition: every level down to all 64 bits holds every key.
    keys = KeySet(["id"], spill_schema(), budget=MemoryBudget(1), spill_dir=tmp_path)
    for _ in range(20):
        keys.add(pa.record_batch({"id": pa.repeat(pa.scalar(42, pa.int64()), 10_000)}))
    found = keys.count()
    assert found.spilled_bytes > 0
    assert (found.duplicates, found.example.as_py() if found.example else None) == (199_999, 42)
    keys.close()


def test_forks_merge_their_spill_files(tmp_path):
    budget = MemoryBudget(1 << 20)
    root = KeySet(["id"], spill_schema(), budget=budget, spill_dir=tmp_path)
    ids = scrambled(400_000)
    forks = [root.fork(), root.fork()]
    for fork, part in zip(forks, (ids.slice(0, 200_001), ids.slice(200_000)), strict=True):
        for offset in range(0, len(part), 50_000):
            fork.add(pa.record_batch({"id": part.slice(offset, 50_000)}))
        root.merge(fork)
        fork.close()
    found = root.count()
    assert found.spilled_bytes > 0 and found.rows == 400_001 and found.duplicates == 1
    assert found.example is not None and found.example.as_py() == ids[200_000].as_py()
    root.close()
    assert list(tmp_path.iterdir()) == []


def test_observe_is_safe_from_several_threads():
    n, workers = 400_000, 4
    ids = scrambled(n)
    data = pa.record_batch({"id": ids, "v": pc.if_else(pc.equal(pc.bit_wise_and(
        ids, 7), 0), pa.scalar(None, pa.int64()), ids)})
    quality = config(row_count_min=n, null_ratio_max={"v": 1}, unique_columns=["id"],
                     bounds={"id": {"min": -(2**63)}})
    with QualityCheck(quality, data.schema, started_at=STARTED, memory_budget=1 << 20) as check:
        def work(part: int) -> None:
            for offset in range(part * 5_000, n, workers * 5_000):
                check.observe(data.slice(offset, 5_000))

        threads = [threading.Thread(target=work, args=(part,)) for part in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        check.observe(data.slice(n // 2, 1))  # one duplicate
        results = {r.gate: r for r in check.results()}
    expected_nulls = pc.sum(pc.is_null(data.column("v"))).as_py()
    assert results["row_count_min"].observed == n + 1
    assert results["null_ratio_max[v]"].observed == pytest.approx(
        (expected_nulls + (data.column("v")[n // 2].as_py() is None)) / (n + 1))
    assert results["unique[id]"].observed["duplicates"] == 1
    assert results["bounds[id]"].observed == {"min": pc.min(ids).as_py(),
                                              "max": pc.max(ids).as_py()}


def test_a_fork_counts_only_once_merged_and_a_discarded_fork_never(tmp_path):
    quality = config(row_count_max=100, unique_columns=["id"])
    schema = spill_schema()
    with QualityCheck(quality, schema, started_at=STARTED, spill_dir=tmp_path,
                      memory_budget=1 << 10) as run_check:
        failed = run_check.fork()
        failed.observe(batch(id=pa.array(range(50), pa.int64())))
        failed.close()
        for start in (0, 40):
            attempt = run_check.fork()
            attempt.observe(batch(id=pa.array(range(start, start + 41), pa.int64())))
            run_check.merge(attempt)
            attempt.close()
        results = {r.gate: r for r in run_check.results()}
        with pytest.raises(ValueError, match="only a fork"):
            run_check.merge(QualityCheck(quality, schema, started_at=STARTED))
    assert results["row_count_max"].observed == 82
    assert results["unique[id]"].observed["duplicates"] == 1
    assert results["unique[id]"].observed["example"] == 40
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- bounds


def test_integer_bounds_pass_within_and_fail_outside():
    quality = {"bounds": {"n": {"min": 0, "max": 10}}}
    gate = run(quality, batch(n=[0, 10, None]))["bounds[n]"]
    assert gate.passed and gate.observed == {"min": 0, "max": 10}
    assert gate.expected == ">= 0 and <= 10"
    gate = run(quality, batch(n=[-1, 5]), batch(n=[11]))["bounds[n]"]
    assert not gate.passed
    assert gate.message == ("column 'n': minimum -1 is below 0; maximum 11 is above 10 "
                            "(expected >= 0 and <= 10)")


def test_a_column_without_values_is_within_its_bounds():
    gate = run({"bounds": {"n": {"min": 0}}}, batch(n=pa.array([None], pa.int64())))["bounds[n]"]
    assert gate.passed and gate.observed == {"min": None, "max": None}


def test_decimal_bounds_compare_exactly():
    values = pa.array([decimal.Decimal("0.01"), decimal.Decimal("99.99")], pa.decimal128(6, 2))
    assert run({"bounds": {"d": {"min": "0.01", "max": 100}}}, batch(d=values))["bounds[d]"].passed
    gate = run({"bounds": {"d": {"min": "0.02"}}}, batch(d=values))["bounds[d]"]
    assert not gate.passed and gate.observed["min"] == "0.01"
    assert run({"bounds": {"d": {"max": 99.98}}}, batch(d=values))["bounds[d]"].passed is False
    # A float bound means the decimal written, not the binary float nearest it.
    assert run({"bounds": {"d": {"max": 99.99}}}, batch(d=values))["bounds[d]"].passed


def test_a_decimal_text_bound_on_a_float_column_means_the_nearest_float():
    assert run({"bounds": {"f": {"max": "0.1"}}}, batch(f=[0.1]))["bounds[f]"].passed


def test_float_nan_is_outside_every_bound():
    gate = run({"bounds": {"f": {"min": 0.0}}}, batch(f=[1.5, float("nan")]))["bounds[f]"]
    assert not gate.passed and gate.observed == {"min": 1.5, "max": 1.5, "nan": 1}
    assert "1 NaN value outside every bound" in gate.message


def test_date_bounds_accept_iso_text_and_toml_dates():
    values = pa.array([dt.date(2001, 1, 1), dt.date(2023, 12, 31)], pa.date32())
    assert run({"bounds": {"d": {"min": "2000-01-01", "max": dt.date(2024, 1, 1)}}},
               batch(d=values))["bounds[d]"].passed
    gate = run({"bounds": {"d": {"max": "2023-12-30"}}}, batch(d=values))["bounds[d]"]
    assert not gate.passed and gate.observed["max"] == "2023-12-31"


def test_zoned_timestamps_compare_as_utc_instants():
    paris = dt.timezone(dt.timedelta(hours=1))
    # 2024-01-01T00:30+01:00 is 2023-12-31T23:30Z.
    values = pa.array([dt.datetime(2024, 1, 1, 0, 30, tzinfo=paris)],
                      pa.timestamp("us", tz="Europe/Paris"))
    assert not run({"bounds": {"t": {"min": "2024-01-01"}}}, batch(t=values))["bounds[t]"].passed
    assert run({"bounds": {"t": {"min": "2024-01-01T00:00:00+01:00"}}},
               batch(t=values))["bounds[t]"].passed
    gate = run({"bounds": {"t": {"max": dt.datetime(2023, 12, 31, 23, 0, tzinfo=dt.UTC)}}},
               batch(t=values))["bounds[t]"]
    assert not gate.passed and gate.observed["max"] == "2023-12-31T23:30:00+00:00"


def test_naive_timestamps_and_coarse_units_compare_exactly():
    seconds = pa.array([dt.datetime(2024, 1, 1, 0, 0, 1)], pa.timestamp("s"))
    # min 00:00:00.5 rounds up to 00:00:01 on a seconds column: still inclusive.
    assert run({"bounds": {"t": {"min": "2024-01-01T00:00:00.5", "max": "2024-01-01T00:00:01"}}},
               batch(t=seconds))["bounds[t]"].passed
    assert not run({"bounds": {"t": {"max": "2024-01-01T00:00:00.999"}}},
                   batch(t=seconds))["bounds[t]"].passed
    nanos = pa.array([1_704_067_200_000_000_001], pa.timestamp("ns", tz="UTC"))
    gate = run({"bounds": {"t": {"max": "2024-01-01T00:00:00Z"}}}, batch(t=nanos))["bounds[t]"]
    assert not gate.passed
    assert gate.observed["max"] == "2024-01-01T00:00:00.000000001+00:00"


# ---------------------------------------------------------------------------- freshness


def fresh(max_age: str = "26h") -> dict[str, Any]:
    return {"freshness": {"column": "t", "max_age": max_age}}


def test_freshness_passes_when_the_newest_value_is_recent_enough():
    values = pa.array([STARTED - dt.timedelta(days=3), STARTED - dt.timedelta(hours=25), None],
                      pa.timestamp("us", tz="UTC"))
    gate = run(fresh(), batch(t=values))["freshness[t]"]
    assert gate.passed and gate.observed["age_seconds"] == 25 * 3600
    assert gate.message == ("column 't': newest value 2024-05-31T11:00:00+00:00 is "
                            "1d 1h old at the run's start, within the maximum 26h")


def test_freshness_fails_when_the_newest_value_is_too_old():
    values = pa.array([STARTED - dt.timedelta(hours=27)], pa.timestamp("ms"))
    gate = run(fresh(), batch(t=values))["freshness[t]"]
    assert not gate.passed and "1d 3h old" in gate.message and "older than" in gate.message


def test_freshness_of_a_date_counts_from_its_midnight():
    values = pa.array([dt.date(2024, 5, 31)], pa.date32())
    assert run(fresh("36h"), batch(t=values))["freshness[t]"].passed
    assert not run(fresh("35h"), batch(t=values))["freshness[t]"].passed


def test_a_value_from_the_future_is_fresh():
    values = pa.array([STARTED + dt.timedelta(minutes=5)], pa.timestamp("us", tz="UTC"))
    gate = run(fresh("1m"), batch(t=values))["freshness[t]"]
    assert gate.passed and "5m in the future" in gate.message


@pytest.mark.parametrize("values", [[], [None, None]])
def test_freshness_fails_without_a_value(values):
    gate = run(fresh(), batch(t=pa.array(values, pa.timestamp("us"))))["freshness[t]"]
    assert not gate.passed and gate.observed == {"newest": None, "age_seconds": None}
    assert "no non-NULL value" in gate.message


# ---------------------------------------------------------------------------- benchmark


@pytest.mark.skipif(os.environ.get("RIVET_QUALITY_BENCH") != "1",
                    reason="set RIVET_QUALITY_BENCH=1 to measure observe() over 10M rows")
@pytest.mark.parametrize("order", ["ascending", "random"])
@pytest.mark.parametrize("batch_rows", [10_000, 50_000])
def test_benchmark_observe_ten_million_narrow_rows(order, batch_rows, capsys):
    n = 10_000_000
    ids = pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n))
    if order == "random":  # 64-bit hashes of 1..n: distinct but for a 2.7e-6 chance
        ids = hash_columns(pa.record_batch({"id": ids}), ["id"]).view(pa.int64())
    sparse = pc.equal(pc.bit_wise_and(ids, 1023), 0)
    table = pa.table({
        "id": ids,
        "amount": pc.if_else(sparse, pa.scalar(None, pa.float64()),
                             pc.cast(ids, pa.float64(), safe=False)),
        "code": pc.cast(pc.bit_wise_and(ids, 4095), pa.string()),
        "updated_at": pc.add(pc.bit_wise_and(ids, 1 << 30),
                             1_717_200_000_000_000).view(pa.timestamp("us", tz="UTC")),
    })
    batches = table.to_batches(max_chunksize=batch_rows)
    quality = config(row_count_min=1, null_ratio_max={"amount": 0.01, "code": 0},
                     unique_columns=["id"], bounds={"id": {"min": -(2**63)}},
                     freshness={"column": "updated_at", "max_age": "3650d"})
    with QualityCheck(quality, table.schema, started_at=STARTED) as check:
        began = time.perf_counter()
        for part in batches:
            check.observe(part)
        observed = time.perf_counter() - began
        results = check.results()
        judged = time.perf_counter() - began - observed
        peak = check.key_memory_peak
    assert all(result.passed for result in results), [r.message for r in results]
    with capsys.disabled():
        print(f"\n{order} ids, {batch_rows:,}-row batches: observe {observed:.3f}s "
              f"({n / observed / 1e6:.1f}M rows/s), results {judged:.3f}s, "
              f"total {observed + judged:.3f}s; uniqueness peak {peak / 2**20:.1f} MiB")
