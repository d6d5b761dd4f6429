"""Before the data moves: ``rivet check --preflight`` (size, plans, index, verdict) on
PostgreSQL and MariaDB and on a third-party source without the dialect pieces; the
destination probe that starts every ``rivet run`` (a wrong bucket fails before the source
is opened, and the probe leaves nothing behind); the progress line's percentage; the
planner's warning for a ``max_file_size`` the format cannot honour. The verdict rules
themselves are tested as pure logic at the end."""

from __future__ import annotations

import logging
import sqlite3
import uuid

import pytest

from rivet_core.errors import ExitCode
from rivet_core.runner.preflight_check import Estimate, Facts, PlanStep, Statement, assess
from rivet_core.state.store import STATE_FILE, SQLiteStateStore

CLOSED = "postgresql://postgres@127.0.0.1:1/test"
"""A source no run may reach: nothing listens on port 1."""


def project_config(source: str, exports: str) -> str:
    return f"[source]\n{source}\n\n{exports}"


def export(name: str, keys: str, destination: str = 'type = "local"\npath = "out/{export}"',
           fmt: str = "parquet") -> str:
    return (f'[[exports]]\nname = "{name}"\nformat = "{fmt}"\n{keys}\n'
            f"[exports.destination]\n{destination}\n\n")


def by_name(outcome) -> dict[str, dict]:
    return {e["export"]: e for e in outcome.json()["preflight"]["exports"]}


# --------------------------------------------------------------------------- preflight

ROWS = 1_200_000
"""Just over the size from which a full scan for a slice is dangerous."""


def _big_table(database) -> str:
    table = database.table("pf_big")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    if database.kind == "postgres":
        database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, at timestamptz, "
                         "u timestamptz)")
        database.execute(f"INSERT INTO {table} SELECT g, now() - g * interval '1 second', "
                         f"now() - g * interval '1 second' FROM generate_series(1, {ROWS}) g")
        database.execute(f"CREATE INDEX pf_big_at ON {table} (at)")
        database.execute(f"ANALYZE {table}")
    else:
        database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, at DATETIME(6), "
                         "u DATETIME(6), KEY pf_big_at (at))")
        database.execute(f"INSERT INTO {table} SELECT seq, NOW() - INTERVAL seq SECOND, "
                         f"NOW() - INTERVAL seq SECOND FROM seq_1_to_{ROWS}")
        database.execute(f"ANALYZE TABLE {table}")
    return table


def test_a_cursor_no_index_serves_on_a_big_table_is_dangerous(rivet_project, database):
    table = _big_table(database)
    rivet_project.write_config(project_config(
        f'type = "{database.kind}"\nurl = "{database.url}"',
        export("indexed", f'table = "{table}"\nmode = "incremental"\ncursor_column = "at"')
        + export("scanned", f'table = "{table}"\nmode = "incremental"\ncursor_column = "u"')
        + export("window", f'table = "{table}"\nmode = "time_window"\ntime_column = "u"\n'
                           "days_window = 1")
        + export("chunks", f'table = "{table}"\nmode = "chunked"\nchunk_size = 100')))
    outcome = rivet_project.run("check", "--preflight", "--json").assert_success()
    found = by_name(outcome)
    indexed, scanned = found["indexed"], found["scanned"]
    assert indexed["estimate"]["origin"] == "table statistics"
    assert 0.7 * ROWS < indexed["estimate"]["rows"] < 1.3 * ROWS
    assert indexed["estimate"]["bytes"] > 0
    assert indexed["verdict"] == "ok" and indexed["index"]["serves"] is True
    assert indexed["index"]["name"] == "pf_big_at"
    assert [s["role"].split(" (")[0] for s in indexed["statements"]] == ["read", "index check"]
    assert all(s["plan"] for s in indexed["statements"])
    assert any("first run reads every row" in n for n in indexed["notes"])

    assert scanned["verdict"] == "dangerous"
    assert scanned["index"] == {"column": "u", "serves": False, "name": None,
                                "full_scans": ["pf_big"]}
    assert "every run reads the whole table" in scanned["reason"]
    assert scanned["recommendations"][0]["key"] == "index"
    assert scanned["recommendations"][0]["value"] == f"{table}(u)"

    assert found["window"]["verdict"] == "dangerous"
    chunks = found["chunks"]
    assert chunks["verdict"] == "heavy" and chunks["column"] == "id"
    assert chunks["index"]["serves"] is True
    assert {r["key"] for r in chunks["recommendations"]} == {"chunk_size"}
    assert outcome.json()["preflight"]["summary"] == {
        "ok": 1, "heavy": 1, "dangerous": 2, "unknown": 0, "failed": 0}

    strict = rivet_project.run("check", "--preflight", "--strict")
    strict.assert_failed(ExitCode.CHECK_FAILED)
    assert "verdict: DANGEROUS — the cursor predicate on u is planned as a full scan" in \
        strict.out
    assert "preflight FAILED: 4 export(s), 1 ok, 1 heavy, 2 dangerous" in strict.out


