"""`rivet run` end to end against the real PostgreSQL: files, state, summaries, failures."""

from __future__ import annotations

import csv
import decimal
import gzip
import io
import json
import os
import sqlite3
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from rivet_core.errors import ExitCode

SEED = """
DROP TABLE IF EXISTS orders;
CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    amount      numeric(12,2),
    ratio       double precision,
    note        text,
    paid        boolean,
    placed_on   date,
    placed_at   timestamptz,
    local_time  timestamp,
    payload     jsonb,
    ref         uuid
);
INSERT INTO orders
SELECT g, g % 100, (g * 37 % 100000)::numeric / 100, g / 7.0,
       CASE WHEN g % 10 = 0 THEN NULL WHEN g % 10 = 1 THEN '' ELSE 'note, "' || g || E'"\\n' END,
       g % 2 = 0, DATE '2024-01-01' + (g % 365),
       TIMESTAMPTZ '2024-03-10 01:30:00+00' + g * INTERVAL '1 minute',
       TIMESTAMP '2024-03-10 01:30:00' + g * INTERVAL '1 second',
       jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g)),
       md5(g::text)::uuid
FROM generate_series(1, 2500) AS g;
"""


@pytest.fixture
def orders(pg):
    pg.execute(SEED)
    return "orders"


def config(url, schema, query, *, fmt='"parquet"', dest=None, extra=""):
    dest = dest or 'type = "local"\npath = "./output/{export}"'
    return f"""
[source]
type = "postgres"
url = "{url}"

[[exports]]
name = "orders"
query = "{query}"
format = {fmt}
{extra}
[exports.destination]
{dest}
"""


def db_rows(pg, sql):
    return pg.execute(sql).fetchall()


def test_full_export_to_parquet_matches_the_database(rivet_project, pg, pg_url, pg_schema,
                                                      orders):
    sql = f"SELECT * FROM {pg_schema}.orders ORDER BY id"
    rivet_project.write_config(config(pg_url, pg_schema, sql))
    outcome = rivet_project.run("run", "--json").assert_success()
    summary = outcome.json()
    (export,) = summary["exports"]
    assert export["status"] == "success" and export["rows"] == 2500
    (path,) = rivet_project.files()
    assert path.name == export["files"][0]["name"]
    assert path.name.startswith(f"orders_{export['run_id']}") and path.suffix == ".parquet"
    table = pq.read_table(path)
    expected = db_rows(pg, sql)
    got = list(zip(*[table.column(i).to_pylist() for i in range(table.num_columns)],
                   strict=True))
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[:9] == theirs[:9]
        assert json.loads(mine[9]) == theirs[9]
        assert mine[10] == str(theirs[10])
    assert str(table.schema.field("amount").type) == "decimal128(12, 2)"
    assert str(table.schema.field("placed_at").type) == "timestamp[us, tz=UTC]"


def test_full_export_to_csv_is_lossless(rivet_project, pg, pg_url, pg_schema, orders):
    sql = f"SELECT id, amount, note, paid, placed_at FROM {pg_schema}.orders ORDER BY id"
    rivet_project.write_config(config(pg_url, pg_schema, sql, fmt='"csv"',
                                      extra='compression = "gzip"'))
    rivet_project.run("run").assert_success()
    (path,) = rivet_project.files()
    assert path.name.endswith(".csv.gz")
    text = gzip.decompress(path.read_bytes()).decode()
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    assert header == ["id", "amount", "note", "paid", "placed_at"]
    rows = list(reader)
    expected = db_rows(pg, sql)
    assert len(rows) == len(expected)
    raw_lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    for (rid, amount, note, paid, placed_at), want in zip(rows, expected, strict=True):
        assert int(rid) == want[0]
        assert decimal.Decimal(amount) == want[1] and amount == f"{want[1]:.2f}"
        if want[2] is not None:
            assert note == want[2]
        assert paid == ("true" if want[3] else "false")
        assert placed_at.endswith("Z")
    # NULL is an empty unquoted field, '' is a quoted empty string.
    assert any(',"",' in line for line in raw_lines)
    assert any(",," in line for line in raw_lines)


