"""Run reports: the summary document of one invocation, its Markdown rendering, and the
files it is written to.

* :func:`summary_document` — the aggregate of one ``rivet run``: invocation header, counts,
  totals and one entry per export (each export's own dict, as given: ``ExportResult.as_dict``
  plus whatever the run added, e.g. ``quality``, ``schema_drift``, ``reconcile``,
  ``validation``).
* :func:`render_markdown` — that document (or one export's report) for people.
* :func:`write_reports` — ``<config_dir>/.rivet/runs/<run_id>/summary.json`` and
  ``summary.md`` per export: the export's entry under the invocation header.
* :func:`write_summary_output` — the whole document as JSON at ``--summary-output PATH``.

Every string of a document is passed through :func:`~rivet_core.redact.redact` before it is
rendered or written (errors quote drivers, which may quote secrets), string by string, so
JSON escaping cannot hide a secret from the mask. Files are replaced atomically (temporary
file in the same directory, then ``os.replace``): a reader sees the old report or the new
one, never half of one.

The per-export reports are atomic but not fsynced (``write_atomic(..., durable=False)``):
they are a convenience copy for people, and the record of a run is the state store and the
destination's manifest and ``_SUCCESS``, which are made durable where they are written. A
flush per file would cost a run of many small exports two disk flushes per export, for
files whose loss in a power cut loses nothing that cannot be read elsewhere (``rivet
metrics``, the manifest). ``--summary-output`` stays durable: a scheduler may act on it as
the invocation's result. Not here: printing to the terminal and the ``-`` (stdout) choice,
which are the CLI's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rivet_core import __version__
from rivet_core.atomic import write_atomic
from rivet_core.config.values import format_bytes
from rivet_core.redact import redact
from rivet_core.state.store import iso

REPORT_VERSION = 1
RUNS_DIR = Path(".rivet") / "runs"
"""Where per-export reports live, relative to the config file's directory."""
MAX_FILES_LISTED = 200
"""Files a Markdown report lists per export; the JSON beside it lists them all."""

_COMPUTED = ("status", "total_exports", "success_count", "failed_count", "skipped_count",
             "totals", "exports")
"""Document keys derived from the export entries; the rest is the invocation header."""
_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MARK = {"success": "✓", "failed": "✗", "skipped": "•"}


# ------------------------------------------------------------------------ documents


def summary_document(results: Sequence[Mapping[str, Any]], *, config_path: str,
                     started_at: dt.datetime, finished_at: dt.datetime, invocation_id: str,
                     extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The aggregate of one invocation. ``results`` are the exports' dicts in run order;
    ``extra`` adds header keys (e.g. ``parallel_mode``) and may not replace any."""
    header: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "scope": "invocation",
        "invocation_id": invocation_id,
        "tool": {"name": "rivet", "version": __version__},
        "config_path": config_path,
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "duration_ms": max(0, int((finished_at - started_at).total_seconds() * 1000)),
    }
    for key, value in (extra or {}).items():
        if key in header or key in _COMPUTED:
            raise ValueError(f"extra key {key!r} would replace the report's own {key!r}")
        header[key] = value
    return _document(header, results)


def _document(header: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]
              ) -> dict[str, Any]:
    statuses = [entry.get("status") for entry in entries]
    return {
        **header,
        "status": "success" if all(s in ("success", "skipped") for s in statuses)
                  else "failed",
        "total_exports": len(entries),
        "success_count": statuses.count("success"),
        "failed_count": statuses.count("failed"),
        "skipped_count": statuses.count("skipped"),
        "totals": {
            "rows": sum(_count(entry.get("rows")) for entry in entries),
            "files": sum(len(entry.get("files") or ()) for entry in entries),
            "bytes": sum(_count(entry.get("bytes")) for entry in entries),
        },
        "exports": [dict(entry) for entry in entries],
    }


def export_document(document: Mapping[str, Any], entry: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """One export's report: its entry under the invocation header of ``document``, with
    counts and totals of that export alone."""
    header = {k: v for k, v in document.items() if k not in _COMPUTED}
    header["scope"] = "export"
    return _document(header, [entry])


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def redacted(value: Any) -> Any:
    """``value`` with every string in it (keys included) passed through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redacted(k): redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


# ------------------------------------------------------------------------- Markdown


def _printable(text: str, keep: str = "") -> str:
    """``text`` with unprintable characters escaped (``\\x1b``, ``\\udcff``), except those
    in ``keep``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def _code(value: Any) -> str:
    """An inline code span holding ``value`` verbatim."""
    text = _printable(str(value))
    if not text:
        return "(empty)"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _text(value: Any) -> str:
    """Free text on one line, Markdown's special characters escaped."""
    text = _printable(" ".join(str(value).splitlines()))
    return re.sub(r"([\\`*_\[\]<>#~])", r"\\\1", text)


def _block(value: Any) -> list[str]:
    """A fenced code block holding ``value`` verbatim (longer fence than any inside)."""
    text = _printable(str(value), keep="\n\t")
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return [f"{fence}text", *text.splitlines(), fence]


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return _code(json.dumps(value, ensure_ascii=False))
    return _code(value)


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "—"


def _bytes(value: Any) -> str:
    return format_bytes(value) if isinstance(value, int) and not isinstance(value, bool) \
        else "—"


def _duration(ms: Any) -> str:
    if not isinstance(ms, int) or isinstance(ms, bool):
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def _table(head: Sequence[str], align: Sequence[str], rows: list[list[str]]) -> list[str]:
    """A GFM table; a ``|`` inside a cell is escaped (code spans included: tables split
    rows on pipes before anything else)."""
    return ["| " + " | ".join(head) + " |",
            "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
            *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows)]