def test_the_read_after_a_stored_cursor_is_the_statement_planned(rivet_project, pg,
                                                                 pg_schema, pg_url):
    pg.execute("DROP TABLE IF EXISTS ev; CREATE TABLE ev (id int PRIMARY KEY, at timestamptz);"
               "INSERT INTO ev SELECT g, TIMESTAMPTZ '2024-01-01' + g * INTERVAL '1 minute' "
               "FROM generate_series(1, 5000) g; CREATE INDEX ON ev (at); ANALYZE ev")
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{pg_url}"',
        export("ev", f'table = "{pg_schema}.ev"\nmode = "incremental"\ncursor_column = "at"')))
    store = SQLiteStateStore(rivet_project.path / STATE_FILE)
    with store.transaction() as tx:
        tx.set_cursor("ev", '{"type": "timestamptz", "value": "2024-01-03T00:00:00.000000'
                            '+00:00"}', "20240101T000000Z-abcdef")
    store.close()
    (ev,) = by_name(rivet_project.run("check", "--preflight", "--json").assert_success()
                    ).values()
    read = ev["statements"][0]
    assert read["role"] == "read (rows after the stored cursor)"
    assert read["params"] == ["2024-01-03 00:00:00+00:00"]
    assert "Index Cond" in " ".join(read["plan"])
    assert ev["estimate"] == {"rows": 5000, "bytes": ev["estimate"]["bytes"],
                              "origin": "table statistics"}
    assert ev["verdict"] == "ok" and "cheap" in ev["reason"] and ev["notes"] == []


def test_a_query_export_is_estimated_from_its_plan(rivet_project, pg_url):
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{pg_url}"',
        export("q", 'query = "SELECT g AS id FROM generate_series(1, 700) g"')))
    outcome = rivet_project.run("check", "--preflight").assert_success()
    assert "estimate: ~" in outcome.out and "(from the query plan)" in outcome.out
    assert "Function Scan" in outcome.out and "verdict: ok — " in outcome.out
    assert "preflight OK: 1 export(s), 1 ok, 0 heavy" in outcome.out


def test_a_source_without_the_dialect_pieces_gets_unknown_not_an_error(rivet_project):
    with sqlite3.connect(rivet_project.path / "shop.sqlite") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, at TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)",
                         [(i, f"2024-01-01 00:00:{i % 60:02d}") for i in range(50)])
    rivet_project.write_config(project_config(
        'type = "sqlite"\npath = "shop.sqlite"',
        export("orders", 'table = "orders"\nmode = "incremental"\ncursor_column = "id"',
               fmt="jsonl")))
    outcome = rivet_project.run("check", "--preflight", "--strict", "--json").assert_success()
    (orders,) = by_name(outcome).values()
    assert orders["verdict"] == "unknown" and orders["error"] is None
    assert "lacks SupportsTableStats" in orders["reason"]
    assert orders["statements"] and all(s["plan"] is None for s in orders["statements"])
    assert orders["index"]["serves"] is None


def test_a_preflight_the_server_refuses_fails_the_check(rivet_project, pg_url):
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{pg_url}"',
        export("gone", 'table = "no_such_table_here"')))
    outcome = rivet_project.run("check", "--preflight", "--json")
    outcome.assert_failed(ExitCode.RUN_FAILED)
    (gone,) = by_name(outcome).values()
    assert gone["verdict"] == "unknown" and "no_such_table_here" in gone["error"]


def test_strict_needs_a_report_to_be_strict_about(rivet_project, pg_url):
    rivet_project.write_config(project_config(f'type = "postgres"\nurl = "{pg_url}"',
                                              export("q", 'query = "SELECT 1 AS x"')))
    outcome = rivet_project.run("check", "--strict").assert_failed(ExitCode.USAGE)
    assert "--preflight" in outcome.err


def test_max_file_size_below_the_parquet_row_group_floor_is_warned(rivet_project, pg_url):
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{pg_url}"',
        export("small", 'query = "SELECT 1 AS x"\nmax_file_size = "100KB"')
        + export("csv", 'query = "SELECT 1 AS x"\nmax_file_size = "100KB"', fmt="csv")
        + export("fine", 'query = "SELECT 1 AS x"\nmax_file_size = "1MB"')))
    outcome = rivet_project.run("check", "--json").assert_success()
    (warning,) = [d for d in outcome.json()["diagnostics"]
                  if d["rule"] == "max-file-size-below-granularity"]
    assert warning["export"] == "small" and warning["severity"] == "warning"
    assert warning["toml_path"] == "exports[0].max_file_size"
    assert "the effective minimum is about 1.0 MiB" in warning["message"]
    assert warning["origin"].startswith("parquet")


