"""Fixtures of the example plugin's tests: Rivet's testing kit, and an S3 server.

The S3 server is the one Rivet's own suite runs (moto, as a process on 127.0.0.1), started
with the helpers of the repository's ``tests/servers``, loaded here by path: this directory
runs as part of the repository's test command as well as on its own
(``pytest examples/rivet-sqlite-jsonl/tests``). Outside the repository the S3 test is
skipped, saying why.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytest_plugins = ["rivet_core.testing"]

REPO_TESTS = Path(__file__).resolve().parents[3] / "tests"


def _servers() -> ModuleType | None:
    """The repository's ``tests/servers`` package (the name Rivet's suite imports it by),
    or None outside the repository."""
    if not (REPO_TESTS / "servers" / "__init__.py").is_file():
        return None
    if str(REPO_TESTS) not in sys.path:
        sys.path.append(str(REPO_TESTS))
    import servers

    return servers


@pytest.fixture(autouse=True)
def _no_cloud_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real cloud provider with the developer's credentials."""
    servers = _servers()
    if servers is None:
        return
    for name in list(os.environ):
        if servers.CLOUD_ENV.match(name):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def servers() -> ModuleType:
    module = _servers()
    if module is None:
        pytest.skip(f"the S3 test server helpers are not at {REPO_TESTS / 'servers'} (run "
                    "these tests from a checkout of the Rivet repository)")
    return module


@pytest.fixture(scope="session")
def moto_endpoint(servers: ModuleType, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[str]:
    with servers.moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def s3_bucket(servers: ModuleType, moto_endpoint: str) -> str:
    return servers.new_bucket(moto_endpoint)
