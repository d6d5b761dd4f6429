"""Schema and shape drift (rivet_core.drift): pure functions over schemas and batches."""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pytest

from rivet_core.drift import (
    MAX_LISTED,
    ColumnShape,
    SchemaDrift,
    WidthTracker,
    columns,
    compare,
    manifest_schema,
    schema_from_record,
    schema_record,
    shape_drift,
)
from rivet_core.runner.manifest import encode, schema_json
from rivet_core.validation import parse_json


def field(name: str, kind: pa.DataType, *, nullable: bool = True,
          source_type: str | None = None) -> pa.Field:
    metadata = {b"rivet.source_type": source_type.encode()} if source_type else None
    return pa.field(name, kind, nullable=nullable, metadata=metadata)


SCHEMA = pa.schema([
    field("id", pa.int64(), nullable=False, source_type="bigint"),
    field("amount", pa.decimal128(10, 2), source_type="numeric(10,2)"),
    field("seen_at", pa.timestamp("us", tz="UTC"), source_type="timestamptz"),
    field("name", pa.string()),
])


# ------------------------------------------------------------------- records


def test_record_is_the_manifest_schema_key_for_key():
    assert schema_record(SCHEMA) == schema_json(SCHEMA)


def test_record_names_precision_scale_unit_and_zone():
    types = {c["name"]: c["type"] for c in schema_record(SCHEMA)}
    assert types["amount"] == "decimal128(10, 2)"
    assert types["seen_at"] == "timestamp[us, tz=UTC]"
    assert schema_record(SCHEMA)[0] == {"name": "id", "type": "int64", "nullable": False,
                                        "source_type": "bigint"}


def test_record_round_trips_through_json():
    text = json.dumps(schema_record(SCHEMA))
    assert schema_from_record(json.loads(text)) == columns(SCHEMA)


def test_previous_schema_is_read_from_a_manifest_as_written():
    manifest = {"run_id": "20261127T121530Z-a1b2c3", "status": "failed",
                "schema": schema_json(SCHEMA)}
    assert manifest_schema(parse_json(encode(manifest))) == columns(SCHEMA)
    assert manifest_schema({"schema": None}) is None
    assert manifest_schema({}) is None


def test_manifest_that_is_not_an_object_is_refused():
    with pytest.raises(ValueError, match="not a JSON object"):
        manifest_schema([1, 2])


def test_reading_ignores_unknown_keys_and_a_missing_source_type():
    record = [{"name": "a", "type": "int64", "nullable": True, "comment": "later writer"}]
    assert schema_from_record(record) == [ColumnShape(name="a", type="int64", nullable=True)]


@pytest.mark.parametrize(("record", "message"), [
    (None, r"schema is null, expected an array"),
    ({"name": "a"}, r"schema is an object of 1 key\(s\), expected an array"),
    ("int64", r"schema is 'int64', expected an array"),
    ([1], r"schema\[0\] is 1, expected an object"),
    ([[]], r"schema\[0\] is an array of 0 item\(s\)"),
    ([{"type": "int64", "nullable": True}], r"schema\[0\]\.name is null"),
    ([{"name": "", "type": "int64", "nullable": True}], r"schema\[0\]\.name is ''"),
    ([{"name": 7, "type": "int64", "nullable": True}], r"schema\[0\]\.name is 7"),
    ([{"name": "a", "nullable": True}], r"schema\[0\]\.type is null"),
    ([{"name": "a", "type": {"id": 1}, "nullable": True}], r"schema\[0\]\.type is an object"),
    ([{"name": "a", "type": "int64"}], r"schema\[0\]\.nullable is null, expected true or false"),
    ([{"name": "a", "type": "int64", "nullable": 1}], r"schema\[0\]\.nullable is 1"),
    ([{"name": "a", "type": "int64", "nullable": "yes"}], r"schema\[0\]\.nullable is 'yes'"),
    ([{"name": "a", "type": "int64", "nullable": True, "source_type": 5}],
     r"schema\[0\]\.source_type is 5, expected a string or null"),
    ([{"name": "a", "type": "int64", "nullable": True},
      {"name": "a", "type": "string", "nullable": True}], r"schema\[1\]\.name 'a' names a "
                                                          r"column twice"),
    ([{"name": "a", "type": "int64", "nullable": 10**400}], r"an integer of \d+ bits"),
    ([{"name": "x" * 500, "type": 3, "nullable": True}], r"schema\[0\]\.type is 3"),
])
def test_malformed_record_raises_a_clear_value_error(record, message):
    with pytest.raises(ValueError, match=message) as caught:
        schema_from_record(record)
    assert type(caught.value) is ValueError
    assert len(str(caught.value)) < 200


# ------------------------------------------------------------------- compare


def test_unchanged_schema_is_no_drift():
    drift = compare(schema_record(SCHEMA), SCHEMA)
    assert drift == SchemaDrift()
    assert not drift.changed
    assert drift.summary() == "unchanged"


