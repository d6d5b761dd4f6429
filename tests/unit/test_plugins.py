"""The plugin manager: entry points, broken plugins, duplicates, blocking, and every mistake a
plugin author can make reported as a problem naming the distribution, never a traceback."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from rivet_core import hookimpl, plugins
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.errors import ExitCode
from rivet_core.plugins import build_registry
from rivet_core.specs import DestinationSpec, FormatSpec, spec_problems


@attrs.frozen
class NoOptions:
    pass


def dest_spec(name, **caps):
    values = dict(commit_protocol=WriteCommitProtocol.ATOMIC, idempotent_overwrite=True,
                  retry_safe=True, partial_write_risk=False)
    values.update(caps)
    return DestinationSpec(name=name, config_cls=NoOptions, factory=lambda c, x: None,
                           capabilities=DestinationCapabilities(**values))


class DestPlugin:
    def __init__(self, *specs):
        self.specs = specs

    @hookimpl
    def rivet_destinations(self):
        return list(self.specs)


def test_built_in_backends_arrive_through_entry_points():
    registry = build_registry()
    assert {"postgres"} <= set(registry.sources)
    assert {"parquet", "csv"} <= set(registry.formats)
    assert {"local", "stdout"} <= set(registry.destinations)
    built_in = {"postgres", "mysql", "parquet", "csv", "local", "stdout", "s3", "gcs"}
    for kind in ("source", "format", "destination"):
        for name, registered in registry.table(kind).items():
            if name in built_in:
                assert registered.plugin.distribution == "rivet-cli", name
    assert registry.problems == []


def test_two_plugins_claiming_one_name_is_an_error_naming_both():
    registry = build_registry(autoload=False, extra=[("one", DestPlugin(dest_spec("x"))),
                                                     ("two", DestPlugin(dest_spec("x")))])
    assert "x" not in registry.destinations
    (problem,) = registry.problems
    assert "one" in problem.message and "two" in problem.message
    assert "provided by both" in registry.missing_message("destination", "x")


def test_incoherent_capabilities_make_a_backend_unusable():
    bad = dest_spec("liar", commit_protocol=WriteCommitProtocol.STREAMING,
                    idempotent_overwrite=False, retry_safe=False, partial_write_risk=False)
    registry = build_registry(autoload=False, extra=[("liar", DestPlugin(bad))])
    assert "liar" not in registry.destinations
    assert "partial_write_risk" in registry.problems[0].message


def test_a_broken_hook_is_reported_not_raised():
    class Broken:
        @hookimpl
        def rivet_formats(self):
            raise RuntimeError("boom")

    registry = build_registry(autoload=False, extra=[("broken", Broken()),
                                                     ("ok", DestPlugin(dest_spec("fine")))])
    assert "fine" in registry.destinations
    assert "boom" in registry.problems[0].message


def test_a_plugin_returning_the_wrong_spec_type_is_reported():
    class Wrong:
        @hookimpl
        def rivet_destinations(self):
            return [FormatSpec(name="f", config_cls=NoOptions, factory=lambda c, x: None,
                               extension="f", codecs={"none"}, default_codec="none")]

    registry = build_registry(autoload=False, extra=[("wrong", Wrong())])
    assert "expected only DestinationSpec" in registry.problems[0].message


def test_misspelt_hook_name_fails_loudly():
    class Typo:
        @hookimpl
        def rivet_destination(self):  # missing the final 's'
            return []

    registry = build_registry(autoload=False, extra=[("typo", Typo())])
    assert any("rivet_destination" in p.message for p in registry.problems)


def test_disabled_plugins_are_blocked(monkeypatch):
    monkeypatch.setenv("RIVET_DISABLE_PLUGINS", "stdout, csv")
    registry = build_registry()
    assert "stdout" not in registry.destinations
    assert "csv" not in registry.formats
    assert "RIVET_DISABLE_PLUGINS" in (registry.missing_hint("destination", "stdout") or "")


def test_unknown_backend_hint_names_the_providing_package():
    registry = build_registry(autoload=False)
    assert "rivet_objstore" in (registry.missing_hint("destination", "s3") or "")


# ------------------------------------------------------------------ installed distributions
# Fake distributions are real ones: a ``*.dist-info`` directory (METADATA, entry_points.txt)
# beside the plugin module, read back by importlib.metadata, so each entry point carries its
# distribution exactly as an installed package's does.


REAL_ENTRY_POINTS = plugins._entry_points


@attrs.define
class SitePackages:
    """A directory of installed distributions that the registry sees as the ``rivet`` group
    (plus the built-in backends when ``builtins`` is set)."""

    path: Path
    builtins: bool = False
    also_on_path: list[Path] = attrs.field(factory=list)
    modules: list[str] = attrs.field(factory=list)

    def install(self, dist: str, version: str, entry_points: dict[str, str],
                modules: dict[str, str], *, path: Path | None = None) -> None:
        root = path or self.path
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[rivet]\n{lines}")
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
            self.modules.append(module)
        importlib.invalidate_caches()

    def entry_points(self) -> list[importlib.metadata.EntryPoint]:
        found = list(REAL_ENTRY_POINTS()) if self.builtins else []
        # Unlike importlib.metadata.entry_points(), distributions() does not drop a second
        # copy of a distribution found further down the path, so the registry sees both.
        paths = [str(p) for p in (self.path, *self.also_on_path)]
        for dist in importlib.metadata.distributions(path=paths):
            found.extend(ep for ep in dist.entry_points if ep.group == "rivet")
        return found


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SitePackages]:
    site = SitePackages(tmp_path / "site-packages")
    site.path.mkdir()
    monkeypatch.syspath_prepend(str(site.path))
    monkeypatch.setattr(plugins, "_entry_points", site.entry_points)
    monkeypatch.delenv("RIVET_DISABLE_PLUGINS", raising=False)
    yield site
    for module in site.modules:
        sys.modules.pop(module, None)


PREAMBLE = """
import attrs
from rivet_core import hookimpl
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.dialect import Dialect
from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec

@attrs.frozen
class Options:
    pass

def dest(name, **overrides):
    caps = DestinationCapabilities(commit_protocol=WriteCommitProtocol.ATOMIC,
                                   idempotent_overwrite=True, retry_safe=True,
                                   partial_write_risk=False)
    return DestinationSpec(**{"name": name, "config_cls": Options,
                              "factory": lambda c, x: None, "capabilities": caps,
                              **overrides})

def fmt(name, **overrides):
    return FormatSpec(**{"name": name, "config_cls": Options, "factory": lambda c, x: None,
                         "extension": name, "codecs": {"none", "gzip"},
                         "default_codec": "none", "level_ranges": {"gzip": (1, 9)},
                         **overrides})

def src(name, **overrides):
    return SourceSpec(**{"name": name, "config_cls": Options, "factory": lambda c, x: None,
                         "dialect": Dialect(), **overrides})
"""


def plugin_module(body: str) -> str:
    return PREAMBLE + textwrap.dedent(body)


def destinations_module(*names: str) -> str:
    specs = ", ".join(f"dest({name!r})" for name in names)
    return plugin_module(f"""
        @hookimpl
        def rivet_destinations():
            return [{specs}]
        """)


def test_two_distributions_with_one_entry_point_name_both_load_and_are_reported(site):
    site.install("rivet-zip", "1.0", {"archive": "archive_zip"},
                 {"archive_zip": destinations_module("zip")})
    site.install("rivet-tar", "2.3", {"archive": "archive_tar"},
                 {"archive_tar": destinations_module("tar")})
    registry = build_registry()
    assert {"zip", "tar"} <= set(registry.destinations)
    assert registry.destinations["tar"].plugin.distribution == "rivet-tar"
    (problem,) = registry.problems
    assert "rivet-zip 1.0" in problem.message and "rivet-tar 2.3" in problem.message
    assert "RIVET_DISABLE_PLUGINS=archive would block both" in problem.message
    assert {o.distribution for o in problem.origins} == {"rivet-zip", "rivet-tar"}


def test_one_distribution_seen_twice_on_sys_path_loads_once_without_a_problem(site, tmp_path):
    site.install("rivet-zip", "1.0", {"archive": "archive_zip"},
                 {"archive_zip": destinations_module("zip")})
    again = tmp_path / "other-site-packages"
    site.install("rivet_zip", "1.0", {"archive": "archive_zip"}, {}, path=again)
    site.also_on_path.append(again)
    assert len(site.entry_points()) == 2
    registry = build_registry()
    assert set(registry.destinations) == {"zip"}
    assert [p.name for p in registry.plugins] == ["archive"]
    assert registry.problems == []


def test_two_distributions_shipping_one_module_load_it_once_and_are_reported(site, tmp_path):
    site.install("rivet-zip", "1.0", {"archive": "archive_zip"},
                 {"archive_zip": destinations_module("zip")})
    site.install("rivet-zip-fork", "1.1", {"archive": "archive_zip"}, {})
    registry = build_registry()
    assert set(registry.destinations) == {"zip"}
    clash, once = registry.problems
    assert "rivet-zip 1.0" in clash.message and "rivet-zip-fork 1.1" in clash.message
    assert once.message.startswith("loads archive_zip, which archive (rivet-zip")
    assert once.message.endswith("already loaded; its hooks are called once")


def test_a_plugin_name_registered_twice_by_hand_is_reported():
    registry = build_registry(autoload=False, extra=[("one", DestPlugin(dest_spec("a"))),
                                                     ("one", DestPlugin(dest_spec("b")))])
    assert set(registry.destinations) == {"a"}
    assert registry.problems[0].message == "plugin name 'one' is taken; not loaded"


def test_a_qualified_name_blocks_one_of_two_same_named_plugins(site, monkeypatch):
    site.install("rivet-zip", "1.0", {"archive": "archive_zip"},
                 {"archive_zip": destinations_module("zip")})
    site.install("rivet-tar", "2.3", {"archive": "archive_tar"},
                 {"archive_tar": destinations_module("tar")})
    monkeypatch.setenv("RIVET_DISABLE_PLUGINS", "rivet-tar:archive")
    registry = build_registry()
    assert set(registry.destinations) == {"zip"}
    assert registry.problems == []
    monkeypatch.setenv("RIVET_DISABLE_PLUGINS", "archive")
    assert build_registry().destinations == {}


def test_a_hook_returning_one_spec_instead_of_a_list_is_reported_with_its_distribution(site):
    site.install("rivet-one", "0.4", {"one": "one_source"}, {"one_source": plugin_module("""
        @hookimpl
        def rivet_sources():
            return src("one")
        """)})
    registry = build_registry()
    (problem,) = registry.problems
    assert problem.plugin == "one (rivet-one 0.4)"
    assert problem.message == "rivet_sources() returned SourceSpec, expected a list of SourceSpec"
    assert "one" not in registry.sources
    assert "unusable" in registry.missing_message("source", "one")


def test_a_hook_returning_none_is_reported():
    class Forgetful:
        @hookimpl
        def rivet_formats(self):
            FormatSpec(name="f", config_cls=NoOptions, factory=lambda c, x: None,
                       extension="f", codecs={"none"}, default_codec="none")

    registry = build_registry(autoload=False, extra=[("forgetful", Forgetful())])
    (problem,) = registry.problems
    assert problem.plugin == "forgetful"
    assert problem.message == "rivet_formats() returned None, expected a list of FormatSpec"


def test_a_hook_that_raises_is_reported_with_its_distribution(site):
    site.install("rivet-boom", "3.1", {"boom": "boom_plugin"}, {"boom_plugin": plugin_module("""
        @hookimpl
        def rivet_destinations():
            raise RuntimeError("no credentials file")
        """)})
    (problem,) = build_registry().problems
    assert problem.plugin == "boom (rivet-boom 3.1)"
    assert "rivet_destinations() raised" in problem.message
    assert "no credentials file" in problem.message


def test_a_list_with_one_good_and_one_bad_spec_registers_the_good_one():
    class Mixed:
        @hookimpl
        def rivet_destinations(self):
            return [dest_spec("good"), "bad"]

    registry = build_registry(autoload=False, extra=[("mixed", Mixed())])
    assert set(registry.destinations) == {"good"}
    (problem,) = registry.problems
    assert problem.message == ("rivet_destinations() returned a list holding str, "
                               "expected only DestinationSpec")


@pytest.mark.parametrize("exit_at_import", ["raise ImportError('needs libfoo')",
                                            "raise SystemExit(3)"],
                         ids=["import-error", "sys-exit"])
def test_a_plugin_that_fails_at_import_is_reported_with_its_distribution(site, exit_at_import):
    site.install("rivet-broken", "0.0.1", {"broken": "broken_plugin"},
                 {"broken_plugin": exit_at_import})
    site.install("rivet-fine", "1.0", {"fine": "fine_plugin"},
                 {"fine_plugin": destinations_module("fine")})
    registry = build_registry()
    assert "fine" in registry.destinations
    (problem,) = registry.problems
    assert problem.plugin == "broken (rivet-broken 0.0.1)"
    assert problem.message.startswith("failed to load: ")


# ------------------------------------------------------------------ declaration mistakes

# (spec constructor call inside the plugin module, kind, fragment of the problem)
BAD_DECLARATIONS = [
    pytest.param('fmt("bad", default_codec="lz4")', "format",
                 "default_codec 'lz4' is not in codecs (gzip, none)", id="default-codec"),
    pytest.param('fmt("bad", level_ranges={"zstd": (1, 22)})', "format",
                 "level_ranges names codec 'zstd', which is not in codecs", id="level-range"),
    pytest.param('fmt("bad", profiles={"fast": ("snappy", None)})', "format",
                 "profiles['fast'] names codec 'snappy', which is not in codecs",
                 id="profile-codec"),
    pytest.param('fmt("bad", profiles={"small": ("gzip", 12)})', "format",
                 "profiles['small'] sets level 12 for 'gzip', outside level_ranges 1..9",
                 id="profile-level"),
    pytest.param('src("bad", modes={"full", "incremental", "fulll"})', "source",
                 "modes: 'fulll' is not a mode", id="mode"),
    pytest.param('src("bad", dialect="postgres")', "source",
                 "dialect must be an instance of a rivet_core.dialect.Dialect subclass, got str",
                 id="dialect-string"),
    pytest.param('src("bad", dialect=Dialect)', "source",
                 "got the class Dialect: pass an instance, Dialect()", id="dialect-class"),
    pytest.param('dest("bad", config_cls=dict)', "destination",
                 "config_cls must be an attrs class", id="config-cls"),
    pytest.param('dest("bad", capabilities=DestinationCapabilities('
                 'commit_protocol=WriteCommitProtocol.STREAMING, idempotent_overwrite=False, '
                 'retry_safe=False, partial_write_risk=False))', "destination",
                 "must declare partial_write_risk=True", id="capabilities"),
]
HOOKS = {"source": "rivet_sources", "format": "rivet_formats",
         "destination": "rivet_destinations"}
MAKERS = {"source": "src", "format": "fmt", "destination": "dest"}


@pytest.mark.parametrize(("call", "kind", "fragment"), BAD_DECLARATIONS)
def test_a_declaration_mistake_is_a_problem_naming_the_distribution(site, call, kind,
                                                                    fragment):
    site.install("rivet-sloppy", "0.2", {"sloppy": "sloppy_plugin"},
                 {"sloppy_plugin": plugin_module(f"""
                     @hookimpl
                     def {HOOKS[kind]}():
                         return [{call}, {MAKERS[kind]}("good")]
                     """)})
    registry = build_registry()
    assert "good" in registry.table(kind)
    assert "bad" not in registry.table(kind)
    (problem,) = registry.problems
    assert problem.plugin == "sloppy (rivet-sloppy 0.2)"
    assert (problem.kind, problem.backend) == (kind, "bad")
    assert fragment in problem.message
    assert registry.missing_message(kind, "bad").startswith(f"{kind} type 'bad' is unusable: ")


@pytest.mark.parametrize(("call", "kind", "fragment"), BAD_DECLARATIONS)
def test_spec_problems_finds_each_declaration_mistake(call, kind, fragment):
    namespace: dict[str, object] = {}
    exec(PREAMBLE, namespace)
    spec = eval(call, namespace)
    assert any(fragment in p for p in spec_problems(spec)), spec_problems(spec)
    good = eval(f'{MAKERS[kind]}("good")', namespace)
    assert spec_problems(good) == []


def test_every_built_in_spec_is_free_of_declaration_problems():
    registry = build_registry()
    for kind in ("source", "format", "destination"):
        for registered in registry.table(kind).values():
            assert spec_problems(registered.spec) == []


def test_every_misspelt_or_unmarked_hook_is_reported_with_the_plugin_origin(site):
    site.install("rivet-typos", "1.2", {"typos": "typo_plugin"}, {"typo_plugin": plugin_module("""
        @hookimpl
        def rivet_source():
            return [src("a")]

        @hookimpl
        def rivet_destination():
            return [dest("b")]

        def rivet_formatz():
            return [fmt("c")]

        def rivet_destinations():
            return [dest("d")]

        @hookimpl
        def rivet_formats():
            return [fmt("fine")]
        """)})
    registry = build_registry()
    assert set(registry.formats) == {"fine"}
    messages = sorted(p.message for p in registry.problems)
    assert messages == [
        "rivet_destination is not a Rivet hook; did you mean rivet_destinations?",
        "rivet_destinations() is not marked with @rivet_core.hookimpl, so it is never called",
        "rivet_formatz is not a Rivet hook; did you mean rivet_formats?",
        "rivet_source is not a Rivet hook; did you mean rivet_sources?",
    ]
    assert {p.plugin for p in registry.problems} == {"typos (rivet-typos 1.2)"}


def test_every_problem_names_the_distribution_and_version(site):
    site.install("rivet-messy", "9.9", {"messy": "messy_plugin"}, {"messy_plugin": plugin_module("""
        @hookimpl
        def rivet_sources():
            return src("s")

        @hookimpl
        def rivet_formats():
            return [fmt("f", default_codec="lz4"), 42]

        @hookimpl
        def rivet_destinations():
            raise ValueError("nope")

        @hookimpl
        def rivet_sourcez():
            return []
        """)})
    site.install("rivet-messy-too", "1.0", {"messy": "messy_too"},
                 {"messy_too": destinations_module("x")})
    site.install("rivet-more", "1.0", {"more": "more_plugin"},
                 {"more_plugin": destinations_module("x")})
    registry = build_registry()
    assert len(registry.problems) == 7
    for problem in registry.problems:
        assert problem.origins, problem
        for origin in problem.origins:
            assert f"({origin.distribution} {origin.version})" in problem.plugin


# ------------------------------------------------------------------ through the CLI

CONFIG = """
[source]
type = "postgres"
url = "postgresql://postgres@127.0.0.1:5432/test"

