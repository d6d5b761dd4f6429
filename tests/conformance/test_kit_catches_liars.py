"""The kit must fail destinations whose declarations are false. Each liar runs the kit in a
pytest sub-session (pytester), so this suite stays green while proving the failures."""

from __future__ import annotations

import textwrap

import pytest

LIARS = '''
from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from rivet_core.backends import CommittedFile, Destination, WriteTarget
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.config import doc
from rivet_core.specs import DestinationSpec
from rivet_core.testing import DestinationTests

pytest_plugins = ["rivet_core.testing"]


@attrs.frozen(kw_only=True)
class DirOptions:
    path: str = doc("directory")


class StraightToFinalName(Destination):
    """Claims atomic, but writes straight to the final name."""

    def __init__(self, options, context):
        self.root = Path(options.path)
        self.root.mkdir(parents=True, exist_ok=True)

    def location(self):
        return self.root.as_uri()

    def open(self, name):
        return DirectTarget(self.root / name, keep_references=False)


class KeepsReferences(StraightToFinalName):
    """Buffers writes by reference (like obstore's writer) and renames at commit: atomic,
    but the bytes it stores are whatever the caller's reused buffer holds at commit."""

    def open(self, name):
        return DirectTarget(self.root / name, keep_references=True)


class DirectTarget(WriteTarget):
    def __init__(self, final, keep_references):
        self.final = final
        self.keep = keep_references
        self.pending = []
        self.temp = final.with_name("." + final.name + ".tmp")
        self.file = None if keep_references else open(final, "wb")

    def write(self, data):
        if self.keep:
            self.pending.append(data)
        else:
            self.file.write(data)
            self.file.flush()

    def commit(self):
        if self.keep:
            self.temp.write_bytes(b"".join(bytes(p) for p in self.pending))
            self.temp.replace(self.final)
        else:
            self.file.close()
        return CommittedFile(name=self.final.name, uri=self.final.as_uri())

    def abort(self):
        if self.file is not None:
            self.file.close()
        self.pending = []


CLAIMS = DestinationCapabilities(commit_protocol=WriteCommitProtocol.ATOMIC,
                                 idempotent_overwrite=True, retry_safe=True,
                                 partial_write_risk=False, multi_file=True)


class DirReader:
    def __init__(self, root):
        self.root = root

    def list(self):
        if not self.root.exists():
            return {}
        return {p.name: p.stat().st_size for p in self.root.iterdir()
                if p.is_file() and not p.name.startswith(".")}

    def read(self, name):
        return (self.root / name).read_bytes()

    def leftovers(self):
        return []


class LiarKit(DestinationTests):
    factory = None

    @pytest.fixture
    def destination_spec(self):
        return DestinationSpec(name="liar", config_cls=DirOptions, factory=self.factory,
                               capabilities=CLAIMS)

    @pytest.fixture
    def destination_config(self, tmp_path):
        return {"path": str(tmp_path / "out")}

    @pytest.fixture
    def backdoor(self, tmp_path):
        return DirReader(tmp_path / "out")


class TestStraightToFinalName(LiarKit):
    factory = StraightToFinalName


class TestKeepsReferences(LiarKit):
    factory = KeepsReferences
'''


def failed_tests(result: pytest.RunResult) -> set[str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {r.nodeid.split("::", 1)[1] for r in reports if r.failed}


def test_kit_fails_each_liar_on_exactly_the_claims_it_breaks(pytester: pytest.Pytester):
    # One sub-session for both liars: pytester runs are the slow part.
    pytester.makepyfile(test_liars=textwrap.dedent(LIARS))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    failed = failed_tests(result)

    # Claims atomic, writes to the final name: every visibility check fails, nothing else.
    assert {name for name in failed if name.startswith("TestStraightToFinalName::")} == {
        "TestStraightToFinalName::test_nothing_visible_before_commit",
        "TestStraightToFinalName::test_abort_leaves_nothing",
        "TestStraightToFinalName::test_failure_mid_stream_leaves_nothing",
        "TestStraightToFinalName::test_abandoned_write_shows_nothing",
    }
    # Keeps references to the caller's reused buffer: every read-back check catches the
    # corrupted bytes, while its (honest) abort passes.
    assert "TestKeepsReferences::test_committed_file_reads_back_exactly" in failed
    assert "TestKeepsReferences::test_overwrite_leaves_one_file_with_the_second_content" \
        in failed
    assert "TestKeepsReferences::test_abort_leaves_nothing" not in failed
    # A corrupted read-back names where the bytes part, instead of diffing a megabyte.
    result.stdout.fnmatch_lines(["*the committed file: * bytes read back, * written; "
                                 "first difference at offset *"])
    # The checks the liars keep (declaration, config) pass in the same run.
    assert result.parseoutcomes()["passed"] >= 10
    assert "TestStraightToFinalName::test_config_round_trips_through_the_loader" not in failed
