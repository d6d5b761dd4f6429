"""Keys of ``[exports.destination]`` when ``type = "local"``."""

from __future__ import annotations

from pathlib import Path

import attrs

from rivet_core.api import DestinationContext, doc


@attrs.frozen(kw_only=True)
class LocalOptions:
    """``type = "local"``: a directory on this machine."""

    path: str = doc(
        "Directory for the files, relative to the config file's directory unless absolute. "
        "Placeholders: `{export}`, `{date}` (UTC `YYYY-MM-DD` of the run start), `{run_id}`.",
        default="./output/{export}",
    )

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        problem = DestinationContext.template_problem(self.path)
        return [("path", problem)] if problem else []
