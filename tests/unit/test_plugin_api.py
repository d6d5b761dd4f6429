"""The versioned plugin API: a plugin's declared range is judged before any of its hooks is
registered, a refused plugin is a problem naming its range, the running version and the
fix, a config that needs it fails saying so, and a plugin written against an earlier minor
version keeps working when a minor version adds an optional hook and an optional method.

The plugins here are real installed distributions: a ``*.dist-info`` directory (METADATA,
entry_points.txt, and for an editable install direct_url.json) beside the plugin module in
a temporary directory on ``sys.path``, read back by importlib.metadata.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs
import pluggy
import pytest
from packaging.version import Version

from rivet_core import backends, hookspecs, plugins
from rivet_core.backends import Destination
from rivet_core.errors import ExitCode
from rivet_core.plugins import api_verdict, build_registry

ROOT = Path(__file__).resolve().parents[2]


@attrs.define
class Site:
    """A directory of installed distributions, seen by the registry as the ``rivet`` group
    together with the real entry points (the built-in backends)."""

    path: Path
    modules: list[str] = attrs.field(factory=list)

    def install(self, dist: str, version: str, module: str, source: str, *,
                editable_from: Path | None = None) -> None:
        info = self.path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[rivet]\n{module} = {module}\n")
        if editable_from is not None:
            (info / "direct_url.json").write_text(json.dumps(
                {"url": editable_from.as_uri(), "dir_info": {"editable": True}}))
        (self.path / f"{module}.py").write_text(textwrap.dedent(source))
        self.modules.append(module)
        importlib.invalidate_caches()

    def entry_points(self) -> list[importlib.metadata.EntryPoint]:
        found = list(REAL_ENTRY_POINTS())
        for dist in importlib.metadata.distributions(path=[str(self.path)]):
            found.extend(ep for ep in dist.entry_points if ep.group == "rivet")
        return found


REAL_ENTRY_POINTS = plugins._entry_points


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    site = Site(tmp_path / "site-packages")
    site.path.mkdir()
    monkeypatch.syspath_prepend(str(site.path))
    monkeypatch.setattr(plugins, "_entry_points", site.entry_points)
    monkeypatch.delenv("RIVET_DISABLE_PLUGINS", raising=False)
    yield site
    for module in site.modules:
        sys.modules.pop(module, None)


def destination_plugin(name: str, declaration: str | None, extra: str = "") -> str:
    """A plugin module with one destination, written against the public API only; every
    call of its hook is recorded in ``CALLS``."""
    declare = f"RIVET_PLUGIN_API = {declaration!r}\n" if declaration is not None else ""
    return declare + textwrap.dedent(f"""
        import attrs
        from rivet_core.api import (Destination, DestinationCapabilities, DestinationSpec,
                                    WriteCommitProtocol, hookimpl)

        CALLS = []

        @attrs.frozen
        class Options:
            path: str = "."

        class Dest(Destination):
            def open(self, name):
                raise NotImplementedError

            def location(self):
                return "file:///nowhere"

        SPEC = DestinationSpec(
            name={name!r}, config_cls=Options, factory=lambda config, context: Dest(),
            capabilities=DestinationCapabilities(
                commit_protocol=WriteCommitProtocol.ATOMIC, idempotent_overwrite=True,
                retry_safe=True, partial_write_risk=False))

        @hookimpl
        def rivet_destinations():
            CALLS.append("rivet_destinations")
            return [SPEC]
        """) + textwrap.dedent(extra)


# ---------------------------------------------------------------------------- the verdict


@pytest.mark.parametrize(("declared", "running", "needs"), [
    (">=1.0,<2", "1.0", None),
    (">=1.0,<2", "1.7", None),
    (">=1.0", "1.1", None),
    ("~=1.0", "1.3", None),
    (None, "1.0", None),
    (">=1.0,<2", "2.0", "newer plugin"),
    (None, "2.0", "newer plugin"),
    (">=1.2,<2", "1.0", "newer rivet"),
    (">=2,<3", "1.0", "newer rivet"),
    ("!=1.0", "1.0", "another version"),
    ("1.0", "1.0", "a valid declaration"),
    (2, "1.0", "a valid declaration"),
])
def test_a_declared_range_is_judged_against_the_running_api(declared, running, needs):
    verdict = api_verdict(declared, running)
    assert verdict.compatible is (needs is None)
    assert verdict.needs == needs
    assert verdict.declared is (declared is not None)
    if needs not in (None, "a valid declaration"):
        assert f"this Rivet runs plugin API {running}" in verdict.reason


def test_no_declaration_means_written_against_1_0():
    verdict = api_verdict(None, "2.0")
    assert verdict.range == hookspecs.UNDECLARED_API_RANGE == ">=1.0,<2"
    assert "declares no plugin API range (RIVET_PLUGIN_API)" in verdict.reason


def test_the_running_api_version_is_public_and_a_version():
    import rivet_core.api as api

    assert api.PLUGIN_API_VERSION == hookspecs.PLUGIN_API_VERSION
    assert Version(api.PLUGIN_API_VERSION).release[:2] == (1, 1)


# ---------------------------------------------------------------------- refused plugins


def test_a_plugin_built_for_a_newer_api_is_never_registered_and_says_how_to_fix_it(site):
    site.install("rivet-future", "2.0.0", "future_plugin",
                 destination_plugin("future", ">=2,<3"))
    registry = build_registry()
    assert "future" not in registry.destinations
    assert "future" not in [p.name for p in registry.plugins]
    assert sys.modules["future_plugin"].CALLS == []
    (problem,) = registry.problems
    assert problem.plugin == "future_plugin (rivet-future 2.0.0)"
    assert problem.message == (
        "not loaded: it supports plugin API >=2,<3, and this Rivet runs plugin API 1.1 (the "
        "plugin needs a newer Rivet: upgrade rivet-cli, or install an earlier release of "
        "the plugin)")
    assert problem.fix == "rivet install 'rivet-future<2.0.0'"
    assert problem.origins[0].api_range == ">=2,<3"


def test_a_plugin_older_than_the_api_is_refused_with_the_upgrade_command(site, monkeypatch):
    monkeypatch.setattr(hookspecs, "PLUGIN_API_VERSION", "2.0")
    site.install("rivet-old", "0.3", "old_plugin", destination_plugin("old", None))
    (problem,) = [p for p in build_registry().problems  # the example package is refused too
                  if p.origins[0].distribution == "rivet-old"]
    assert problem.message.startswith(
        "not loaded: it declares no plugin API range (RIVET_PLUGIN_API), so it is taken to "
        "support >=1.0,<2, and this Rivet runs plugin API 2.0")
    assert problem.fix == "rivet install --upgrade rivet-old"
    assert sys.modules["old_plugin"].CALLS == []


def test_a_declaration_that_is_not_a_range_is_refused_without_a_fix(site):
    site.install("rivet-typo", "1.0", "typo_plugin", destination_plugin("typo", "1.0"))
    (problem,) = build_registry().problems
    assert problem.message.startswith("not loaded: RIVET_PLUGIN_API = '1.0' is not a version "
                                      "range")
    assert problem.fix is None


def test_a_plugin_importing_a_name_the_api_lacks_is_pointed_to_an_upgrade(site):
    site.install("rivet-stale", "0.9", "stale_plugin",
                 "from rivet_core.api import RemovedLongAgo\n")
    (problem,) = build_registry().problems
    assert problem.message.startswith("failed to load: ImportError(")
    assert (f"may be built for another plugin API than this Rivet's "
            f"{hookspecs.PLUGIN_API_VERSION}") in problem.message
    assert problem.fix == "rivet install --upgrade rivet-stale"


def test_a_config_needing_a_refused_plugin_fails_with_the_reason_and_the_fix(
        site, rivet_project):
    site.install("rivet-future", "2.0.0", "future_plugin",
                 destination_plugin("future", ">=2,<3"))
    rivet_project.write_config("""
        [source]
        type = "postgres"
        url = "postgresql://postgres@127.0.0.1:5432/test"

        [[exports]]
        name = "orders"
        query = "SELECT 1 AS one"
        format = "parquet"
        [exports.destination]
        type = "future"
        """)
    outcome = rivet_project.run("check").assert_failed(ExitCode.PLUGIN)
    assert "exports[0].destination.type: unknown destination type 'future'" in outcome.err
    assert ("future_plugin (rivet-future 2.0.0) may provide it: not loaded: it supports "
            "plugin API >=2,<3, and this Rivet runs plugin API 1.1") in outcome.err
    assert "fix: `rivet install 'rivet-future<2.0.0'`" in outcome.err
    assert "Traceback" not in outcome.err


def test_rivet_plugins_lists_a_refused_plugin_with_its_range_and_fix(site, rivet_project):
    site.install("rivet-future", "2.0.0", "future_plugin",
                 destination_plugin("future", ">=2,<3"))
    text = rivet_project.run("plugins").assert_success().out
    assert "  rivet-future 2.0.0  third-party  plugin API >=2,<3\n" in text
    assert "    future_plugin (future_plugin): not loaded\n" in text
    assert ("problem: future_plugin (rivet-future 2.0.0): not loaded: it supports plugin API "
            ">=2,<3, and this Rivet runs plugin API 1.1") in text
    assert "  fix: rivet install 'rivet-future<2.0.0'\n" in text
    document = rivet_project.run("plugins", "--json").assert_success().json()
    (future,) = [d for d in document["distributions"] if d["name"] == "rivet-future"]
    assert future["plugin_api"] == ">=2,<3" and future["plugin_api_declared"] is True
    assert future["plugins"] == [{"name": "future_plugin", "module": "future_plugin",
                                  "status": "not loaded", "plugin_api": ">=2,<3",
                                  "hooks": []}]
    assert future["backends"] == []
    assert [p["fix"] for p in future["problems"]] == ["rivet install 'rivet-future<2.0.0'"]


# ----------------------------------------------------------------- rivet plugins, per dist


def test_rivet_plugins_shows_each_distribution_its_origin_range_and_hooks(
        site, rivet_project, tmp_path):
    site.install("rivet-vault", "0.4.1", "vault_plugin",
                 destination_plugin("vault", ">=1.0,<2"), editable_from=tmp_path / "src")
    site.install("rivet-plain", "1.2", "plain_plugin", destination_plugin("plain", None))
    document = rivet_project.run("plugins", "--json").assert_success().json()
    assert document["plugin_api"] == hookspecs.PLUGIN_API_VERSION
    dists = {d["name"]: d for d in document["distributions"]}
    vault = dists["rivet-vault"]
    assert (vault["version"], vault["origin"], vault["location"]) == (
        "0.4.1", "editable", str(tmp_path / "src"))
    assert (vault["plugin_api"], vault["plugin_api_declared"]) == (">=1.0,<2", True)
    assert vault["plugins"] == [{"name": "vault_plugin", "module": "vault_plugin",
                                 "status": "loaded", "plugin_api": ">=1.0,<2",
                                 "hooks": ["rivet_destinations"]}]
    assert vault["backends"] == [{"kind": "destination", "name": "vault",
                                  "hook": "rivet_destinations", "plugin": "vault_plugin"}]
    plain = dists["rivet-plain"]
    assert (plain["origin"], plain["location"]) == ("third-party", None)
    assert (plain["plugin_api"], plain["plugin_api_declared"]) == (">=1.0,<2", False)
    built_in = dists["rivet-cli"]
    assert (built_in["origin"], built_in["plugin_api"]) == (
        "built-in", f"=={hookspecs.PLUGIN_API_VERSION}")
    assert {"local", "stdout"} <= {b["name"] for b in built_in["backends"]}
    (backend,) = [b for b in document["backends"] if b["name"] == "vault"]
    assert (backend["origin"], backend["hook"]) == ("editable", "rivet_destinations")

    text = rivet_project.run("plugins").assert_success().out
    assert (f"  rivet-vault 0.4.1  editable {tmp_path / 'src'}  plugin API >=1.0,<2\n"
            "    vault_plugin (vault_plugin): rivet_destinations → destination vault\n") in text
    assert "  rivet-plain 1.2  third-party  plugin API >=1.0,<2 (not declared: assumed)\n" in text
    assert "  rivet-cli " in text and "  built-in  plugin API 1.1\n" in text


def test_a_blocked_plugin_is_listed_as_blocked(site, rivet_project, monkeypatch):
    site.install("rivet-vault", "0.4.1", "vault_plugin", destination_plugin("vault", None))
    monkeypatch.setenv("RIVET_DISABLE_PLUGINS", "vault_plugin")
    document = rivet_project.run("plugins", "--json").assert_success().json()
    (vault,) = [d for d in document["distributions"] if d["name"] == "rivet-vault"]
    assert [p["status"] for p in vault["plugins"]] == ["blocked"]


def test_a_known_backend_that_is_not_installed_hints_the_install_command():
    registry = build_registry(autoload=False)
    assert "`rivet install rivet-sqlite-jsonl`" in (registry.missing_hint("source", "sqlite")
                                                     or "")
    assert "`rivet install rivet-sqlite-jsonl`" in (registry.missing_hint("format", "jsonl")
                                                     or "")
    assert "rivet install" not in (registry.missing_hint("destination", "s3") or "")


# ------------------------------------------------------------- a minor version adds things


@pytest.fixture
def api_1_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rivet as a plugin API 1.1 would be: a new optional hook, and a new optional method
    with a default body on the Destination ABC."""
    spec = pluggy.HookspecMarker("rivet")

    @spec
    def rivet_notifiers() -> list[object]:
        """Register notification channels.

        .. versionadded:: 1.1
        """

    def estimate_cost(self: Destination, size: int) -> float | None:
        """What storing ``size`` bytes costs, when the destination knows.

        .. versionadded:: 1.1
        """
        return None

    monkeypatch.setattr(hookspecs, "PLUGIN_API_VERSION", "1.1")
    monkeypatch.setattr(hookspecs, "rivet_notifiers", rivet_notifiers, raising=False)
    monkeypatch.setattr(Destination, "estimate_cost", estimate_cost, raising=False)


