"""Trusting the output, end to end through the CLI: quality gates decided before anything of a
whole-query run becomes visible, schema drift, meta columns and their row hash, ``rivet run
--reconcile`` / ``--validate``, notifications and run reports.

Every check reads the destination back on its own: the local directory with pathlib, the
object stores over plain HTTP (tests/servers.BucketReader), the state through the CLI's
``rivet journal`` / ``rivet state`` commands.
"""

from __future__ import annotations

import csv
import gzip
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from servers.clouds import Cloud

from rivet_core.errors import ExitCode

# ------------------------------------------------------------------------------ helpers


def pg_source(pg_url: str) -> str:
    return f'type = "postgres"\nurl = "{pg_url}"'


def local(path: str = "./output/{export}") -> str:
    return f'type = "local"\npath = "{path}"'


def config(source: str, query: str, destination: str, *, name: str = "items",
           fmt: str = '"parquet"', extra: str = "", tables: str = "") -> str:
    """One export; ``extra`` holds keys of the export, ``tables`` its sub-tables
    (``[exports.quality]`` ...), written after the destination."""
    return f"""
[source]
{source}

[[exports]]
name = "{name}"
query = "{query}"
format = {fmt}
{extra}
[exports.destination]
{destination}
{tables}
"""


class Store:
    """One export's destination directory, read back without Rivet: its data files (the
    ``_rivet/`` manifest directory apart), the manifest directory, open multipart uploads."""

    def __init__(self, *, root: Path | None = None, cloud: Cloud | None = None,
                 prefix: str = "items/") -> None:
        self.root = root
        self.cloud = cloud
        self.prefix = prefix

    def toml(self) -> str:
        if self.cloud is not None:
            return self.cloud.toml(self.prefix.rstrip("/"))
        return local(f"./{self.prefix}")

    def everything(self) -> dict[str, bytes]:
        """Every object under the export's prefix, manifests included: name → bytes."""
        if self.cloud is not None:
            reader = self.cloud.reader
            return {key[len(self.prefix):]: reader.read(key)
                    for key in reader.list(self.prefix)}
        assert self.root is not None
        base = self.root / self.prefix
        if not base.exists():
            return {}
        return {p.relative_to(base).as_posix(): p.read_bytes()
                for p in base.rglob("*") if p.is_file()}

    def data_files(self) -> dict[str, bytes]:
        return {name: data for name, data in self.everything().items()
                if not name.startswith("_rivet/")}

    def open_uploads(self) -> list[str]:
        return self.cloud.reader.open_uploads() if self.cloud is not None else []

    def hidden_leftovers(self) -> list[str]:
        """Temporary files a local destination writes before renaming (none may stay)."""
        if self.root is None:
            return []
        base = self.root / self.prefix
        return sorted(p.name for p in base.rglob(".*")) if base.exists() else []


def journal(project, run_id: str | None = None) -> list[dict]:
    args = ["journal", "--json", "--last", "50"] + (["--run-id", run_id] if run_id else [])
    return project.run(*args).assert_success().json()["events"]


def events_of(project, run_id: str) -> list[str]:
    return [e["event"] for e in journal(project, run_id)]


def gate(export: dict, name: str) -> dict:
    (found,) = [g for g in export["quality"] if g["gate"] == name]
    return found


# ------------------------------------------------------------------------ source tables


@pytest.fixture
def big(pg) -> str:
    """12 MB of CSV: 200 000 rows, every other ``maybe`` NULL."""
    pg.execute("""
        DROP TABLE IF EXISTS trust_big;
        CREATE TABLE trust_big AS
        SELECT g::bigint AS id, md5(g::text) AS h,
               CASE WHEN g % 2 = 0 THEN md5((g * 3)::text) END AS maybe
        FROM generate_series(1, 200000) g;
    """)
    return "trust_big"


@pytest.fixture
def half_null(pg) -> str:
    """1000 rows, every other ``maybe`` NULL."""
    pg.execute("""
        DROP TABLE IF EXISTS trust_half;
        CREATE TABLE trust_half AS
        SELECT g::bigint AS id, md5(g::text) AS h,
               CASE WHEN g % 2 = 0 THEN md5((g * 3)::text) END AS maybe
        FROM generate_series(1, 1000) g;
    """)
    return "trust_half"


# ---------------------------------------------------------------- failing gates, full

FAILING_GATES = """
[exports.quality]
row_count_min = 1000000000
null_ratio_max = { maybe = 0.1 }
"""


