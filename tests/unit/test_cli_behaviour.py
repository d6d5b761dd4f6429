"""The operator's side of the CLI, without a database: logging (``-v``, ``--log-format``),
``--json`` errors, ``rivet completions``, ``rivet schema config``, and the regressions of
the issue's bug list (unknown path placeholders, ``peak RSS None``, ``validate --run-id``
of a replaced run, planted files, the getting-started page). Runs against PostgreSQL and the
closed-pipe tests are in ``tests/integration/test_cli_behaviour_pg.py``."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from manifest_site import EXPORT, RUN_ID, ManifestSite, build_site

from rivet_core.backends import DestinationContext
from rivet_core.cli import logs
from rivet_core.errors import DestinationError, ExitCode
from rivet_core.redact import forget_secrets, register_secret
from rivet_core.runner.manifest import encode, success_marker
from rivet_core.state.store import SQLiteStateStore

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
[source]
type = "postgres"
url = "postgresql://nobody@127.0.0.1:1/never-connected"

[[exports]]
name = "nums"
query = "SELECT 1 AS id"
format = "csv"
[exports.destination]
type = "local"
path = "{path}"
"""


def config(path: str = "./output/{export}") -> str:
    return CONFIG.replace("{path}", path)


def log_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("rivet: ")
            and line.split(":")[1].strip() in ("INFO", "DEBUG", "WARNING", "ERROR")]


# ------------------------------------------------------------------------------ logging


def test_without_verbose_no_info_is_logged(rivet_project):
    rivet_project.write_config(config())
    outcome = rivet_project.run("check").assert_success()
    assert not [line for line in log_lines(outcome.err) if ": INFO:" in line]


def test_verbose_logs_the_config_loaded_and_the_plan_built(rivet_project):
    rivet_project.write_config(config())
    outcome = rivet_project.run("-v", "check").assert_success()
    lines = log_lines(outcome.err)
    assert f"rivet: INFO: config loaded: {rivet_project.config.resolve()} (source postgres; " \
           "1 export(s): nums)" in lines
    assert "rivet: INFO: plan built: 1 export(s), 0 rejected, 0 diagnostic(s)" in lines
    assert not [line for line in lines if ": DEBUG:" in line], "-v is info, not debug"


def test_very_verbose_adds_each_exports_plan_at_debug(rivet_project):
    rivet_project.write_config(config())
    outcome = rivet_project.run("-vv", "check").assert_success()
    assert ("rivet: DEBUG: export nums: mode full, postgres → csv (none) → local, batch_size "
            "10000, statement_timeout 300s, max_retries 3") in log_lines(outcome.err)


def test_global_options_are_also_accepted_after_the_command(rivet_project):
    rivet_project.write_config(config())
    outcome = rivet_project.run("check", "-v", "--log-format", "json").assert_success()
    records = [json.loads(line) for line in outcome.err.splitlines() if line.startswith("{")]
    assert [r["message"].split(":")[0] for r in records] == ["config loaded", "plan built"]


