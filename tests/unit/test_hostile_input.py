"""No input, however hostile, produces a traceback.

Hostile run manifests and ``_SUCCESS`` markers must give ``rivet validate`` findings and
exit 6; broken config files must give every command that reads a config a one-line config
error naming the file (and the TOML key) and exit 3. Most cases here gave a traceback, a
wrong exit code or a wrong finding before their fix; the others pin what was already right.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from manifest_site import EXPORT, RUN_ID, ManifestSite, build_site

from rivet_core.cli.main import build_parser
from rivet_core.config import load_config
from rivet_core.errors import ConfigError, ExitCode
from rivet_core.plugins import build_registry
from rivet_core.runner.manifest import sha256, success_marker

# ------------------------------------------------------------------ manifests and markers


@pytest.fixture
def site(tmp_path: Path) -> ManifestSite:
    return build_site(tmp_path / "project")


def first_file(**changes: Any) -> Callable[[dict[str, Any]], None]:
    """Change the first file entry, and make ``totals`` add up the way Python adds, so only
    the entry's own type can be blamed (``True`` sums as 1, ``3.0`` equals 3)."""
    def mutate(doc: dict[str, Any]) -> None:
        doc["files"][0].update(changes)
        for key in ("rows", "bytes"):
            with contextlib.suppress(TypeError):  # "many" adds up to nothing
                doc["totals"][key] = sum(f[key] for f in doc["files"])
    return mutate


