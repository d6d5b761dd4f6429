"""Rivet's framework: config, planner, runner, state and the plugin surface.

This package imports no backend. Sources, formats and destinations arrive through the
``rivet`` entry point group (see :mod:`rivet_core.hookspecs`), built-in ones included.
The names re-exported here are the public API a plugin may import.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("rivet")
"""Marker for plugin hook implementations: ``@hookimpl def rivet_sources(): ...``."""

__all__ = ["__version__", "hookimpl"]
