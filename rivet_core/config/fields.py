"""The one field helper every config model uses (core and plugin-owned tables alike)."""

from __future__ import annotations

from typing import Any

import attrs


def doc(text: str, **kwargs: Any) -> Any:
    """An attrs field documented for the config reference."""
    return attrs.field(metadata={"doc": text}, **kwargs)
