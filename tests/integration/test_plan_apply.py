"""``rivet plan`` seals what a run would do; ``rivet apply`` runs exactly that, or refuses a
stale plan with the reason, on PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rivet_core.errors import ExitCode
from rivet_core.sealed import digest_of

PASSWORD = "pl4n-s3cret-pw"


def config(db, export_lines, *, name="ev", url=None):
    source = f'url = "{db.url}"' if url is None else url
    return f"""
[source]
type = "{db.kind}"
{source}

[[exports]]
name = "{name}"
format = "parquet"
{export_lines}
[exports.destination]
type = "local"
path = "./output/{{export}}"
"""


@pytest.fixture
def keyed(database):
    """100 rows, ids 1..100."""
    table = database.table("sealed")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, note {database.text})")
    add(database, table, range(1, 101))
    return table


def add(database, table, ids):
    database.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(i, f"n{i}") for i in ids])


def make_plan(project, *args):
    """``rivet plan -o plan.json``; the artifact as JSON."""
    path = project.path / "plan.json"
    project.run("plan", "-o", str(path), *args).assert_success()
    return json.loads(path.read_text())


def apply(project, *args, code=ExitCode.OK):
    """``rivet apply plan.json`` (the config comes from the plan)."""
    outcome = project.run("apply", str(project.path / "plan.json"), *args, config=False)
    return outcome.assert_success() if code == ExitCode.OK else outcome.assert_failed(code)


def exported_ids(project, export="ev"):
    ids = []
    for path in sorted((project.path / "output" / export).glob("*.parquet")):
        ids.extend(pq.read_table(path).column("id").to_pylist())
    return ids


def journal_events(project, event):
    db = sqlite3.connect(project.path / ".rivet_state.db")
    try:
        rows = db.execute("SELECT data FROM journal WHERE event = ? ORDER BY id",
                          (event,)).fetchall()
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def reseal(path: Path, change) -> None:
    """Edit the plan file and give it the digest of its new content: a plan as another
    Rivet (or a hostile writer) could make it."""
    document = json.loads(path.read_text())
    change(document)
    document.pop("digest", None)
    document["digest"] = digest_of(document)
    path.write_text(json.dumps(document))


# ------------------------------------------------------------------- running the plan


def test_apply_reads_the_sealed_chunks_not_the_rows_added_since(rivet_project, database,
                                                                keyed):
    rivet_project.write_config(config(database, f'table = "{keyed}"\nmode = "chunked"\n'
                                                'chunk_column = "id"\nchunk_size = 25'))
    sealed = make_plan(rivet_project)
    (export,) = sealed["exports"]
    assert len(export["chunks"]) == 4
    assert export["chunks"][-1]["hi"] == {"type": "int", "value": "101"}
    add(database, keyed, range(101, 121))  # beyond the sealed range

    summary = apply(rivet_project, "--json").json()
    (result,) = summary["exports"]
    assert result["rows"] == 100 and result["chunks"]["total"] == len(export["chunks"])
    assert sorted(exported_ids(rivet_project)) == list(range(1, 101))
    assert summary["applied_plan"]["digest"] == sealed["digest"]
    assert summary["applied_plan"]["overridden"] == []
    assert [e["digest"] for e in journal_events(rivet_project, "plan_applied")] == [
        sealed["digest"]]
    # `rivet run` plans anew and sees the new rows.
    again = rivet_project.run("run", "--json").assert_success().json()["exports"][0]
    assert again["rows"] == 120


def test_apply_starts_from_the_sealed_cursor(rivet_project, database, keyed):
    rivet_project.write_config(config(database, f'table = "{keyed}"\nmode = "incremental"\n'
                                                'cursor_column = "id"'))
    rivet_project.run("run").assert_success()
    sealed = make_plan(rivet_project)
    assert sealed["exports"][0]["cursor"] == {"type": "int", "value": "100"}
    add(database, keyed, range(101, 111))
    result = apply(rivet_project, "--json").json()["exports"][0]
    assert result["cursor_before"] == "100 (int)" and result["rows"] == 10
    assert result["cursor_after"] == "110 (int)"


def test_apply_uses_the_sealed_window_start(rivet_project, database):
    table = database.table("tw_sealed")
    database.execute(f"DROP TABLE IF EXISTS {table}")
    database.execute(f"CREATE TABLE {table} (id int, ts {database.timestamp})")
    rivet_project.write_config(config(database, f'table = "{table}"\nmode = "time_window"\n'
                                                'time_column = "ts"\ndays_window = 3'))
    sealed = make_plan(rivet_project)
    result = apply(rivet_project, "--json").json()["exports"][0]
    assert result["window_start"] == sealed["exports"][0]["window_start"]
    assert result["window_start"].endswith("T00:00:00.000000Z")


# ------------------------------------------------------------------------ stale plans


@pytest.fixture
def full_pg(rivet_project, pg_url, pg_schema):
    """A PostgreSQL project with one full export of 3 rows."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{pg_schema}".nums')
        conn.execute(f'CREATE TABLE "{pg_schema}".nums AS SELECT generate_series(1, 3) AS id')
    rivet_project.write_config(f"""
[source]
type = "postgres"
url = "{pg_url}"

[[exports]]
name = "ev"
query_file = "nums.sql"
format = "parquet"
[exports.destination]
type = "local"
path = "./output/{{export}}"
""")
    rivet_project.write("nums.sql", f'SELECT id FROM "{pg_schema}".nums\n')
    return rivet_project


