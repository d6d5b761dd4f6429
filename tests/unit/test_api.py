"""The plugin author's API: one module, every name listed once and loadable, and cheap to
import — a plugin's top module loads neither pyarrow nor a database driver."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rivet_core.api as api

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pyarrow", "psycopg", "pymysql", "connectorx", "obstore")


def test_all_lists_every_exported_name_once_and_each_loads():
    exported = [name for names in api._EXPORTS.values() for name in names]
    assert len(exported) == len(set(exported))
    assert sorted(api.__all__) == sorted([*exported, "hookimpl"])
    for name in api.__all__:
        assert getattr(api, name) is not None, name


def test_the_type_checking_imports_match_the_exports():
    """Type checkers and editors see the same names the module loads at run time."""
    tree = ast.parse((ROOT / "rivet_core" / "api.py").read_text())
    imported: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                imported[statement.module or ""] = {a.name for a in statement.names}
    assert imported == {module: set(names) for module, names in api._EXPORTS.items()}


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        api.NoSuchThing  # noqa: B018


@pytest.mark.parametrize("module", [
    "rivet_core.api", "rivet_postgres", "rivet_mysql", "rivet_parquet", "rivet_csv",
    "rivet_local", "rivet_stdout", "rivet_objstore",
    "rivet_postgres.config", "rivet_mysql.config", "rivet_postgres.dialect",
    "rivet_mysql.dialect",
])
def test_importing_a_plugin_module_loads_no_heavy_library(module):
    code = (f"import sys, json; import {module}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{HEAVY!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout) == [], f"importing {module} loads {done.stdout}"


def test_registering_every_plugin_loads_no_heavy_library():
    """Building the registry (what every command does first) imports each plugin's top
    module and calls its hooks: still no pyarrow, no driver."""
    code = ("import sys, json; from rivet_core.plugins import build_registry; "
            "r = build_registry(); assert not r.problems, r.problems; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{HEAVY!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout) == []
