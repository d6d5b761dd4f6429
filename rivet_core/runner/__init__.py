"""Executing a :class:`~rivet_core.planner.Plan`: one :class:`ExportRun` per export."""

from __future__ import annotations

from rivet_core.planner import Plan
from rivet_core.runner.export import ExportResult, ExportRun, RunContext
from rivet_core.runner.files import FileResult

__all__ = ["ExportResult", "ExportRun", "FileResult", "RunContext", "run_plan"]


def run_plan(plan: Plan, ctx: RunContext) -> list[ExportResult]:
    """Run every export of the plan in config order. A failed export does not stop the
    others; its failure is in its result."""
    return [ExportRun(export, ctx).execute() for export in plan.exports]