def render_markdown(document: Mapping[str, Any]) -> str:
    """The report for people: header, a table of the exports, then one section per export
    (error and hint, warnings, quality gates, schema drift, reconcile, validation, files).
    Keys an entry does not carry are left out; the document is redacted first."""
    return _markdown(redacted(document))


def _markdown(doc: Mapping[str, Any]) -> str:
    """:func:`render_markdown` of a document already :func:`redacted` (the text is masked
    once more as a whole: redaction is idempotent)."""
    entries: list[dict[str, Any]] = [e for e in doc.get("exports") or [] if isinstance(e, dict)]
    if doc.get("scope") == "export" and len(entries) == 1:
        title = (f"# Rivet run {_code(entries[0].get('run_id'))}: export "
                 f"{_code(entries[0].get('export'))}")
    else:
        title = "# Rivet run report"
    totals = doc.get("totals") or {}
    lines = [
        title, "",
        f"- **Status:** {_text(doc.get('status'))} — {_number(doc.get('total_exports'))} "
        f"export(s): {_number(doc.get('success_count'))} success · "
        f"{_number(doc.get('failed_count'))} failed · "
        f"{_number(doc.get('skipped_count'))} skipped",
        f"- **Invocation:** {_code(doc.get('invocation_id'))}",
        f"- **Config:** {_code(doc.get('config_path'))}",
        f"- **Started:** {_text(doc.get('started_at'))} · **Finished:** "
        f"{_text(doc.get('finished_at'))} · **Duration:** {_duration(doc.get('duration_ms'))}",
        f"- **Totals:** {_number(totals.get('rows'))} rows · {_number(totals.get('files'))} "
        f"files · {_bytes(totals.get('bytes'))}",
        "", "## Exports", "",
        *_table(["Export", "Status", "Mode", "Rows", "Files", "Bytes", "Duration"],
                "lllrrrr",
                [[_code(e.get("export")),
                  f"{_MARK.get(str(e.get('status')), '?')} {_text(e.get('status'))}",
                  _text(e.get("mode")), _number(e.get("rows")),
                  _number(len(e.get("files") or ())), _bytes(e.get("bytes")),
                  _duration(e.get("duration_ms"))] for e in entries]),
    ]
    for entry in entries:
        lines += ["", *_export_section(entry)]
    return redact("\n".join(lines) + "\n")


