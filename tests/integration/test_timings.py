"""``rivet run --timings`` on the real PostgreSQL: where a run's time went, in the text
output and in the ``--json`` summary, per export and for the invocation; phases of exports
running at once on threads of their own are recorded apart; off, nothing is shown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rivet_core.runner.timings import EXPORT_PHASES, RUN_PHASES

PHASES = (*EXPORT_PHASES, "other")


@pytest.fixture
def numbers(pg):
    pg.execute("DROP TABLE IF EXISTS numbers")
    pg.execute("CREATE TABLE numbers AS SELECT g AS id, 'row ' || g AS v "
               "FROM generate_series(1, 3000) g")
    return "numbers"


def config(url, schema, names, *, top="", lines=""):
    text = f'{top}\n[source]\ntype = "postgres"\nurl = "{url}"\n'
    for name in names:
        text += (f'\n[[exports]]\nname = "{name}"\ntable = "{schema}.numbers"\n'
                 f'format = "parquet"\n{lines}\n'
                 'destination = { type = "local", path = "./output/{export}" }\n')
    return text


def test_timings_are_printed_after_the_summary(rivet_project, pg_url, pg_schema, numbers):
    rivet_project.write_config(config(pg_url, pg_schema, ["a", "b"]))
    err = rivet_project.run("run", "--timings").assert_success().err
    lines = err.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("timings: "))
    assert all(f" {name} " in lines[head] for name in ("config", "plan", "state", "exports",
                                                      "report", "total"))
    assert "startup" not in lines[head]  # in-process: this process is not the command
    columns = lines[head + 1].split()
    assert columns == ["export", "wall", *PHASES, "(ms)"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[head + 2:head + 5]}
    assert set(rows) == {"a", "b", "(median)"}
    assert all(len(values) == len(PHASES) + 1 for values in rows.values())


def test_timings_in_the_json_summary_add_up_per_export(rivet_project, pg_url, pg_schema,
                                                       numbers):
    rivet_project.write_config(config(pg_url, pg_schema, ["a", "b", "c"]))
    timings = rivet_project.run("run", "--timings", "--json").assert_success().json()["timings"]
    assert set(timings) == {*(f"{p}_ms" for p in RUN_PHASES), "total_ms", "exports",
                            "per_export_median"}
    assert timings["startup_ms"] is None
    for phase in ("config_ms", "plan_ms", "state_ms", "exports_ms", "report_ms"):
        assert timings[phase] >= 0
    assert [e["export"] for e in timings["exports"]] == ["a", "b", "c"]
    for export in timings["exports"]:
        phases = export["phases"]
        assert set(phases) == set(PHASES)
        # One thread per export here: its phases (each exclusive of those nested in it)
        # and "other" are its wall time.
        assert sum(phases.values()) == pytest.approx(export["wall_ms"], abs=1.0)
        for phase in ("describe", "probe", "read", "encode", "commit", "state", "manifest"):
            assert phases[phase] > 0, (phase, export)
    # The first export connects; the next ones reuse its connection.
    assert timings["exports"][0]["phases"]["connect"] > 0
    # One export reads at a time, the next one starting while the last finishes its small
    # file: the exports' time is more than the longest one's, less than the sum plus a bit.
    walls = [e["wall_ms"] for e in timings["exports"]]
    assert max(walls) <= timings["exports_ms"] <= sum(walls) + 50
    assert timings["total_ms"] >= timings["exports_ms"]
    median = timings["per_export_median"]
    assert set(median["phases"]) == set(PHASES) and median["wall_ms"] > 0


def test_timings_of_exports_running_at_once_are_kept_apart(rivet_project, pg_url, pg_schema,
                                                           numbers):
    rivet_project.write_config(config(pg_url, pg_schema, ["a", "b", "c", "d"]))
    timings = rivet_project.run("run", "--timings", "--json", "--parallel-exports",
                                "2").assert_success().json()["timings"]
    for export in timings["exports"]:
        # Each export's phases were recorded on its own thread: they never hold another
        # export's time, so they fit in its wall time.
        busy = sum(v for k, v in export["phases"].items() if k != "other")
        assert busy <= export["wall_ms"] + 1.0, export
        assert export["phases"]["read"] > 0 and export["phases"]["commit"] > 0


def test_timings_of_a_parallel_chunked_export_count_its_workers(rivet_project, pg_url,
                                                                pg_schema, numbers):
    rivet_project.write_config(config(pg_url, pg_schema, ["a"], lines=(
        'mode = "chunked"\nchunk_column = "id"\nchunk_size = 500\nparallel = 2')))
    timings = rivet_project.run("run", "--timings", "--json").assert_success().json()["timings"]
    (export,) = timings["exports"]
    assert export["phases"]["read"] > 0
    assert export["phases"]["commit"] > 0


def test_very_verbose_shows_the_timings_too(rivet_project, pg_url, pg_schema, numbers):
    rivet_project.write_config(config(pg_url, pg_schema, ["a"]))
    err = rivet_project.run("run", "-vv").assert_success().err
    assert any(line.startswith("timings: ") for line in err.splitlines())


def test_without_timings_nothing_is_recorded(rivet_project, pg_url, pg_schema, numbers):
    rivet_project.write_config(config(pg_url, pg_schema, ["a"]))
    outcome = rivet_project.run("run", "--json").assert_success()
    assert "timings" not in outcome.json()
    assert "timings:" not in outcome.err


def test_the_command_reports_its_start_up(rivet_project, pg_url, pg_schema, numbers):
    rivet_project.write_config(config(pg_url, pg_schema, ["a"]))
    done = subprocess.run([sys.executable, "-m", "rivet_core.cli.main", "run", "-c",
                           str(rivet_project.config), "--timings", "--json"],
                          capture_output=True, text=True, check=True)
    timings = json.loads(done.stdout)["timings"]
    # Interpreter, imports and argument parsing, before the command's own work.
    assert timings["startup_ms"] > 0
    assert timings["total_ms"] >= timings["startup_ms"] + timings["exports_ms"]
    assert done.stderr.splitlines()[-3].startswith("timings: startup ")