def test_max_file_size_rolls_parts_and_records_each_in_the_manifest(
        rivet_project, pg, pg_url, pg_schema):
    sql = ("SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 200000) g")
    rivet_project.write_config(config(pg_url, pg_schema, sql, fmt='"csv"',
                                      extra='max_file_size = "1MB"'))
    summary = rivet_project.run("run", "--json").assert_success().json()
    files = rivet_project.files()
    assert len(files) > 3
    assert [p.name for p in files] == sorted(f["name"] for f in summary["exports"][0]["files"])
    assert all("_part" in p.name for p in files)
    total = 0
    for path in files:
        lines = path.read_text().splitlines()
        assert lines[0] == '"id","h"'
        total += len(lines) - 1
        assert path.stat().st_size < 1.3 * (1 << 20)
    assert total == 200000
    db = sqlite3.connect(rivet_project.path / ".rivet_state.db")
    recorded = db.execute("SELECT file_name, rows, bytes FROM files ORDER BY file_name").fetchall()
    assert [r[0] for r in recorded] == [p.name for p in files]
    assert sum(r[1] for r in recorded) == 200000
    assert [r[2] for r in recorded] == [p.stat().st_size for p in files]


def test_failure_mid_export_leaves_no_visible_file_and_no_manifest_row(
        rivet_project, pg_url, pg_schema):
    # Division by zero at row 150000: several batches (of at most 1 MiB) are already written
    # by then.
    sql = "SELECT g, 1 / (150000 - g) AS boom FROM generate_series(1, 200000) g"
    rivet_project.write_config(config(pg_url, pg_schema, sql,
                                      extra="[exports.tuning]\nmax_batch_memory_mb = 1"))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    (export,) = outcome.json()["exports"]
    assert export["status"] == "failed"
    assert "division by zero" in export["error"]
    out_dir = rivet_project.path / "output"
    # No data file and no temp file; nothing was committed, so no manifest either (the
    # destination is as it was; the state store records the failed run).
    leftover = [p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()]
    assert leftover == []
    db = sqlite3.connect(rivet_project.path / ".rivet_state.db")
    assert db.execute("SELECT count(*) FROM files").fetchone() == (0,)
    assert db.execute("SELECT status, error FROM runs").fetchone()[0] == "failed"


def test_zero_rows_writes_no_file_and_says_so(rivet_project, pg_url, pg_schema):
    rivet_project.write_config(config(pg_url, pg_schema, "SELECT 1 AS x WHERE false"))
    outcome = rivet_project.run("run", "--json").assert_success()
    (export,) = outcome.json()["exports"]
    assert export["rows"] == 0 and export["files"] == []
    assert "no file written" in export["note"]
    assert rivet_project.files() == []
    rivet_project.write_config(config(pg_url, pg_schema, "SELECT 1 AS x WHERE false",
                                      extra="skip_empty = true"))
    assert rivet_project.run("run", "--json").json()["exports"][0]["status"] == "skipped"


def test_password_never_appears_in_output_or_state(rivet_project, pg_url, pg_schema):
    secret_url = pg_url.replace("postgres@", "postgres:Sup3rSecretPw@")
    rivet_project.write_config(config(secret_url, pg_schema, "SELECT 1 AS x"))
    ok = rivet_project.run("run", "--json").assert_success()
    rivet_project.write_config(config(secret_url, pg_schema, "SELECT nope FROM nowhere"))
    failed = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED)
    checked = rivet_project.run("check", "--json")
    state = (rivet_project.path / ".rivet_state.db").read_bytes()
    for text in (ok.out, ok.err, failed.out, failed.err, checked.out, checked.err):
        assert "Sup3rSecretPw" not in text
    assert b"Sup3rSecretPw" not in state
    assert "plaintext password" in ok.err


def test_syntax_error_fails_with_the_servers_message(rivet_project, pg_url, pg_schema):
    rivet_project.write_config(config(pg_url, pg_schema, "SELEC 1"))
    outcome = rivet_project.run("run").assert_failed(ExitCode.RUN_FAILED)
    assert "syntax error" in outcome.err
    assert "Traceback" not in outcome.err


