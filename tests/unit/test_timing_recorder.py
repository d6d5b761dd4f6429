"""The ``--timings`` recorder (rivet_core.runner.timings): phases nest exclusively, each
thread records into what is attached to it, and with nothing attached nothing happens."""

from __future__ import annotations

import threading
import time

import pytest

from rivet_core.runner import timings
from rivet_core.runner.timings import Recorder, Timings, attach, phase, render


def test_a_nested_phase_is_not_counted_in_the_one_around_it():
    recorder = Recorder("e")
    with attach(recorder), phase("read"):
        time.sleep(0.02)
        with phase("connect"):
            time.sleep(0.03)
    assert 0.03 <= recorder.seconds["connect"] < 0.1
    assert 0.02 <= recorder.seconds["read"] < 0.03 + 0.05
    assert recorder.counts == {"read": 1, "connect": 1}


def test_without_a_recorder_a_phase_does_nothing():
    assert timings.current() is None
    assert phase("read") is phase("encode")  # one shared do-nothing context
    with phase("read"):
        pass


def test_each_thread_records_into_its_own_recorder():
    first, second = Recorder("a"), Recorder("b")
    ready = threading.Barrier(2)

    def work(recorder: Recorder, name: str) -> None:
        with attach(recorder):
            ready.wait()
            with phase(name):
                time.sleep(0.01)

    threads = [threading.Thread(target=work, args=(first, "read")),
               threading.Thread(target=work, args=(second, "encode"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(first.seconds) == {"read"} and set(second.seconds) == {"encode"}


def test_attach_gives_the_thread_back_what_it_had():
    outer, inner = Recorder(), Recorder("e")
    with attach(outer):
        with phase("config"), attach(inner), phase("read"):
            pass
        assert timings.current() is outer
    assert timings.current() is None
    assert set(outer.seconds) == {"config"} and set(inner.seconds) == {"read"}


def test_an_export_is_timed_whole_and_other_is_its_unphased_rest():
    recorder = Timings()
    with recorder.export("e"):
        with phase("read"):
            time.sleep(0.01)
        time.sleep(0.02)
    (export,) = recorder.as_dict()["exports"]
    assert export["export"] == "e"
    assert export["phases"]["read"] >= 10
    assert export["phases"]["other"] >= 20
    assert sum(export["phases"].values()) == pytest.approx(export["wall_ms"], abs=0.5)


def test_render_shows_the_invocation_line_and_one_row_per_export_and_the_median():
    document = {
        "startup_ms": 310.0, "config_ms": 42.0, "plan_ms": 0.4, "state_ms": 3.0,
        "exports_ms": 1200.0, "report_ms": 9.0, "total_ms": 1565.0,
        "exports": [
            {"export": "orders", "wall_ms": 700.0,
             "phases": {p: 1.0 for p in (*timings.EXPORT_PHASES, "other")}},
            {"export": "customers", "wall_ms": 500.0,
             "phases": {p: 20.0 for p in (*timings.EXPORT_PHASES, "other")}},
        ],
        "per_export_median": {"wall_ms": 600.0,
                              "phases": {p: 10.5 for p in (*timings.EXPORT_PHASES, "other")}},
    }
    lines = render(document)
    assert lines[0] == ("timings: startup 310 ms · config 42 ms · plan 0.4 ms · state 3.0 ms · "
                        "exports 1,200 ms · report 9.0 ms · total 1,565 ms")
    assert lines[1].split() == ["export", "wall", *timings.EXPORT_PHASES, "other", "(ms)"]
    assert lines[2].split() == ["orders", "700", *["1.0"] * 9]
    assert lines[3].split() == ["customers", "500", *["20"] * 9]
    assert lines[4].split() == ["(median)", "600", *["10"] * 9]
