"""What a mode is: the :class:`Mode` base every mode module subclasses.

A mode owns everything about itself: the config keys only it uses and their rules (checked
when the config loads, as config errors naming the TOML key), the dialect pieces its
statements need (checked by the planner, before anything runs), and how it runs, using the
services of :class:`~rivet_core.runner.export.ExportRun` and the one write path of
:mod:`rivet_core.runner.unit`. Adding a mode is one module and one line in the registry
(:mod:`rivet_core.runner.modes`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from rivet_core.config.models import ExportConfig
    from rivet_core.runner.export import ExportRun

Add = Callable[..., None]
"""``add(toml_path, message, hint=None)``: report one config problem."""


class Mode(abc.ABC):
    """One export mode (``mode = "<name>"``)."""

    name: ClassVar[str]
    keys: ClassVar[tuple[str, ...]] = ()
    """Export keys only this mode uses (None when unset): setting one in another mode is a
    config error, since a forgotten key hides a misunderstanding."""
    settings: ClassVar[tuple[tuple[str, object], ...]] = ()
    """Export keys only this mode uses that have a default: ``(key, default)``."""
    parallel: ClassVar[bool] = False
    """Whether ``parallel`` > 1 means something in this mode (its rows are not read in an
    order that matters)."""

    def check(self, export: ExportConfig, path: str, add: Add) -> None:  # noqa: B027
        """Report every problem of this mode's keys (``path`` is ``exports[i]``)."""

    def needs(self, export: ExportConfig) -> list[tuple[type, str, str]]:
        """The optional dialect pieces this export's statements need, each with the TOML key
        that asks for it and what to do without it: ``(piece, key, hint)``."""
        return []

    def resumable(self, export: ExportConfig) -> bool:
        """Whether ``rivet run --resume`` continues an interrupted run of this export."""
        return False

    def adopt_run(self, run: ExportRun) -> None:  # noqa: B027 - optional hook
        """Called before the run takes the export's lock: a mode that continues an earlier
        run (a resume) takes over its run id here."""

    @abc.abstractmethod
    def run(self, run: ExportRun) -> None:
        """Read and write the export, recording in the state store what each step commits;
        raise a :class:`~rivet_core.errors.RivetError` on failure."""