def _export_section(e: Mapping[str, Any]) -> list[str]:
    lines = [f"## {_MARK.get(str(e.get('status')), '?')} {_code(e.get('export'))} — "
             f"{_text(e.get('status'))}", "",
             f"- **Run:** {_code(e.get('run_id'))} (mode {_text(e.get('mode'))})"]
    facts = [
        ("Started", e.get("started_at") and f"{_text(e['started_at'])} · **Finished:** "
                                            f"{_text(e.get('finished_at') or '—')} · "
                                            f"**Duration:** {_duration(e.get('duration_ms'))}"),
        ("Destination", e.get("destination") and _code(e["destination"])),
        ("Cursor", (e.get("cursor_before") or e.get("cursor_after"))
         and f"{_code(e.get('cursor_before') or '(none)')} → "
             f"{_code(e.get('cursor_after') or '(none)')}"),
        ("Window from", e.get("window_start") and _code(e["window_start"])),
        ("Chunks", isinstance(e.get("chunks"), dict) and
         f"{_number(e['chunks'].get('completed'))}/{_number(e['chunks'].get('total'))} "
         f"completed, {_number(e['chunks'].get('failed'))} failed"
         + (" (resumed)" if e.get("resumed") else "")),
        ("Read", e.get("read_paths") and "; ".join(_text(p) for p in e["read_paths"])),
        ("Retries", e.get("retries") and _number(e["retries"])),
        ("Peak RSS", e.get("peak_rss_mb") is not None and f"{_text(e['peak_rss_mb'])} MiB"),
        ("Note", e.get("note") and _text(e["note"])),
    ]
    lines += [f"- **{label}:** {value}" for label, value in facts if value]
    if e.get("error"):
        lines += ["", "### Error", "", *_block(e["error"])]
        if e.get("hint"):
            lines += ["", f"**Hint:** {_text(e['hint'])}"]
    if e.get("warnings"):
        lines += ["", "### Warnings", "", *(f"- {_text(w)}" for w in e["warnings"])]
    if e.get("quality"):
        lines += ["", "### Quality gates", "", *_quality_lines(e["quality"])]
    if isinstance(e.get("schema_drift"), dict):
        lines += ["", "### Schema drift", "", *_drift_lines(e["schema_drift"])]
    if isinstance(e.get("reconcile"), dict):
        lines += ["", "### Reconcile", "", _reconcile_line(e["reconcile"])]
    if isinstance(e.get("validation"), dict):
        lines += ["", "### Validation", "", *_validation_lines(e["validation"])]
    if e.get("files"):
        lines += ["", "### Files", "", *_files_lines(e["files"])]
    return lines


def _result(gate: Mapping[str, Any]) -> str:
    if "result" in gate:
        return _text(gate["result"])
    if gate.get("passed") is None:
        return "—"
    if gate["passed"]:
        return "pass"
    return "**WARN**" if gate.get("severity") == "warn" else "**FAIL**"


def _quality_lines(gates: Sequence[Any]) -> list[str]:
    listed = [g for g in gates if isinstance(g, dict)]
    lines = _table(["Gate", "Severity", "Observed", "Expected", "Result"], "lllll",
                   [[_cell(g.get("gate")), _cell(g.get("severity")), _cell(g.get("observed")),
                     _cell(g.get("expected")), _result(g)] for g in listed])
    failed = [g for g in listed if g.get("passed") is False and g.get("message")]
    if failed:
        lines += ["", *(f"- {_code(g.get('gate'))}: {_text(g['message'])}" for g in failed)]
    return lines


def _drift_lines(drift: Mapping[str, Any]) -> list[str]:
    since = f" since run {_code(drift['since_run'])}" if drift.get("since_run") else ""
    if not drift.get("changed"):
        lines = [f"Unchanged{since}."]
    else:
        policy = (f" (`on_schema_drift` = {_text(drift['policy'])})" if drift.get("policy")
                  else "")
        lines = [f"**CHANGED**{since}{policy}: {_text(drift.get('summary') or '')}".rstrip(),
                 ""]
        lines += [f"- added {_code(c.get('name'))} {_code(c.get('type'))}"
                  for c in drift.get("added") or [] if isinstance(c, dict)]
        lines += [f"- removed {_code(c.get('name'))} {_code(c.get('type'))}"
                  for c in drift.get("removed") or [] if isinstance(c, dict)]
        lines += [f"- retyped {_code(c.get('name'))}: {_code(c.get('old'))} → "
                  f"{_code(c.get('new'))}"
                  for c in drift.get("retyped") or [] if isinstance(c, dict)]
        lines += [f"- nullability {_code(c.get('name'))}: "
                  f"{'nullable' if c.get('old') else 'not null'} → "
                  f"{'nullable' if c.get('new') else 'not null'}"
                  for c in drift.get("nullability") or [] if isinstance(c, dict)]
    if drift.get("reordered"):
        lines.append("- columns reordered (informational)")
    return lines