NOTIFIER = """
@hookimpl
def rivet_notifiers():
    CALLS.append("rivet_notifiers")
    return ["pager"]
"""


def test_a_plugin_written_against_1_0_keeps_working_when_1_1_adds_optional_things(
        site, api_1_1):
    site.install("rivet-old-minor", "1.0.0", "old_minor", destination_plugin("old", ">=1.0"))
    site.install("rivet-new-minor", "1.1.0", "new_minor",
                 destination_plugin("new", ">=1.1,<2", extra=NOTIFIER))
    registry = build_registry()
    assert registry.problems == []
    assert {"old", "new"} <= set(registry.destinations)
    hooks = {p.name: p.hooks for p in registry.plugins}
    assert hooks["old_minor"] == ("rivet_destinations",)
    assert hooks["new_minor"] == ("rivet_destinations", "rivet_notifiers")
    old = registry.destinations["old"].spec.factory(None, None)
    assert old.location() == "file:///nowhere"
    assert old.estimate_cost(10) is None  # the default of the method it never heard of
    manager = plugins.new_manager()
    for module in ("old_minor", "new_minor"):
        manager.register(sys.modules[module])
    assert manager.hook.rivet_notifiers() == [["pager"]]  # the old plugin is not asked


def test_a_1_0_plugin_may_implement_a_newer_hook_as_optional_and_loads_on_1_0(site):
    site.install("rivet-ahead", "1.2.0", "ahead", destination_plugin("ahead", ">=1.0,<2", """
        @hookimpl(optionalhook=True)
        def rivet_notifiers():
            return ["pager"]
        """))
    registry = build_registry()
    assert registry.problems == []
    assert "ahead" in registry.destinations


