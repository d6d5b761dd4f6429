"""The progress line as pure logic: what it shows with no estimate (as before), with a row
estimate (percentage, never past 99 %, and the time left) and with a chunk plan."""

from __future__ import annotations

import io

from rivet_core.runner.progress import Progress, duration, progress_line


def line(**kwargs):
    values = {"rows": 1000, "bytes_written": 2048, "elapsed": 10.0}
    values.update(kwargs)
    return progress_line("orders", **values)


def test_without_an_estimate_the_line_shows_rows_rate_bytes_and_time_only():
    assert line() == "orders: 1,000 rows  100 rows/s  2.0 KiB  10s"
    assert line(detail="chunk 3 [0..10)").endswith("10s  chunk 3 [0..10)")


def test_an_estimate_gives_the_percentage_and_the_time_left_at_the_current_pace():
    text = line(rows=250_000, elapsed=10.0, estimated_rows=1_000_000)
    assert text.endswith("25% of ~1,000,000  ETA 30s")


def test_the_percentage_of_an_estimate_never_reaches_100():
    assert "99% of ~1,000" in line(rows=999, estimated_rows=1000)


def test_rows_past_the_estimate_say_so_without_a_percentage_or_time_left():
    text = line(rows=1500, estimated_rows=1000)
    assert text.endswith("past the estimate of ~1,000")
    assert "%" not in text and "ETA" not in text


def test_no_time_left_before_the_first_row():
    text = line(rows=0, estimated_rows=1000)
    assert text.endswith("0% of ~1,000") and "ETA" not in text


def test_a_chunk_plan_gives_chunks_done_of_planned_and_the_time_left():
    chunks = {"total": 12, "completed": 3, "skipped_completed": 0, "failed": 0}
    text = line(elapsed=30.0, chunks=chunks, estimated_rows=10**9, detail="chunk 4 [0..1)")
    assert "chunks 3/12 25%  ETA 1m30s  chunk 4 [0..1)" in text
    assert "of ~" not in text  # the chunk plan wins over a row estimate


def test_a_resumed_run_extrapolates_from_the_chunks_it_did_itself():
    resumed = {"total": 10, "completed": 4, "skipped_completed": 4}
    assert line(chunks=resumed).endswith("chunks 4/10 40%")
    resumed["completed"] = 6
    assert line(elapsed=20.0, chunks=resumed).endswith("chunks 6/10 60%  ETA 40s")


def test_an_empty_chunk_plan_falls_back_to_the_estimate():
    assert line(chunks={"total": 0, "completed": 0}, estimated_rows=4000).endswith(
        "25% of ~4,000  ETA 30s")


def test_durations_read_as_seconds_minutes_or_hours():
    assert [duration(s) for s in (0, 45.4, 185, 3599, 3720, 90_000)] == [
        "0s", "45s", "3m05s", "59m59s", "1h02m", "25h00m"]


def test_progress_draws_the_chunk_summary_it_is_given_and_clears_its_line():
    stream = io.StringIO()
    summary = {"total": 4, "completed": 1, "skipped_completed": 0}
    progress = Progress("orders", stream, enabled=True, chunks=lambda: summary)
    progress.update(10, 100)
    assert "chunks 1/4 25%" in stream.getvalue()
    progress.finish()
    assert stream.getvalue().endswith("\r\x1b[2K")


def test_a_disabled_progress_writes_nothing_even_with_an_estimate():
    stream = io.StringIO()
    progress = Progress("orders", stream, enabled=False)
    progress.estimated_rows = 100
    progress.update(10, 100)
    progress.finish()
    assert stream.getvalue() == ""
