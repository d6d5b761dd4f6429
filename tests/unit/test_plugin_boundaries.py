"""Each built-in plugin is self-contained: it imports rivet_core's public modules and its own
package, never another plugin, so any of them could ship as its own distribution. And the
core never imports a plugin by name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists())


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


PUBLIC = {"rivet_core", "rivet_core.api"}
"""What a plugin may import from Rivet: the package (``hookimpl``, ``__version__``) and the
one public API module. A third-party package lives by the same rule (the example package's
own test checks it)."""


@pytest.mark.parametrize("package", PLUGINS, ids=lambda p: p.name)
def test_plugin_imports_only_the_public_api_and_itself(package):
    others = {p.name for p in PLUGINS} - {package.name}
    for source in package.rglob("*.py"):
        for module in imported_modules(source):
            top = module.split(".")[0]
            assert top not in others, f"{source.relative_to(ROOT)} imports plugin {module}"
            if top == "rivet_core":
                assert module in PUBLIC, (
                    f"{source.relative_to(ROOT)} imports {module}; plugins import from "
                    "rivet_core.api only")


def test_core_never_imports_a_plugin():
    plugin_names = {p.name for p in PLUGINS}
    for source in (ROOT / "rivet_core").rglob("*.py"):
        for module in imported_modules(source):
            assert module.split(".")[0] not in plugin_names, (
                f"{source.relative_to(ROOT)} imports plugin module {module}")