def test_json_log_format_prints_one_object_per_line(rivet_project):
    rivet_project.write_config(config())
    outcome = rivet_project.run("-vv", "--log-format", "json", "check").assert_success()
    records = [json.loads(line) for line in outcome.err.splitlines() if line.startswith("{")]
    assert len(records) == 3
    for record in records:
        assert set(record) == {"time", "level", "logger", "message"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert [(r["level"], r["logger"]) for r in records] == [
        ("info", "rivet.config"), ("info", "rivet.plan"), ("debug", "rivet.plan")]


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_every_log_line_is_redacted(log_format):
    """Whatever a log call passes, a password never reaches the log: URLs' passwords and
    registered secrets are masked by the formatter, in the message, the fields and a
    traceback."""
    stream = io.StringIO()
    logs.setup(2, log_format, stream)
    register_secret("s3cret-token")
    try:
        log = logging.getLogger("rivet.test")
        log.info("connecting to %s", "postgresql://reader:hunter2-pw@db:5432/shop",
                 extra={"export": "e", "run_id": "r"})
        try:
            raise ValueError("bad s3cret-token")
        except ValueError:
            log.exception("failed with %s", "s3cret-token")
    finally:
        forget_secrets()
        logs.setup(0, "text", io.StringIO())
    text = stream.getvalue()
    assert "hunter2-pw" not in text and "s3cret-token" not in text
    assert "postgresql://reader:REDACTED@db:5432/shop" in text
    if log_format == "json":
        first, second = (json.loads(line) for line in text.splitlines())
        assert (first["export"], first["run_id"]) == ("e", "r")
        assert "REDACTED" in second["traceback"]


def test_other_libraries_log_from_warnings_up_only():
    stream = io.StringIO()
    logs.setup(2, "text", stream)
    try:
        logging.getLogger("some.driver").debug("chatty")
        logging.getLogger("some.driver").warning("worth knowing")
    finally:
        logs.setup(0, "text", io.StringIO())
    assert stream.getvalue() == "rivet: WARNING: worth knowing\n"


# ------------------------------------------------------------------------ --json errors


def assert_one_json_error(outcome, code: int) -> dict:
    outcome.assert_failed(code)
    assert outcome.out == ""
    lines = outcome.err.splitlines()
    assert len(lines) == 1, outcome.err
    error = json.loads(lines[0])
    assert set(error) >= {"error", "hint", "exit_code"}
    assert error["exit_code"] == code
    return error


def test_run_json_prints_a_missing_config_as_one_json_object(rivet_project):
    error = assert_one_json_error(rivet_project.run("run", "--json"), ExitCode.CONFIG)
    assert error["error"].endswith("rivet.toml: config file not found")
    assert error["hint"] == "check the path given to -c/--config"
    assert error["issues"] == [{"file": str(rivet_project.config), "path": "",
                                "message": "config file not found", "hint": None}]


def test_check_json_prints_every_config_issue_in_one_json_object(rivet_project):
    rivet_project.write_config(config().replace('format = "csv"', 'format = "csv"\nxyzzy = 1')
                               .replace("[source]", "[source]\nshade = 2"))
    error = assert_one_json_error(rivet_project.run("check", "--json"), ExitCode.CONFIG)
    assert [(i["path"], i["message"]) for i in error["issues"]] == [
        ("source.shade", "unknown key"), ("exports[0].xyzzy", "unknown key")]
    assert error["error"] == ("rivet.toml: source.shade: unknown key; "
                              "rivet.toml: exports[0].xyzzy: unknown key")


def test_validate_json_prints_a_bad_run_id_as_one_json_object(rivet_project):
    rivet_project.write_config(config())
    error = assert_one_json_error(rivet_project.run("validate", "--json", "--run-id", "nope"),
                                  ExitCode.USAGE)
    assert error == {"error": "--run-id 'nope' is not a run id",
                     "hint": "run ids look like 20261127T121530Z-a1b2c3",
                     "exit_code": ExitCode.USAGE}


def test_state_json_prints_an_unknown_export_as_one_json_object(rivet_project):
    rivet_project.write_config(config())
    error = assert_one_json_error(rivet_project.run("state", "chunks", "-e", "nope", "--json"),
                                  ExitCode.USAGE)
    assert error["error"] == "export 'nope' not found in rivet.toml"


def test_plugins_json_prints_a_usage_error_as_one_json_object(rivet_project):
    error = assert_one_json_error(rivet_project.run("plugins", "--json", "--bogus"),
                                  ExitCode.USAGE)
    assert error["error"] == "unrecognized arguments: --bogus"
    assert error["hint"] == "see `rivet --help`"


def test_without_json_errors_stay_one_text_line_with_a_hint(rivet_project):
    rivet_project.write_config(config())
    outcome = rivet_project.run("state", "chunks", "-e", "nope").assert_failed(ExitCode.USAGE)
    assert outcome.err.splitlines() == [
        "rivet: error: export 'nope' not found in rivet.toml",
        "  hint: known exports: nums; see `rivet state show`"]


# -------------------------------------------------------------------------- completions


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completions_prints_a_script_naming_every_command(rivet_project, shell):
    from rivet_core.cli.main import COMMANDS

    script = rivet_project.run("completions", shell, config=False).assert_success().out
    for command in COMMANDS:
        assert command in script
    flag = "-l json" if shell == "fish" else "--json"
    for option in (flag, "reset-chunks", "text json" if shell == "fish" else "--log-format"):
        assert option in script
    checker = shutil.which(shell)
    if shell == "bash":
        assert checker, "bash is needed to check the bash script"
    if checker is None:
        pytest.skip(f"{shell} is not installed: the script's syntax is not checked")
    checked = subprocess.run([checker, "-n"], input=script, text=True, capture_output=True,
                             timeout=30)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(("words", "expected"), [
    ("rivet sta", "state"), ("rivet state sh", "show"), ("rivet run --js", "--json"),
    ("rivet --log-format j", "json"), ("rivet schema c", "config"),
])
def test_the_bash_script_completes_commands_actions_and_options(
        rivet_project, tmp_path, words, expected):
    script = tmp_path / "rivet.bash"
    script.write_text(rivet_project.run("completions", "bash", config=False).out)
    line = ('source "$1"; COMP_WORDS=($2); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
            '_shtab_rivet; echo "${COMPREPLY[*]}"')
    done = subprocess.run(["bash", "-c", line, "bash", str(script), words],
                          capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == [expected], done.stderr


def test_completions_refuses_an_unknown_shell(rivet_project, capsys):
    rivet_project.run("completions", "powershell", config=False).assert_failed(ExitCode.USAGE)
    assert "invalid choice: 'powershell'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the schema


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    from rivet_core.cli.common import Console
    from rivet_core.cli.main import main

    out = io.StringIO()
    assert main(["schema", "config"], Console(out=out, err=io.StringIO())) == ExitCode.OK
    schema = json.loads(out.getvalue())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator, document: dict) -> list[tuple[str, str]]:
    return sorted(("/".join(str(p) for p in e.absolute_path), e.message)
                  for e in validator.iter_errors(document))


@pytest.mark.parametrize("example", ["quickstart", "trust"])
def test_the_example_configs_are_valid_against_the_schema(validator, example):
    document = tomllib.loads((ROOT / "examples" / example / "rivet.toml").read_text())
    assert problems(validator, document) == []


def test_the_schema_rejects_unknown_keys_at_every_level(validator):
    document = tomllib.loads((ROOT / "examples" / "quickstart" / "rivet.toml").read_text())
    document["colour"] = 1
    document["source"]["batch_size"] = 5  # belongs in [source.tuning]
    document["exports"][0]["cursor_colum"] = "x"
    document["exports"][0]["destination"]["bucket"] = "b"  # an s3 key, not a local one
    assert [path for path, _ in problems(validator, document)] == [
        "", "exports/0", "exports/0/destination", "source"]


def test_the_schema_checks_each_backends_own_keys_and_types(validator):
    document = tomllib.loads((ROOT / "examples" / "quickstart" / "rivet.toml").read_text())
    document["source"]["read_path"] = "copy"  # a postgres key
    document["exports"][0]["destination"] = {"type": "s3", "bucket": "b", "prefix": "{export}"}
    document["exports"][1]["format"] = {"type": "csv", "delimiter": ";"}
    document["exports"][1]["quality"] = {"row_count_min": 1, "unique_columns": ["id", ["a", "b"]],
                                         "null_ratio_max": {"email": {"value": 0.1,
                                                                      "severity": "warn"}}}
    assert problems(validator, document) == []
    document["source"]["type"] = "mysql"  # read_path = "copy" is not a mysql choice
    document["exports"][1]["format"] = "avro"
    document["exports"][1]["mode"] = "sometimes"
    document["exports"][1]["max_file_size"] = True
    assert {path for path, _ in problems(validator, document)} == {
        "source/read_path", "exports/1/format", "exports/1/mode", "exports/1/max_file_size"}


def test_the_schema_carries_the_field_docs_and_every_installed_backend(validator):
    schema = validator.schema
    export = schema["$defs"]["ExportConfig"]
    assert export["additionalProperties"] is False
    assert export["properties"]["skip_empty"]["description"].startswith("Report a run that")
    from rivet_core.plugins import build_registry

    registry = build_registry()
    for kind in ("source", "format", "destination"):
        branches = schema["$defs"][kind]["allOf"]
        assert [b["if"]["properties"]["type"]["const"] for b in branches] == \
            registry.names(kind)
        assert all(b["then"]["additionalProperties"] is False for b in branches)


# ----------------------------------------------------------- bug: unknown placeholders


def test_an_unknown_path_placeholder_is_a_config_error_naming_the_key(rivet_project):
    rivet_project.write_config(config("./output/{table}/{date}"))
    outcome = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert outcome.err.splitlines()[0] == (
        "rivet: config error: rivet.toml: exports[0].destination.path: unknown placeholder "
        "{table} (known: {export}, {date}, {run_id})")
    assert not (rivet_project.path / "output").exists()


def test_an_unknown_prefix_placeholder_is_a_config_error_for_object_stores(rivet_project):
    rivet_project.write_config(config().replace(
        'type = "local"\npath = "./output/{export}"',
        'type = "s3"\nbucket = "b"\nprefix = "{export}/{day}/{table}"\nanonymous = true'))
    outcome = rivet_project.run("check").assert_failed(ExitCode.CONFIG)
    assert ("exports[0].destination.prefix: unknown placeholders {day}, {table} (known: "
            "{export}, {date}, {run_id})") in outcome.err


def test_rendering_a_template_with_an_unknown_placeholder_is_refused(tmp_path):
    import datetime as dt

    context = DestinationContext(export="e", run_id="r", config_dir=tmp_path,
                                 started_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert context.render("out/{export}/{date}/{run_id}") == "out/e/2026-01-02/r"
    with pytest.raises(DestinationError, match=r"unknown placeholder \{table\}"):
        context.render("out/{table}")


# ------------------------------------------------------------ bug: peak RSS None MiB


def test_a_run_refused_by_the_lock_prints_no_unknown_peak_memory(rivet_project):
    rivet_project.write_config(config())
    store = SQLiteStateStore(rivet_project.path / ".rivet_state.db")
    try:
        with store.transaction() as tx:  # held by this live process
            assert tx.acquire_lock("nums", "20260101T000000Z-000000") is None
    finally:
        store.close()
    outcome = rivet_project.run("run").assert_failed(ExitCode.RUN_FAILED)
    assert "already running" in outcome.err
    assert "None" not in outcome.err and "peak RSS" not in outcome.err


# ------------------------------------------------- bug: validate --run-id, planted files


@pytest.fixture
def site(tmp_path: Path) -> ManifestSite:
    return build_site(tmp_path / "project")


def test_validate_run_id_of_a_replaced_run_reports_its_manifest_gone(site):
    older = "20251231T000000Z-123456"
    result = site.cli("validate", "--json", "--run-id", older)
    assert result.code == ExitCode.CHECK_FAILED
    (report,) = json.loads(result.out)["exports"]
    assert (report["status"], report["run_id"], report["files_checked"]) == (
        "no_manifest", older, 0)
    (finding,) = report["findings"]
    assert finding["kind"] == "no_manifest"
    assert finding["message"].startswith(
        f"the manifest of run {older} is gone: the one here describes run {RUN_ID}")
    text = site.cli("validate", "--run-id", older)
    assert text.code == ExitCode.CHECK_FAILED and f"{EXPORT}: NO MANIFEST" in text.out


def test_validate_run_id_of_the_manifests_run_validates_it(site):
    result = site.cli("validate", "--json", "--run-id", RUN_ID)
    assert result.code == ExitCode.OK, result.out
    assert json.loads(result.out)["exports"][0]["run_id"] == RUN_ID


def incremental(site: ManifestSite) -> None:
    """The site's manifest, as an incremental run's (files of earlier runs are expected)."""
    document = site.document()
    document["mode"] = "incremental"
    manifest = encode(document)
    site.write(manifest, success_marker(RUN_ID, manifest))


def test_a_planted_file_named_like_an_earlier_runs_is_reported(site):
    incremental(site)
    planted = f"{EXPORT}_20250101T000000Z-abcdef_part0001.csv"
    (site.directory / planted).write_text("id\n666\n")
    result = site.cli("validate", "--json")
    assert result.code == ExitCode.CHECK_FAILED, result.out
    (finding,) = json.loads(result.out)["exports"][0]["findings"]
    assert (finding["kind"], finding["severity"], finding["name"]) == (
        "unknown_file", "error", planted)


def test_a_file_the_state_store_records_for_an_earlier_run_is_accepted(site):
    from rivet_core.state.store import FileRecord

    incremental(site)
    earlier_run = "20250101T000000Z-abcdef"
    earlier = f"{EXPORT}_{earlier_run}_part0001.csv"
    (site.directory / earlier).write_text("id\n0\n")
    store = SQLiteStateStore(site.root / ".rivet_state.db")
    try:
        with store.transaction() as tx:
            tx.record_file(FileRecord(run_id=earlier_run, export_name=EXPORT, file_name=earlier,
                                      uri="file:///x", rows=1, bytes=5, sha256="0" * 64,
                                      format="csv", compression="none", chunk_index=None))
    finally:
        store.close()
    result = site.cli("validate", "--json")
    assert result.code == ExitCode.OK, result.out
    (finding,) = json.loads(result.out)["exports"][0]["findings"]
    assert (finding["kind"], finding["severity"], finding["name"]) == (
        "previous_run", "info", earlier)


# ---------------------------------------------------------------- bug: the getting-started


def shell_lines(markdown: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", markdown, re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines()]


def test_getting_started_puts_rivet_on_path_before_calling_it_bare():
    lines = shell_lines((ROOT / "docs" / "getting-started.md").read_text())
    bare = [i for i, line in enumerate(lines) if re.match(r"rivet\b", line)]
    activated = [i for i, line in enumerate(lines)
                 if re.fullmatch(r"(\.|source) \.venv/bin/activate\b.*", line)]
    assert bare and activated and activated[0] < bare[0], lines


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_read_path_is_described_as_the_summary_reports_it(page):
    """The PostgreSQL default is binary COPY (the `read:` line says `binary COPY`); the
    server-side cursor is only the fallback, and a page must not say otherwise."""
    text = " ".join((ROOT / page).read_text().split())
    sentences = re.split(r"(?<=[.;])\s", text)
    for sentence in sentences:
        if "server-side cursor" in sentence:
            assert "COPY" in sentence, sentence
    assert "binary COPY" in text


def test_the_documented_read_paths_are_the_ones_the_sources_report():
    """What the pages quote of a `read:` line is what the source plugins write there."""
    page = (ROOT / "docs" / "getting-started.md").read_text()
    sources = "".join(p.read_text() for p in (ROOT / "plugins").glob("rivet_*/*.py"))
    for quoted in ("binary COPY", "server-side cursor (psycopg):",
                   "ConnectorX binary protocol", "pymysql text protocol:"):
        assert f"`{quoted}" in page and quoted in sources, quoted


@pytest.fixture(autouse=True)
def _quiet_logs():
    yield
    # The CLI reconfigures logging on every invocation; leave it as a fresh process has it.
    logs.setup(0, "text", io.StringIO())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux process setting")
def test_the_rivet_process_turns_transparent_huge_pages_off():
    """Each new 2 MiB page of Arrow's allocator was zeroed whole on first touch: the rivet
    process asks the kernel for none (PR_SET_THP_DISABLE)."""
    code = ("from rivet_core.cli.main import _no_transparent_huge_pages as off\n"
            "def status():\n"
            "    return open('/proc/self/status').read().split('THP_enabled:')[1].split()[0]\n"
            "before = status(); off(); print(before, status())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["1", "0"]
