"""The hook specifications: the whole extension surface of Rivet, and its version.

A plugin is a module (or object) registered under the ``rivet`` entry point group that
implements any of these hooks, each marked with :data:`rivet_core.hookimpl`. The hooks only
*register* backends; what a backend does is defined by the ABCs in :mod:`rivet_core.backends`
that the returned specs' factories build.

The surface is versioned apart from Rivet's own releases: :data:`PLUGIN_API_VERSION`. A
plugin module says which versions it was written for in a module attribute named
:data:`API_DECLARATION`; the registry (:mod:`rivet_core.plugins`) registers the hooks of no
plugin whose range excludes the running version. Every ``versionadded`` in these
docstrings, in :mod:`rivet_core.backends` and in the specs names a plugin API version, not a
Rivet release.
"""

from __future__ import annotations

from typing import Final

import pluggy

from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec

hookspec = pluggy.HookspecMarker("rivet")

PLUGIN_API_VERSION: Final = "1.1"
"""The plugin API this Rivet implements, ``MAJOR.MINOR``. A minor version adds only what an
older plugin need not know about: a hook (pluggy calls no plugin that lacks it), an ABC
method with a default body, a ``Supports*`` protocol, a name in :mod:`rivet_core.api`, a
spec field with a default. Anything else (a hook or name removed or renamed, a changed
signature, a new abstract method, a default that changes meaning) is a new major version.
1.0 is the API as Rivet 0.1 shipped it; 1.1 added
:class:`~rivet_core.backends.SupportsScratchWrite`."""

API_DECLARATION: Final = "RIVET_PLUGIN_API"
"""The module attribute in which a plugin declares the plugin API versions it supports: a
version specifier string (PEP 440, read with ``packaging.specifiers``), e.g.
``RIVET_PLUGIN_API = ">=1.0,<2"``: written against 1.0, relying on nothing a 2.0 may
remove. It is read from the object the entry point names (the plugin module) after it is
imported and before any of its hooks is registered."""

UNDECLARED_API_RANGE: Final = ">=1.0,<2"
"""The range assumed for a plugin that declares none: it predates the versioned API, so it
was written against 1.0. Rivet's own backends (distribution ``rivet-cli``) declare none
either: they ship with the API they implement."""


@hookspec
def rivet_sources() -> list[SourceSpec]:
    """Register database sources.

    Called once per invocation when the plugin registry is built, before any config is read.
    Return a list of :class:`~rivet_core.specs.SourceSpec`; each ``name`` is the value of
    ``[source] type`` that selects it and must be unique across all installed plugins.

    .. versionadded:: 1.0
    """


@hookspec
def rivet_formats() -> list[FormatSpec]:
    """Register output file formats.

    Called once per invocation when the plugin registry is built. Return a list of
    :class:`~rivet_core.specs.FormatSpec`; each ``name`` is the value of an export's
    ``format`` key and must be unique across all installed plugins.

    .. versionadded:: 1.0
    """


@hookspec
def rivet_destinations() -> list[DestinationSpec]:
    """Register destinations.

    Called once per invocation when the plugin registry is built. Return a list of
    :class:`~rivet_core.specs.DestinationSpec`; each ``name`` is the value of
    ``[exports.destination] type`` and must be unique. Its ``capabilities`` are checked for
    coherence at registration and proven by the conformance kit.

    .. versionadded:: 1.0
    """