def _failing_gate_leaves_the_previous_run(project, store: Store, pg_url: str, pg_schema: str,
                                          table: str) -> None:
    query = f"SELECT id, h, maybe FROM {pg_schema}.{table} ORDER BY id"
    # 5 MB parts of 12 MB of CSV: three parts, the first two past the 5 MB multipart part
    # size, so on an object store each is an open multipart upload until it is committed.
    passing = config(pg_source(pg_url), query, store.toml(), fmt='"csv"',
                     extra='max_file_size = "5MB"')
    project.write_config(passing)
    first = project.run("run", "--json").assert_success().json()["exports"][0]
    assert len(first["files"]) >= 3
    before = store.everything()
    assert sorted(store.data_files()) == sorted(f["name"] for f in first["files"])

    project.write_config(passing + FAILING_GATES)
    outcome = project.run("run", "--json").assert_failed(ExitCode.NOT_TRUSTED)
    summary = outcome.json()
    (export,) = summary["exports"]
    assert summary["status"] == "failed" and export["status"] == "failed"
    assert export["files"] == [] and export["rows"] == 0
    assert "2 quality gate(s) failed" in export["error"]
    assert "discarded before any became visible" in export["hint"]

    # The gates, with what they saw and what they expected.
    low = gate(export, "row_count_min")
    assert (low["passed"], low["severity"], low["observed"], low["expected"]) == (
        False, "fail", 200000, ">= 1000000000")
    nulls = gate(export, "null_ratio_max[maybe]")
    assert (nulls["passed"], nulls["observed"], nulls["expected"]) == (False, 0.5, "<= 0.1")
    assert "null ratio 0.5 (100,000 of 200,000 rows) exceeds the maximum 0.1" in nulls["message"]
    assert "quality: FAIL (0/2 gates passed)" in outcome.err

    # The destination is exactly what the first run left, still vouched for.
    assert store.everything() == before
    assert store.open_uploads() == []
    assert store.hidden_leftovers() == []
    report = project.run("validate", "--run-id", first["run_id"], "--json"
                         ).assert_success().json()
    assert report["ok"] and report["exports"][0]["status"] == "passed"
    marker = json.loads(before["_rivet/items/_SUCCESS"])
    assert marker["run_id"] == first["run_id"]

    # The journal records each failed gate; no file was committed.
    events = journal(project, export["run_id"])
    gates = [e["data"] for e in events if e["event"] == "quality_gate"]
    assert [g["gate"] for g in gates] == ["row_count_min", "null_ratio_max[maybe]"]
    assert gates[0]["observed"] == 200000 and gates[0]["expected"] == ">= 1000000000"
    assert "file_committed" not in [e["event"] for e in events]
    finished = [e["data"] for e in events if e["event"] == "run_finished"]
    assert finished[0]["status"] == "failed" and finished[0]["files"] == 0


def test_failing_gates_on_a_full_export_leave_the_previous_local_run_certified(
        rivet_project, pg_url, pg_schema, big):
    store = Store(root=rivet_project.path, prefix="output/items/")
    _failing_gate_leaves_the_previous_run(rivet_project, store, pg_url, pg_schema, big)


def test_failing_gates_on_a_full_export_leave_the_previous_object_store_run_certified(
        rivet_project, cloud, pg_url, pg_schema, big):
    store = Store(cloud=cloud, prefix="items/")
    _failing_gate_leaves_the_previous_run(rivet_project, store, pg_url, pg_schema, big)


# ------------------------------------------------------------ failing gates, incremental


def parquet_rows(directory: Path, *columns: str) -> list[tuple]:
    """The rows of every Parquet file in ``directory`` (data files only), in file order."""
    rows: list[tuple] = []
    for path in sorted(directory.glob("*.parquet")):
        table = pq.read_table(path, columns=list(columns))
        rows += list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))
    return rows


def state_show(project) -> dict:
    (export,) = project.run("state", "show", "--json").assert_success().json()["exports"]
    return export


def test_failing_gate_on_an_incremental_export_keeps_the_cursor_and_loses_no_row(
        rivet_project, pg, pg_url, pg_schema):
    pg.execute("""
        DROP TABLE IF EXISTS trust_inc;
        CREATE TABLE trust_inc (id bigint PRIMARY KEY, email text);
        INSERT INTO trust_inc SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 100) g;
    """)
    base = config(pg_source(pg_url), f"SELECT id, email FROM {pg_schema}.trust_inc",
                  local(), extra='mode = "incremental"\ncursor_column = "id"')
    gates = "[exports.quality]\nnull_ratio_max = {{ email = {ratio} }}\n"
    rivet_project.write_config(base + gates.format(ratio=0.1))
    rivet_project.run("run").assert_success()
    out = rivet_project.path / "output" / "items"
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert state_show(rivet_project)["cursor"] == "100 (int)"

    # 50 new rows, 20 without an email: a NULL ratio of 0.4.
    pg.execute("INSERT INTO trust_inc SELECT g, CASE WHEN g % 5 < 2 THEN NULL "
               "ELSE 'u' || g || '@example.com' END FROM generate_series(101, 150) g")
    failed = rivet_project.run("run", "--json").assert_failed(ExitCode.NOT_TRUSTED).json()
    (export,) = failed["exports"]
    assert gate(export, "null_ratio_max[email]")["observed"] == 0.4
    assert export["cursor_before"] == "100 (int)" and export["cursor_after"] is None
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    shown = state_show(rivet_project)
    assert shown["cursor"] == "100 (int)" and shown["last_run"]["status"] == "failed"
    assert "cursor_advanced" not in events_of(rivet_project, export["run_id"])
    rivet_project.run("validate").assert_success()

    # The gate relaxed, the next run exports exactly the 50 rows the failed run held back.
    rivet_project.write_config(base + gates.format(ratio=0.5))
    rerun = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert rerun["rows"] == 50 and rerun["cursor_before"] == "100 (int)"
    assert state_show(rivet_project)["cursor"] == "150 (int)"
    ids = [row[0] for row in parquet_rows(out, "id")]
    assert sorted(ids) == list(range(1, 151))
    nulls = [row for row in parquet_rows(out, "id", "email") if row[1] is None]
    assert len(nulls) == 20