def test_added_and_retyped_columns_read_as_one_line():
    old = pa.schema([field("id", pa.int64()), field("amount", pa.decimal128(10, 2))])
    new = pa.schema([field("id", pa.int64()), field("amount", pa.decimal128(12, 2)),
                     field("x", pa.int64()), field("y", pa.string())])
    drift = compare(old, new)
    assert drift.added == (("x", "int64"), ("y", "string"))
    assert drift.retyped == (("amount", "decimal128(10, 2)", "decimal128(12, 2)"),)
    assert drift.changed
    assert drift.summary() == ("2 added (x int64, y string), 1 retyped (amount: "
                               "decimal128(10, 2) → decimal128(12, 2))")


def test_removed_column_is_reported_with_its_old_type():
    drift = compare(SCHEMA, SCHEMA.remove(SCHEMA.get_field_index("name")))
    assert drift.removed == (("name", "string"),)
    assert drift.summary() == "1 removed (name string)"


def test_decimal_scale_alone_is_a_retype():
    drift = compare(pa.schema([field("a", pa.decimal128(10, 2))]),
                    pa.schema([field("a", pa.decimal128(10, 3))]))
    assert drift.retyped == (("a", "decimal128(10, 2)", "decimal128(10, 3)"),)


@pytest.mark.parametrize(("old", "new"), [
    (pa.timestamp("us"), pa.timestamp("us", tz="UTC")),
    (pa.timestamp("us", tz="UTC"), pa.timestamp("us", tz="Europe/Paris")),
    (pa.timestamp("ms", tz="UTC"), pa.timestamp("us", tz="UTC")),
    (pa.string(), pa.large_string()),
])
def test_timestamp_zone_unit_and_layout_changes_are_retypes(old, new):
    drift = compare(pa.schema([field("t", old)]), pa.schema([field("t", new)]))
    assert drift.retyped == (("t", str(old), str(new)),)


def test_nullability_change_is_reported_apart_from_the_type():
    drift = compare(pa.schema([field("id", pa.int64(), nullable=False)]),
                    pa.schema([field("id", pa.int64(), nullable=True)]))
    assert drift.nullability == (("id", False, True),)
    assert drift.retyped == ()
    assert drift.summary() == "1 nullability changed (id: not null → nullable)"


def test_reorder_alone_is_information_not_a_change():
    drift = compare(SCHEMA, pa.schema(list(reversed(list(SCHEMA)))))
    assert drift.reordered
    assert not drift.changed
    assert drift.summary() == "columns reordered"


def test_added_column_in_the_middle_is_not_a_reorder():
    old = pa.schema([field("a", pa.int64()), field("c", pa.int64())])
    new = pa.schema([field("a", pa.int64()), field("b", pa.int64()), field("c", pa.int64())])
    assert not compare(old, new).reordered


def test_meta_columns_are_not_source_drift():
    old = pa.schema([field("id", pa.int64())])
    new = pa.schema([field("id", pa.int64()), field("_rivet_exported_at", pa.timestamp("us")),
                     field("_rivet_row_hash", pa.int64())])
    assert not compare(old, new).changed
    assert compare(new, old) == SchemaDrift()
    assert compare(old, new, ignore_prefix=None).added == (
        ("_rivet_exported_at", "timestamp[us]"), ("_rivet_row_hash", "int64"))
    assert len(compare(old, new, ignore_prefix="").added) == 2


def test_compare_takes_records_columns_or_schemas_alike():
    new = pa.schema([field("id", pa.int64())])
    expected = compare(SCHEMA, new)
    assert compare(schema_record(SCHEMA), new) == expected
    assert compare(columns(SCHEMA), schema_record(new)) == expected


def test_compare_refuses_a_malformed_record_and_a_name_twice():
    with pytest.raises(ValueError, match=r"schema\[0\]\.nullable"):
        compare([{"name": "a", "type": "int64"}], SCHEMA)
    twice = pa.schema([field("a", pa.int64()), field("a", pa.string())])
    with pytest.raises(ValueError, match="'a' appears twice"):
        compare(SCHEMA, twice)


def test_summary_lists_a_few_columns_and_counts_the_rest():
    new = pa.schema([field(f"c{i:02d}", pa.int64()) for i in range(MAX_LISTED + 5)])
    summary = compare(pa.schema([]), new).summary()
    assert summary.startswith(f"{MAX_LISTED + 5} added (c00 int64, c01 int64")
    assert summary.endswith("… 5 more)")
    assert f"c{MAX_LISTED:02d}" not in summary


def test_summary_quotes_names_that_would_read_ambiguously():
    new = pa.schema([field("a, b", pa.int64()), field("bad\nname", pa.string())])
    assert compare(pa.schema([]), new).summary() == ("2 added ('a, b' int64, "
                                                     "'bad\\nname' string)")


