"""Executing planned exports: :func:`run_exports`, and what a run produces."""

from __future__ import annotations

from rivet_core.runner.lifecycle import run_export, run_exports
from rivet_core.runner.results import ExportResult, FileResult, RunContext

__all__ = ["ExportResult", "FileResult", "RunContext", "run_export", "run_exports"]