# ------------------------------------------------------------------ destination probe


def _missing_bucket(cloud) -> tuple[str, str]:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    return missing, cloud.toml().replace(f'"{cloud.bucket}"', f'"{missing}"')


def test_a_wrong_bucket_fails_at_the_probe_before_the_source_is_opened(
        rivet_project, cloud, caplog):
    missing, destination = _missing_bucket(cloud)
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{CLOSED}"',
        export("items", 'query = "SELECT 1 AS x"', destination=destination
               + "max_retries = 0\n")))
    with caplog.at_level(logging.WARNING):
        outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    (items,) = outcome.json()["exports"]
    # The destination's message, not the source's: the closed port was never tried.
    assert items["error"].startswith("the destination failed the check before the run "
                                     "(nothing was read): listing ")
    assert f"bucket {missing!r} not found" in items["error"]
    assert "NoSuchBucket" in items["error"] and "<?xml" not in items["error"]
    assert "refused" not in items["error"] and ":1/" not in items["error"]
    assert items["hint"] == "create the bucket, or fix `bucket`/`endpoint`"
    assert items["rows"] == 0 and items["files"] == []
    assert not [r for r in caplog.records if "upload" in r.getMessage()]
    assert cloud.reader.list() == {}


def test_the_probe_leaves_nothing_and_keeps_the_previous_run_certified(
        rivet_project, cloud, pg_url):
    destination = cloud.toml()
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{pg_url}"',
        export("items", 'query = "SELECT 1 AS x"', destination=destination)))
    rivet_project.run("run").assert_success()
    before = cloud.reader.list()
    assert "items/_rivet/items/_SUCCESS" in before
    assert not [k for k in before if "_probe-" in k]
    # The probe passes, then the source cannot be reached: no commit, so the previous
    # run's marker still vouches for the destination, and the probe left nothing.
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{CLOSED}"\n[source.tuning]\nmax_retries = 0',
        export("items", 'query = "SELECT 1 AS x"', destination=destination)))
    failed = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    assert "refused" in failed.json()["exports"][0]["error"]
    assert cloud.reader.list() == before
    rivet_project.run("validate").assert_success()


def test_the_probe_leaves_no_directory_on_a_local_destination(rivet_project):
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{CLOSED}"\n[source.tuning]\nmax_retries = 0',
        export("items", 'query = "SELECT 1 AS x"', destination='type = "local"\npath = "out"')))
    failed = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    assert "refused" in failed.json()["exports"][0]["error"]
    assert list((rivet_project.path / "out").rglob("*")) == []


def test_an_unwritable_local_destination_fails_before_the_source_is_opened(rivet_project):
    (rivet_project.path / "out").write_text("a file, not a directory")
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{CLOSED}"',
        export("items", 'query = "SELECT 1 AS x"', destination='type = "local"\npath = "out"')))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    error = outcome.json()["exports"][0]["error"]
    assert error.startswith("the destination failed the check before the run")
    assert "cannot create directory" in error and "refused" not in error


# ------------------------------------------------------------------------- progress


def test_progress_shows_the_percentage_of_the_estimate_and_of_the_chunks(
        rivet_project, pg, pg_schema, pg_url, capsys):
    pg.execute("DROP TABLE IF EXISTS prog; CREATE TABLE prog (id int PRIMARY KEY, v text);"
               "INSERT INTO prog SELECT g, md5(g::text) FROM generate_series(1, 30000) g;"
               "ANALYZE prog")
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{pg_url}"',
        export("whole", f'table = "{pg_schema}.prog"')
        + export("parts", f'table = "{pg_schema}.prog"\nmode = "chunked"\n'
                          "chunk_size = 10000")))
    capsys.readouterr()
    rivet_project.run("run", "-e", "whole", "--progress").assert_success()
    assert "% of ~30,000" in capsys.readouterr().err
    rivet_project.run("run", "-e", "parts", "--progress").assert_success()
    assert "chunks 0/3 0%" in capsys.readouterr().err


# ------------------------------------------------------------------ verdicts (pure)


def _scan(full: bool) -> Statement:
    from rivet_core.dialect import Query

    step = PlanStep(text="scan", relation="t", full_scan=full, index=None if full else "t_c")
    return Statement(role="index check", query=Query(sql="…"), predicate=True, steps=[step])


