"""The package as a third-party plugin: it imports Rivet's public API only, registers through
the ``rivet`` entry point group, costs nothing to import, and its demo runs."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

from rivet_core.testing import RivetProject

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "rivet_sqlite_jsonl"
DEMO = HERE.parent / "demo"

PUBLIC = {"rivet_core", "rivet_core.api"}
"""What a plugin may import from Rivet: the API (``rivet_core`` itself for ``hookimpl``)."""


def rivet_core_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "rivet_core")
    return found


def test_the_plugin_imports_nothing_from_rivet_core_but_its_public_api():
    for path in sorted(PACKAGE.rglob("*.py")):
        assert rivet_core_imports(path) <= PUBLIC, path.name


def test_the_tests_import_nothing_from_rivet_core_but_the_api_and_the_testing_kit():
    for path in sorted(HERE.rglob("*.py")):
        assert rivet_core_imports(path) <= PUBLIC | {"rivet_core.testing"}, path.name


def test_importing_the_plugin_loads_neither_pyarrow_nor_sqlite3():
    code = ("import sys, json, rivet_sqlite_jsonl; "
            "print(json.dumps([m for m in ('pyarrow', 'sqlite3') if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert json.loads(result.stdout) == []


def test_the_distribution_registers_one_entry_point_in_the_rivet_group():
    points = [p for p in importlib.metadata.entry_points(group="rivet")
              if p.dist is not None and p.dist.name == "rivet-sqlite-jsonl"]
    assert [(p.name, p.value) for p in points] == [("sqlite_jsonl", "rivet_sqlite_jsonl")]


def test_rivet_plugins_lists_the_source_and_the_format(rivet_project):
    backends = rivet_project.run("plugins", "--json").assert_success().json()["backends"]
    ours = {(b["kind"], b["name"]): b for b in backends
            if b["distribution"] == "rivet-sqlite-jsonl"}
    assert set(ours) == {("source", "sqlite"), ("format", "jsonl")}
    assert ours["source", "sqlite"]["dialect"] == "sqlite"
    assert ours["format", "jsonl"]["codecs"] == ["gzip", "none"]


def test_the_demo_builds_its_database_and_every_export_runs(tmp_path):
    for name in ("rivet.toml", "make_demo_db.py"):
        shutil.copy(DEMO / name, tmp_path / name)
    subprocess.run([sys.executable, str(tmp_path / "make_demo_db.py")], check=True,
                   capture_output=True)
    project = RivetProject(tmp_path)
    summary = project.run("run", "--json").assert_success().json()
    assert {e["export"]: e["rows"] for e in summary["exports"]} == {
        "orders": 200, "orders_changes": 200, "revenue_by_customer": 3}
    again = project.run("run", "--json", "-e", "orders_changes").assert_success().json()
    assert again["exports"][0]["rows"] == 0
    project.run("validate").assert_success()