def test_a_plan_older_than_max_age_is_refused_and_force_overrides_it(full_pg):
    make_plan(full_pg)
    refused = apply(full_pg, "--max-age", "0s", code=ExitCode.PLAN_REJECTED)
    assert "is stale" in refused.err and "old" in refused.err and "--max-age is 0" in refused.err
    assert "--force" in refused.err and exported_ids(full_pg) == []
    forced = apply(full_pg, "--max-age", "0s", "--force", "--json")
    assert "--force: overriding: the plan is" in forced.err
    (reason,) = forced.json()["applied_plan"]["overridden"]
    assert "old" in reason
    assert sorted(exported_ids(full_pg)) == [1, 2, 3]


def test_a_config_edited_after_planning_is_refused(full_pg):
    make_plan(full_pg)
    full_pg.config.write_text(full_pg.config.read_text() + "\n# edited\n")
    refused = apply(full_pg, code=ExitCode.PLAN_REJECTED)
    assert "rivet.toml changed since the plan" in refused.err
    assert exported_ids(full_pg) == []
    apply(full_pg, "--force")
    assert sorted(exported_ids(full_pg)) == [1, 2, 3]


def test_a_query_file_edited_after_planning_is_refused(full_pg):
    make_plan(full_pg)
    query = full_pg.path / "nums.sql"
    query.write_text(query.read_text().replace("SELECT id", "SELECT id, 1 AS x"))
    refused = apply(full_pg, code=ExitCode.PLAN_REJECTED)
    assert "query file nums.sql changed since the plan" in refused.err


def test_a_plan_made_by_another_version_is_refused(full_pg):
    make_plan(full_pg)
    reseal(full_pg.path / "plan.json", lambda d: d.update(tool_version="0.0.1"))
    refused = apply(full_pg, "--json", code=ExitCode.PLAN_REJECTED)
    error = json.loads(refused.err.strip().splitlines()[-1])
    assert "made by rivet 0.0.1" in error["error"] and error["exit_code"] == 4


def test_an_altered_plan_is_refused_even_with_force(full_pg):
    make_plan(full_pg)
    path = full_pg.path / "plan.json"
    document = json.loads(path.read_text())
    document["exports"][0]["query"] += " WHERE id > 1"
    path.write_text(json.dumps(document))
    for extra in ((), ("--force",)):
        refused = apply(full_pg, *extra, code=ExitCode.PLAN_REJECTED)
        assert "altered after it was sealed" in refused.err
    assert exported_ids(full_pg) == []


