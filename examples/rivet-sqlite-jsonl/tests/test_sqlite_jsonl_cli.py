"""The plugin end to end: the real ``rivet`` CLI, in-process, exporting a SQLite file to
JSON Lines in every mode, on local disk and on S3 (the moto server), files read back with
the standard library and compared with what the database holds."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from jsonl_backdoor import read_objects

from rivet_core.testing import RivetProject

UTC = dt.UTC
S3_KEYS = {"RIVET_T_S3_KEY": "testing", "RIVET_T_S3_SECRET": "Sup3rS3cretS3Key"}

SCHEMA = """
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer TEXT, amount DECIMAL(12,2), day DATE,
    placed_at DATETIME, updated_at TIMESTAMPTZ NOT NULL, note BLOB
)"""


def order(i: int, updated_at: dt.datetime) -> tuple[Any, ...]:
    """One row as SQLite stores it (the plugin's documented text forms)."""
    return (i, None if i % 7 == 0 else f"customer {i} ✓", f"{i * 3}.{i % 100:02d}",
            (dt.date(2024, 1, 1) + dt.timedelta(days=i % 40)).isoformat(),
            f"2024-02-01 08:00:00.{i:06d}", updated_at.isoformat(" "),
            None if i % 5 else bytes([i % 256, 0]))


def as_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """The object the jsonl format documents for that row."""
    i, customer, amount, day, placed_at, updated_at, note = row
    instant = dt.datetime.fromisoformat(updated_at).astimezone(UTC)
    return {"id": i, "customer": customer,
            "amount": f"{int(amount.split('.')[0])}.{amount.split('.')[1]}", "day": day,
            "placed_at": placed_at.replace(" ", "T"),
            "updated_at": instant.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z",
            "note": None if note is None else base64.b64encode(note).decode()}


class Shop:
    """The SQLite file beside the project's config, written through sqlite3 directly."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[Any, ...]] = []
        self.execute(SCHEMA)

    def execute(self, sql: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        with sqlite3.connect(self.path) as conn:
            if rows is None:
                conn.execute(sql)
            else:
                conn.executemany(sql, rows)
        conn.close()

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        self.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self.rows += rows

    def expected(self, ids: Any = None) -> list[dict[str, Any]]:
        return [as_json(r) for r in sorted(self.rows) if ids is None or r[0] in ids]


BASE = dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def shop(rivet_project: RivetProject) -> Shop:
    shop = Shop(rivet_project.path / "shop.sqlite")
    shop.insert([order(i, BASE + dt.timedelta(seconds=i, microseconds=i * 10))
                 for i in range(1, 41)])
    return shop


def config(export: str, destination: str | None = None, *, name: str = "orders") -> str:
    destination = destination or 'type = "local"\npath = "./output/{export}"'
    return f"""
[source]
type = "sqlite"
path = "shop.sqlite"

[[exports]]
name = "{name}"
format = "jsonl"
{export}

[exports.destination]
{destination}
"""


def exported(project: RivetProject, export: str = "orders") -> list[dict[str, Any]]:
    """Every row of the export's visible files, as JSON objects, ordered by id."""
    rows = []
    for path in project.files(f"output/{export}"):
        codec = "gzip" if path.name.endswith(".gz") else "none"
        rows += [dict(pairs) for pairs in read_objects(path.read_bytes(), codec)]
    return sorted(rows, key=lambda r: r["id"])


def run(project: RivetProject) -> dict[str, Any]:
    (export,) = project.run("run", "--json").assert_success().json()["exports"]
    return export


# -------------------------------------------------------------------------------- modes


def test_full_export_reads_back_exactly_and_validates(rivet_project, shop):
    rivet_project.write_config(config('table = "orders"'))
    summary = run(rivet_project)
    assert summary["rows"] == 40 and len(summary["files"]) == 1
    assert summary["files"][0]["name"].endswith(".jsonl")
    assert exported(rivet_project) == shop.expected()
    rivet_project.run("validate").assert_success()


def test_incremental_second_run_exports_only_new_rows(rivet_project, shop):
    rivet_project.write_config(config('table = "orders"\nmode = "incremental"\n'
                                      'cursor_column = "updated_at"\n'
                                      'on_null_cursor = "fail"'))
    first = run(rivet_project)
    assert first["rows"] == 40
    assert run(rivet_project)["rows"] == 0
    newest = BASE + dt.timedelta(seconds=40, microseconds=400)
    # Stored in other text forms of the same instants: a tie with the cursor (fewer
    # fraction digits) is not new, a microsecond later is.
    shop.insert([order(41, newest + dt.timedelta(microseconds=1)),
                 (42, *order(42, newest)[1:5], "2024-03-01 12:00:40.0004+00:00", None)])
    third = run(rivet_project)
    assert third["rows"] == 1 and third["cursor_after"].startswith("2024-03-01T12:00:40.000401")
    assert [r["id"] for r in exported(rivet_project)] == [*range(1, 42)]
    assert exported(rivet_project) == shop.expected(range(1, 42))
    rivet_project.run("validate").assert_success()


def test_incremental_null_probe_stops_the_run_before_any_file(rivet_project, shop):
    """The null-cursor probe is ``SELECT 1 AS found``, an expression SQLite cannot type:
    the runner's small statements must still work (a third-party author's first
    incremental run once failed on exactly this)."""
    rivet_project.write_config(config('table = "orders"\nmode = "incremental"\n'
                                      'cursor_column = "customer"\non_null_cursor = "fail"'))
    outcome = rivet_project.run("run").assert_failed(1)
    assert "rows with a NULL cursor (customer) exist" in outcome.err
    assert "Traceback" not in outcome.err
    assert rivet_project.files() == []


def test_chunked_by_primary_key_with_sparse_keys_covers_every_row_once(rivet_project, shop):
    # Sparse ids make the planner ask for a key histogram.
    shop.insert([order(i, BASE) for i in (1000, 5000)])
    rivet_project.write_config(config('table = "orders"\nmode = "chunked"\nchunk_size = 5\n'
                                      "parallel = 2"))
    summary = run(rivet_project)
    assert any("primary key 'id'" in w for w in summary["warnings"])
    assert summary["chunks"]["completed"] == summary["chunks"]["total"] > 2
    assert len(summary["files"]) == summary["chunks"]["total"]
    assert exported(rivet_project) == shop.expected()
    rivet_project.run("validate").assert_success()


def test_chunked_by_days_with_checkpoint_covers_every_row_once(rivet_project, shop):
    shop.execute("UPDATE orders SET day = NULL WHERE id = 3")
    shop.rows = [(*r[:3], None, *r[4:]) if r[0] == 3 else r for r in shop.rows]
    rivet_project.write_config(config('table = "orders"\nmode = "chunked"\n'
                                      'chunk_column = "day"\nchunk_by_days = 7\n'
                                      "chunk_checkpoint = true"))
    summary = run(rivet_project)
    # 40 days in weeks, and the chunk of the NULL day.
    assert summary["chunks"] == {"total": 7, "completed": 7, "skipped_completed": 0,
                                 "failed": 0}
    assert exported(rivet_project) == shop.expected()
    rivet_project.run("validate").assert_success()


def test_time_window_starts_at_utc_midnight_and_keeps_a_row_exactly_on_it(rivet_project,
                                                                            shop):
    midnight = dt.datetime.combine(dt.datetime.now(UTC).date() - dt.timedelta(days=2),
                                   dt.time(), tzinfo=UTC)
    shop.insert([order(101, midnight), order(102, midnight - dt.timedelta(microseconds=1)),
                 order(103, midnight + dt.timedelta(days=1, microseconds=5))])
    rivet_project.write_config(config('table = "orders"\nmode = "time_window"\n'
                                      'time_column = "updated_at"\ndays_window = 2'))
    summary = run(rivet_project)
    assert summary["rows"] == 2
    assert exported(rivet_project) == shop.expected({101, 103})
    rivet_project.run("validate").assert_success()


def test_cursor_lag_is_rejected_by_the_planner_naming_the_plugin(rivet_project, shop):
    rivet_project.write_config(config('table = "orders"\nmode = "incremental"\n'
                                      'cursor_column = "updated_at"\ncursor_lag = "5m"'))
    for command in ("run", "check"):
        outcome = rivet_project.run(command).assert_failed(4)
        printed = outcome.out + outcome.err
        assert "cursor_lag needs the server's current time" in printed
        assert "source 'sqlite' (dialect 'sqlite') does not provide" in printed
        assert "rivet-sqlite-jsonl" in printed
        assert "Traceback" not in printed
    assert rivet_project.files() == []


def test_an_expression_without_a_type_names_the_override_that_fixes_it(rivet_project, shop):
    query = "SELECT day, SUM(amount) AS total FROM orders GROUP BY day"
    rivet_project.write_config(config(f'query = "{query}"'))
    outcome = rivet_project.run("run").assert_failed(1)
    assert "'total'" in outcome.err and '[exports.columns]: total = "int64"' in outcome.err
    assert rivet_project.files() == []
    rivet_project.write_config(config(f'query = "{query}"\n[exports.columns]\n'
                                      'total = "decimal(14,2)"'))
    run(rivet_project)
    by_day: dict[str, int] = {}
    for row in shop.expected():
        cents = int(row["amount"].replace(".", ""))
        by_day[row["day"]] = by_day.get(row["day"], 0) + cents
    files = rivet_project.files("output/orders")
    rows = [dict(p) for f in files for p in read_objects(f.read_bytes(), "none")]
    assert {r["day"]: r["total"] for r in rows} == {
        day: f"{cents // 100}.{cents % 100:02d}" for day, cents in by_day.items()}


# ----------------------------------------------------------------------------------- S3


def test_gzipped_export_to_s3_reads_back_exactly(rivet_project, shop, servers, moto_endpoint,
                                                 s3_bucket, monkeypatch):
    for name, value in S3_KEYS.items():
        monkeypatch.setenv(name, value)
    # Enough rows for several parts of 16 KB once gzipped (a part rolls between
    # batches).
    shop.insert([order(i, BASE) for i in range(100, 3100)])
    destination = (f'type = "s3"\nbucket = "{s3_bucket}"\nendpoint = "{moto_endpoint}"\n'
                   'allow_http = true\nregion = "us-east-1"\nprefix = "{export}"\n'
                   'access_key_env = "RIVET_T_S3_KEY"\nsecret_key_env = "RIVET_T_S3_SECRET"')
    rivet_project.write_config(config('table = "orders"\ncompression = "gzip"\n'
                                      "compression_level = 9\nmax_file_size = \"16KB\"\n"
                                      "[exports.tuning]\nbatch_size = 200",
                                      destination))
    summary = run(rivet_project)
    assert summary["destination"] == f"s3://{s3_bucket}/orders"
    bucket = servers.BucketReader(moto_endpoint, s3_bucket)
    stored = {key: size for key, size in bucket.list("orders/").items()
              if "/_rivet/" not in key}
    assert sorted(stored) == sorted(f"orders/{f['name']}" for f in summary["files"])
    assert len(stored) > 1 and all(key.endswith(".jsonl.gz") for key in stored)
    rows = []
    for key in sorted(stored):
        data = bucket.read(key)
        assert len(data) == stored[key] and gzip.decompress(data)
        rows += [dict(pairs) for pairs in read_objects(data, "gzip")]
    assert sorted(rows, key=lambda r: r["id"]) == shop.expected()
    rivet_project.run("validate").assert_success()