# -------------------------------------------------------------------------- warnings


def test_warn_gates_report_and_let_the_run_succeed(rivet_project, pg_url, pg_schema,
                                                  half_null):
    rivet_project.write_config(config(
        pg_source(pg_url), f"SELECT id, h, maybe FROM {pg_schema}.{half_null}",
        local(), tables="""
[exports.quality]
severity = "warn"
row_count_max = 10
null_ratio_max = { maybe = 0.1, h = { value = 0.0, severity = "fail" } }
"""))
    outcome = rivet_project.run("run", "--json").assert_success()
    (export,) = outcome.json()["exports"]
    assert export["status"] == "success" and export["rows"] == 1000
    verdicts = {g["gate"]: (g["severity"], g["passed"]) for g in export["quality"]}
    assert verdicts == {"row_count_max": ("warn", False),
                        "null_ratio_max[maybe]": ("warn", False),
                        "null_ratio_max[h]": ("fail", True)}
    assert export["warnings"] == [
        "quality: row count 1,000 exceeds the maximum 10",
        "quality: column 'maybe': null ratio 0.5 (500 of 1,000 rows) exceeds the maximum 0.1"]
    assert "quality: warn (1/3 gates passed)" in outcome.err
    out = rivet_project.path / "output" / "items"
    assert len(rivet_project.files("output/items")) == 1
    assert (out / "_rivet/items/_SUCCESS").exists()
    rivet_project.run("validate").assert_success()
    events = journal(rivet_project, export["run_id"])
    assert [e["data"]["gate"] for e in events if e["event"] == "quality_gate"] == [
        "row_count_max", "null_ratio_max[maybe]"]


# ------------------------------------------------------------------------ uniqueness


def db_source(database) -> str:
    return f'type = "{database.kind}"\nurl = "{database.url}"'


