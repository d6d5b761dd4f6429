"""Config loading: every bad input is reported with its file and TOML key, all at once,
and a bad config touches nothing (no state file, no output)."""

from __future__ import annotations

import textwrap

import pytest

from rivet_core.config import load_config
from rivet_core.config.values import parse_duration, parse_size
from rivet_core.errors import ConfigError, ExitCode
from rivet_core.plugins import build_registry

GOOD_SOURCE = """
[source]
type = "postgres"
url = "postgresql://postgres@127.0.0.1:5432/test"
"""

GOOD_EXPORT = """
[[exports]]
name = "orders"
query = "SELECT 1 AS one"
format = "parquet"
[exports.destination]
type = "local"
path = "./output/{export}"
"""


def exp(extra: str) -> str:
    """GOOD_EXPORT with ``extra`` lines among the export's own keys (before its tables)."""
    return GOOD_EXPORT.replace('format = "parquet"\n', f'format = "parquet"\n{extra}\n')


@pytest.fixture(scope="module")
def registry():
    return build_registry()


def load(tmp_path, text, registry, **kwargs):
    path = tmp_path / "rivet.toml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, registry, **kwargs)


def test_a_good_config_loads_with_defaults(tmp_path, registry):
    loaded = load(tmp_path, GOOD_SOURCE + GOOD_EXPORT, registry)
    export = loaded.config.exports[0]
    assert export.mode == "full"
    assert export.format.type == "parquet"
    assert export.destination.options.path == "./output/{export}"
    assert loaded.queries == {"orders": "SELECT 1 AS one"}


