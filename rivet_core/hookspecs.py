"""The hook specifications: the whole extension surface of Rivet.

A plugin is a module (or object) registered under the ``rivet`` entry point group that
implements any of these hooks, each marked with :data:`rivet_core.hookimpl`. The hooks only
*register* backends; what a backend does is defined by the ABCs in :mod:`rivet_core.backends`
that the returned specs' factories build.
"""

from __future__ import annotations

import pluggy

from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec

hookspec = pluggy.HookspecMarker("rivet")


@hookspec
def rivet_sources() -> list[SourceSpec]:
    """Register database sources.

    Called once per invocation when the plugin registry is built, before any config is read.
    Return a list of :class:`~rivet_core.specs.SourceSpec`; each ``name`` is the value of
    ``[source] type`` that selects it and must be unique across all installed plugins.

    .. versionadded:: 0.1
    """


@hookspec
def rivet_formats() -> list[FormatSpec]:
    """Register output file formats.

    Called once per invocation when the plugin registry is built. Return a list of
    :class:`~rivet_core.specs.FormatSpec`; each ``name`` is the value of an export's
    ``format`` key and must be unique across all installed plugins.

    .. versionadded:: 0.1
    """


@hookspec
def rivet_destinations() -> list[DestinationSpec]:
    """Register destinations.

    Called once per invocation when the plugin registry is built. Return a list of
    :class:`~rivet_core.specs.DestinationSpec`; each ``name`` is the value of
    ``[exports.destination] type`` and must be unique. Its ``capabilities`` are checked for
    coherence at registration and proven by the conformance kit.

    .. versionadded:: 0.1
    """
