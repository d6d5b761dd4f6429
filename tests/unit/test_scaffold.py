"""The choices of `rivet init`, without a database: the mode each table gets and why, cursor
candidates, export names and the TOML it renders."""

from __future__ import annotations

import datetime as dt
import tomllib

import pytest

from rivet_core.introspect import ColumnFacts, Survey, TableFacts
from rivet_core.scaffold import (
    Target,
    Thresholds,
    cursor_candidates,
    export_names,
    render,
    suggest,
    toml_value,
)

LIMITS = Thresholds(big_rows=1000, chunk_size=500)


def column(name: str, kind: str | None, *, indexed: bool = False, nullable: bool = False,
           generated: str | None = None) -> ColumnFacts:
    return ColumnFacts(name=name, source_type="t", arrow_type="x", fidelity="exact",
                       nullable=nullable, indexed=indexed, generated=generated, kind=kind)


def table(*columns: ColumnFacts, rows: int | None = 5000, key: tuple[str, ...] = (),
          kind: str = "table", name: str = "t", schema: str = "s") -> TableFacts:
    return TableFacts(schema=schema, name=name, kind=kind, estimated_rows=rows,
                      total_bytes=None if rows is None else rows * 100,
                      primary_key=list(key), columns=list(columns),
                      table_key=f"{schema}.{name}", query=f"SELECT * FROM {schema}.{name}",
                      casts={}, left_out=[])


ID = column("id", "integer", indexed=True, generated="identity")
UPDATED = column("updated_at", "timestamp", indexed=True)
CREATED = column("created_at", "timestamp", indexed=True, generated="now")


def test_a_small_table_is_copied_in_full_even_with_an_update_column():
    chosen = suggest(table(ID, UPDATED, rows=1000, key=("id",)), LIMITS, server_time=True)
    assert (chosen.mode, chosen.keys, chosen.size) == ("full", {}, "small")
    assert "incremental on updated_at" in chosen.why[1]


def test_a_big_table_with_an_indexed_update_column_is_incremental_with_a_lag():
    chosen = suggest(table(ID, UPDATED, key=("id",)), LIMITS, server_time=True)
    assert chosen.mode == "incremental"
    assert chosen.keys == {"cursor_column": "updated_at", "cursor_lag": "5m"}
    assert "cursor_lag" not in suggest(table(ID, UPDATED, key=("id",)), LIMITS,
                                       server_time=False).keys


def test_a_nullable_cursor_falls_back_to_a_not_null_timestamp_or_says_it_fails():
    updated = column("modified", "timestamp", indexed=True, nullable=True)
    assert suggest(table(updated, CREATED), LIMITS, server_time=False).keys == {
        "cursor_column": "modified", "incremental_cursor_mode": "coalesce",
        "cursor_fallback_column": "created_at"}
    chosen = suggest(table(updated), LIMITS, server_time=False)
    assert chosen.keys == {"cursor_column": "modified", "on_null_cursor": "fail"}
    assert "may be NULL" in chosen.why[-1]


def test_a_big_table_with_an_integer_key_is_chunked_and_parallel_when_huge():
    chosen = suggest(table(ID, CREATED, key=("id",)), LIMITS, server_time=True)
    assert (chosen.mode, chosen.keys) == ("chunked", {
        "chunk_column": "id", "chunk_size": 500, "chunk_checkpoint": True})
    huge = suggest(table(ID, key=("id",), rows=20_000_000), LIMITS, server_time=True)
    assert huge.keys["parallel"] == 2
    assert suggest(table(ID, key=("id",), rows=None), LIMITS,
                   server_time=True).mode == "chunked"


def test_without_an_integer_key_a_creation_timestamp_makes_it_incremental():
    chosen = suggest(table(column("code", None), CREATED, key=("code",)), LIMITS,
                     server_time=True)
    assert chosen.mode == "incremental" and chosen.keys["cursor_column"] == "created_at"
    assert "assumes rows are added" in chosen.why[0]


def test_with_nothing_to_follow_a_big_table_is_full_with_a_warning():
    chosen = suggest(table(column("code", None), column("at", "timestamp")), LIMITS,
                     server_time=True)
    assert chosen.mode == "full" and "review" in chosen.why[0]
    view = suggest(table(ID, UPDATED, kind="view", rows=None), LIMITS, server_time=True)
    assert view.mode == "full" and view.why[0].startswith("full: a view")


def test_cursor_candidates_rank_database_maintained_update_columns_first():
    on_update = column("stamp", "timestamp", indexed=True, generated="now_on_update")
    unindexed = column("updated_at", "timestamp")
    found = cursor_candidates(table(ID, CREATED, on_update, unindexed, key=("id",)))
    assert [c.column for c in found] == ["id", "stamp", "created_at"]
    assert found[1].update_like and not found[2].update_like
    assert found[0].reasons == ["primary key", "numbered by the database (identity)",
                                "not null"]


def test_export_names_are_unique_and_usable():
    tables = [table(name="orders", schema="a"), table(name="orders", schema="b"),
              table(name="Line Items!", schema="a"), table(name="-x", schema="a")]
    assert export_names(tables) == ["a.orders", "b.orders", "Line_Items_", "_-x"]


@pytest.mark.parametrize("value, text", [
    ("a\"b", '"a\\"b"'), ("cost ${x}", '"cost $${x}"'), (True, "true"), (5, "5")])
def test_toml_values_read_back_as_written(value, text):
    assert toml_value(value) == text


def test_the_rendered_config_is_valid_toml_with_a_block_per_table():
    survey = Survey(source_type="postgres", location="postgresql://u@h:5432/db",
                    dialect="postgres", schema="s", missing=[],
                    tables=[table(ID, key=("id",)), table(name="u", rows=10)])
    suggestions = [suggest(t, LIMITS, server_time=True) for t in survey.tables]
    text = render(survey, source={"type": "postgres", "url_env": "DATABASE_URL"},
                  suggestions=suggestions, names=export_names(survey.tables),
                  target=Target(type="local", keys={"path": "./output/{export}"}),
                  format="parquet", limits=LIMITS, config_name="rivet.toml",
                  env="DATABASE_URL", now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    document = tomllib.loads(text)
    assert document["source"] == {"type": "postgres", "url_env": "DATABASE_URL"}
    assert [(e["name"], e["mode"]) for e in document["exports"]] == [("t", "chunked"),
                                                                     ("u", "full")]
    assert all(len(line) <= 100 for line in text.splitlines() if line.startswith("#"))
    assert "#   rivet doctor -c rivet.toml" in text


def test_a_nullable_update_column_without_fallback_yields_to_a_chunk_key():
    updated = column("updated_at", "timestamp", indexed=True, nullable=True)
    chosen = suggest(table(ID, updated, key=("id",)), LIMITS, server_time=True)
    assert chosen.mode == "chunked" and chosen.keys["chunk_column"] == "id"