def test_a_plan_for_an_export_that_is_gone_is_refused_even_with_force(full_pg):
    make_plan(full_pg)
    full_pg.config.write_text(full_pg.config.read_text().replace('name = "ev"',
                                                                 'name = "renamed"'))
    refused = apply(full_pg, "--force", code=ExitCode.PLAN_REJECTED)
    assert "export 'ev' of the plan is not in" in refused.err
    assert "--force cannot apply this one" in refused.err


def test_a_cursor_moved_since_the_plan_is_refused_and_force_runs_from_the_stored_one(
        rivet_project, database, keyed):
    rivet_project.write_config(config(database, f'table = "{keyed}"\nmode = "incremental"\n'
                                                'cursor_column = "id"'))
    sealed = make_plan(rivet_project)
    assert sealed["exports"][0]["cursor"] is None
    rivet_project.run("run").assert_success()  # moves the cursor to 100
    refused = apply(rivet_project, code=ExitCode.PLAN_REJECTED)
    assert "the cursor moved since the plan ((none) → 100 (int))" in refused.err
    assert len(exported_ids(rivet_project)) == 100
    forced = apply(rivet_project, "--force", "--json")
    assert "--force: overriding: export 'ev': the cursor moved" in forced.err
    result = forced.json()["exports"][0]
    assert result["cursor_before"] == "100 (int)" and result["rows"] == 0
    assert len(exported_ids(rivet_project)) == 100  # nothing exported twice
    (event,) = journal_events(rivet_project, "plan_applied")
    assert event["digest"] == sealed["digest"] and len(event["overridden"]) == 1


# --------------------------------------------------------------------------- secrets


def test_the_plan_holds_no_password(rivet_project, pg_url, pg_schema, monkeypatch):
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(pg_url)
    netloc = f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    monkeypatch.setenv("RIVET_PLAN_TEST_URL", urlunsplit((parts.scheme, netloc, parts.path,
                                                          "", "")))
    # Trust authentication ignores the password; the query quotes it too.
    rivet_project.write_config(f"""
[source]
type = "postgres"
url_env = "RIVET_PLAN_TEST_URL"

[[exports]]
name = "ev"
query = "SELECT 1 AS id WHERE '{PASSWORD}' <> ''"
format = "parquet"
[exports.destination]
type = "local"
path = "./output/{{export}}"
""")
    outcome = rivet_project.run("plan", "-o", str(rivet_project.path / "plan.json"), "--json")
    outcome.assert_success()
    text = (rivet_project.path / "plan.json").read_text()
    for shown in (text, outcome.out, outcome.err):
        assert PASSWORD not in shown
    document = json.loads(text)
    assert document["source"]["display"].startswith(f"postgresql://{parts.username}:REDACTED@")
    assert "REDACTED" in document["exports"][0]["query"]
    assert apply(rivet_project, "--json").json()["exports"][0]["rows"] == 1


# --------------------------------------------------------------------- hostile files


def _base_document():
    return {
        "format": "rivet-plan", "format_version": 1, "tool_version": "0.1.0",
        "created_at": "2026-01-01T00:00:00.000000Z",
        "config": {"path": "/nonexistent/rivet.toml", "sha256": "0" * 64},
        "source": {"type": "postgres", "display": "postgresql://u@h:5432/d"},
        "exports": [{"name": "ev", "mode": "chunked", "query": "SELECT 1", "query_file": None,
                     "chunk_column": "id",
                     "chunks": [{"idx": 0, "lo": {"type": "int", "value": "1"},
                                 "hi": {"type": "int", "value": "9"},
                                 "expected_rows": None}]}],
    }


def _typed(change):
    """The base document with one change, under a digest that matches it: only the
    change itself can be blamed."""
    document = _base_document()
    change(document)
    document["digest"] = digest_of(document)
    return json.dumps(document).encode()


def _chunk(**changes):
    return _typed(lambda d: d["exports"][0]["chunks"][0].update(changes))