def test_uniqueness_finds_a_planted_duplicate_of_a_single_and_a_composite_key(
        rivet_project, database):
    table = database.table("trust_lines")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, ext_id bigint, "
                     f"order_id bigint, line_no int, sku {database.text})")
    rows = [(i, i * 7, i // 10, i % 10, f"sku-{i}") for i in range(1, 5001)]
    # Planted: ext_id 2961 and (order_id, line_no) (42, 3) are row 423's; "sku-dup" twice.
    rows.append((5001, 2961, 42, 3, "sku-dup"))
    rows.append((5002, None, 7, None, "sku-dup"))  # NULL in a key: skipped, never a clash
    rows.append((5003, None, 9, None, "sku-x"))
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", rows)
    rivet_project.write_config(config(
        db_source(database), f"SELECT id, ext_id, order_id, line_no, sku FROM {table}",
        local(), tables="""
[exports.quality]
unique_columns = ["id", "ext_id", "sku", ["order_id", "line_no"]]
"""))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.NOT_TRUSTED)
    (export,) = outcome.json()["exports"]
    assert "3 quality gate(s) failed" in export["error"]
    unique_id = gate(export, "unique[id]")
    assert unique_id["passed"] and unique_id["observed"]["duplicates"] == 0
    # An integer key is compared by value: the duplicate is shown.
    ext = gate(export, "unique[ext_id]")
    assert not ext["passed"] and ext["observed"]["example"] == 2961
    assert (ext["observed"]["duplicates"], ext["observed"]["null_key_rows"]) == (1, 2)
    assert "e.g. 2961 appears more than once" in ext["message"]
    # Text and composite keys are compared by hash: counted, without an example.
    sku = gate(export, "unique[sku]")
    assert not sku["passed"] and sku["observed"]["duplicates"] == 1
    assert sku["expected"] == "no duplicate keys"
    composite = gate(export, "unique[order_id,line_no]")
    assert not composite["passed"]
    assert {k: composite["observed"][k] for k in ("duplicates", "rows", "null_key_rows")} == {
        "duplicates": 1, "rows": 5001, "null_key_rows": 2}
    assert "columns (order_id, line_no): 1 duplicate key among 5,001 rows" in \
        composite["message"]
    # Nothing was committed, so nothing was written: no file, no manifest.
    assert not (rivet_project.path / "output/items").exists() or \
        list((rivet_project.path / "output/items").rglob("*")) == []


# ------------------------------------------------------------- failing gates, chunked


def test_failing_gate_on_a_checkpointed_chunked_export_is_not_certified(
        rivet_project, pg, pg_url, pg_schema):
    """A chunked run commits each chunk's files as the chunk completes (that is what makes
    it resumable), so its gates are decided only after every chunk is committed: a reader
    listing the destination sees the chunks' part files. What it does not see is a
    ``_SUCCESS``: the manifest says ``status: failed``, ``rivet validate`` fails, and the
    run exits 7."""
    pg.execute("""
        DROP TABLE IF EXISTS trust_chunks;
        CREATE TABLE trust_chunks AS
        SELECT g AS id, CASE WHEN g > 900 THEN NULL ELSE g * 2 END AS amount
        FROM generate_series(1, 1000) g;
    """)
    rivet_project.write_config(config(
        pg_source(pg_url), f"SELECT id, amount FROM {pg_schema}.trust_chunks", local(),
        extra='mode = "chunked"\nchunk_column = "id"\nchunk_size = 250\n'
              "chunk_checkpoint = true",
        tables="[exports.quality]\nnull_ratio_max = { amount = 0.05 }\n"))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.NOT_TRUSTED)
    (export,) = outcome.json()["exports"]
    assert gate(export, "null_ratio_max[amount]")["observed"] == 0.1
    assert export["chunks"]["completed"] == 4
    out = rivet_project.path / "output" / "items"
    manifest = json.loads((out / "_rivet/items/manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["run_id"] == export["run_id"]
    assert "quality gate" in manifest["error"]
    assert not (out / "_rivet/items/_SUCCESS").exists()
    # The chunks' files are visible, listed by the failed manifest.
    visible = [p.name for p in rivet_project.files("output/items")]
    assert len(visible) == 4 and sorted(visible) == sorted(f["name"] for f in manifest["files"])
    assert sum(f["rows"] for f in manifest["files"]) == 1000
    report = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert report.json()["exports"][0]["status"] != "passed"
    assert "quality_gate" in events_of(rivet_project, export["run_id"])


# ------------------------------------------------------------------------ schema drift


@pytest.fixture
def drifting(pg) -> str:
    pg.execute("""
        DROP TABLE IF EXISTS trust_drift;
        CREATE TABLE trust_drift (id int PRIMARY KEY, amount numeric(10,2));
        INSERT INTO trust_drift SELECT g, g / 4.0 FROM generate_series(1, 100) g;
    """)
    return "trust_drift"


def drift_the_schema(pg, table: str) -> None:
    pg.execute(f"""
        ALTER TABLE {table} ADD COLUMN note text;
        ALTER TABLE {table} ALTER COLUMN amount TYPE numeric(12,2);
        INSERT INTO {table} SELECT g, g / 4.0, 'n' || g FROM generate_series(101, 120) g;
    """)


ADDED_AND_RETYPED = {
    "added": [{"name": "note", "type": "string"}],
    "removed": [],
    "retyped": [{"name": "amount", "old": "decimal128(10, 2)", "new": "decimal128(12, 2)"}],
    "nullability": [],
}


def test_schema_drift_is_reported_before_the_first_file_by_default(
        rivet_project, pg, pg_url, pg_schema, drifting):
    rivet_project.write_config(config(pg_source(pg_url),
                                      f"SELECT * FROM {pg_schema}.{drifting}", local()))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert first["schema_drift"] is None  # nothing to compare with yet
    drift_the_schema(pg, drifting)
    outcome = rivet_project.run("run", "--json").assert_success()
    (export,) = outcome.json()["exports"]
    drift = export["schema_drift"]
    assert drift["changed"] and drift["since_run"] == first["run_id"]
    assert drift["policy"] == "warn"
    assert {k: drift[k] for k in ADDED_AND_RETYPED} == ADDED_AND_RETYPED
    assert drift["summary"] == ("1 added (note string), 1 retyped "
                                "(amount: decimal128(10, 2) → decimal128(12, 2))")
    assert export["warnings"] == [f"schema changed since run {first['run_id']}: "
                                  f"{drift['summary']}"]
    assert f"schema: CHANGED since run {first['run_id']}" in outcome.err
    events = journal(rivet_project, export["run_id"])
    names = [e["event"] for e in events]
    assert names.index("schema_drift") < names.index("file_committed")
    (recorded,) = [e["data"] for e in events if e["event"] == "schema_drift"]
    assert recorded["added"] == ADDED_AND_RETYPED["added"]
    assert recorded["retyped"] == ADDED_AND_RETYPED["retyped"]
    # The new schema is accepted: the next run compares with it.
    again = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert again["schema_drift"] == {"changed": False, "since_run": export["run_id"]}
    assert again["warnings"] == []


def test_schema_drift_with_on_schema_drift_fail_writes_nothing_even_without_the_state_store(
        rivet_project, pg, pg_url, pg_schema, drifting):
    rivet_project.write_config(config(
        pg_source(pg_url), f"SELECT * FROM {pg_schema}.{drifting}", local(),
        extra='mode = "incremental"\ncursor_column = "id"\non_schema_drift = "fail"'))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    out = rivet_project.path / "output" / "items"
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
              if p.is_file()}
    drift_the_schema(pg, drifting)

    def refused() -> dict:
        outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.NOT_TRUSTED)
        (export,) = outcome.json()["exports"]
        assert export["status"] == "failed" and export["files"] == []
        assert export["schema_drift"]["policy"] == "fail"
        assert export["schema_drift"]["since_run"] == first["run_id"]
        assert {k: export["schema_drift"][k] for k in ADDED_AND_RETYPED} == ADDED_AND_RETYPED
        assert f"the schema changed since run {first['run_id']}" in export["error"]
        assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
                if p.is_file()} == before
        rivet_project.run("validate").assert_success()
        return export

    export = refused()
    assert state_show(rivet_project)["cursor"] == "100 (int)"
    events = events_of(rivet_project, export["run_id"])
    assert "schema_drift" in events and "file_committed" not in events

    # A new state store: the destination's last complete manifest holds the schema.
    for leftover in rivet_project.path.glob(".rivet_state.db*"):
        leftover.unlink()
    refused()
    assert state_show(rivet_project)["cursor"] is None