# (config text, expected TOML path, expected message fragment)
BAD_CONFIGS = [
    pytest.param(GOOD_EXPORT, "source", "required table missing", id="no-source"),
    pytest.param(GOOD_SOURCE, "exports", "at least one", id="no-exports"),
    pytest.param(GOOD_SOURCE + exp("mystery = 1\n"), "exports[0].mystery",
                 "unknown key", id="unknown-export-key"),
    pytest.param(GOOD_SOURCE + "colour = 1\n" + GOOD_EXPORT, "source.colour", "unknown key",
                 id="unknown-source-key"),
    pytest.param(GOOD_SOURCE.replace('"postgres"', '"postgress"') + GOOD_EXPORT,
                 "source.type", "unknown source type 'postgress'", id="unknown-source-type"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('"parquet"', '"avro"'),
                 "exports[0].format.type", "unknown format type 'avro'", id="unknown-format"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('type = "local"', 'type = "ftp"'),
                 "exports[0].destination.type", "unknown destination type 'ftp'",
                 id="unknown-destination"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('path = "./output/{export}"', 'pth = "x"'),
                 "exports[0].destination.pth", "unknown key", id="unknown-destination-key"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('query = "SELECT 1 AS one"', ""),
                 "exports[0]", "exactly one of 'query', 'query_file' or 'table'",
                 id="no-query"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('query = "SELECT 1 AS one"',
                                                   'query = "SELECT 1"\ntable = "t"'),
                 "exports[0]", "(got query, table)", id="query-and-table"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('query = "SELECT 1 AS one"',
                                                   'query_file = "../etc/passwd"'),
                 "exports[0].query_file", "must not contain '..'", id="query-file-escape"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('query = "SELECT 1 AS one"',
                                                   'query_file = "/etc/passwd"'),
                 "exports[0].query_file", "relative", id="query-file-absolute"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('query = "SELECT 1 AS one"',
                                                   'query_file = "missing.sql"'),
                 "exports[0].query_file", "does not exist", id="query-file-missing"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('query = "SELECT 1 AS one"',
                                                   'table = "a.b.c"'),
                 "exports[0].table", "must be `name` or `schema.name`", id="bad-table"),
    pytest.param(GOOD_SOURCE + exp('mode = "sometimes"\n'), "exports[0].mode",
                 "must be one of", id="bad-mode"),
    pytest.param(GOOD_SOURCE + exp('compression = "rar"\n'), "exports[0].compression",
                 "not supported by format 'parquet'", id="bad-codec"),
    pytest.param(GOOD_SOURCE + exp("compression_level = 99\n"),
                 "exports[0].compression_level", "must be 1..22", id="bad-level"),
    pytest.param(GOOD_SOURCE + exp('compression = "snappy"\ncompression_level = 3\n'),
                 "exports[0].compression_level", "takes no level", id="level-without-levels"),
    pytest.param(GOOD_SOURCE + exp('max_file_size = "12XB"\n'),
                 "exports[0].max_file_size", "invalid size", id="bad-size"),
    pytest.param(GOOD_SOURCE + exp('skip_empty = "false"\n'),
                 "exports[0].skip_empty", "expected a boolean", id="string-for-bool"),
    pytest.param(GOOD_SOURCE + exp("batch_size = 10\n"), "exports[0].batch_size",
                 "`tuning` table", id="misplaced-tuning-key"),
    pytest.param(GOOD_SOURCE + exp("[exports.tuning]\nbatch_size = 0\n"),
                 "exports[0].tuning.batch_size", "at least 1", id="zero-batch"),
    pytest.param(GOOD_SOURCE + exp('[exports.columns]\namount = "decimal(99,2)"\n'),
                 "exports[0].columns.amount", "precision must be 1..76", id="bad-override"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT + GOOD_EXPORT, "exports[1].name",
                 "duplicate export name 'orders'", id="duplicate-name"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace('"orders"', '"bad/name"'),
                 "exports[0].name", "not a usable export name", id="bad-name"),
    pytest.param(GOOD_SOURCE.replace('url = "postgresql://postgres@127.0.0.1:5432/test"',
                                     'url_env = "RIVET_TEST_SURELY_UNSET"') + GOOD_EXPORT,
                 "source.url_env", "'RIVET_TEST_SURELY_UNSET' is not set", id="unset-url-env"),
    pytest.param(GOOD_SOURCE.replace('url = "postgresql://postgres@127.0.0.1:5432/test"',
                                     'host = "db"\nuser = "me"') + GOOD_EXPORT,
                 "source.database", "required field missing", id="structured-missing-db"),
    pytest.param(GOOD_SOURCE + 'url_env = "X"\n' + GOOD_EXPORT, "source.url_env",
                 "exactly one of 'url', 'url_env', 'url_file'", id="two-url-forms"),
    pytest.param(GOOD_SOURCE + 'host = "db"\n' + GOOD_EXPORT, "source.host",
                 "not both", id="url-and-structured"),
    pytest.param(GOOD_SOURCE + GOOD_EXPORT.replace("SELECT 1 AS one", "SELECT ${RIVET_NOPE}"),
                 "exports[0].query", "'RIVET_NOPE' is not set", id="unset-placeholder"),
    pytest.param("[source\n", "", "invalid TOML", id="toml-syntax"),
    pytest.param("exports = 3\n" + GOOD_SOURCE, "exports", "array of tables",
                 id="exports-not-array"),
]


@pytest.mark.parametrize(("text", "path", "fragment"), BAD_CONFIGS)
def test_bad_config_names_file_and_key(tmp_path, registry, text, path, fragment):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, registry)
    rendered = [issue.render() for issue in info.value.issues]
    expected_prefix = f"rivet.toml: {path}: " if path else "rivet.toml: "
    assert any(r.startswith(expected_prefix) and fragment in r for r in rendered), rendered


@pytest.mark.parametrize(("text", "path", "fragment"), BAD_CONFIGS)
def test_bad_config_run_exits_non_zero_and_touches_nothing(rivet_project, text, path,
                                                           fragment):
    rivet_project.write_config(text)
    # A `type` naming a backend that is not installed is a plugin problem (exit 5).
    missing_backend = path.endswith(".type") and fragment.startswith("unknown ")
    code = ExitCode.PLUGIN if missing_backend else ExitCode.CONFIG
    outcome = rivet_project.run("run").assert_failed(code)
    assert fragment in outcome.err
    assert not (rivet_project.path / ".rivet_state.db").exists()
    assert not (rivet_project.path / "output").exists()


def test_every_problem_is_reported_at_once(tmp_path, registry):
    text = GOOD_SOURCE + "colour = 1\n" + exp("mystery = 1") + exp(
        'compression = "rar"').replace('"orders"', '"second"')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, registry)
    paths = {issue.path for issue in info.value.issues}
    assert {"source.colour", "exports[0].mystery", "exports[1].compression"} <= paths