def test_a_plugin_needing_a_newer_minor_api_is_refused(site):
    assert hookspecs.PLUGIN_API_VERSION == "1.1"
    site.install("rivet-new-minor", "1.2.0", "new_minor",
                 destination_plugin("new", ">=1.2,<2", extra=NOTIFIER))
    registry = build_registry()
    assert "new" not in registry.destinations
    (problem,) = registry.problems
    assert "the plugin needs a newer Rivet" in problem.message
    assert sys.modules["new_minor"].CALLS == []


# --------------------------------------------------------------- versionadded everywhere


def _versionadded(doc: str | None) -> Version | None:
    for line in (doc or "").splitlines():
        if line.strip().startswith(".. versionadded::"):
            return Version(line.split("::", 1)[1].strip())
    return None


def test_every_hook_carries_a_versionadded_no_later_than_the_running_api():
    running = Version(hookspecs.PLUGIN_API_VERSION)
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("rivet_")]
    assert hooks
    for hook in hooks:
        added = _versionadded(hook.__doc__)
        assert added is not None and added <= running, hook.__name__


def test_every_method_of_the_backend_abcs_and_protocols_carries_a_versionadded():
    """Read from the source, so that a method added later cannot miss its marker."""
    running = Version(hookspecs.PLUGIN_API_VERSION)
    tree = ast.parse(Path(backends.__file__).read_text())
    checked = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        if not any(ast.unparse(b) in ("abc.ABC", "Protocol") for b in cls.bases):
            continue
        for method in cls.body:
            if isinstance(method, ast.FunctionDef) and not method.name.startswith("_"):
                added = _versionadded(ast.get_docstring(method))
                assert added is not None and added <= running, f"{cls.name}.{method.name}"
                checked.append(f"{cls.name}.{method.name}")
    assert {"Source.read", "Destination.open", "FormatWriter.write_batch",
            "SupportsListing.write_small"} <= set(checked)


def test_the_example_package_declares_its_range():
    import rivet_sqlite_jsonl

    assert rivet_sqlite_jsonl.RIVET_PLUGIN_API == ">=1.0,<2"
    assert api_verdict(rivet_sqlite_jsonl.RIVET_PLUGIN_API,
                       hookspecs.PLUGIN_API_VERSION).compatible
