"""Planner rules: each combination the declared capabilities forbid is rejected, with the
TOML path and the plugin whose declaration the rule relied on."""

from __future__ import annotations

import textwrap

import attrs
import pytest

from rivet_core import hookimpl
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.config import load_config
from rivet_core.errors import ExitCode
from rivet_core.planner import Severity, build_plan
from rivet_core.plugins import build_registry
from rivet_core.specs import DestinationSpec, FormatSpec

HEAD = """
[source]
type = "postgres"
url = "postgresql://postgres@127.0.0.1:1/closed"
"""


def export(name="orders", fmt="parquet", dest='type = "local"', extra=""):
    return f"""
[[exports]]
name = "{name}"
query = "SELECT 1"
format = "{fmt}"
{extra}
[exports.destination]
{dest}
"""


@attrs.frozen
class NoOptions:
    pass


class ExtraBackends:
    """A destination that only takes CSV, and a format that must seek."""

    @hookimpl
    def rivet_destinations(self):
        return [DestinationSpec(
            name="csvonly", config_cls=NoOptions, factory=lambda c, x: None,
            capabilities=DestinationCapabilities(
                commit_protocol=WriteCommitProtocol.ATOMIC, idempotent_overwrite=True,
                retry_safe=True, partial_write_risk=False, multi_file=True),
            accepts_formats={"csv"})]

    @hookimpl
    def rivet_formats(self):
        return [FormatSpec(name="seeky", config_cls=NoOptions, factory=lambda c, x: None,
                           extension="sk", codecs={"none"}, default_codec="none",
                           needs_seekable=True)]


def plan_of(tmp_path, text):
    registry = build_registry(extra=[("extra", ExtraBackends())])
    path = tmp_path / "rivet.toml"
    path.write_text(textwrap.dedent(text))
    return build_plan(load_config(path, registry), registry)


def rejected_rules(plan):
    return {d.rule for d in plan.rejected()}


def test_a_plain_local_export_has_no_rejection(tmp_path):
    plan = plan_of(tmp_path, HEAD + export())
    assert plan.rejected() == []
    (only,) = plan.exports
    assert only.compression.codec == "zstd"
    assert only.tuning.batch_size == 10_000


def test_stdout_with_max_file_size_is_rejected_naming_key_and_plugin(tmp_path):
    plan = plan_of(tmp_path, HEAD + export(dest='type = "stdout"',
                                           extra='max_file_size = "1MB"'))
    (diag,) = [d for d in plan.rejected() if d.rule == "single-stream-no-split"]
    assert diag.toml_path == "exports[0].max_file_size"
    assert diag.origin and diag.origin.startswith("stdout")


def test_two_exports_to_stdout_are_rejected(tmp_path):
    plan = plan_of(tmp_path, HEAD + export("a", dest='type = "stdout"')
                   + export("b", dest='type = "stdout"'))
    assert "single-stream-shared" in rejected_rules(plan)


def test_format_the_destination_cannot_store_is_rejected(tmp_path):
    plan = plan_of(tmp_path, HEAD + export(dest='type = "csvonly"'))
    (diag,) = plan.rejected()
    assert diag.rule == "format-not-accepted" and diag.origin.startswith("extra")
    assert plan_of(tmp_path, HEAD + export(fmt="csv", dest='type = "csvonly"')).rejected() == []


def test_format_that_seeks_cannot_go_to_a_stream(tmp_path):
    plan = plan_of(tmp_path, HEAD + export(fmt="seeky", dest='type = "stdout"'))
    assert "format-needs-seekable" in rejected_rules(plan)


def test_retries_on_a_destination_that_is_not_retry_safe_warn(tmp_path):
    plan = plan_of(tmp_path, HEAD + export(dest='type = "stdout"'))
    assert any(d.rule == "retry-not-safe" and d.severity is Severity.WARNING
               for d in plan.diagnostics)
    quiet = plan_of(tmp_path, HEAD + export(dest='type = "stdout"',
                                            extra="[exports.tuning]\nmax_retries = 0"))
    assert not any(d.rule == "retry-not-safe" for d in quiet.diagnostics)


def test_profile_and_overrides_merge_field_by_field(tmp_path):
    text = HEAD + '[source.tuning]\nprofile = "safe"\nbatch_size = 777\n' + export(
        extra="[exports.tuning]\nthrottle_ms = 5")
    (only,) = plan_of(tmp_path, text).exports
    assert (only.tuning.profile, only.tuning.batch_size, only.tuning.throttle_ms,
            only.tuning.statement_timeout_s) == ("safe", 777, 5, 120)


@pytest.mark.parametrize(("extra", "codec", "level"), [
    ('compression_profile = "compact"', "zstd", 9),
    ('compression_profile = "fast"', "snappy", None),
    ('compression = "gzip"\ncompression_level = 4', "gzip", 4),
])
def test_compression_resolution(tmp_path, extra, codec, level):
    (only,) = plan_of(tmp_path, HEAD + export(extra=extra)).exports
    assert (only.compression.codec, only.compression.level) == (codec, level)


def test_run_refuses_a_rejected_plan_before_connecting(rivet_project):
    # The source points at a closed port: reaching it would fail differently.
    rivet_project.write_config(HEAD + export(dest='type = "stdout"',
                                             extra='max_file_size = "1MB"'))
    outcome = rivet_project.run("run").assert_failed(ExitCode.PLAN_REJECTED)
    assert "single-stream-no-split" in outcome.err
    assert "connect" not in outcome.err.lower()
    assert not (rivet_project.path / ".rivet_state.db").exists()


def test_check_prints_every_diagnostic_and_exits_with_plan_code(rivet_project):
    rivet_project.write_config(HEAD + export(dest='type = "stdout"',
                                             extra='max_file_size = "1MB"'))
    outcome = rivet_project.run("check").assert_failed(ExitCode.PLAN_REJECTED)
    assert "exports[0].max_file_size" in outcome.out
    result = rivet_project.run("check", "--json").json()
    assert result["ok"] is False
    assert {d["rule"] for d in result["diagnostics"]} >= {"single-stream-no-split",
                                                          "streaming-no-commit"}
