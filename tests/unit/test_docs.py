"""The docs stay honest: the generated config reference is current, every hook is documented,
and the CLI reference covers every command and exit code."""

from __future__ import annotations

import inspect
from pathlib import Path

import pluggy

from rivet_core import hookspecs
from rivet_core.cli.main import build_parser
from rivet_core.config.reference import render
from rivet_core.errors import ExitCode
from rivet_core.plugins import build_registry

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_config_reference_is_generated_from_the_code():
    committed = (DOCS / "config-reference.md").read_text()
    assert committed == render(build_registry()), (
        "docs/config-reference.md is stale: run "
        "`python -m rivet_core.config.reference > docs/config-reference.md`")


def test_every_config_field_has_documentation():
    text = render(build_registry())
    for line in text.splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), f"undocumented field: {line}"


def test_every_hook_is_specified_with_a_docstring_and_versionadded():
    marker = pluggy.HookspecMarker("rivet")
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("rivet_")]
    assert hooks
    for hook in hooks:
        assert getattr(hook, marker.project_name + "_spec", None) is not None, hook.__name__
        assert hook.__doc__ and "versionadded" in hook.__doc__, hook.__name__


def test_cli_reference_covers_every_command_and_exit_code():
    text = (DOCS / "cli.md").read_text()
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"## `rivet {name}" in text, f"docs/cli.md lacks a section for `rivet {name}`"
        section = text.split(f"## `rivet {name}`", 1)[1].split("\n## ", 1)[0]
        assert "```console\n" in section and f"\n$ rivet {name}" in section, (
            f"docs/cli.md: `rivet {name}` has no example run (a console block, "
            "run by tests/integration/test_docs_examples.py)")
    for code in ExitCode:
        assert f"| {code.value} | `{code.name}` |" in text, f"exit code {code.name} undocumented"


def test_the_trust_page_example_is_the_example_file_and_loads(monkeypatch):
    """docs/trust.md quotes examples/trust/rivet.toml, which is a valid config."""
    from rivet_core.config.loader import load_config

    text = (DOCS / "trust.md").read_text()
    block = text.split("# excerpt: examples/trust/rivet.toml\n", 1)[1].split("```", 1)[0]
    example = DOCS.parent / "examples" / "trust" / "rivet.toml"
    assert example.read_text().split("\n", 1)[1] == block
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("RIVET_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    loaded = load_config(example, registry=build_registry())
    (export,) = loaded.config.exports
    assert export.quality is not None and export.quality.has_fail_gates()
    assert export.on_schema_drift == "fail" and export.meta_columns is not None
    assert loaded.config.notifications is not None