[[exports]]
name = "orders"
query = "SELECT 1 AS one"
format = "parquet"
mystery = 1
[exports.destination]
type = "{destination}"
path = "./output"
"""


@pytest.fixture
def with_builtins(site: SitePackages) -> SitePackages:
    site.builtins = True
    return site


def test_a_config_naming_an_uninstalled_backend_exits_plugin_with_every_issue(
        with_builtins, rivet_project):
    rivet_project.write_config(CONFIG.format(destination="zip"))
    outcome = rivet_project.run("run").assert_failed(ExitCode.PLUGIN)
    assert ("rivet: config error: rivet.toml: exports[0].destination.type: unknown "
            "destination type 'zip' (installed: ") in outcome.err
    assert "local, s3, stdout)" in outcome.err
    assert "rivet.toml: exports[0].mystery: unknown key" in outcome.err
    assert not (rivet_project.path / ".rivet_state.db").exists()


def test_a_typo_of_a_built_in_backend_exits_plugin_with_a_did_you_mean(
        with_builtins, rivet_project):
    rivet_project.write_config(CONFIG.format(destination="locl"))
    outcome = rivet_project.run("check").assert_failed(ExitCode.PLUGIN)
    assert "exports[0].destination.type: unknown destination type 'locl'" in outcome.err
    assert "did you mean 'local'?" in outcome.err


@pytest.mark.parametrize("kind", ["source", "format"])
def test_an_unknown_source_or_format_type_exits_plugin(with_builtins, rivet_project, kind):
    text = CONFIG.format(destination="local").replace("mystery = 1\n", "")
    if kind == "source":
        text, where = text.replace('"postgres"', '"oracle"'), "source.type"
    else:
        text, where = text.replace('"parquet"', '"avro"'), "exports[0].format.type"
    rivet_project.write_config(text)
    outcome = rivet_project.run("run").assert_failed(ExitCode.PLUGIN)
    assert f"rivet.toml: {where}: unknown {kind} type" in outcome.err


def test_a_config_naming_a_refused_backend_exits_plugin_saying_why(with_builtins,
                                                                   rivet_project):
    with_builtins.install("rivet-zip", "1.0", {"zip": "zip_plugin"},
                          {"zip_plugin": plugin_module("""
                              @hookimpl
                              def rivet_destinations():
                                  return [dest("zip", config_cls=dict)]
                              """)})
    rivet_project.write_config(CONFIG.format(destination="zip"))
    outcome = rivet_project.run("run").assert_failed(ExitCode.PLUGIN)
    assert ("exports[0].destination.type: destination type 'zip' is unusable: "
            "config_cls must be an attrs class") in outcome.err
    assert "exports[0].mystery: unknown key" in outcome.err


def test_a_config_needing_a_plugin_that_failed_to_load_exits_plugin_naming_it(
        with_builtins, rivet_project):
    with_builtins.install("rivet-zip", "1.0", {"zip": "zip_plugin"},
                          {"zip_plugin": "import rivet_zip_native\n"})
    rivet_project.write_config(CONFIG.format(destination="zip"))
    outcome = rivet_project.run("run").assert_failed(ExitCode.PLUGIN)
    assert "unknown destination type 'zip'" in outcome.err
    assert "zip (rivet-zip 1.0)" in outcome.err


def test_a_config_error_without_a_backend_problem_still_exits_config(with_builtins,
                                                                     rivet_project):
    rivet_project.write_config(CONFIG.format(destination="local"))
    outcome = rivet_project.run("run").assert_failed(ExitCode.CONFIG)
    assert "exports[0].mystery: unknown key" in outcome.err


def test_rivet_plugins_lists_problems_with_distribution_and_version_and_exits_ok(
        with_builtins, rivet_project):
    with_builtins.install("rivet-broken", "0.0.1", {"broken": "broken_plugin"},
                          {"broken_plugin": "raise ImportError('needs libfoo')\n"})
    with_builtins.install("rivet-zip", "1.0", {"zip": "zip_plugin"},
                          {"zip_plugin": plugin_module("""
                              @hookimpl
                              def rivet_destinations():
                                  return [dest("zip", config_cls=dict)]
                              """)})
    text = rivet_project.run("plugins").assert_success().out
    assert "problem: broken (rivet-broken 0.0.1): failed to load: ImportError" in text
    assert ("problem: zip (rivet-zip 1.0): destination 'zip': config_cls must be an "
            "attrs class") in text
    problems = rivet_project.run("plugins", "--json").assert_success().json()["problems"]
    assert [(p["origins"][0]["distribution"], p["origins"][0]["version"], p["backend"])
            for p in problems] == [("rivet-broken", "0.0.1", None), ("rivet-zip", "1.0", "zip")]
