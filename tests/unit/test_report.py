"""Run reports (rivet_core.report): the summary document, its Markdown, and the files."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from rivet_core import atomic
from rivet_core.redact import forget_secrets, register_secret
from rivet_core.report import (
    MAX_FILES_LISTED,
    export_document,
    render_markdown,
    summary_document,
    write_reports,
    write_summary_output,
)

STARTED = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)
RUN_A = "20261127T120000Z-a1b2c3"
RUN_B = "20261127T120005Z-d4e5f6"


@pytest.fixture(autouse=True)
def _no_secrets():
    forget_secrets()
    yield
    forget_secrets()


def file_entry(name: str, rows: int, size: int) -> dict[str, Any]:
    return {"name": name, "uri": f"file:///out/{name}", "rows": rows, "bytes": size,
            "sha256": "0123456789abcdef" * 4, "chunk": None}


def export_entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "export": "orders", "run_id": RUN_A, "mode": "full", "status": "success",
        "rows": 1500, "files": [file_entry(f"orders_{RUN_A}.parquet", 1500, 2048)],
        "bytes": 2048, "started_at": "2026-11-27T12:00:00.000000Z",
        "finished_at": "2026-11-27T12:00:03.400000Z", "duration_ms": 3400,
        "destination": "file:///out", "retries": 0, "error": None, "hint": None,
        "warnings": [], "quality": [],
    }
    entry.update(overrides)
    return entry


def failed_entry(**overrides: Any) -> dict[str, Any]:
    return export_entry(export="users", run_id=RUN_B, mode="incremental", status="failed",
                        rows=0, files=[], bytes=0, duration_ms=65_000, **overrides)


def document(*entries: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return summary_document(list(entries), config_path="/p/rivet.toml", started_at=STARTED,
                            finished_at=STARTED + dt.timedelta(seconds=70),
                            invocation_id="inv-1", extra=extra or None)


# ------------------------------------------------------------------- documents


def test_summary_counts_and_totals_the_exports():
    doc = document(export_entry(), failed_entry(), export_entry(export="empty", run_id="r3",
                                                               status="skipped", rows=0,
                                                               files=[], bytes=0))
    assert doc["invocation_id"] == "inv-1"
    assert doc["config_path"] == "/p/rivet.toml"
    assert doc["started_at"] == "2026-11-27T12:00:00.000000Z"
    assert doc["finished_at"] == "2026-11-27T12:01:10.000000Z"
    assert doc["duration_ms"] == 70_000
    assert doc["status"] == "failed"
    assert (doc["total_exports"], doc["success_count"], doc["failed_count"],
            doc["skipped_count"]) == (3, 1, 1, 1)
    assert doc["totals"] == {"rows": 1500, "files": 1, "bytes": 2048}
    assert [e["export"] for e in doc["exports"]] == ["orders", "users", "empty"]
    json.dumps(doc)


def test_success_and_skipped_exports_make_a_successful_invocation():
    doc = document(export_entry(), export_entry(export="b", status="skipped"))
    assert doc["status"] == "success"


def test_export_entries_are_carried_as_given():
    entry = export_entry(quality=[{"gate": "row_count_min", "passed": True}],
                         schema_drift={"changed": False}, custom={"k": 1})
    assert document(entry)["exports"] == [entry]


def test_extra_adds_header_keys_but_never_replaces_one():
    assert document(export_entry(), parallel_mode="sequential")["parallel_mode"] == "sequential"
    with pytest.raises(ValueError, match="'totals'"):
        document(export_entry(), totals={})
    with pytest.raises(ValueError, match="'invocation_id'"):
        document(export_entry(), invocation_id="other")


def test_export_document_is_one_entry_under_the_invocation_header():
    doc = document(export_entry(), failed_entry(), parallel_mode="sequential")
    one = export_document(doc, doc["exports"][1])
    assert one["scope"] == "export"
    assert one["invocation_id"] == "inv-1"
    assert one["parallel_mode"] == "sequential"
    assert one["exports"] == [doc["exports"][1]]
    assert (one["total_exports"], one["failed_count"], one["status"]) == (1, 1, "failed")


# -------------------------------------------------------------------- Markdown


def test_markdown_has_a_header_and_a_row_per_export():
    text = render_markdown(document(export_entry(), failed_entry()))
    lines = text.splitlines()
    assert lines[0] == "# Rivet run report"
    assert "- **Status:** failed — 2 export(s): 1 success · 1 failed · 0 skipped" in lines
    assert "- **Invocation:** `inv-1`" in lines
    assert "- **Totals:** 1,500 rows · 1 files · 2.0 KiB" in lines
    assert "| Export | Status | Mode | Rows | Files | Bytes | Duration |" in lines
    assert "| `orders` | ✓ success | full | 1,500 | 1 | 2.0 KiB | 3.4 s |" in lines
    assert "| `users` | ✗ failed | incremental | 0 | 0 | 0 B | 1 min 05 s |" in lines
    assert "## ✓ `orders` — success" in lines
    assert "## ✗ `users` — failed" in lines


def test_markdown_lists_files_with_a_short_checksum():
    lines = render_markdown(document(export_entry())).splitlines()
    assert f"| `orders_{RUN_A}.parquet` | 1,500 | 2.0 KiB | `0123456789ab…` |" in lines


def test_markdown_caps_the_file_list():
    files = [file_entry(f"f{i}.parquet", 1, 1) for i in range(MAX_FILES_LISTED + 3)]
    text = render_markdown(document(export_entry(files=files)))
    assert f"`f{MAX_FILES_LISTED - 1}.parquet`" in text
    assert f"`f{MAX_FILES_LISTED}.parquet`" not in text
    assert "… and 3 more file(s): see summary.json" in text


def test_markdown_shows_error_verbatim_and_hint_escaped():
    entry = failed_entry(error="COPY failed:\n```\nline 2 | *bold*", hint="set <x> to *y*")
    lines = render_markdown(document(entry)).splitlines()
    start = lines.index("### Error")
    assert lines[start + 2:start + 7] == ["````text", "COPY failed:", "```",
                                          "line 2 | *bold*", "````"]
    assert r"**Hint:** set \<x\> to \*y\*" in lines


def test_markdown_quality_gates_table():
    gates = [
        {"gate": "row_count_min", "severity": "fail", "passed": True, "observed": 1500,
         "expected": ">= 1", "message": "ok"},
        {"gate": "null_ratio_max", "severity": "warn", "passed": False, "observed": 0.25,
         "expected": "<= 0.05", "message": "column 'email': null ratio 0.2500 exceeds 0.0500"},
        {"gate": "unique_columns", "severity": "fail", "passed": False, "observed": 3,
         "expected": 0, "message": "column 'id': 3 duplicate values out of 1500 rows"},
    ]
    lines = render_markdown(document(export_entry(quality=gates))).splitlines()
    assert "| Gate | Severity | Observed | Expected | Result |" in lines
    assert "| `row_count_min` | `fail` | 1,500 | `>= 1` | pass |" in lines
    assert "| `null_ratio_max` | `warn` | 0.25 | `<= 0.05` | **WARN** |" in lines
    assert "| `unique_columns` | `fail` | 3 | 0 | **FAIL** |" in lines
    assert "- `unique_columns`: column 'id': 3 duplicate values out of 1500 rows" in lines


def test_markdown_schema_drift_lines():
    drift = {"changed": True, "since_run": RUN_B, "policy": "warn",
             "added": [{"name": "x", "type": "int64"}], "removed": [],
             "retyped": [{"name": "amount", "old": "decimal128(10, 2)",
                          "new": "decimal128(12, 2)"}],
             "nullability": [{"name": "id", "old": False, "new": True}], "reordered": True,
             "summary": "1 added (x int64), 1 retyped (amount: decimal128(10, 2) → "
                        "decimal128(12, 2))"}
    lines = render_markdown(document(export_entry(schema_drift=drift))).splitlines()
    assert (f"**CHANGED** since run `{RUN_B}` (`on_schema_drift` = warn): 1 added (x "
            "int64), 1 retyped (amount: decimal128(10, 2) → decimal128(12, 2))") in lines
    assert "- added `x` `int64`" in lines
    assert "- retyped `amount`: `decimal128(10, 2)` → `decimal128(12, 2)`" in lines
    assert "- nullability `id`: not null → nullable" in lines
    assert "- columns reordered (informational)" in lines


def test_markdown_unchanged_schema_is_one_line():
    text = render_markdown(document(export_entry(schema_drift={"changed": False,
                                                               "since_run": RUN_B})))
    assert f"### Schema drift\n\nUnchanged since run `{RUN_B}`.\n" in text


@pytest.mark.parametrize(("reconcile", "line"), [
    ({"source_rows": 1500, "exported_rows": 1500, "match": True},
     "**MATCH** — source 1,500 rows, exported 1,500 rows"),
    ({"source_rows": 1501, "exported_rows": 1500, "match": False},
     "**MISMATCH** — source 1,501 rows, exported 1,500 rows"),
])
def test_markdown_reconcile_line(reconcile, line):
    text = render_markdown(document(export_entry(reconcile=reconcile)))
    assert f"### Reconcile\n\n{line}\n" in text


def test_markdown_validation_with_findings():
    validation = {"status": "failed", "files_checked": 2, "findings": [
        {"kind": "checksum_mismatch", "name": "a.parquet", "severity": "error",
         "message": "SHA-256 differs"}]}
    lines = render_markdown(document(export_entry(validation=validation))).splitlines()
    assert "**failed** — 2 file(s) checked" in lines
    assert "- error `checksum_mismatch` `a.parquet`: SHA-256 differs" in lines
    passed = render_markdown(document(export_entry(validation={"passed": True})))
    assert "### Validation\n\n**passed**\n" in passed


def test_markdown_pipes_are_escaped_in_tables_only():
    lines = render_markdown(document(export_entry(export="a|b"))).splitlines()
    assert any(line.startswith("| `a\\|b` | ✓ success |") for line in lines)
    assert "## ✓ `a|b` — success" in lines


def test_markdown_for_one_export_names_its_run():
    doc = document(export_entry(), failed_entry())
    text = render_markdown(export_document(doc, doc["exports"][0]))
    assert text.startswith(f"# Rivet run `{RUN_A}`: export `orders`\n")
    assert "## ✗" not in text


def test_markdown_escapes_control_characters():
    text = render_markdown(document(failed_entry(error="bad \x1b[31mred\x1b[0m")))
    assert "\x1b" not in text
    assert "bad \\x1b[31mred\\x1b[0m" in text


# ----------------------------------------------------------------------- files


def test_reports_are_written_per_export_run(tmp_path: Path):
    doc = document(export_entry(), failed_entry(error="boom"))
    paths = write_reports(tmp_path, doc)
    runs = tmp_path / ".rivet" / "runs"
    assert paths == [runs / RUN_A / "summary.json", runs / RUN_A / "summary.md",
                     runs / RUN_B / "summary.json", runs / RUN_B / "summary.md"]
    written = json.loads((runs / RUN_B / "summary.json").read_text())
    assert written == export_document(doc, doc["exports"][1])
    assert written["exports"][0]["error"] == "boom"
    markdown = (runs / RUN_B / "summary.md").read_text()
    assert markdown.startswith(f"# Rivet run `{RUN_B}`: export `users`\n")
    assert sorted(p.name for p in (runs / RUN_A).iterdir()) == ["summary.json", "summary.md"]


def test_rewriting_a_report_replaces_it(tmp_path: Path):
    write_reports(tmp_path, document(export_entry(rows=1)))
    write_reports(tmp_path, document(export_entry(rows=2)))
    path = tmp_path / ".rivet" / "runs" / RUN_A / "summary.json"
    assert json.loads(path.read_text())["exports"][0]["rows"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["summary.json", "summary.md"]


def test_a_failed_write_keeps_the_previous_report_and_no_temporary(tmp_path: Path,
                                                                   monkeypatch):
    write_reports(tmp_path, document(export_entry(rows=1)))
    path = tmp_path / ".rivet" / "runs" / RUN_A / "summary.json"
    before = path.read_bytes()

    real_fdopen = os.fdopen

    class DiskFull:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __enter__(self) -> DiskFull:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: DiskFull(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space left"):
        write_reports(tmp_path, document(export_entry(rows=2)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["summary.json", "summary.md"]


def _count_fsyncs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", counted)
    return calls


def test_reports_are_atomic_without_a_flush_per_file(tmp_path: Path, monkeypatch):
    """A copy for people: renamed into place whole, but no disk flush per file (a run of
    many small exports would pay two per export)."""
    fsyncs = _count_fsyncs(monkeypatch)
    renamed: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        assert Path(src).parent == Path(dst).parent and Path(src).name.endswith(".tmp")
        renamed.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    doc = document(export_entry(), failed_entry(error="boom"))
    paths = write_reports(tmp_path, doc)
    assert fsyncs == []
    assert [dst for _, dst in renamed] == [p.name for p in paths]
    assert json.loads(paths[2].read_text()) == export_document(doc, doc["exports"][1])
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["summary.json", "summary.md"]


def test_summary_output_is_flushed_to_disk(tmp_path: Path, monkeypatch):
    """``--summary-output`` may be what a scheduler acts on: it stays durable."""
    fsyncs = _count_fsyncs(monkeypatch)
    write_summary_output(tmp_path / "summary.json", document(export_entry()))
    assert len(fsyncs) == 1


def test_write_atomic_is_durable_unless_told_otherwise(tmp_path: Path, monkeypatch):
    fsyncs = _count_fsyncs(monkeypatch)
    atomic.write_atomic(tmp_path / "a", b"durable")
    atomic.write_atomic(tmp_path / "b", b"volatile", durable=False)
    assert len(fsyncs) == 1
    assert (tmp_path / "a").read_bytes() == b"durable"
    assert (tmp_path / "b").read_bytes() == b"volatile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_report_directory_that_cannot_be_created_raises_oserror(tmp_path: Path):
    (tmp_path / ".rivet").write_text("a file where the directory goes")
    with pytest.raises(OSError):
        write_reports(tmp_path, document(export_entry()))


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "..", "", None])
def test_a_run_id_that_is_no_plain_name_is_refused(tmp_path: Path, run_id):
    with pytest.raises(ValueError, match="run id"):
        write_reports(tmp_path, document(export_entry(run_id=run_id)))
    assert not (tmp_path / ".rivet").exists()


def test_reports_are_created_with_the_umask_mode(tmp_path: Path):
    old = os.umask(0o022)
    try:
        paths = write_reports(tmp_path, document(export_entry()))
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o644}


def test_summary_output_is_the_whole_document(tmp_path: Path):
    doc = document(export_entry(), failed_entry())
    write_summary_output(tmp_path / "summary.json", doc)
    assert json.loads((tmp_path / "summary.json").read_text()) == doc
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_summary_output_refuses_stdout_and_a_missing_directory(tmp_path: Path):
    with pytest.raises(ValueError, match="'-'"):
        write_summary_output(Path("-"), document(export_entry()))
    with pytest.raises(FileNotFoundError):
        write_summary_output(tmp_path / "missing" / "s.json", document(export_entry()))


def test_a_registered_secret_in_an_error_is_never_written(tmp_path: Path):
    # A quote and a non-ASCII letter: escaped by JSON, so masking the JSON text would miss it.
    secret = 'pa"ss\\wörd-42'
    register_secret(secret)
    entry = failed_entry(error=f"FATAL: password authentication failed for {secret}",
                         hint=f"check {secret}", warnings=[f"retried after {secret}"])
    doc = document(entry, note_for=f"url postgresql://app:{secret}@db/prod")
    paths = write_reports(tmp_path, doc)
    write_summary_output(tmp_path / "out.json", doc)
    for path in [*paths, tmp_path / "out.json"]:
        raw = path.read_bytes()
        for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret,
                                                                  ensure_ascii=False)[1:-1]):
            assert form.encode() not in raw, path
        assert b"REDACTED" in raw
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["exports"][0]["error"] == ("FATAL: password authentication failed for "
                                              "REDACTED")
    assert written["note_for"] == "url postgresql://app:REDACTED@db/prod"
    assert secret not in render_markdown(doc)


def test_unencodable_text_still_gives_valid_files(tmp_path: Path):
    paths = write_reports(tmp_path, document(failed_entry(error="bytes \udcff from a driver")))
    assert json.loads(paths[0].read_text())["exports"][0]["error"] == "bytes \udcff from a driver"
    assert "bytes \\udcff from a driver" in paths[1].read_text(encoding="utf-8")