def test_unknown_key_suggests_the_closest_one(tmp_path, registry):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GOOD_SOURCE + exp('compresion = "zstd"\n'), registry)
    assert "did you mean 'compression'?" in str(info.value)


def test_param_wins_over_environment(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("LIMIT", "5")
    text = GOOD_SOURCE + GOOD_EXPORT.replace("SELECT 1 AS one", "SELECT ${LIMIT}")
    assert load(tmp_path, text, registry).queries["orders"] == "SELECT 5"
    loaded = load(tmp_path, text, registry, params={"LIMIT": "7"})
    assert loaded.queries["orders"] == "SELECT 7"


def test_unused_param_is_warned_about(tmp_path, registry):
    loaded = load(tmp_path, GOOD_SOURCE + GOOD_EXPORT, registry, params={"nope": "1"})
    assert any("'nope' was not referenced" in w for w in loaded.warnings)


def test_escaped_placeholder_is_left_literal(tmp_path, registry):
    text = GOOD_SOURCE + GOOD_EXPORT.replace("SELECT 1 AS one", "SELECT '$${x}'")
    assert load(tmp_path, text, registry).queries["orders"] == "SELECT '${x}'"


def test_query_file_is_read_relative_to_the_config_and_substituted(tmp_path, registry):
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "orders.sql").write_text("SELECT ${N} AS n;\n")
    text = GOOD_SOURCE + GOOD_EXPORT.replace('query = "SELECT 1 AS one"',
                                             'query_file = "sql/orders.sql"')
    assert load(tmp_path, text, registry, params={"N": "3"}).queries["orders"] == "SELECT 3 AS n"


def test_format_table_form_carries_options(tmp_path, registry):
    text = GOOD_SOURCE + GOOD_EXPORT.replace('format = "parquet"',
                                             'format = { type = "parquet", row_group_rows = 5 }')
    export = load(tmp_path, text, registry).config.exports[0]
    assert export.format.options.row_group_rows == 5


def test_plaintext_password_is_warned_about_without_echoing_it(tmp_path, registry):
    text = GOOD_SOURCE.replace("postgres@", "postgres:s3cretpass@") + GOOD_EXPORT
    loaded = load(tmp_path, text, registry)
    assert any("plaintext password" in w for w in loaded.warnings)
    assert not any("s3cretpass" in w for w in loaded.warnings)


@pytest.mark.parametrize(("text", "expected"), [
    ("256MB", 256 << 20), ("1.5GB", int(1.5 * (1 << 30))), ("512kb", 512 << 10),
    ("1MiB", 1 << 20), ("100", 100), (4096, 4096),
])
def test_parse_size_accepts_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "1.2.3GB", "12XB", "0"])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(("text", "expected"), [("5m", 300), ("30s", 30), ("250ms", 0.25),
                                                ("2h", 7200), ("1d", 86400), (12, 12.0)])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


def test_without_connecting_the_source_credentials_need_not_be_set(tmp_path, registry,
                                                                   monkeypatch):
    monkeypatch.delenv("RIVET_NOPE", raising=False)
    source = GOOD_SOURCE.replace(
        'url = "postgresql://postgres@127.0.0.1:5432/test"',
        'url_env = "RIVET_TEST_SURELY_UNSET"\npassword_env = "RIVET_NOPE"\n'
        '[source.tls]\nca_file = "${RIVET_NOPE}.pem"')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, source + GOOD_EXPORT, registry)
    assert {i.path for i in info.value.issues} >= {
        "source.url_env", "source.password_env", "source.tls.ca_file"}
    # Shape rules still hold: url_env and password_env together is not a connection.
    with pytest.raises(ConfigError) as info:
        load(tmp_path, source + GOOD_EXPORT, registry, connect=False)
    assert [i.path for i in info.value.issues] == ["source.password_env"]

    loaded = load(tmp_path, source.replace('password_env = "RIVET_NOPE"\n', "")
                  + GOOD_EXPORT, registry, connect=False)
    assert loaded.config.source.type == "postgres"
    # Destinations are still read, so their placeholders must resolve.
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GOOD_SOURCE + GOOD_EXPORT.replace("{export}", "${RIVET_NOPE}"),
             registry, connect=False)
    assert [i.path for i in info.value.issues] == ["exports[0].destination.path"]
