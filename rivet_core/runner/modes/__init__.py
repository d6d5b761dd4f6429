"""The export modes, by the name ``mode = "..."`` selects: one module each.

The config loader asks a mode to check its keys, the planner asks which dialect pieces its
statements need, and the runner asks it to run (see :class:`~.base.Mode`).
"""

from __future__ import annotations

from rivet_core.runner.modes.base import Mode
from rivet_core.runner.modes.chunked import Chunked
from rivet_core.runner.modes.full import Full
from rivet_core.runner.modes.incremental import Incremental
from rivet_core.runner.modes.time_window import TimeWindow

MODES: dict[str, Mode] = {mode.name: mode for mode in (Full(), Incremental(), Chunked(),
                                                       TimeWindow())}

__all__ = ["MODES", "Mode"]
