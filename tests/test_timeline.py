"""The timeline a person reads (``leanworker trace render``): faults stand out, lanes say what they are, cycles for
another key are drawn, the page uses its width, and the summary counts what happened (issue 12, item 6).

The trace comes from a real traced pool: one worker slot, two keys (so one is cycled for the other), a request
that times out, one that crashes its worker, a command error, a cancelled stream and a ``pool.run``."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import leanworker as lw
from conftest import FAULTS, MATHLIB
from leanworker.actors.core.tracing import TraceEvent
from leanworker.timeline import MIN_BAR, VIEW_WIDTH, render_timeline
from leanworker.timeline_model import build_model, short_key

WORKER = lw.WorkerConfig(startup_timeout=10.0, request_timeout=20.0, cancel_grace=0.5, shutdown_timeout=2.0,
                         kill_wait=3.0)


@pytest.fixture(scope="module")
def events() -> Iterator[list[TraceEvent]]:
    tracer = lw.Tracer()
    left, right = lw.SessionKey(FAULTS, imports=("Left",)), lw.SessionKey(FAULTS, imports=("Right",))
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=WORKER, trace=tracer)) as pool:
        with pool.lease(left) as lease:
            lease.call("echo", 1)
            with pytest.raises(lw.RequestTimeout):
                lease.call("hang", None, timeout=0.5)
        with pool.lease(right) as lease:  # the only slot holds Left: it is cycled for Right
            with pytest.raises(lw.WorkerCrashed):
                lease.stream("crash", {"after_rows": 2, "how": "signal"}).collect()
        with pool.lease(right, timeout=20) as lease:
            with pytest.raises(lw.CommandError):
                lease.call("crash", {"how": "nonsense"})
            with lease.stream("hang", {"after_rows": 1}) as stream:
                next(iter(stream))
                stream.cancel()
                assert list(stream) == []
        planner = lw.ImportPlanner(MATHLIB, ("Mathlib",), max_batch_modules=2)
        pool.run(planner.plan([lw.WorkItem(f"Mathlib.T{i}") for i in range(4)]), "index").wait()
    yield tracer.events()


def test_the_summary_counts_requests_by_outcome_restarts_by_reason_and_cycles(events: list[TraceEvent]) -> None:
    model = build_model(events)
    assert {o: model.outcomes[o] for o in ("timeout", "crashed", "error", "cancelled")} == {
        "timeout": 1, "crashed": 1, "error": 1, "cancelled": 1}
    assert model.outcomes["ok"] >= 3
    assert model.stops["cycled for another key"] >= 1
    assert any(reason.startswith("crashed (signal 9)") for reason in model.restarts), model.restarts
    assert sum(model.restarts.values()) >= 2  # the timeout's kill and the crash
    page = render_timeline(events)
    strip = page[page.index("<div class=\"summary\""):page.index("</div>")]
    assert "timeout 1" in strip and "crashed 1" in strip and "cancelled 1" in strip and "error 1" in strip
    assert "restarts by reason:" in strip and "crashed (signal 9)" in strip and "cycled for another key" in strip


def test_every_failed_or_cancelled_request_has_a_marker_above_its_lane(events: list[TraceEvent]) -> None:
    page = render_timeline(events)
    for outcome in ("timeout", "crashed", "error", "cancelled"):
        assert page.count(f"class='fault fault-{outcome}'") == 1, outcome
    assert "class='fault fault-ok'" not in page


def test_short_requests_keep_a_visible_width(events: list[TraceEvent]) -> None:
    page = render_timeline(events)
    widths = [float(w) for w in re.findall(r"<rect class='request' [^>]*width='([0-9.]+)'", page)]
    assert len(widths) == len(build_model(events).bars) >= 7
    assert min(widths) >= MIN_BAR


def test_lanes_are_labelled_with_their_key_and_stage_and_cycles_are_drawn(events: list[TraceEvent]) -> None:
    model = build_model(events)
    labelled = {short_key(lane.key) for lane in model.lanes if lane.key}
    assert {"faults · Left", "faults · Right", "mathlib_scale · Mathlib"} <= labelled, labelled
    assert any(lane.stage and lane.stage.startswith("run ") for lane in model.lanes), "the pool.run's lanes"
    page = render_timeline(events)
    assert "faults · Left" in page and "faults · Right" in page
    assert "class='mark mark-cycle_for_key'" in page and "cycled for faults · Right" in page
    assert "class='stage stage-1'" in page, "the run is drawn as a band"


def test_the_svg_takes_the_page_width_and_its_axis_labels_fit(events: list[TraceEvent]) -> None:
    page = render_timeline(events)
    svg = re.search(r"<svg xmlns='http://www.w3.org/2000/svg' width='100%' viewBox='0 0 (\d+) (\d+)'", page)
    assert svg is not None and int(svg.group(1)) == VIEW_WIDTH
    labels = re.findall(r"<text x='([0-9.]+)' y='[0-9.]+' class='axis'>([^<]+)</text>", page)
    assert len(labels) >= 5
    for x, text in labels:  # centred labels: half of ~7 units a character either side
        assert 0 <= float(x) - len(text) * 3.5 and float(x) + len(text) * 3.5 <= VIEW_WIDTH, (x, text)


def test_a_probe_like_trace_gets_a_band_per_stage() -> None:
    tracer = lw.Tracer()
    for name in ("first", "second"):
        tracer.record("stage_start", "probe", name=name)
        tracer.record("spawn", "worker1", 1, pid=1)
        tracer.record("stage_end", "probe", name=name)
    model = build_model(tracer.events())
    assert [(s.name, s.level) for s in model.stages] == [("first", 0), ("second", 0)]
    assert "class='stage-name'>first<" in render_timeline(tracer.events())