def test_drift_fails_a_chunked_run_once_with_its_own_hint(rivet_project, pg, pg_url,
                                                          pg_schema, drifting):
    """Every chunk would meet the same drift: the run stops at the first, reports it once,
    and does not suggest --resume (which would meet it again)."""
    rivet_project.write_config(config(
        pg_source(pg_url), f"SELECT * FROM {pg_schema}.{drifting}", local(),
        extra='mode = "chunked"\nchunk_column = "id"\nchunk_size = 10\n'
              'chunk_checkpoint = true\non_schema_drift = "fail"'))
    rivet_project.run("run").assert_success()
    drift_the_schema(pg, drifting)
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.NOT_TRUSTED)
    (export,) = outcome.json()["exports"]
    assert export["error"].startswith("the schema changed since run")
    assert "--resume" not in (export["hint"] or "") and "on_schema_drift" in export["hint"]
    assert export["files"] == [] and export["chunks"]["completed"] == 0
    assert events_of(rivet_project, export["run_id"]).count("schema_drift") == 1


# ---------------------------------------------------------------------- run reports


def test_run_reports_carry_the_quality_gates_and_the_drift(rivet_project, pg, pg_url,
                                                           pg_schema, drifting):
    rivet_project.write_config(config(
        pg_source(pg_url), f"SELECT * FROM {pg_schema}.{drifting}", local(),
        tables="[exports.quality]\nrow_count_min = { value = 1000, severity = \"warn\" }\n"))
    rivet_project.run("run").assert_success()
    drift_the_schema(pg, drifting)
    target = rivet_project.path / "summary-out.json"
    outcome = rivet_project.run("run", "--json", "--summary-output", str(target))
    summary = outcome.assert_success().json()
    (export,) = summary["exports"]
    assert json.loads(target.read_text()) == summary

    directory = rivet_project.path / ".rivet" / "runs" / export["run_id"]
    assert f"report: {directory / 'summary.md'}" in outcome.err
    report = json.loads((directory / "summary.json").read_text())
    (entry,) = report["exports"]
    assert entry["run_id"] == export["run_id"] and entry["status"] == "success"
    assert entry["quality"] == export["quality"]
    assert entry["quality"][0]["observed"] == 120 and not entry["quality"][0]["passed"]
    assert entry["schema_drift"]["changed"] and \
        entry["schema_drift"]["added"] == [{"name": "note", "type": "string"}]
    markdown = (directory / "summary.md").read_text()
    assert "### Quality gates" in markdown and "**WARN**" in markdown
    assert "row count 120 is below the minimum 1,000" in markdown
    assert "### Schema drift" in markdown and "- added `note` `string`" in markdown
    assert "- retyped `amount`: `decimal128(10, 2)` → `decimal128(12, 2)`" in markdown


# ------------------------------------------------------------------------ meta columns

META = "meta_columns = { exported_at = true, row_hash = true, run_id = true }"
META_NAMES = ["_rivet_exported_at", "_rivet_row_hash", "_rivet_run_id"]


@pytest.fixture
def typed(database) -> tuple[str, list[str]]:
    """A table of the column kinds each server exports, NULLs included; its column names."""
    table = database.table("trust_typed")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    if database.kind == "postgres":
        database.execute(f"""
            CREATE TABLE {table} AS
            SELECT g AS id, g::bigint * 1000003 AS big, (g / 7.0)::numeric(12,3) AS amount,
                   (g * 1.5)::float8 AS ratio, 'café ' || g AS label, g % 3 = 0 AS flag,
                   DATE '2024-02-28' + g AS day,
                   TIMESTAMPTZ '2024-03-10 01:30:00.000001+00' + g * INTERVAL '1.25 s' AS at,
                   TIMESTAMP '1969-12-31 23:59:59.5' + g * INTERVAL '1 h' AS local_at,
                   decode(md5(g::text), 'hex') AS raw, ARRAY[g, NULL, -g] AS arr,
                   md5(g::text)::uuid AS uid
            FROM generate_series(1, 300) g
        """)
        database.execute(f"INSERT INTO {table} (id) VALUES (0)")  # NULL everywhere else
    else:
        database.execute(f"""
            CREATE TABLE {table} (id int, big bigint unsigned, amount decimal(12,3),
                                  ratio double, label varchar(50), flag bool, day date,
                                  at datetime(6), raw varbinary(16))""")
        database.execute(f"""
            INSERT INTO {table}
            SELECT seq, 18446744073709551615 - seq, seq / 7, seq * 1.5,
                   CONCAT('café ', seq), seq % 3 = 0, DATE '2024-02-28' + INTERVAL seq DAY,
                   TIMESTAMP '2024-03-10 01:30:00.000001' + INTERVAL seq * 1250000 MICROSECOND,
                   UNHEX(MD5(seq))
            FROM seq_1_to_300""")
        database.execute(f"INSERT INTO {table} (id) VALUES (0)")
    names = (["id", "big", "amount", "ratio", "label", "flag", "day", "at", "local_at", "raw",
              "arr", "uid"] if database.kind == "postgres"
             else ["id", "big", "amount", "ratio", "label", "flag", "day", "at", "raw"])
    return table, names


