"""Run manifests, `_SUCCESS` and `rivet validate` on the local destination: which run a
marker vouches for, what a failed run leaves, and every mismatch validate must find."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rivet_core.errors import ExitCode
from rivet_core.runner.crash import EXIT_CODE as CRASH_EXIT
from rivet_core.runner.manifest import success_marker


def config(pg_url: str, query: str, *, extra: str = "", path: str = "./output/{export}") -> str:
    return f"""
[source]
type = "postgres"
url = "{pg_url}"

[[exports]]
name = "nums"
query = "{query}"
format = "csv"
{extra}
[exports.destination]
type = "local"
path = "{path}"
"""


GOOD = "SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 50000) g"
# Division by zero at row 40000, after the first 1 MB parts were committed.
FAILS_LATE = ("SELECT g AS id, md5(g::text) AS h, 1 / (40000 - g) AS boom "
              "FROM generate_series(1, 50000) g")


@pytest.fixture
def out(rivet_project) -> Path:
    return rivet_project.path / "output" / "nums"


def manifest(out: Path) -> dict:
    return json.loads((out / "_rivet/nums/manifest.json").read_text())


def findings(outcome) -> list[tuple[str, str | None]]:
    (export,) = outcome.json()["exports"]
    return [(f["kind"], f["name"]) for f in export["findings"] if f["severity"] == "error"]


def test_successful_run_validates(rivet_project, pg_url, out):
    rivet_project.write_config(config(pg_url, GOOD, extra='max_file_size = "1MB"'))
    summary = rivet_project.run("run", "--json").assert_success().json()
    run_id = summary["exports"][0]["run_id"]
    assert manifest(out)["run_id"] == run_id
    outcome = rivet_project.run("validate").assert_success()
    assert "nums: PASSED" in outcome.out and f"run {run_id} (success)" in outcome.out


def test_failed_run_writes_a_failed_manifest_and_no_success_marker(rivet_project, pg_url, out):
    rivet_project.write_config(config(pg_url, GOOD))
    rivet_project.run("run").assert_success()
    # Batches of at most 1 MiB, so whole parts are committed before the failing row is read.
    rivet_project.write_config(config(
        pg_url, FAILS_LATE,
        extra='max_file_size = "1MB"\n[exports.tuning]\nmax_batch_memory_mb = 1'))
    failed = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED).json()
    (export,) = failed["exports"]
    written = manifest(out)
    assert written["status"] == "failed" and written["run_id"] == export["run_id"]
    assert "division by zero" in written["error"]
    assert [f["name"] for f in written["files"]] == [f["name"] for f in export["files"]]
    assert written["files"], "parts committed before the failure are listed"
    assert not (out / "_rivet/nums/_SUCCESS").exists()
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    kinds = [kind for kind, _ in findings(outcome)]
    assert kinds[0] == "run_failed"
    assert "extra" in kinds  # the earlier snapshot's file sits beside the failed run's parts


def test_run_failing_before_writing_leaves_the_destination_as_it_was(
        rivet_project, pg_url, out):
    rivet_project.write_config(config(pg_url, GOOD))
    rivet_project.run("run").assert_success()
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rivet_project.write_config(config(pg_url, "SELECT nope FROM nowhere"))
    rivet_project.run("run").assert_failed(ExitCode.RUN_FAILED)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    rivet_project.write_config(config(pg_url, GOOD))
    rivet_project.run("validate").assert_success()


def test_success_marker_of_another_run_is_reported_stale(rivet_project, pg_url, out):
    rivet_project.write_config(config(pg_url, GOOD))
    rivet_project.run("run").assert_success()
    marker = out / "_rivet/nums/_SUCCESS"
    body = json.loads(marker.read_text())
    marker.write_text(json.dumps({**body, "run_id": "20200101T000000Z-000000"}) + "\n")
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert findings(outcome) == [("stale_marker", "_rivet/nums/_SUCCESS")]


def test_edited_manifest_no_longer_matches_its_marker(rivet_project, pg_url, out):
    rivet_project.write_config(config(pg_url, GOOD))
    rivet_project.run("run").assert_success()
    path = out / "_rivet/nums/manifest.json"
    path.write_text(path.read_text().replace('"status": "success"', '"status":  "success"'))
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert findings(outcome) == [("marker_checksum", "_rivet/nums/_SUCCESS")]


def test_validate_finds_missing_resized_corrupted_and_extra_files(rivet_project, pg_url, out):
    rivet_project.write_config(config(pg_url, GOOD, extra='max_file_size = "512KB"'))
    summary = rivet_project.run("run", "--json").assert_success().json()
    names = [f["name"] for f in summary["exports"][0]["files"]]
    assert len(names) >= 3
    (out / names[0]).unlink()
    with open(out / names[1], "ab") as handle:
        handle.write(b"more\n")
    data = bytearray((out / names[2]).read_bytes())
    data[100] ^= 1
    (out / names[2]).write_bytes(bytes(data))
    run_id = summary["exports"][0]["run_id"]
    (out / f"nums_{run_id}_part9999.csv").write_text("id\n")
    (out / "notes.txt").write_text("not one of the export's files")
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert sorted(findings(outcome)) == sorted([
        ("missing", names[0]), ("size_mismatch", names[1]),
        ("checksum_mismatch", names[2]), ("extra", f"nums_{run_id}_part9999.csv"),
    ])
    assert "error: missing:" in rivet_project.run("validate").out


def test_validate_without_any_run_reports_no_manifest(rivet_project, pg_url):
    rivet_project.write_config(config(pg_url, GOOD))
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert outcome.json()["exports"][0]["status"] == "no_manifest"


def test_validate_resolves_run_id_in_the_path_from_state_or_flag(rivet_project, pg_url):
    rivet_project.write_config(config(pg_url, GOOD, path="./output/{export}/{run_id}"))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]["run_id"]
    second = rivet_project.run("run", "--json").assert_success().json()["exports"][0]["run_id"]
    latest = rivet_project.run("validate", "--json").assert_success().json()
    assert latest["exports"][0]["run_id"] == second
    older = rivet_project.run("validate", "--json", "--run-id", first).assert_success().json()
    assert older["exports"][0]["run_id"] == first
    rivet_project.run("validate", "--run-id", "nope").assert_failed(ExitCode.USAGE)


def test_stdout_exports_are_not_validated(rivet_project, pg_url):
    rivet_project.write_config(config(pg_url, GOOD).replace(
        'type = "local"\npath = "./output/{export}"', 'type = "stdout"'))
    outcome = rivet_project.run("validate", "--json").assert_success()
    assert outcome.json()["exports"][0]["findings"][0]["kind"] == "not_applicable"


def test_validate_needs_no_source_credentials(rivet_project, pg_url, monkeypatch):
    """validate reads destinations only: a monitoring job without the database URL can run it,
    while check and run still refuse."""
    monkeypatch.setenv("RIVET_TEST_VALIDATE_URL", pg_url)
    rivet_project.write_config(config(pg_url, GOOD).replace(
        f'url = "{pg_url}"', 'url_env = "RIVET_TEST_VALIDATE_URL"'))
    rivet_project.run("run").assert_success()
    monkeypatch.delenv("RIVET_TEST_VALIDATE_URL")
    assert "nums: PASSED" in rivet_project.run("validate").assert_success().out
    refused = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert "source.url_env: environment variable 'RIVET_TEST_VALIDATE_URL' is not set" \
        in refused.err


# ------------------------------------------------------------- hostile manifests
# Each gave a traceback and exit 1 (or passed) before validation became type-strict.


def entry(**changes):
    def mutate(doc):
        doc["files"][0].update(changes)
        return json.dumps(doc).encode()
    return mutate


def top(**changes):
    def mutate(doc):
        doc.update(changes)
        return json.dumps(doc).encode()
    return mutate


def rows_true(doc):
    # Python adds True as 1: totals that add up this way must not make it a row count.
    doc["files"][0]["rows"] = True
    doc["totals"]["rows"] = 1
    return json.dumps(doc).encode()


def raw(change):
    """A change of the manifest's bytes rather than of its document."""
    def mutate(doc):
        return change(json.dumps(doc, indent=2).encode())
    return mutate