def top(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        doc.update(changes)
    return mutate


def two_files_of_4300_digit_rows(doc: dict[str, Any]) -> None:
    # Each parses (the limit is 4300 digits); their sum has 4301, which str() refuses.
    for entry in doc["files"]:
        entry["rows"] = int("9" * 4300)


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (id, mutation of the real document, expected finding kind)
INCONSISTENT = [
    ("totals-is-an-array", top(totals=[1])),
    ("rows-is-a-string", first_file(rows="many")),
    ("name-is-an-array", first_file(name=["a"])),
    ("sha256-is-a-number", first_file(sha256=5)),
    ("sha256-is-uppercase", first_file(sha256=sha256(b"id\n1\n2\n3\n").upper())),
    ("sha256-is-short", first_file(sha256="abc")),
    ("run-id-is-an-object", top(run_id={})),
    ("run-id-is-not-a-run-id", top(run_id="yesterday")),
    ("rows-is-true", first_file(rows=True)),
    ("bytes-is-true", first_file(bytes=True)),
    ("rows-is-a-float", first_file(rows=3.0)),
    ("rows-is-negative", first_file(rows=-3)),
    ("bytes-is-negative", first_file(bytes=-9)),
    ("rows-beyond-int64", first_file(rows=2**64)),
    ("manifest-version-is-true", top(manifest_version=True)),
    ("name-is-empty", first_file(name="")),
    ("name-holds-nul", first_file(name=f"{EXPORT}_{RUN_ID}\x00.csv")),
    ("name-holds-a-newline", first_file(name=f"{EXPORT}_{RUN_ID}\nnums: PASSED")),
    ("name-holds-a-lone-surrogate", first_file(name=f"{EXPORT}_{RUN_ID}\ud800.csv")),
    ("name-climbs-out", first_file(name="../../etc/passwd")),
    ("name-is-absolute", first_file(name="/etc/passwd")),
    ("status-is-an-array", top(status=["success"])),
    ("status-is-unknown", top(status="fine")),
    ("mode-is-an-array", top(mode=["full"])),
    ("mode-is-unknown", top(mode="sometimes")),
    ("export-is-an-array", top(export=[EXPORT])),
    ("error-is-an-object", top(status="failed", error={"a": 1})),
    ("files-is-an-object", top(files={})),
    ("file-entry-is-a-string", top(files=["x"])),
    ("totals-sum-has-4301-digits", two_files_of_4300_digit_rows),
]

# (id, the manifest's bytes given the real ones)
UNPARSABLE: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("nested-100k-deep", lambda _: deep(100_000)),
    ("nested-100k-deep-inside-the-object",
     lambda raw: raw.replace(b'"cursor": null', b'"cursor": ' + deep(100_000))),
    ("utf16-json", lambda raw: raw.decode().encode("utf-16")),
    ("utf32-json", lambda raw: raw.decode().encode("utf-32")),
    ("latin1-inside-a-string",
     lambda raw: raw.replace(b'"error": null', '"error": "café"'.encode("latin-1"))),
    ("utf8-bom", lambda raw: b"\xef\xbb\xbf" + raw),
    ("rows-of-5000-digits", lambda raw: raw.replace(b'"rows": 3', b'"rows": ' + b"9" * 5000, 1)),
    ("rows-is-nan", lambda raw: raw.replace(b'"rows": 3', b'"rows": NaN', 1)),
    ("rows-is-infinity", lambda raw: raw.replace(b'"rows": 3', b'"rows": Infinity', 1)),
    ("duplicate-key", lambda raw: raw.replace(b'"status": "success"',
                                              b'"status": "failed", "status": "success"')),
    ("a-json-array", lambda _: b"[]"),
    ("a-json-number", lambda _: b"5"),
    ("a-json-string", lambda _: b'"manifest"'),
    ("json-null", lambda _: b"null"),
    ("empty", lambda _: b""),
    ("nul-bytes", lambda _: b"\x00" * 64),
    ("truncated", lambda raw: raw[: len(raw) // 2]),
]

# (id, the marker's bytes given the manifest's)
BAD_MARKERS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("nested-100k-deep", lambda _: deep(100_000)),
    ("a-json-array", lambda _: b"[1]"),
    ("a-json-number", lambda _: b"5"),
    ("json-null", lambda _: b"null"),
    ("empty", lambda _: b""),
    ("utf16-json", lambda m: success_marker(RUN_ID, m).decode().encode("utf-16")),
    ("run-id-is-an-object",
     lambda m: json.dumps({"run_id": {}, "manifest_sha256": sha256(m)}).encode()),
    ("run-id-is-an-array",
     lambda m: json.dumps({"run_id": [RUN_ID], "manifest_sha256": sha256(m)}).encode()),
    ("checksum-is-uppercase",
     lambda m: json.dumps({"run_id": RUN_ID, "manifest_sha256": sha256(m).upper()}).encode()),
    ("checksum-is-a-number",
     lambda m: json.dumps({"run_id": RUN_ID, "manifest_sha256": 5}).encode()),
    ("checksum-missing", lambda m: json.dumps({"run_id": RUN_ID}).encode()),
    ("run-id-of-5000-digits", lambda m: b'{"run_id": ' + b"9" * 5000 + b"}"),
    ("duplicate-key",
     lambda m: (b'{"run_id": "20200101T000000Z-000000", '
                + success_marker(RUN_ID, m).lstrip(b"{"))),
    ("nul-bytes", lambda _: b"\x00" * 16),
]


def assert_reportable(report: Any) -> None:
    """The report can be printed as text and as JSON, on a UTF-8 stream."""
    json.dumps(report.as_dict())
    for finding in report.findings:
        f"{finding.kind}: {finding.name}: {finding.message}".encode()
    assert report.run_id is None or isinstance(report.run_id, str)
    assert report.run_status is None or isinstance(report.run_status, str)


@pytest.mark.parametrize(("mutate",), [pytest.param(m, id=i) for i, m in INCONSISTENT])
def test_a_manifest_of_wrong_types_is_reported_inconsistent(site: ManifestSite, mutate):
    doc = site.document()
    mutate(doc)
    site.write(json.dumps(doc, indent=2).encode("utf-8", "surrogatepass"))
    report = site.validate()
    assert_reportable(report)
    assert {f.kind for f in report.findings if f.severity == "error"} == \
        {"inconsistent_manifest"}, report.findings
    outcome = site.cli("validate")
    assert outcome.code == ExitCode.CHECK_FAILED, outcome
    outcome.out.encode()


@pytest.mark.parametrize(("bad",), [pytest.param(b, id=i) for i, b in UNPARSABLE])
def test_manifest_bytes_that_are_not_a_json_object_in_utf8_are_a_bad_manifest(
        site: ManifestSite, bad):
    site.write(bad(site.manifest))
    report = site.validate()
    assert_reportable(report)
    assert [f.kind for f in report.findings] == ["bad_manifest"], report.findings
    assert site.cli("validate").code == ExitCode.CHECK_FAILED


@pytest.mark.parametrize(("bad",), [pytest.param(b, id=i) for i, b in BAD_MARKERS])
def test_a_success_marker_that_is_not_a_rivet_marker_is_stale(site: ManifestSite, bad):
    site.write(marker=bad(site.manifest))
    report = site.validate()
    assert_reportable(report)
    assert [f.kind for f in report.findings] == ["stale_marker"], report.findings
    assert site.cli("validate", "--json").code == ExitCode.CHECK_FAILED


def test_the_untampered_site_validates(site: ManifestSite):
    report = site.validate()
    assert report.ok and report.files_checked == 2, report.findings
    assert site.cli("validate").code == ExitCode.OK


def test_a_failed_runs_error_is_printed_without_control_characters(site: ManifestSite):
    doc = site.document()
    doc.update(status="failed", error="boom\x1b[2J\r\nnums: PASSED\ud800")
    site.write(json.dumps(doc).encode(), marker=b"")
    (site.directory / "_rivet" / EXPORT / "_SUCCESS").unlink()
    report = site.validate()
    assert [f.kind for f in report.findings] == ["run_failed"]
    outcome = site.cli("validate")
    assert outcome.code == ExitCode.CHECK_FAILED
    outcome.out.encode()
    assert "\x1b" not in outcome.out and "\r" not in outcome.out
    assert "nums: PASSED" not in outcome.out.splitlines()


def test_an_unlisted_file_whose_name_is_not_utf8_is_printed_escaped(site: ManifestSite):
    os.close(os.open(os.fsencode(site.directory) + f"/{EXPORT}_{RUN_ID}".encode()
                     + b"_\xff.csv", os.O_CREAT | os.O_WRONLY))
    report = site.validate()
    assert [f.kind for f in report.findings] == ["extra"]
    outcome = site.cli("validate")
    assert outcome.code == ExitCode.CHECK_FAILED
    outcome.out.encode()  # the real stdout is UTF-8: a lone surrogate would raise there
    assert "\\udcff" in outcome.out or "\\xff" in outcome.out


# -------------------------------------------------------------------------- config files

GOOD_SOURCE = """\
[source]
type = "postgres"
url = "postgresql://nobody@127.0.0.1:1/never-connected"
"""
GOOD_EXPORT = """
[[exports]]
name = "nums"
query = "SELECT 1 AS a"
format = "csv"
[exports.destination]
type = "local"
path = "./output/{export}"
"""

# (id, config bytes, or None for no file, "dir" for a directory)
BROKEN_DOCUMENTS: list[tuple[str, bytes | str | None]] = [
    ("missing", None),
    ("a-directory", "dir"),
    ("empty", b""),
    ("binary-garbage", bytes(range(256)) * 8),
    ("not-utf8", (GOOD_SOURCE + GOOD_EXPORT).replace("nums", "n\xe9ms").encode("latin-1")),
    ("utf16", (GOOD_SOURCE + GOOD_EXPORT).encode("utf-16")),
    ("invalid-toml", b"[source\n"),
    ("exports-is-a-number", ("exports = 5\n" + GOOD_SOURCE).encode()),
    ("exports-is-a-string", ('exports = "nums"\n' + GOOD_SOURCE).encode()),
    ("exports-mixes-types", ('exports = [1, "x"]\n' + GOOD_SOURCE).encode()),
    ("exports-holds-arrays", ("exports = [[1]]\n" + GOOD_SOURCE).encode()),
    ("exports-is-empty", ("exports = []\n" + GOOD_SOURCE).encode()),
    ("exports-is-a-table", (GOOD_SOURCE + '[exports]\nname = "nums"\n').encode()),
    ("no-exports", GOOD_SOURCE.encode()),
    ("source-is-a-string", ('source = "postgres"\n' + GOOD_EXPORT).encode()),
    ("source-is-a-number", ("source = 5\n" + GOOD_EXPORT).encode()),
    ("source-is-an-array", ("source = [1]\n" + GOOD_EXPORT).encode()),
    ("no-source", GOOD_EXPORT.encode()),
    ("export-name-is-a-number",
     (GOOD_SOURCE + GOOD_EXPORT.replace('name = "nums"', "name = 5")).encode()),
    ("export-name-is-an-array",
     (GOOD_SOURCE + GOOD_EXPORT.replace('name = "nums"', 'name = ["nums"]')).encode()),
    ("export-name-missing",
     (GOOD_SOURCE + GOOD_EXPORT.replace('name = "nums"\n', "")).encode()),
    ("integer-of-5000-digits", ("x = " + "9" * 5000 + "\n" + GOOD_SOURCE + GOOD_EXPORT).encode()),
    ("array-nested-5000-deep",
     ("x = " + "[" * 5000 + "]" * 5000 + "\n" + GOOD_SOURCE + GOOD_EXPORT).encode()),
    ("inline-table-nested-5000-deep",
     ("x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n" + GOOD_SOURCE + GOOD_EXPORT).encode()),
    # tomllib parses dotted keys in quadratic time: 5000 levels take a fraction of a second.
    ("dotted-key-5000-deep",
     (GOOD_SOURCE + "x" + ".x" * 5000 + " = 1\n" + GOOD_EXPORT).encode()),
    ("table-header-5000-deep",
     (GOOD_SOURCE + GOOD_EXPORT + "[exports.destination.x" + ".x" * 5000 + "]\n").encode()),
]


def config_commands() -> list[list[str]]:
    """Every command of ``rivet --help`` that reads a config, with its required options."""
    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            for name, child in subs[0].choices.items():
                walk(child, [*prefix, name])
            return
        options = {o for a in parser._actions for o in a.option_strings}
        if "--config" not in options or prefix == ["init"]:
            return  # `rivet init -c PATH` writes the config; it never reads one
        required = [a for a in parser._actions if a.required and a.option_strings]
        # A command's own input besides the config (`rivet apply PLAN`): a file that does
        # not exist, so only the config can be what the command reports.
        argv = list(prefix) + [f"missing-{a.dest}.json" for a in parser._actions
                               if a.required and not a.option_strings]
        for action in required:
            argv += [action.option_strings[0], EXPORT]
        found.append(argv)

    walk(build_parser(), [])
    return found


COMMANDS = config_commands()


def test_every_config_command_is_covered():
    assert {c[0] for c in COMMANDS} >= {"run", "check", "validate", "state", "journal",
                                        "metrics"}
    assert len([c for c in COMMANDS if c[0] == "state"]) == 7  # migrate included


def write_document(project: Path, content: bytes | str | None) -> Path:
    config = project / "rivet.toml"
    if content == "dir":
        config.mkdir()
    elif isinstance(content, bytes):
        config.write_bytes(content)
    return config


@pytest.mark.parametrize("command", [pytest.param(c, id=" ".join(c)) for c in COMMANDS])
@pytest.mark.parametrize(("content",), [pytest.param(c, id=i) for i, c in BROKEN_DOCUMENTS])
def test_every_command_gives_a_broken_config_file_a_one_line_config_error(
        rivet_project, command, content):
    write_document(rivet_project.path, content)
    outcome = rivet_project.run(*command).assert_failed(ExitCode.CONFIG)
    errors = [line for line in outcome.err.splitlines() if line.startswith("rivet: ")]
    assert errors, outcome.err
    assert all(line.startswith("rivet: config error: ") and "rivet.toml" in line
               for line in errors), outcome.err
    assert "Traceback" not in outcome.err


@pytest.mark.parametrize(("content",), [pytest.param(c, id=i) for i, c in BROKEN_DOCUMENTS
                                        if isinstance(c, bytes)])
def test_state_commands_report_the_same_config_error_as_check(rivet_project, content):
    write_document(rivet_project.path, content)
    check = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    first = check.err.splitlines()[0]
    for command in COMMANDS:
        if command[0] in ("state", "journal", "metrics"):
            outcome = rivet_project.run(*command).assert_failed(ExitCode.CONFIG)
            assert first in outcome.err.splitlines(), (command, outcome.err, check.err)


# ------------------------------------------------------------------ NUL and query files

NUL_IN_VALUES = [
    ("destination-path", GOOD_SOURCE + GOOD_EXPORT.replace("./output/{export}", "./o\\u0000x"),
     "exports[0].destination.path"),
    ("source-url", GOOD_SOURCE.replace("never-connected", "db\\u0000") + GOOD_EXPORT,
     "source.url"),
    ("query", GOOD_SOURCE + GOOD_EXPORT.replace("SELECT 1 AS a", "SELECT 1\\u0000 AS a"),
     "exports[0].query"),
    ("query-file-name", GOOD_SOURCE + GOOD_EXPORT.replace('query = "SELECT 1 AS a"',
                                                          'query_file = "q\\u0000.sql"'),
     "exports[0].query_file"),
    ("export-name", GOOD_SOURCE + GOOD_EXPORT.replace('"nums"', '"nu\\u0000ms"'),
     "exports[0].name"),
    ("column-override", GOOD_SOURCE + GOOD_EXPORT.replace(
        "[exports.destination]", '[exports.columns]\na = "text\\u0000"\n[exports.destination]'),
     "exports[0].columns.a"),
    ("array-element", "x = [1, [\"a\\u0000\"]]\n" + GOOD_SOURCE + GOOD_EXPORT, "x[1][0]"),
    ("unknown-key", GOOD_SOURCE + 'colour = "re\\u0000d"\n' + GOOD_EXPORT, "source.colour"),
]


@pytest.mark.parametrize(("text", "key"),
                         [pytest.param(t, k, id=i) for i, t, k in NUL_IN_VALUES])
def test_a_nul_character_in_any_string_value_is_a_config_error_at_its_key(
        tmp_path, text, key):
    config = tmp_path / "rivet.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(config, build_registry())
    rendered = [issue.render() for issue in info.value.issues]
    assert f"rivet.toml: {key}: contains a NUL character (\\u0000)" in rendered, rendered


@pytest.mark.parametrize("command", ["check", "run", "validate"])
def test_a_nul_in_the_destination_path_stops_check_run_and_validate(rivet_project, command):
    rivet_project.config.write_text(NUL_IN_VALUES[0][1])
    outcome = rivet_project.run(command).assert_failed(ExitCode.CONFIG)
    assert "rivet.toml: exports[0].destination.path: contains a NUL character" in outcome.err
    assert not (rivet_project.path / "o").exists()


def symlink_loop(project: Path) -> None:
    (project / "q.sql").symlink_to(project / "q.sql")


QUERY_FILES: list[tuple[str, Callable[[Path], object], str]] = [
    ("nul-byte", lambda p: (p / "q.sql").write_bytes(b"SELECT 1\x00 AS a"),
     "contains a NUL byte at offset 8"),
    ("latin1", lambda p: (p / "q.sql").write_bytes("SELECT 'café' AS a".encode("latin-1")),
     "is not UTF-8 text"),
    ("utf16", lambda p: (p / "q.sql").write_text("SELECT 1 AS a", encoding="utf-16"),
     "is not UTF-8 text"),
    ("symlink-loop", symlink_loop, "cannot be read"),
    ("a-directory", lambda p: (p / "q.sql").mkdir(), "file 'q.sql' does not exist"),
]


@pytest.mark.parametrize("command", ["check", "run", "validate"])
@pytest.mark.parametrize(("make", "message"),
                         [pytest.param(m, msg, id=i) for i, m, msg in QUERY_FILES])
def test_an_unusable_query_file_is_a_config_error_at_its_key(rivet_project, command, make,
                                                             message):
    make(rivet_project.path)
    rivet_project.config.write_text(GOOD_SOURCE + GOOD_EXPORT.replace(
        'query = "SELECT 1 AS a"', 'query_file = "q.sql"'))
    outcome = rivet_project.run(command).assert_failed(ExitCode.CONFIG)
    assert f"rivet.toml: exports[0].query_file: {message}" in outcome.err, outcome.err


@pytest.mark.parametrize("name", ["q" * 300 + ".sql", "d/" * 2100 + "q.sql"])
def test_a_query_file_name_too_long_for_the_file_system_is_a_config_error(rivet_project,
                                                                          name):
    rivet_project.config.write_text(GOOD_SOURCE + GOOD_EXPORT.replace(
        'query = "SELECT 1 AS a"', f'query_file = "{name}"'))
    outcome = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert "rivet.toml: exports[0].query_file: cannot be read: File name too long" \
        in outcome.err, outcome.err


# ------------------------------------------------------- found by the property tests


@pytest.mark.parametrize(("tuning", "message"), [
    pytest.param('tuning = "postgres"', "rivet.toml: source.tuning: expected a table, got a string",
                 id="a-string"),
    pytest.param("tuning = [1]", "rivet.toml: source.tuning: expected a table, got an array",
                 id="an-array"),
    pytest.param('[source.tuning]\nbatch_size = "x"',
                 "rivet.toml: source.tuning.batch_size: expected an integer, got a string ('x')",
                 id="a-bad-key-inside"),
])
def test_a_source_tuning_that_is_not_a_tuning_table_is_a_config_error_at_its_key(
        tmp_path, tuning, message):
    config = tmp_path / "rivet.toml"
    config.write_text(GOOD_SOURCE + tuning + "\n" + GOOD_EXPORT)
    with pytest.raises(ConfigError) as info:
        load_config(config, build_registry())
    assert message in [issue.render() for issue in info.value.issues]


@pytest.mark.parametrize("run_id", ["99999999T999999Z-abcdef", "20261399T000000Z-abcdef",
                                    "20260230T000000Z-abcdef", "20260101T246000Z-abcdef"])
def test_validate_refuses_a_run_id_with_an_impossible_time_as_a_usage_error(
        site: ManifestSite, run_id):
    outcome = site.cli("validate", "--run-id", run_id)
    assert outcome.code == ExitCode.USAGE, outcome
    assert f"--run-id {run_id!r} is not a run id" in outcome.err


@pytest.mark.parametrize(("table", "line", "key", "fragment"), [
    ("[exports.tuning]", "statement_timeout_s = inf", "exports[0].tuning.statement_timeout_s",
     "finite"),
    ("[exports.tuning]", "statement_timeout_s = nan", "exports[0].tuning.statement_timeout_s",
     "finite"),
    ("[exports.tuning]", "throttle_ms = 9223372036854775807", "exports[0].tuning.throttle_ms",
     "at most"),
    ("[source.tuning]", "batch_size = 0", "source.tuning.batch_size", "at least 1"),
    ("[source.tuning]", "lock_timeout_s = -inf", "source.tuning.lock_timeout_s", "finite"),
])
def test_a_tuning_value_out_of_bounds_is_a_config_error_at_its_key(rivet_project, table, line,
                                                                   key, fragment):
    """`statement_timeout_s = inf` passed check and overflowed in the driver at run time;
    `[source.tuning]` values were not checked at all."""
    text = GOOD_SOURCE + GOOD_EXPORT
    text = (text + f"\n{table}\n{line}\n" if table.startswith("[exports")
            else text.replace("[[exports]]", f"{table}\n{line}\n\n[[exports]]", 1))
    rivet_project.write_config(text)
    outcome = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert f"{key}: " in outcome.err and fragment in outcome.err, outcome.err
    assert "Traceback" not in outcome.err


@pytest.mark.parametrize(("keys", "where"), [
    ('tls = "x"', "source.tls: expected a table, got a string"),
    ('tuning = 5', "source.tuning: expected a table, got an integer"),
])
def test_a_scalar_where_a_table_belongs_says_so(rivet_project, keys, where):
    """`tls = "x"` printed Python internals: "'str' object has no attribute 'keys'"."""
    rivet_project.write_config(GOOD_SOURCE.replace('type = "postgres"',
                                                   f'type = "postgres"\n{keys}', 1)
                               + GOOD_EXPORT)
    outcome = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert where in outcome.err, outcome.err
    assert "object has no attribute" not in outcome.err


def test_a_key_with_a_control_character_is_quoted_in_the_message(rivet_project):
    rivet_project.write_config(GOOD_SOURCE + GOOD_EXPORT.replace(
        "[exports.destination]", '"a\\nb" = 1\n[exports.destination]', 1))
    outcome = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert 'exports[0]."a\\nb": unknown key' in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1


def test_a_url_file_name_too_long_for_the_file_system_is_a_config_error(rivet_project):
    rivet_project.write_config(GOOD_SOURCE.replace(
        'url = "postgresql://nobody@127.0.0.1:1/never-connected"',
        f'url_file = "{"u" * 300}"') + GOOD_EXPORT)
    outcome = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert "source.url_file: file" in outcome.err and "Traceback" not in outcome.err


def test_validate_of_a_destination_path_too_long_for_the_file_system_is_a_clean_error(
        rivet_project):
    rivet_project.write_config(GOOD_SOURCE + GOOD_EXPORT.replace(
        'path = "out"', f'path = "{"o" * 300}"'))
    outcome = rivet_project.run("validate")
    assert outcome.code in (ExitCode.RUN_FAILED, ExitCode.CHECK_FAILED), outcome.err
    assert "Traceback" not in outcome.err


@pytest.mark.parametrize("command", [["journal"], ["metrics"], ["state", "files"]])
def test_a_negative_count_of_last_entries_is_a_usage_error(rivet_project, command):
    rivet_project.write_config(GOOD_SOURCE + GOOD_EXPORT)
    outcome = rivet_project.run(*command, "-l", "-3")
    assert outcome.code == ExitCode.USAGE, outcome.err