def test_drift_as_dict_is_json_with_a_summary():
    old = pa.schema([field("a", pa.int64(), nullable=False), field("b", pa.string()),
                     field("c", pa.int32())])
    new = pa.schema([field("c", pa.int64()), field("a", pa.int64()), field("d", pa.string())])
    document = json.loads(json.dumps(compare(old, new).as_dict()))
    assert document == {
        "changed": True,
        "added": [{"name": "d", "type": "string"}],
        "removed": [{"name": "b", "type": "string"}],
        "retyped": [{"name": "c", "old": "int32", "new": "int64"}],
        "nullability": [{"name": "a", "old": False, "new": True}],
        "reordered": True,
        "summary": "1 added (d string), 1 removed (b string), 1 retyped (c: int32 → int64), "
                   "1 nullability changed (a: not null → nullable), columns reordered",
    }


# ---------------------------------------------------------------- shape drift


def test_widths_are_bytes_of_the_longest_value_ignoring_nulls():
    tracker = WidthTracker()
    tracker.observe(pa.record_batch({
        "s": pa.array(["ab", None, "é"]),  # "é" is 2 bytes, 1 character
        "b": pa.array([b"abcd", None, None], type=pa.binary()),
        "n": pa.array([1, 2, 3]),
        "empty": pa.array([None, None, None], type=pa.string()),
    }))
    assert tracker.widths() == {"s": 2, "b": 4, "empty": 0}


def test_widths_of_a_sliced_array_count_only_its_rows():
    values = pa.array(["x" * 100, "abc", None, "de", "y" * 50])
    sliced = values.slice(1, 3)
    tracker = WidthTracker()
    tracker.observe(pa.record_batch({"s": sliced}))
    assert tracker.widths() == {"s": 3}


def test_widths_of_sliced_dictionary_use_only_the_indices_in_the_slice():
    encoded = pa.array(["x" * 100, "abc", "de", "x" * 100]).dictionary_encode().slice(1, 2)
    tracker = WidthTracker()
    tracker.observe(pa.record_batch({"d": encoded}))
    assert tracker.widths() == {"d": 3}


@pytest.mark.parametrize("kind", [pa.large_string(), pa.large_binary(), pa.string_view(),
                                  pa.binary_view()])
def test_widths_cover_every_string_and_binary_layout(kind):
    values = [b"abc", None, b"abcdef"] if "binary" in str(kind) else ["abc", None, "abcdef"]
    tracker = WidthTracker()
    tracker.observe(pa.record_batch({"v": pa.array(values, type=kind)}))
    assert tracker.widths() == {"v": 6}


def test_widths_of_a_table_span_its_chunks_and_grow_across_batches():
    table = pa.Table.from_batches([pa.record_batch({"s": ["a"]}),
                                   pa.record_batch({"s": ["abcd"]})])
    tracker = WidthTracker()
    tracker.observe(table)
    tracker.observe(pa.record_batch({"s": ["ab"]}))
    assert tracker.widths() == {"s": 4}


def test_width_trackers_merge_to_the_widest():
    first, second = WidthTracker(), WidthTracker()
    first.observe(pa.record_batch({"a": ["abc"], "b": ["x"]}))
    second.observe(pa.record_batch({"a": ["a"], "c": ["xyz12"]}))
    first.merge(second)
    first.merge(first)
    assert first.widths() == {"a": 3, "b": 1, "c": 5}


def test_width_tracker_is_safe_to_share_between_threads():
    tracker = WidthTracker()
    batches = [pa.record_batch({"s": ["x" * n]}) for n in range(1, 201)]
    threads = [threading.Thread(target=lambda part=part: [tracker.observe(b) for b in part])
               for part in (batches[0::4], batches[1::4], batches[2::4], batches[3::4])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.widths() == {"s": 200}


def test_shape_drift_warns_above_the_factor_only():
    previous = {"a": 10, "b": 10, "c": 10}
    warnings = shape_drift(previous, {"a": 20, "b": 21, "c": 5}, factor=2.0)
    assert warnings == ["column b: longest value 21 bytes, was 10 in the previous run "
                        "(more than 2 times)"]


def test_shape_drift_factor_zero_disables():
    assert shape_drift({"a": 1}, {"a": 10_000}, factor=0) == []


def test_shape_drift_needs_a_nonzero_previous_width():
    assert shape_drift({"a": 0}, {"a": 10_000, "new": 10_000}) == []


def test_shape_drift_warnings_are_sorted_by_column():
    warnings = shape_drift({"z": 1, "a": 1}, {"z": 5, "a": 5}, factor=1.5)
    assert [w.split(":")[0] for w in warnings] == ["column a", "column z"]
    assert "(more than 1.5 times)" in warnings[0]


@pytest.mark.parametrize("factor", [-1.0, float("nan"), float("inf")])
def test_shape_drift_refuses_a_factor_that_is_no_threshold(factor):
    with pytest.raises(ValueError, match="expected a number"):
        shape_drift({"a": 1}, {"a": 2}, factor=factor)