DEEP = b"[" * 100_000 + b"]" * 100_000

# (id, new manifest bytes from the real document, new marker bytes, expected finding)
HOSTILE = [
    ("totals-is-an-array", top(totals=[1]), None, "inconsistent_manifest"),
    ("rows-is-a-string", entry(rows="many"), None, "inconsistent_manifest"),
    ("name-is-an-array", entry(name=["a"]), None, "inconsistent_manifest"),
    ("sha256-is-a-number", entry(sha256=5), None, "inconsistent_manifest"),
    ("run-id-is-an-object", top(run_id={}), None, "inconsistent_manifest"),
    ("rows-is-true", rows_true, None, "inconsistent_manifest"),
    ("bytes-is-negative", entry(bytes=-1), None, "inconsistent_manifest"),
    ("manifest-nested-100k-deep", raw(lambda _: DEEP), None, "bad_manifest"),
    ("manifest-in-utf16", raw(lambda b: b.decode().encode("utf-16")), None, "bad_manifest"),
    ("rows-of-5000-digits",
     raw(lambda b: re.sub(rb'"rows": \d+', b'"rows": ' + b"9" * 5000, b, count=1)), None,
     "bad_manifest"),
    ("marker-nested-100k-deep", None, DEEP, "stale_marker"),
    ("marker-is-a-list", None, b"[1]", "stale_marker"),
    ("marker-is-a-number", None, b"5", "stale_marker"),
]