def test_meta_columns_are_appended_and_the_row_hash_is_the_documented_one(
        rivet_project, database, typed):
    from unit.test_rowhash import Reference

    table, names = typed
    rivet_project.write_config(config(db_source(database),
                                      f"SELECT * FROM {table} ORDER BY id", local(),
                                      extra=META))
    summary = rivet_project.run("run", "--json").assert_success().json()
    (export,) = summary["exports"]
    (path,) = rivet_project.files("output/items")
    read = pq.read_table(path)
    assert read.schema.names == names + META_NAMES
    exported_at = read.schema.field("_rivet_exported_at")
    assert str(exported_at.type) == "timestamp[us, tz=UTC]"
    assert str(read.schema.field("_rivet_row_hash").type) == "int64"
    assert read.schema.field("_rivet_row_hash").metadata[b"rivet.row_hash"] == \
        b"rivet-row-hash-1"
    assert read.num_rows == 301
    # One value for the whole run: the run's start, to the microsecond.
    stamps = set(read.column("_rivet_exported_at").to_pylist())
    assert len(stamps) == 1
    (stamp,) = stamps
    assert stamp.isoformat().replace("+00:00", "Z") == export["started_at"]
    assert set(read.column("_rivet_run_id").to_pylist()) == {export["run_id"]}

    # Every row's hash recomputed from the values read back, by the reference code of
    # docs/row-hash.md in an interpreter that imports neither rivet_core nor pyarrow.
    reference = Reference()
    try:
        expected = reference.hashes(read.select(names))
    finally:
        reference.close()
    stored = [h & 0xFFFF_FFFF_FFFF_FFFF for h in read.column("_rivet_row_hash").to_pylist()]
    assert stored == expected
    assert len(set(stored)) == 301

    # The same rows hash the same on the next run, written as CSV, which carries the meta
    # columns too.
    rivet_project.write_config(config(db_source(database),
                                      f"SELECT * FROM {table} ORDER BY id", local(),
                                      fmt='"csv"', extra=META, name="again"))
    again = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    (csv_path,) = rivet_project.files("output/again")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    assert records[0] == names + META_NAMES
    assert {r[-1] for r in records[1:]} == {again["run_id"]}
    assert {r[-3] for r in records[1:]} == {again["started_at"].replace("T", " ")}
    assert [int(r[-2]) for r in records[1:]] == read.column("_rivet_row_hash").to_pylist()


def test_a_query_column_named_like_a_meta_column_fails_before_anything_is_written(
        rivet_project, pg_url):
    rivet_project.write_config(config(
        pg_source(pg_url), "SELECT g AS id, 'mine' AS _rivet_run_id FROM generate_series(1, 10) g",
        local(), extra="meta_columns = { run_id = true }"))
    outcome = rivet_project.run("run", "--json").assert_failed()
    (export,) = outcome.json()["exports"]
    assert export["status"] == "failed"
    assert ("meta_columns.run_id: the query already has a column named '_rivet_run_id'; "
            "rename it in the query (AS ...) or set meta_columns.run_id = false") in \
        export["error"]
    assert "Traceback" not in outcome.err
    assert not (rivet_project.path / "output").exists() or \
        not any((rivet_project.path / "output").rglob("*.*"))


def test_the_type_report_lists_the_meta_columns_a_run_appends(rivet_project, pg_url):
    rivet_project.write_config(config(
        pg_source(pg_url), "SELECT g AS id FROM generate_series(1, 3) g", local(),
        extra=META))
    report = rivet_project.run("check", "--type-report", "--json").assert_success().json()
    (export,) = report["type_report"]["exports"]
    assert [(c["name"], c["arrow_type"], c["fidelity"]) for c in export["columns"]] == [
        ("id", "int32", "exact"),
        ("_rivet_exported_at", "timestamp[us, tz=UTC]", "exact"),
        ("_rivet_row_hash", "int64", "exact"),
        ("_rivet_run_id", "string", "exact")]


# --------------------------------------------------------------------- --reconcile


@pytest.fixture
def stable(database) -> str:
    table = database.table("trust_stable")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, label {database.text})")
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                         [(i, f"row {i}") for i in range(1, 20001)])
    return table


def test_reconcile_matches_on_a_stable_table(rivet_project, database, stable):
    rivet_project.write_config(config(db_source(database), f"SELECT id, label FROM {stable}",
                                      local()))
    outcome = rivet_project.run("run", "--reconcile", "--json").assert_success()
    (export,) = outcome.json()["exports"]
    assert export["reconcile"] == {"source_rows": 20000, "exported_rows": 20000,
                                   "match": True}
    assert "reconcile: MATCH (source 20,000, exported 20,000)" in outcome.err
    assert (rivet_project.path / "output/items/_rivet/items/_SUCCESS").exists()
    events = journal(rivet_project, export["run_id"])
    (reconciled,) = [e["data"] for e in events if e["event"] == "reconciled"]
    assert reconciled == {"source_rows": 20000, "exported_rows": 20000, "match": True}