def _reconcile_line(reconcile: Mapping[str, Any]) -> str:
    counts = (f"source {_number(reconcile.get('source_rows'))} rows, exported "
              f"{_number(reconcile.get('exported_rows'))} rows")
    match = reconcile.get("match")
    if match is None:
        return f"not decided — {counts}"
    return f"**{'MATCH' if match else 'MISMATCH'}** — {counts}"


def _validation_lines(validation: Mapping[str, Any]) -> list[str]:
    status = validation.get("status")
    if status is None and isinstance(validation.get("passed"), bool):
        status = "passed" if validation["passed"] else "FAILED"
    line = f"**{_text(status or 'unknown')}**"
    if validation.get("files_checked") is not None:
        line += f" — {_number(validation['files_checked'])} file(s) checked"
    lines = [line]
    findings = validation.get("findings") or []
    if findings:
        lines.append("")
    for f in findings:
        if isinstance(f, dict):
            lines.append(f"- {_text(f.get('severity') or 'error')} {_code(f.get('kind'))}"
                         + (f" {_code(f['name'])}" if f.get("name") else "")
                         + f": {_text(f.get('message'))}")
        else:
            lines.append(f"- {_text(f)}")
    return lines


def _files_lines(files: Sequence[Any]) -> list[str]:
    listed = [f for f in files if isinstance(f, dict)]
    rows = []
    for f in listed[:MAX_FILES_LISTED]:
        digest = f.get("sha256")
        short = _code(f"{digest[:12]}…") if isinstance(digest, str) and digest else "—"
        rows.append([_code(f.get("name")), _number(f.get("rows")), _bytes(f.get("bytes")),
                     short])
    lines = _table(["File", "Rows", "Bytes", "SHA-256"], "lrrl", rows)
    if len(listed) > MAX_FILES_LISTED:
        lines += ["", f"… and {len(listed) - MAX_FILES_LISTED:,} more file(s): see "
                      "summary.json"]
    return lines


# -------------------------------------------------------------------------- writing


def _encode_json(document: Mapping[str, Any]) -> bytes:
    return _json_bytes(redacted(document))


def _json_bytes(doc: Mapping[str, Any]) -> bytes:
    """A document already :func:`redacted`, as JSON. ASCII escapes keep any string (lone
    surrogates included) valid JSON; redaction has already happened string by string, so
    the escaping cannot hide a secret."""
    return (json.dumps(doc, indent=2) + "\n").encode("ascii")


def report_dir(config_dir: Path, run_id: str) -> Path:
    """``<config_dir>/.rivet/runs/<run_id>``; ``ValueError`` for a run id that is not one
    plain path segment."""
    if not _SAFE_RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        raise ValueError(f"run id {run_id!r} cannot name a report directory")
    return config_dir / RUNS_DIR / run_id


def write_reports(config_dir: Path, document: Mapping[str, Any]) -> list[Path]:
    """Write ``summary.json`` and ``summary.md`` for each export of ``document`` under
    :func:`report_dir`, and return their paths in order. ``OSError`` (a directory that
    cannot be created, a full disk) is raised at the first failure for the caller to turn
    into a warning; reports written before it stay. Atomic, not fsynced: see the module."""
    paths: list[Path] = []
    for entry in document.get("exports") or []:
        run_id = entry.get("run_id")
        if not isinstance(run_id, str):
            raise ValueError(f"export {entry.get('export')!r} has no run id to file its "
                             "report under")
        # The directory is named by the run id as given; only the contents are redacted,
        # once for both renderings.
        directory = report_dir(config_dir, run_id)
        report = redacted(export_document(document, entry))
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in (("summary.json", _json_bytes(report)),
                           ("summary.md",
                            _markdown(report).encode("utf-8", "backslashreplace"))):
            write_atomic(directory / name, data, durable=False)
            paths.append(directory / name)
    return paths


def write_summary_output(path: Path, document: Mapping[str, Any]) -> None:
    """Write the whole document as JSON at ``path`` (``--summary-output``), atomically and
    durably (a scheduler may act on it). The directory must exist. ``-`` is refused: stdout
    is the caller's to choose."""
    if str(path) == "-":
        raise ValueError("write_summary_output writes files; the caller prints '-' itself")
    write_atomic(Path(path), _encode_json(document))