HOSTILE: list[tuple[str, bytes | None, str]] = [
    ("empty", b"", "not JSON"),
    ("not-json", b"plan = yes", "not JSON"),
    ("not-utf8", b"\xff\xfe{}", "not UTF-8"),
    ("utf16", json.dumps(_base_document()).encode("utf-16"), "not UTF-8"),
    ("an-array", b"[1, 2]", "an array"),
    ("nested-100000-deep", b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ("5000-digit-number", b'{"format_version": ' + b"9" * 5000 + b"}", "too many digits"),
    ("nan", b'{"format_version": NaN}', "not a JSON number"),
    ("duplicate-key", b'{"format": 1, "format_version": 1, "format": 2}', "twice"),
    ("no-digest", json.dumps(_base_document()).encode(), "digest: required key missing"),
    ("other-format", _typed(lambda d: d.update(format="terraform")), "expected 'rivet-plan'"),
    ("future-version", _typed(lambda d: d.update(format_version=2)), "format_version is 2"),
    ("version-is-true", _typed(lambda d: d.update(format_version=True)), "format_version"),
    ("created-at-is-a-number", _typed(lambda d: d.update(created_at=5)), "created_at is 5"),
    ("created-at-impossible", _typed(lambda d: d.update(created_at="2026-13-45T00:00:00Z")),
     "a UTC time that exists"),
    ("exports-is-empty", _typed(lambda d: d.update(exports=[])), "exports is an array of 0"),
    ("unknown-mode", _typed(lambda d: d["exports"][0].update(mode="sideways")),
     "exports[0].mode is 'sideways'"),
    ("unknown-key", _typed(lambda d: d["exports"][0].update(extra=1)), "unknown key 'extra'"),
    ("name-has-a-newline", _typed(lambda d: d["exports"][0].update(name="a\nb")),
     "exports[0].name is 'a\\nb'"),
    ("config-path-has-a-nul", _typed(lambda d: d["config"].update(path="a\x00b")),
     "config.path"),
    ("idx-is-true", _chunk(idx=True), "idx is true"),
    ("expected-rows-beyond-int64", _chunk(expected_rows=2**70), "an integer of 71 bits"),
    ("bound-beyond-int64", _chunk(hi={"type": "int", "value": "9" * 30}), "chunks[0].hi"),
    ("bound-is-a-float", _chunk(lo={"type": "float", "value": "1.5"}), "chunks[0].lo"),
    ("bounds-reversed", _chunk(lo={"type": "int", "value": "9"},
                               hi={"type": "int", "value": "1"}), "is not below"),
    ("bounds-of-two-types", _chunk(hi={"type": "date", "value": "2026-01-01"}),
     "is not below"),
    ("impossible-date", _chunk(lo={"type": "date", "value": "2026-02-30"},
                               hi={"type": "date", "value": "2026-03-01"}), "chunks[0].lo"),
    ("cursor-does-not-decode", _typed(lambda d: d["exports"].__setitem__(0, {
        "name": "ev", "mode": "incremental", "query": "SELECT 1", "query_file": None,
        "cursor": {"type": "int", "value": "twelve"}})), "cursor type 'int'"),
    ("missing-file", None, "cannot read plan file"),
]


@pytest.mark.parametrize(("content", "says"),
                         [pytest.param(c, s, id=i) for i, c, s in HOSTILE])
def test_a_hostile_plan_file_is_a_one_line_error(rivet_project, content, says):
    path = rivet_project.path / "plan.json"
    if content is not None:
        path.write_bytes(content)
    outcome = apply(rivet_project, code=ExitCode.PLAN_REJECTED)
    errors = [line for line in outcome.err.splitlines() if line.startswith("rivet: ")]
    assert len(errors) == 1 and errors[0].startswith("rivet: error: "), outcome.err
    assert says in errors[0], outcome.err
    assert "Traceback" not in outcome.err
    as_json = apply(rivet_project, "--json", code=ExitCode.PLAN_REJECTED)
    assert json.loads(as_json.err)["exit_code"] == ExitCode.PLAN_REJECTED


def test_a_plan_file_that_is_a_directory_is_a_one_line_error(rivet_project):
    (rivet_project.path / "plan.json").mkdir()
    outcome = apply(rivet_project, code=ExitCode.PLAN_REJECTED)
    assert "cannot read plan file" in outcome.err and "Traceback" not in outcome.err