def test_a_big_full_export_on_one_connection_is_heavy_and_parallel_is_recommended():
    big = Estimate(rows=40_000_000, bytes=None, origin="table statistics")
    heavy = assess(Facts(mode="full", table="t", estimate=big))
    assert heavy.verdict == "heavy"
    assert [(r.key, r.value) for r in heavy.recommendations] == [("parallel", "8")]
    query = assess(Facts(mode="full", estimate=big))
    assert [r.key for r in query.recommendations] == ["mode", "parallel"]
    assert assess(Facts(mode="full", table="t", estimate=big, parallel=4)).verdict == "ok"
    # A query is read on one connection whatever `parallel` says.
    assert assess(Facts(mode="full", estimate=big, parallel=4)).verdict == "heavy"
    by_bytes = assess(Facts(mode="full", table="t", estimate=Estimate(bytes=5 << 30)))
    assert by_bytes.verdict == "heavy"


@pytest.mark.parametrize(("mode", "effect"), [
    ("incremental", "every run reads the whole table"),
    ("time_window", "every run reads the whole table for its window"),
    ("chunked", "each of ~20 chunks reads the whole table")])
def test_a_full_scan_for_a_slice_of_a_big_table_is_dangerous(mode, effect):
    facts = Facts(mode=mode, table="t", column="c", estimate=Estimate(rows=2_000_000),
                  predicate=_scan(full=True))
    verdict = assess(facts)
    assert verdict.verdict == "dangerous" and effect in verdict.reason
    assert [(r.key, r.value) for r in verdict.recommendations] == [("index", "t(c)")]
    assert assess(Facts(mode=mode, table="t", column="c", estimate=Estimate(rows=2_000_000),
                        predicate=_scan(full=False))).verdict == "ok"
    small = Facts(mode=mode, column="c", estimate=Estimate(rows=900_000),
                  predicate=_scan(full=True))
    assert assess(small).verdict == "ok"


def test_a_single_chunk_may_scan_and_too_many_or_too_big_chunks_are_heavy():
    rows = Estimate(rows=2_000_000)
    one = Facts(mode="chunked", column="c", estimate=rows, chunk_count=1,
                predicate=_scan(full=True))
    assert assess(one).verdict == "ok"
    many = assess(Facts(mode="chunked", column="c", estimate=Estimate(rows=50_000_000),
                        chunk_size=1000, parallel=4, predicate=_scan(full=False)))
    assert many.verdict == "heavy" and "~50,000 chunks" in many.reason
    assert [(r.key, r.value) for r in many.recommendations] == [("chunk_size", "50_000")]
    big = assess(Facts(mode="chunked", column="c", estimate=Estimate(rows=50_000_000),
                       chunk_count=2, predicate=_scan(full=False)))
    assert big.verdict == "heavy"
    assert [r.key for r in big.recommendations] == ["chunk_count", "parallel"]


def test_what_cannot_be_known_is_unknown_naming_the_missing_piece():
    no_rows = assess(Facts(mode="full", missing=("SupportsTableStats", "SupportsExplain")))
    assert no_rows.verdict == "unknown" and "SupportsTableStats and SupportsExplain" in \
        no_rows.reason
    no_plan = assess(Facts(mode="incremental", column="c", estimate=Estimate(rows=5_000_000),
                           missing=("SupportsPlanSteps",)))
    assert no_plan.verdict == "unknown" and "lacks SupportsPlanSteps" in no_plan.reason


def test_check_preflight_fails_on_a_wrong_bucket_and_an_unwritable_directory(
        rivet_project, cloud, pg_url):
    """The same probe `rivet run` makes before reading: `check --preflight` reports a
    destination that cannot be written, and leaves nothing behind on a good one."""
    missing, destination = _missing_bucket(cloud)
    (rivet_project.path / "blocker").write_text("a file where a directory should be\n")
    rivet_project.write_config(project_config(
        f'type = "postgres"\nurl = "{pg_url}"',
        export("cloudy", 'query = "SELECT 1 AS x"', destination=destination
               + "max_retries = 0\n")
        + export("blocked", 'query = "SELECT 1 AS x"',
                 destination='type = "local"\npath = "blocker/out"')
        + export("fine", 'query = "SELECT 1 AS x"', destination=cloud.toml("fine"))))
    outcome = rivet_project.run("check", "--preflight", "--json").assert_failed(
        ExitCode.RUN_FAILED)
    checks = outcome.json()["destinations"]
    failed = {c["subject"] for c in checks if c["status"] == "FAIL"}
    assert failed == {"cloudy", "blocked"}
    (bucket,) = [c for c in checks if c["subject"] == "cloudy" and c["status"] == "FAIL"]
    assert f"bucket {missing!r} not found" in bucket["detail"]
    assert [c["status"] for c in checks if c["subject"] == "fine"].count("FAIL") == 0
    assert cloud.reader.list() == {}  # the good bucket's probe left nothing
    text = rivet_project.run("check", "--preflight").assert_failed(ExitCode.RUN_FAILED)
    assert "[FAIL] cloudy: list:" in text.out
