"""The timeline a person reads (``leanworker trace render``): faults stand out, lanes say what they are and come
grouped by key in order of first activity, short requests stay visible, labels fit (the full text on hover), the
time axis stays on screen, the page zooms and pans by itself, and the summary counts what happened (issues 12, 20).

The trace comes from a real traced pool: one worker slot, two keys (so one is cycled for the other), a request
that times out, one that crashes its worker, a command error, a cancelled stream and a ``pool.run``."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import leanworker as lw
from conftest import FAULTS, MATHLIB
from leanworker.testing import Fault, FaultPlan
from leanworker.actors.core.trace_ring import TraceEvent
from leanworker._timeline_layout import MIN_BAR, SHORT_BAR, VIEW_WIDTH
from leanworker.timeline import MARKS, render_timeline
from leanworker.timeline_model import NO_KEY, MARK_KINDS, Lane, build_model, group_lanes, short_key

LEFT, RIGHT = lw.SessionKey(FAULTS, imports=("Left",)), lw.SessionKey(FAULTS, imports=("Right",))
WORKER = lw.WorkerConfig(startup_timeout=10.0, request_timeout=20.0, cancel_grace=0.5, shutdown_timeout=2.0,
                         kill_wait=3.0)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def events() -> Iterator[list[TraceEvent]]:
    tracer = lw.Tracer()
    plan = FaultPlan([Fault("hang", nth=2, key=LEFT), Fault("crash", nth=1, key=RIGHT, after_rows=2, how="signal"),
                      Fault("hang", nth=3, key=RIGHT, after_rows=1)])
    left, right = plan.wrap(LEFT), plan.wrap(RIGHT)
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=WORKER, trace=tracer)) as pool:
        with pool.lease(left) as lease:
            lease.call("echo", 1)
            with pytest.raises(lw.RequestTimeout):
                lease.call("echo", 2, timeout=0.5)
        with pool.lease(right) as lease:  # the only slot holds Left: it is cycled for Right
            with pytest.raises(lw.WorkerCrashed):
                lease.stream("slow_rows", {"count": 5, "delay_ms": 1}).collect()
        with pool.lease(right, timeout=20) as lease:
            with pytest.raises(lw.CommandError):
                lease.call("raise")
            with lease.stream("slow_rows", {"count": 5, "delay_ms": 1}) as stream:
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
        assert page.count(f"class='tx fault fault-{outcome}'") == 1, outcome
    assert "fault-ok'" not in page


def test_short_requests_keep_a_visible_width_and_get_a_tick_across_their_lane(events: list[TraceEvent]) -> None:
    page = render_timeline(events)
    bars = re.findall(r"<rect class='tx request' data-t='([0-9.]+)' data-t1='([0-9.]+)' data-min='4' "
                      r"x='[0-9.]+' y='[0-9.]+' width='([0-9.]+)'", page)
    model = build_model(events)
    assert len(bars) == len(model.bars) >= 7
    assert min(float(width) for _, _, width in bars) >= MIN_BAR
    plot = VIEW_WIDTH - 260 - 70
    short = [b for b in bars if (float(b[1]) - float(b[0])) / model.span * plot < SHORT_BAR]
    assert short and page.count("class='tx short'") == len(short), "each short request has its tick"


def test_lanes_are_grouped_by_key_and_ordered_by_first_activity(events: list[TraceEvent]) -> None:
    model = build_model(events)
    names = [group.name for group in model.groups]
    assert "pool" not in names[1:], "the pool's lanes come first, when it has any"
    keys = [name for name in names if name != "pool"]
    assert {short_key(k) for k in keys} == {"faults · Left", "faults · Right", "mathlib_scale · Mathlib"}, keys
    firsts = [group.first for group in model.groups if group.name != "pool"]
    assert firsts == sorted(firsts), "groups in order of first activity"
    for group in model.groups:
        assert [lane.first for lane in group.lanes] == sorted(lane.first for lane in group.lanes)
        assert all(lane.key == group.name for lane in group.lanes if group.name != "pool")
    assert [lane.name for lane in model.lanes] == [lane.name for g in model.groups for lane in g.lanes]
    page = render_timeline(events)
    headings = re.findall(r"class='group-name'>([^<]+)<", page)
    assert [h.split(" (")[0] for h in headings if h.startswith("key ")] == [f"key {short_key(k)}" for k in keys]
    assert "class='tx mark mark-cycle_for_key'" in page and "cycled for faults · Right" in page
    assert "class='stage stage-1'" in page, "the run is drawn as a band"
    assert any(lane.stage and lane.stage.startswith("run ") for lane in model.lanes), "the pool.run's lanes"


def test_a_lane_with_nothing_to_draw_is_not_shown_and_marks_are_the_drawn_kinds() -> None:
    tracer = lw.Tracer()
    tracer.record("queued", "pool", key="k")  # the pool recorded something, but nothing that is drawn
    tracer.record("spawn", "worker1", 1, pid=1)
    tracer.record("ready", "worker1", 1)
    model = build_model(tracer.events())
    assert model.lane("pool") is None and [lane.name for lane in model.lanes] == ["worker1 g1"]
    assert "pool: admission" not in render_timeline(tracer.events())
    assert set(MARKS) | {"rows"} == MARK_KINDS


def test_long_labels_are_elided_and_keep_their_full_text_on_hover() -> None:
    stage = "a_stage_with_a_name_far_too_long_for_its_band_" * 3
    # explicit times (a 1 s stage in a 10 s trace): recorded ones would make the band's width the scheduler's choice
    events = [TraceEvent(0.0, "stage_start", "probe", fields={"name": stage}), TraceEvent(0.5, "spawn", "slot1", 1,
              fields={"pid": 1}), TraceEvent(1.0, "stage_end", "probe", fields={"name": stage}),
              TraceEvent(1.0, "stage_start", "probe", fields={"name": "next"}),
              *(TraceEvent(1.1 + i * 0.17, "ready", "slot1", 1) for i in range(50)),
              TraceEvent(10.0, "stage_end", "probe", fields={"name": "next"})]
    page = render_timeline(events)
    label = re.search(rf"data-full='{stage}'[^>]*>([^<]*)</text>", page)
    assert label is not None and "…" in label.group(1) and len(label.group(1)) < len(stage)
    assert f"<title>{stage}: " in page, "the full name on hover"


def test_tooltips_name_the_lane_request_key_command_and_outcome(events: list[TraceEvent]) -> None:
    page = render_timeline(events)
    tips = re.findall(r"<rect class='tx request'[^>]*><title>([^<]+)</title>", page)
    assert len(tips) == len(build_model(events).bars) and len(set(tips)) == len(tips), "no two tooltips alike"
    pattern = re.compile(r"^slot\d+ g\d+, request \d+: command \S+, outcome \w+; key leanworker\.fixtures\.\w+:"
                         r"capability, (imports \S+|no imports); [0-9.]+ ms from [0-9.]+ (ms|s)$")
    assert all(pattern.match(tip) for tip in tips), [t for t in tips if not pattern.match(t)]
    assert any("command echo, outcome timeout; key leanworker.fixtures.faults:capability, imports Left" in tip
               for tip in tips)


def test_the_page_has_a_sticky_axis_and_zooms_with_its_own_script_and_fetches_nothing(
        events: list[TraceEvent]) -> None:
    page = render_timeline(events)
    assert "position: sticky" in page and page.index("<div class=\"sticky\">") < page.index("<svg id='head'")
    assert page.index("<g id='axis'>") < page.index("<svg id='body'"), "the axis is in the sticky header"
    assert page.count("<script>") == 1 and "function zoom(" in page and "'wheel'" in page and "mousemove" in page
    outside = re.findall(r"https?://[^'\" ]+", page)
    assert set(outside) == {"http://www.w3.org/2000/svg"}, outside  # a namespace name, never fetched
    assert not any(word in page for word in ("src=", "fetch(", "XMLHttpRequest", "import(", "<link"))


def test_the_svg_takes_the_page_width_and_its_axis_labels_fit(events: list[TraceEvent]) -> None:
    page = render_timeline(events)
    for svg in ("head", "body"):
        found = re.search(rf"<svg id='{svg}' xmlns='http://www.w3.org/2000/svg' width='100%' viewBox='0 0 (\d+) ",
                          page)
        assert found is not None and int(found.group(1)) == VIEW_WIDTH
    labels = re.findall(r"<text x='([0-9.]+)' y='54' class='axis'>([^<]+)</text>", page)
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
    assert "data-full='first'" in render_timeline(tracer.events())


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_in_a_browser_the_script_redraws_the_axis_for_the_zoomed_view(events: list[TraceEvent]) -> None:
    model = build_model(events)
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "timeline.html"
        page.write_text(render_timeline(events), encoding="utf-8")
        start, end = model.span * 0.25, model.span * 0.35
        done = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={folder}/profile", "--dump-dom",
                               f"file://{page}#view={start},{end}"], capture_output=True, text=True, timeout=60)
    dom = done.stdout
    assert "(zoomed)" in dom, done.stderr[-2000:]
    shown = re.search(r'<b id="shown">([^<]+)</b>', dom)
    assert shown is not None and shown.group(1).endswith("(zoomed)")
    labels = re.findall(r'class="axis"[^>]*>([^<]+)<', dom)
    seconds = [float(text.split()[0]) / (1000 if text.endswith(" ms") else 1) for text in labels]
    assert len(seconds) >= 2 and all(start - 1e-9 <= t <= end + 1e-9 for t in seconds), (labels, start, end)



def test_a_single_workers_lanes_come_after_the_pool_and_every_key_whatever_ran_first() -> None:
    # the probe runs single lw.Worker stages first: their lanes must not push the pool's below the fold
    groups = group_lanes([Lane("worker1", first=0.0), Lane("worker2", first=0.5), Lane("slot1 g1", 2.0, key="b|B"),
                          Lane("slot0 g1", 1.0, key="a|A"), Lane("pool", first=3.0)])
    assert [group.name for group in groups] == ["pool", "a|A", "b|B", NO_KEY]
    assert [lane.name for lane in groups[-1].lanes] == ["worker1", "worker2"]
