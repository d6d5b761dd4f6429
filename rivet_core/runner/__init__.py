"""Executing planned exports: :func:`run_exports`, and what a run produces.

Names are loaded on first use, so importing a light submodule (``rivet_core.runner.signals``,
which the CLI needs before anything else) does not load the runner and pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rivet_core.runner.lifecycle import run_export, run_exports
    from rivet_core.runner.results import ExportResult, FileResult, RunContext

_HOME = {"run_export": "rivet_core.runner.lifecycle", "run_exports": "rivet_core.runner.lifecycle",
         "ExportResult": "rivet_core.runner.results", "FileResult": "rivet_core.runner.results",
         "RunContext": "rivet_core.runner.results"}

__all__ = ["ExportResult", "FileResult", "RunContext", "run_export", "run_exports"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
