"""The sealed plan artifact and the staleness rules, without a database: what a plan file
holds, that reading it gives back exactly what was sealed, and when a plan is stale."""

from __future__ import annotations

import datetime as dt
import json

import attrs
import pytest

from rivet_core.redact import forget_secrets, register_secret
from rivet_core.runner.chunks import Chunk
from rivet_core.sealed import (
    Current,
    CurrentExport,
    SealedChunks,
    SealedExport,
    SealedPlan,
    StalePlan,
    parse_plan,
    stale_reasons,
)

CREATED = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
CURSOR = json.dumps({"type": "int", "value": "100"})


def sealed_plan() -> SealedPlan:
    return SealedPlan(
        tool_version="0.1.0", created_at=CREATED, config_path="/p/rivet.toml",
        config_sha256="a" * 64, source_type="postgres",
        source_display="postgresql://u@h:5432/d",
        exports=(
            SealedExport(name="ids", mode="chunked", query="SELECT * FROM t",
                         chunks=SealedChunks(column="id", chunks=(
                             Chunk(idx=0, lo=1, hi=51, expected_rows=50),
                             Chunk(idx=1, lo=51, hi=101),
                             Chunk(idx=2, lo=None, hi=None, expected_rows=3)))),
            SealedExport(name="days", mode="chunked", query="SELECT * FROM d",
                         query_file="d.sql", query_file_sha256="b" * 64,
                         chunks=SealedChunks(column="day", chunks=(
                             Chunk(idx=0, lo=dt.date(2026, 1, 1), hi=dt.date(2026, 1, 8)),))),
            SealedExport(name="inc", mode="incremental", query="SELECT 1", cursor=CURSOR),
            SealedExport(name="tw", mode="time_window", query="SELECT 2",
                         window_start=dt.datetime(2026, 2, 27, tzinfo=dt.UTC)),
            SealedExport(name="all", mode="full", query="SELECT 3"),
        ))


def file_bytes(plan: SealedPlan) -> bytes:
    return json.dumps(plan.document(), indent=2).encode()


def current(plan: SealedPlan, **changes) -> Current:
    """The facts of the world in which ``plan`` is fresh, with ``changes``."""
    exports = {e.name: CurrentExport(mode=e.mode, query=e.query, query_file=e.query_file,
                                     query_file_sha256=e.query_file_sha256, cursor=e.cursor)
               for e in plan.exports}
    facts = Current(now=CREATED + dt.timedelta(minutes=5), tool_version=plan.tool_version,
                    config_path=plan.config_path, config_sha256=plan.config_sha256,
                    source_type=plan.source_type, source_display=plan.source_display,
                    exports=exports)
    return attrs.evolve(facts, **changes)


def test_reading_a_plan_file_gives_back_what_was_sealed():
    plan = sealed_plan()
    read = parse_plan(file_bytes(plan))
    assert read.exports == plan.exports and read.created_at == plan.created_at
    assert read.digest == plan.document()["digest"]
    assert parse_plan(file_bytes(read)).digest == read.digest


def test_any_change_to_the_content_fails_the_digest():
    document = sealed_plan().document()
    document["exports"][0]["chunks"][1]["hi"]["value"] = "102"
    with pytest.raises(StalePlan, match="altered after it was sealed"):
        parse_plan(json.dumps(document).encode())


def test_a_registered_secret_never_reaches_the_artifact():
    register_secret("hunter2-secret")
    try:
        plan = attrs.evolve(sealed_plan(), source_display="postgresql://u:hunter2-secret@h/d")
        text = json.dumps(plan.document())
    finally:
        forget_secrets()
    assert "hunter2-secret" not in text


def test_a_fresh_plan_has_no_stale_reason():
    plan = sealed_plan()
    assert stale_reasons(plan, current(plan), max_age_s=3600) == []


def test_each_change_is_a_reason_naming_it():
    plan = sealed_plan()
    exports = dict(current(plan).exports)
    exports["inc"] = attrs.evolve(exports["inc"], cursor=json.dumps({"type": "int",
                                                                     "value": "120"}))
    exports["days"] = attrs.evolve(exports["days"], query_file_sha256="c" * 64)
    exports["all"] = attrs.evolve(exports["all"], query="SELECT 4")
    now = current(plan, now=CREATED + dt.timedelta(days=2), tool_version="0.2.0",
                  config_sha256="d" * 64, source_display="postgresql://u@other:5432/d",
                  exports=exports)
    reasons = stale_reasons(plan, now, max_age_s=86400)
    assert [r.kind for r in reasons] == ["too_old", "tool_version", "config_changed",
                                         "source_changed", "query_file_changed",
                                         "cursor_moved", "query_changed"]
    assert all(r.overridable for r in reasons)
    assert "100 (int) → 120 (int)" in reasons[5].message


def test_a_plan_for_a_missing_export_or_another_mode_cannot_be_forced():
    plan = sealed_plan()
    exports = dict(current(plan).exports)
    del exports["ids"]
    exports["tw"] = attrs.evolve(exports["tw"], mode="full")
    reasons = stale_reasons(plan, current(plan, exports=exports), max_age_s=3600)
    assert [(r.kind, r.overridable) for r in reasons] == [("export_missing", False),
                                                          ("mode_changed", False)]


def test_forcing_a_moved_cursor_starts_from_the_stored_one():
    plan = sealed_plan()
    moved = json.dumps({"type": "int", "value": "120"})
    exports = dict(current(plan).exports)
    exports["inc"] = attrs.evolve(exports["inc"], cursor=moved)
    reasons = stale_reasons(plan, current(plan, exports=exports), max_age_s=3600)
    forced = plan.overriding(reasons, {name: e.cursor for name, e in exports.items()})
    inc = forced.export("inc")
    assert inc is not None and inc.cursor == moved
    inc.require_cursor(moved)
    with pytest.raises(StalePlan, match="cursor moved"):
        plan.export("inc").require_cursor(moved)  # type: ignore[union-attr]
    assert forced.overridden == (reasons[0].message,)


def test_sealed_chunks_refuse_a_run_that_splits_another_column():
    ids = sealed_plan().export("ids")
    assert ids is not None and len(ids.chunks_for("id")) == 3
    with pytest.raises(StalePlan, match="splits 'other'"):
        ids.chunks_for("other")
