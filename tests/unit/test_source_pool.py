"""The run's idle sources (rivet_core.runner.sourcepool): only a source that resets cleanly
is kept, at most ``limit`` of them, for the settings they were built from; everything else
is closed. The real servers' side is tests/integration/test_connection_reuse.py."""

from __future__ import annotations

from typing import Any

from rivet_core.backends import BatchStream, Query, ReadOptions, Source
from rivet_core.runner.sourcepool import SourcePool, SupportsReuse
from rivet_core.types import ColumnInfo


class FakeSource(Source):
    def __init__(self, *, reset: bool | Exception = True) -> None:
        self.reset = reset
        self.resets = 0
        self.closed = False

    def describe(self, query: Query, options: ReadOptions) -> list[ColumnInfo]:
        raise NotImplementedError

    def read(self, query: Query, options: ReadOptions) -> BatchStream:
        raise NotImplementedError

    def reset_session(self) -> bool:
        self.resets += 1
        if isinstance(self.reset, Exception):
            raise self.reset
        return self.reset

    def close(self) -> None:
        self.closed = True


class NoReuse(FakeSource):
    """A source without ``reset_session``: never kept."""

    reset_session = None  # type: ignore[assignment]


SETTINGS: Any = object()
OTHER: Any = object()


def test_a_source_that_resets_cleanly_serves_the_next_export():
    pool = SourcePool(limit=1)
    first = FakeSource()
    pool.give_back(SETTINGS, first)
    assert first.resets == 1 and not first.closed
    assert pool.take(SETTINGS, FakeSource) == (first, True)
    fresh, reused = pool.take(SETTINGS, FakeSource)
    assert fresh is not first and not reused


def test_a_source_is_kept_only_for_the_settings_it_was_built_from():
    pool = SourcePool(limit=1)
    pool.give_back(SETTINGS, FakeSource())
    _, reused = pool.take(OTHER, FakeSource)
    assert not reused


def test_a_source_that_cannot_reset_is_closed():
    pool = SourcePool(limit=2)
    refused, failing, unable = (FakeSource(reset=False), FakeSource(reset=OSError("gone")),
                                NoReuse())
    assert not isinstance(unable, SupportsReuse)
    for source in (refused, failing, unable):
        pool.give_back(SETTINGS, source)
        assert source.closed
    _, reused = pool.take(SETTINGS, FakeSource)
    assert not reused


def test_at_most_limit_sources_are_kept_and_the_rest_closed_unreset():
    pool = SourcePool(limit=2)
    sources = [FakeSource() for _ in range(3)]
    for source in sources:
        pool.give_back(SETTINGS, source)
    assert [s.closed for s in sources] == [False, False, True]
    assert sources[2].resets == 0  # no room: closed without a reset's round trips


def test_discard_closes_and_close_closes_every_idle_source_and_later_ones():
    pool = SourcePool(limit=2)
    failed = FakeSource()
    pool.discard(failed)
    assert failed.closed
    idle = FakeSource()
    pool.give_back(SETTINGS, idle)
    pool.close()
    assert idle.closed
    late = FakeSource()
    pool.give_back(SETTINGS, late)
    assert late.closed