@pytest.mark.parametrize(("change", "marker", "kind"),
                         [pytest.param(c, m, k, id=i) for i, c, m, k in HOSTILE])
def test_validate_reports_a_hostile_manifest_or_marker_and_exits_6(
        rivet_project, pg_url, out, change, marker, kind):
    rivet_project.write_config(config(pg_url, GOOD))
    summary = rivet_project.run("run", "--json").assert_success().json()
    run_id = summary["exports"][0]["run_id"]
    if change is not None:
        tampered = change(manifest(out))
        (out / "_rivet/nums/manifest.json").write_bytes(tampered)
        # A marker vouching for the new bytes: the manifest's own content is what is judged.
        marker = marker or success_marker(run_id, tampered)
    if marker is not None:
        (out / "_rivet/nums/_SUCCESS").write_bytes(marker)
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert {k for k, _ in findings(outcome)} == {kind}, outcome.out
    rivet_project.run("validate").assert_failed(ExitCode.CHECK_FAILED)


# -------------------------------------------- the failure table of docs/manifest.md
# One test per row the tests above do not cover: what an interrupted, a killed, and an
# unvouchable run leave, and what validate then reports.

SLOW = ("SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 40000) g "
        "WHERE pg_sleep(0.0005) IS NOT NULL")
"""About 20 s of rows; streamed in batches of 500, a 64 KB part is committed every second."""


def streamed(text: str) -> str:
    """The config with the cursor read path, so parts commit while rows still arrive."""
    return text.replace('type = "postgres"', 'type = "postgres"\nread_path = "cursor"')


def start_run(rivet_project, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rivet_core.cli.main", "run", "-c",
                             str(rivet_project.config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **env})


def wait_until(predicate, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended before {what}: "
                                 f"{process.communicate()[1].decode()}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def parts(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("nums_*") if p.is_file())


def test_sigterm_after_writing_started_leaves_a_failed_manifest_validate_reports_run_failed(
        rivet_project, pg_url, out):
    rivet_project.write_config(streamed(config(
        pg_url, SLOW, extra='max_file_size = "64KB"\n[exports.tuning]\nbatch_size = 500')))
    process = start_run(rivet_project)
    wait_until(lambda: parts(out), process, "a committed part")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, err.decode()
    written = manifest(out)
    assert written["status"] == "failed" and "interrupted" in written["error"]
    assert [f["name"] for f in written["files"]] == parts(out)
    assert not (out / "_rivet/nums/_SUCCESS").exists()
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert findings(outcome) == [("run_failed", "_rivet/nums/manifest.json")]


def test_sigterm_before_writing_leaves_the_destination_as_it_was(rivet_project, pg_url, out):
    rivet_project.write_config(config(pg_url, GOOD))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]["run_id"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rivet_project.write_config(config(pg_url, "SELECT 1 AS id FROM pg_sleep(4)"))
    process = start_run(rivet_project)
    time.sleep(1.5)  # imports, config and plan done; the query is running
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, err.decode()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    report = rivet_project.run("validate", "--json", "--run-id", first).assert_success()
    assert report.json()["exports"][0]["run_id"] == first


def test_a_run_killed_after_writing_started_leaves_the_previous_manifest_without_marker(
        rivet_project, pg_url, out):
    rivet_project.write_config(config(pg_url, GOOD))
    first = rivet_project.run("run", "--json").assert_success().json()["exports"][0]["run_id"]
    process = start_run(rivet_project, RIVET_CRASH_AT="after_file_commit")
    process.communicate(timeout=60)
    assert process.returncode == CRASH_EXIT
    assert manifest(out)["run_id"] == first, "the killed run wrote no manifest"
    assert not (out / "_rivet/nums/_SUCCESS").exists(), "rule 1 removed the marker"
    (orphan,) = [name for name in parts(out) if first not in name]
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert findings(outcome) == [("marker_missing", "_rivet/nums/_SUCCESS"), ("extra", orphan)]


def test_a_complete_run_whose_manifest_cannot_be_written_fails_unvouched(
        rivet_project, pg_url, out):
    blocker = out / "_rivet/nums/manifest.json"
    blocker.mkdir(parents=True)
    (blocker / "in-the-way").write_text("a directory where the manifest goes")
    rivet_project.write_config(config(pg_url, GOOD))
    failed = rivet_project.run("run", "--json").assert_failed(ExitCode.RUN_FAILED).json()
    (export,) = failed["exports"]
    assert export["status"] == "failed" and "run manifest could not be written" in export["error"]
    assert parts(out) == [f["name"] for f in export["files"]]
    assert not (out / "_rivet/nums/_SUCCESS").exists()
    outcome = rivet_project.run("validate", "--json").assert_failed(ExitCode.CHECK_FAILED)
    assert outcome.json()["exports"][0]["status"] == "no_manifest"
