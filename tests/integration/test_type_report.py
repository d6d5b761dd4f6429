"""`rivet check --type-report`: a zero-row probe per export, printed as a table or JSON, with
--strict failing on lossy or unsupported columns."""

from __future__ import annotations

import pytest

from rivet_core.errors import ExitCode

CONFIG = """
[source]
type = "{type}"
url = "{url}"

[[exports]]
name = "things"
query = "{query}"
format = "parquet"
{columns}
[exports.destination]
type = "local"
path = "./out"
"""


def config(kind: str, url: str, query: str, columns: str = "") -> str:
    block = f"[exports.columns]\n{columns}" if columns else ""
    return CONFIG.format(type=kind, url=url, query=query, columns=block)


@pytest.fixture
def pg_things(pg, pg_schema):
    pg.execute("DROP TABLE IF EXISTS things; CREATE TABLE things "
               "(id int8, amount numeric, span interval, p point, ratio numeric(10,4))")
    return f"{pg_schema}.things"


@pytest.fixture
def my_things(my):
    my.execute("DROP TABLE IF EXISTS things")
    my.execute("CREATE TABLE things (id BIGINT UNSIGNED, f FLOAT, t TIME, ts TIMESTAMP NULL)")
    return "things"


def report_of(outcome):
    (export,) = outcome.json()["type_report"]["exports"]
    return {c["name"]: c for c in export["columns"]}


def test_postgres_report_shows_every_column_with_its_fidelity(rivet_project, pg_url, pg_things):
    rivet_project.write_config(config("postgres", pg_url, f"SELECT * FROM {pg_things}",
                                      'ratio = "float64"'))
    outcome = rivet_project.run("check", "--type-report", "--json").assert_success()
    columns = report_of(outcome)
    assert list(columns) == ["id", "amount", "span", "p", "ratio"]
    assert columns["id"] | {"note": ""} == {
        "name": "id", "source_type": "bigint", "arrow_type": "int64", "fidelity": "exact",
        "logical_type": None, "override": None, "note": ""}
    assert (columns["amount"]["arrow_type"], columns["amount"]["fidelity"]) == (
        "decimal128(38, 20)", "exact")
    assert (columns["span"]["arrow_type"], columns["span"]["logical_type"]) == (
        "string", "interval")
    assert (columns["p"]["arrow_type"], columns["p"]["fidelity"]) == (None, "unsupported")
    assert columns["ratio"] | {"note": ""} == {
        "name": "ratio", "source_type": "numeric(10,4)", "arrow_type": "double",
        "fidelity": "lossy", "logical_type": None, "override": "double", "note": ""}


def test_strict_fails_on_unsupported_and_lossy_columns_only(rivet_project, pg_url, pg_things):
    rivet_project.write_config(config("postgres", pg_url, f"SELECT * FROM {pg_things}"))
    outcome = rivet_project.run("check", "--type-report", "--strict")
    outcome.assert_failed(ExitCode.CHECK_FAILED)
    assert "✗ unsupported" in outcome.out and "type report FAILED" in outcome.out
    rivet_project.write_config(config(
        "postgres", pg_url, f"SELECT id, amount, span, p::text AS p FROM {pg_things}"))
    outcome = rivet_project.run("check", "--type-report", "--strict").assert_success()
    assert "type report OK" in outcome.out and "✗" not in outcome.out


def test_human_report_is_a_table_per_export(rivet_project, pg_url, pg_things):
    rivet_project.write_config(config("postgres", pg_url, f"SELECT id, span FROM {pg_things}"))
    outcome = rivet_project.run("check", "--type-report").assert_success()
    lines = outcome.out.splitlines()
    header = next(line for line in lines if line.strip().startswith("Column"))
    for title in ("Source type", "Arrow type", "Fidelity", "Notes"):
        assert title in header
    assert any(line.split()[:4] == ["span", "interval", "string", "(interval)"]
               for line in lines)
    assert "zero-row probe on postgresql://postgres@" in outcome.out


def test_mysql_report_marks_float_unsupported_and_its_override_lossy(rivet_project,
                                                                     mysql_db_url, my_things):
    rivet_project.write_config(config("mysql", mysql_db_url, "SELECT * FROM things"))
    outcome = rivet_project.run("check", "--type-report", "--json").assert_success()
    columns = report_of(outcome)
    assert columns["id"]["arrow_type"] == "uint64" and columns["id"]["fidelity"] == "exact"
    assert columns["f"]["fidelity"] == "unsupported" and "CAST" in columns["f"]["note"]
    assert columns["t"]["logical_type"] == "mysql_time"
    assert columns["ts"]["arrow_type"] == "timestamp[us, tz=UTC]"
    rivet_project.write_config(config("mysql", mysql_db_url, "SELECT * FROM things",
                                      'f = "float64"'))
    outcome = rivet_project.run("check", "--type-report", "--strict", "--json")
    outcome.assert_failed(ExitCode.CHECK_FAILED)
    assert report_of(outcome)["f"]["fidelity"] == "lossy"
    rivet_project.write_config(config(
        "mysql", mysql_db_url, "SELECT id, CAST(f AS DOUBLE) AS f, t, ts FROM things"))
    rivet_project.run("check", "--type-report", "--strict").assert_success()


def test_a_probe_that_fails_is_reported_and_exits_1(rivet_project, pg_url):
    rivet_project.write_config(config("postgres", pg_url, "SELECT * FROM no_such_table_here"))
    outcome = rivet_project.run("check", "--type-report").assert_failed(ExitCode.RUN_FAILED)
    assert "probe failed" in outcome.out and "42P01" in outcome.out


def test_strict_without_type_report_is_a_usage_error(rivet_project, pg_url):
    rivet_project.write_config(config("postgres", pg_url, "SELECT 1 AS x"))
    outcome = rivet_project.run("check", "--strict").assert_failed(ExitCode.USAGE)
    assert "--type-report" in outcome.err


def test_check_without_type_report_connects_to_nothing(rivet_project):
    rivet_project.write_config(config("postgres", "postgresql://u@127.0.0.1:1/db",
                                      "SELECT 1 AS x"))
    outcome = rivet_project.run("check", "--json").assert_success()
    assert "type_report" not in outcome.json()