def _rivet(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "rivet_core.cli.main", *args], cwd=cwd,
                          capture_output=True, env={**os.environ, **(env or {})}, check=False)


def test_stdout_destination_streams_the_file(rivet_project, pg_url, pg_schema):
    rivet_project.write_config(config(pg_url, pg_schema,
                                      "SELECT g AS id, g * 2 AS twice FROM generate_series(1, 5) g",
                                      fmt='"csv"', dest='type = "stdout"'))
    done = _rivet("run", "-c", "rivet.toml", cwd=rivet_project.path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ['"id","twice"', "1,2", "2,4", "3,6", "4,8", "5,10"]
    assert b"orders" in done.stderr  # the summary goes to stderr


def test_parquet_to_stdout_is_a_readable_file(rivet_project, pg_url, pg_schema):
    rivet_project.write_config(config(pg_url, pg_schema,
                                      "SELECT g AS id FROM generate_series(1, 1000) g",
                                      dest='type = "stdout"'))
    done = _rivet("run", "-c", "rivet.toml", cwd=rivet_project.path)
    assert done.returncode == 0, done.stderr.decode()
    assert pq.read_table(io.BytesIO(done.stdout)).column("id").to_pylist() == list(
        range(1, 1001))


def test_json_summary_is_refused_when_data_goes_to_stdout(rivet_project, pg_url, pg_schema):
    rivet_project.write_config(config(pg_url, pg_schema, "SELECT 1 AS x",
                                      dest='type = "stdout"'))
    outcome = rivet_project.run("run", "--json").assert_failed(ExitCode.USAGE)
    assert "--summary-output" in outcome.err


def test_progress_is_quiet_when_stderr_is_not_a_terminal(rivet_project, pg_url, pg_schema):
    rivet_project.write_config(config(pg_url, pg_schema,
                                      "SELECT g FROM generate_series(1, 300000) g"))
    quiet = rivet_project.run("run")
    assert "\r" not in quiet.err
    forced = rivet_project.run("run", "--progress")
    assert "rows/s" in forced.err


def peak_rss_mb(project, rows):
    sql = (f"SELECT g AS id, md5(g::text) AS h, (g * 1.5)::float8 AS f "
           f"FROM generate_series(1, {rows}) g")
    project.write_config(config("postgresql://postgres@127.0.0.1:5432/test", "", sql,
                                fmt='{ type = "parquet", row_group_mb = 16 }'))
    done = _rivet("run", "-c", "rivet.toml", "--json", cwd=project.path)
    assert done.returncode == 0, done.stderr.decode()
    (export,) = json.loads(done.stdout)["exports"]
    assert export["rows"] == rows
    return export["peak_rss_mb"]


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_row_count(rivet_project):
    small = peak_rss_mb(rivet_project, 200_000)
    large = peak_rss_mb(rivet_project, 1_000_000)
    # Five times the rows: memory is bounded by batch and row group, not by the result.
    assert large < small * 1.3 + 20, (small, large)


def test_a_config_in_a_directory_whose_name_is_not_utf8_runs(tmp_path, pg_url):
    """Paths are bytes to the kernel: a non-UTF-8 directory name (surrogate-escaped by
    Python) once stopped the COPY path with a UnicodeDecodeError traceback."""
    import os
    import subprocess
    import sys

    project = tmp_path / os.fsdecode(b"d\xff")
    project.mkdir()
    (project / "rivet.toml").write_text(f"""
[source]
type = "postgres"
url = "{pg_url}"

[[exports]]
name = "one"
query = "SELECT g AS id FROM generate_series(1, 10) g"
format = "csv"
[exports.destination]
type = "local"
path = "out"
""")
    done = subprocess.run([sys.executable, "-m", "rivet_core.cli.main", "run", "-c",
                           "rivet.toml"], cwd=project, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "binary COPY" in done.stderr and "Traceback" not in done.stderr
