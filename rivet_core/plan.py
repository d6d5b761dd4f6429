"""What the planner hands the runner for one export: :class:`ExportPlan`, every part resolved.

Pure data. It lives apart from :mod:`rivet_core.planner` (which builds it from the config and
the registry) so the runner depends on the plan, not on how plans are made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from rivet_core.backends import Compression
from rivet_core.capabilities import DestinationCapabilities
from rivet_core.config.models import EffectiveTuning, ExportConfig
from rivet_core.dialect import Dialect
from rivet_core.plugins import Registered
from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec

if TYPE_CHECKING:
    import pyarrow as pa


@attrs.frozen(kw_only=True)
class ExportPlan:
    """Everything the runner needs for one export, resolved."""

    index: int
    config: ExportConfig
    sql: str
    """The export's query before any mode wraps it."""
    source: Registered[SourceSpec]
    source_options: Any
    format: Registered[FormatSpec]
    destination: Registered[DestinationSpec]
    compression: Compression
    max_file_bytes: int | None
    tuning: EffectiveTuning
    column_types: dict[str, pa.DataType]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def capabilities(self) -> DestinationCapabilities:
        return self.destination.spec.capabilities

    @property
    def dialect(self) -> Dialect:
        return self.source.spec.dialect

    @property
    def path(self) -> str:
        return f"exports[{self.index}]"