def test_reconcile_mismatch_of_a_query_whose_rows_change_between_statements(
        rivet_project, database, stable):
    coin = "random() < 0.5" if database.kind == "postgres" else "RAND() < 0.5"
    rivet_project.write_config(config(
        db_source(database), f"SELECT id, label FROM {stable} WHERE {coin}", local()))
    # Two independent halves of 20 000 rows are equal about once in 250 runs: a run whose
    # count happens to match is certified (rightly), and the test draws again.
    for _ in range(4):
        outcome = rivet_project.run("run", "--reconcile", "--json")
        if outcome.code != ExitCode.OK:
            break
    outcome.assert_failed(ExitCode.NOT_TRUSTED)
    (export,) = outcome.json()["exports"]
    counts = export["reconcile"]
    assert counts["match"] is False and counts["source_rows"] != counts["exported_rows"]
    assert counts["exported_rows"] == export["rows"] == sum(f["rows"] for f in export["files"])
    assert "--reconcile: MISMATCH" in export["error"]
    assert (f"reconcile: MISMATCH (source {counts['source_rows']:,}, exported "
            f"{counts['exported_rows']:,})") in outcome.err
    out = rivet_project.path / "output/items/_rivet/items"
    assert not (out / "_SUCCESS").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["run_id"] == export["run_id"]


def test_incremental_reconcile_counts_only_up_to_the_newest_cursor_read(
        rivet_project, database, stable, monkeypatch):
    from rivet_core.runner import verify

    rivet_project.write_config(config(
        db_source(database), f"SELECT id, label FROM {stable}", local(),
        extra='mode = "incremental"\ncursor_column = "id"'))
    first = rivet_project.run("run", "--reconcile", "--json").assert_success().json()
    assert first["exports"][0]["reconcile"]["match"] is True

    # Rows arrive after the run read its rows and before the source counts them: they
    # are the next run's, and must not count against this one.
    database.executemany(f"INSERT INTO {stable} VALUES (%s, %s)",
                         [(i, f"row {i}") for i in range(20001, 20051)])
    count_after_late_rows = verify.reconcile

    def late_rows_then_count(run) -> None:
        database.executemany(f"INSERT INTO {stable} VALUES (%s, %s)",
                             [(i, f"late {i}") for i in range(20051, 20061)])
        count_after_late_rows(run)

    monkeypatch.setattr(verify, "reconcile", late_rows_then_count)
    outcome = rivet_project.run("run", "--reconcile", "--json").assert_success()
    (export,) = outcome.json()["exports"]
    assert export["reconcile"] == {"source_rows": 50, "exported_rows": 50, "match": True}
    assert export["cursor_after"] == "20050 (int)"
    monkeypatch.setattr(verify, "reconcile", count_after_late_rows)
    third = rivet_project.run("run", "--reconcile", "--json").assert_success().json()
    assert third["exports"][0]["reconcile"] == {"source_rows": 10, "exported_rows": 10,
                                                "match": True}


# ----------------------------------------------------------------------- --validate

AWKWARD = ("SELECT g AS id, 'line one' || chr(10) || 'line ' || chr(34) || 'two' || chr(34) "
           "|| ', ' || g || chr(13) || chr(10) || 'three' AS note, md5(g::text) AS h "
           "FROM generate_series(1, 30000) g")
"""Values with a quote, a comma, a LF and a CRLF: CSV must quote them across lines."""


@pytest.mark.parametrize("fmt", ['"parquet"', '{ type = "csv" }'], ids=["parquet", "csv-gzip"])
def test_validate_rereads_parquet_and_gzip_csv_with_line_breaks_in_values(
        rivet_project, pg_url, fmt):
    extra = 'max_file_size = "256KB"' + ('\ncompression = "gzip"' if "csv" in fmt else "")
    rivet_project.write_config(config(pg_source(pg_url), AWKWARD, local(), fmt=fmt,
                                      extra=extra,
                                      tables="[exports.tuning]\nbatch_size = 2000\n"))
    outcome = rivet_project.run("run", "--validate", "--json").assert_success()
    (export,) = outcome.json()["exports"]
    assert len(export["files"]) >= 2
    assert export["validation"] == {"passed": True, "files": len(export["files"]),
                                    "rows_counted": True, "problems": [], "manifest": "pass"}
    assert f"validated: pass ({len(export['files'])} file(s) re-read)" in outcome.err
    assert sum(f["rows"] for f in export["files"]) == 30000
    if "csv" in fmt:
        assert all(f["name"].endswith(".csv.gz") for f in export["files"])
        with gzip.open(rivet_project.path / "output/items" / export["files"][0]["name"],
                       "rt", newline="", encoding="utf-8") as handle:
            records = list(csv.reader(handle))
        assert records[1][1] == 'line one\nline "two", 1\r\nthree'
    events = journal(rivet_project, export["run_id"])
    (validated,) = [e["data"] for e in events if e["event"] == "validated"]
    assert validated["passed"] and validated["files"] == len(export["files"])


