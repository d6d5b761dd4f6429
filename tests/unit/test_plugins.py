"""The plugin manager: entry points, broken plugins, duplicates, blocking."""

from __future__ import annotations

import attrs

from rivet_core import hookimpl
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.plugins import build_registry
from rivet_core.specs import DestinationSpec, FormatSpec


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
    for kind in ("source", "format", "destination"):
        for registered in registry.table(kind).values():
            assert registered.plugin.distribution == "rivet-cli"
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
    assert "expected DestinationSpec" in registry.problems[0].message


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
