"""The ``rivet_project`` fixture: a temporary project where a test writes ``rivet.toml`` (and
query files), runs the CLI in-process, and gets an :class:`Outcome` with
``assert_success()`` / ``assert_failed(code)``.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from rivet_core.errors import ExitCode
from rivet_core.redact import forget_secrets


@attrs.frozen
class Outcome:
    """The result of one in-process ``rivet`` invocation."""

    argv: list[str]
    code: int
    out: str
    err: str

    def assert_success(self) -> Outcome:
        assert self.code == ExitCode.OK, self._explain(f"expected success, got {self.code}")
        return self

    def assert_failed(self, code: int | None = None) -> Outcome:
        if code is None:
            assert self.code != ExitCode.OK, self._explain("expected a failure, got success")
        else:
            assert self.code == code, self._explain(f"expected exit {code}, got {self.code}")
        return self

    def json(self) -> Any:
        return json.loads(self.out)

    def _explain(self, headline: str) -> str:
        return (f"{headline}\n$ rivet {' '.join(self.argv)}\n--- stdout ---\n{self.out}"
                f"--- stderr ---\n{self.err}")


@attrs.define
class RivetProject:
    """A temporary project directory with a config file and a way to run the CLI on it."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "rivet.toml"

    def write_config(self, text: str) -> Path:
        self.config.write_text(textwrap.dedent(text))
        return self.config

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
        return target

    def run(self, *args: str, config: bool = True) -> Outcome:
        """``rivet <args> -c <project>/rivet.toml`` in-process (``config=False`` omits
        ``-c``)."""
        from rivet_core.cli.common import Console
        from rivet_core.cli.main import main

        argv = list(args)
        if config and args and args[0] not in ("plugins", "--version", "--help"):
            argv += ["-c", str(self.config)]
        out, err = io.StringIO(), io.StringIO()
        forget_secrets()
        code = main(argv, Console(out=out, err=err))
        return Outcome(argv=argv, code=int(code), out=out.getvalue(), err=err.getvalue())

    def files(self, directory: str = "output") -> list[Path]:
        """Data files under ``directory``, sorted: hidden temp files and the run manifests
        under ``_rivet/`` (any ``_``-prefixed path part) are excluded, as dataset readers
        exclude them."""
        root = self.path / directory
        if not root.exists():
            return []
        return sorted(p for p in root.rglob("*") if p.is_file() and not any(
            part.startswith((".", "_")) for part in p.relative_to(root).parts))


@pytest.fixture
def rivet_project(tmp_path: Path) -> Iterator[RivetProject]:
    """A fresh project directory; see :class:`RivetProject`."""
    yield RivetProject(tmp_path)