def test_validate_rereads_from_the_object_stores(rivet_project, cloud, pg_url):
    rivet_project.write_config(config(pg_source(pg_url), AWKWARD, cloud.toml(),
                                      fmt='"csv"', extra='compression = "gzip"'))
    outcome = rivet_project.run("run", "--validate", "--json").assert_success()
    (export,) = outcome.json()["exports"]
    assert export["validation"]["passed"] and export["validation"]["rows_counted"]
    assert export["validation"]["manifest"] == "pass"
    (file,) = export["files"]
    assert file["rows"] == 30000
    assert len(cloud.reader.read(f"items/{file['name']}")) == file["bytes"]
    assert "items/_rivet/items/_SUCCESS" in cloud.reader.list("items/")


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_validate_counts_csv_records_larger_than_a_reader_block_and_multiline_headers(
        rivet_project, pg_url, compression):
    # Values of 1.3 MB (Arrow's CSV reader reads 1 MiB blocks), and a column name with a
    # line break in it (the header is one record over two lines).
    rivet_project.write_config(config(
        pg_source(pg_url), 'SELECT g AS id, repeat(md5(g::text), 40000) AS \\"two\\nlines\\" '
        "FROM generate_series(1, 3) g", local(), fmt='"csv"',
        extra=f'compression = "{compression}"'))
    outcome = rivet_project.run("run", "--validate", "--json").assert_success()
    (export,) = outcome.json()["exports"]
    assert export["validation"]["passed"] and export["files"][0]["rows"] == 3
    assert export["validation"]["problems"] == []
    path = rivet_project.path / "output/items" / export["files"][0]["name"]
    opener = gzip.open if compression == "gzip" else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        text = handle.read()
    assert text.startswith('"id","two\nlines"\n1,"c4ca4238')
    assert text.count("\n") == 5 and len(text) > 3 * 1_280_000  # 1 + header + 3 records


# ---------------------------------------------------------------------- notifications

TOKEN = "T0TRUST/B0TRUST/hookToken9876543210abcdef"


class Hook:
    """An HTTP server on 127.0.0.1 recording every POST (path, JSON body); answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/services/{TOKEN}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(monkeypatch) -> Iterator[Hook]:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    server = Hook()
    yield server
    server.close()


def webhook(on: str, **keys: str) -> str:
    lines = "".join(f'{key} = {value}\n' for key, value in keys.items())
    return f"\n[[notifications.webhook]]\non = {on}\nretries = 0\ntimeout_s = 5\n{lines}"


def test_a_failing_gate_sends_one_webhook_with_the_quality(rivet_project, pg_url, pg_schema,
                                                           half_null, hook, monkeypatch):
    monkeypatch.setenv("RIVET_T_HOOK", hook.url())
    rivet_project.write_config(config(
        pg_source(pg_url), f"SELECT id, maybe FROM {pg_schema}.{half_null}",
        local(), tables="[exports.quality]\nnull_ratio_max = { maybe = 0.1 }\n")
        + webhook('["quality", "failure"]', url_env='"RIVET_T_HOOK"'))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.NOT_TRUSTED)
    assert len(hook.received) == 1
    path, payload = hook.received[0]
    assert path == f"/services/{TOKEN}"
    assert payload["event"] == ["failure", "quality"]
    (export,) = payload["summary"]["exports"]
    assert export["status"] == "failed" and export["run_id"] == \
        outcome.json()["exports"][0]["run_id"]
    (sent,) = export["quality"]
    assert (sent["gate"], sent["passed"], sent["observed"], sent["expected"]) == (
        "null_ratio_max[maybe]", False, 0.5, "<= 0.1")
    assert "warning" not in outcome.err
    assert TOKEN not in outcome.out + outcome.err


def test_an_unset_webhook_url_env_is_a_config_error_before_anything_runs(
        rivet_project, pg_url, monkeypatch):
    monkeypatch.delenv("RIVET_T_HOOK_UNSET", raising=False)
    rivet_project.write_config(config(pg_source(pg_url), "SELECT 1 AS one", local())
                               + webhook('["failure"]', url_env='"RIVET_T_HOOK_UNSET"'))
    outcome = rivet_project.run("run").assert_failed(ExitCode.CONFIG)
    assert "notifications.webhook[0].url_env" in outcome.err
    assert "RIVET_T_HOOK_UNSET" in outcome.err
    assert not (rivet_project.path / "output").exists()


@pytest.mark.parametrize("key", ["url", "url_env"])
def test_an_unreachable_webhook_is_a_warning_that_never_shows_its_token(
        rivet_project, pg_url, monkeypatch, key):
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = f"http://127.0.0.1:{port}/services/{TOKEN}"
    monkeypatch.setenv("RIVET_T_HOOK", dead)
    target = {"url": f'"{dead}"'} if key == "url" else {"url_env": '"RIVET_T_HOOK"'}
    rivet_project.write_config(config(pg_source(pg_url), "SELECT 1 AS one", local())
                               + webhook('["success"]', **target))
    summary_path = rivet_project.path / "summary.json"
    outcome = rivet_project.run("run", "--json", "--summary-output", str(summary_path))
    outcome.assert_success()
    (warning,) = [line for line in outcome.err.splitlines() if "notifications." in line]
    assert warning.startswith("warning: notifications.webhook[0] (")
    assert "notification not sent" in warning and "cannot connect" in warning
    # The token is in rivet.toml (key = "url") or the environment, and nowhere else: not
    # in the output, the summary, the run reports, the state store or the destination.
    written = {"stdout": outcome.out.encode(), "stderr": outcome.err.encode()}
    for path in rivet_project.path.rglob("*"):
        if path.is_file() and path.name != "rivet.toml":
            written[str(path)] = path.read_bytes()
    assert summary_path in [Path(p) for p in written]
    assert any(".rivet_state.db" in p for p in written)
    assert any("/.rivet/runs/" in p and p.endswith("summary.md") for p in written)
    for where, data in written.items():
        for part in (TOKEN, TOKEN.split("/")[-1]):
            assert part.encode() not in data, where
