"""The conformance kit against the built-in ``local`` destination."""

from __future__ import annotations

from pathlib import Path

import pytest
from rivet_local.destination import TEMP_SUFFIX

from rivet_core.plugins import build_registry
from rivet_core.testing import DestinationTests


class DirectoryReader:
    """Reads the sandbox directory with the file system, as a reader of it would: hidden
    files (the destination's temp files) are not data, but they are leftovers."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self) -> list[tuple[str, int]]:
        if not self.root.exists():
            return []
        return [(p.relative_to(self.root).as_posix(), p.stat().st_size)
                for p in self.root.rglob("*") if p.is_file() and not p.name.startswith(".")]

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def leftovers(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.rglob(f"*{TEMP_SUFFIX}"))


class TestLocalDestination(DestinationTests):
    @pytest.fixture
    def destination_spec(self):
        return build_registry().destinations["local"].spec

    @pytest.fixture
    def destination_config(self, tmp_path):
        return {"path": str(tmp_path / "sandbox" / "{export}")}

    @pytest.fixture
    def backdoor(self, tmp_path):
        return DirectoryReader(tmp_path / "sandbox" / "kit")
