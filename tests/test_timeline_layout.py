"""Where the timeline puts things and what it says of them, as pure rules (no trace is recorded, no page drawn):
labels cut in the middle, round ticks and their units, lanes stacked under their headings, requests that stay
visible, reasons that are never cut. tests/test_timeline.py renders real traced pools."""

from __future__ import annotations

import math

from leanworker import _timeline_layout as layout
from leanworker.actors.core.trace_ring import TraceEvent
from leanworker.timeline_model import NO_KEY, Bar, Group, Lane, Model

KEY = "leanworker.fixtures.mathlib_scale:capability|Mathlib,Foo"


def test_a_long_label_is_cut_in_the_middle_to_its_width_keeping_its_head_and_tail() -> None:
    text = "slot12 g3: a label far longer than its column"
    for width in range(2, len(text)):
        cut = layout.elide(text, width)
        assert len(cut) == width and cut.count(layout.ELLIPSIS) == 1, width
        head, tail = cut.split(layout.ELLIPSIS)
        assert text.startswith(head) and text.endswith(tail) and len(head) - len(tail) in (0, 1)
    assert layout.elide(text, len(text)) == text and layout.elide(text, 1) == "" and layout.elide("", 0) == ""


def test_time_maps_linearly_onto_the_plot_from_the_label_column_to_the_right_margin() -> None:
    x = layout.Scale(2.0)
    assert (x(0.0), x(1.0), x(2.0)) == (layout.LEFT, layout.LEFT + layout.PLOT / 2, layout.VIEW_WIDTH - layout.RIGHT)


def test_ticks_fall_on_one_two_or_five_times_a_power_of_ten_about_ten_across() -> None:
    for span in (3e-5, 0.0042, 0.05, 0.7, 1.0, 3.3, 17.0, 250.0):
        ticks = layout.tick_times(0, span)
        step = ticks[1] - ticks[0]
        mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
        assert any(math.isclose(mantissa, m) for m in (1, 2, 5, 10)), (span, step)
        assert 5 <= len(ticks) <= 11 and ticks[0] == 0 and ticks[-1] <= span + 1e-12 < ticks[-1] + step, span


def test_axis_labels_are_seconds_from_one_second_on_else_milliseconds_with_the_decimals_their_step_needs() -> None:
    assert layout.axis_label(2.5, 0.5, 4.0) == "2.5 s"
    assert layout.axis_label(1.0, 0.1, 1.0) == "1.0 s", "a view reaching 1 s is in seconds"
    assert layout.axis_label(0.25, 0.05, 0.5) == "250 ms"
    assert layout.axis_label(0.0015, 0.0005, 0.004) == "1.5 ms"
    spans = ((12.34, 40), (1.234, 3), (0.0123, 0.5), (0.00012, 0.001))
    assert tuple(layout.time_label(t, span) for t, span in spans) == (
        "12.3 s", "1.23 s", "12.3 ms", "0.120 ms")


def test_lanes_stack_under_their_group_heading_in_the_order_the_model_gives() -> None:
    pool, a, b = Lane("pool", 0.0), Lane("slot1 g1", 0.1, KEY), Lane("slot2 g1", 0.2, KEY)
    groups = [Group("pool", [pool]), Group(KEY, [a, b])]
    model = Model(0.0, 1.0, [pool, a, b], [], [], [], groups=groups)
    lanes, headings, height = layout.lane_tops(model)
    assert [top for _, top in headings] == [4.0, 4.0 + layout.GROUP_HEIGHT + layout.LANE_HEIGHT]
    assert lanes == {"pool": 4.0 + layout.GROUP_HEIGHT, "slot1 g1": 4.0 + 2 * layout.GROUP_HEIGHT + layout.LANE_HEIGHT,
                     "slot2 g1": 4.0 + 2 * layout.GROUP_HEIGHT + 2 * layout.LANE_HEIGHT}
    assert height == lanes["slot2 g1"] + layout.LANE_HEIGHT + 6


def test_a_group_heading_names_the_pool_its_key_or_the_lanes_whose_key_the_trace_lacks() -> None:
    assert layout.group_heading(Group("pool", [Lane("pool", 0.0)]))[0].startswith("pool: ")
    heading, full = layout.group_heading(Group(KEY, [Lane("slot1 g1", 0.0, KEY)]))
    assert heading == "key mathlib_scale · Mathlib,Foo (1 lane)"
    assert full == "key: leanworker.fixtures.mathlib_scale:capability, imports Mathlib, Foo"
    assert layout.group_heading(Group(NO_KEY, [Lane("worker1", 0.0), Lane("worker2", 0.0)]))[0] == (
        "workers whose key is not in the trace (2 lanes)")
    assert layout.key_label("m:capability|") == "m:capability, no imports"
    assert layout.key_label(None) == "not in the trace"


def test_a_short_request_keeps_a_visible_width_and_gets_a_tick_across_its_lane() -> None:
    assert layout.bar_width(100.0, 100.0) == (layout.MIN_BAR, True)
    assert layout.bar_width(100.0, 100.0 + layout.SHORT_BAR - 0.5) == (layout.SHORT_BAR - 0.5, True)
    assert layout.bar_width(100.0, 100.0 + layout.SHORT_BAR) == (layout.SHORT_BAR, False)


def test_a_request_that_never_ended_reaches_the_end_of_the_trace_and_says_so() -> None:
    bar = Bar("slot1 g1", 0.25, None, "index", 7, None)
    assert layout.bar_end(bar, 2.0) == 2.0
    tip = layout.bar_tip(bar, Lane("slot1 g1", 0.0, KEY), 2.0)
    assert tip.startswith("slot1 g1, request 7: command index, outcome unfinished; key leanworker.fixtures")
    assert tip.endswith("1750.000 ms from 0.25 s")


def test_a_slot_stopped_for_another_key_or_for_memory_says_why_and_nothing_else_does() -> None:
    cycled = TraceEvent(1.0, "cycle_for_key", "pool", fields={"key": KEY})
    assert layout.mark_reason(cycled) == "cycled for mathlib_scale · Mathlib,Foo"
    assert layout.mark_reason(TraceEvent(1.0, "evict_for_memory", "pool")) == "evicted for memory"
    assert layout.mark_reason(TraceEvent(1.0, "kill", "slot1", 1)) is None


def test_a_reason_near_the_right_edge_runs_leftwards_so_it_is_never_cut() -> None:
    assert layout.reason_anchor(layout.LEFT) == ("start", 8)
    assert layout.reason_anchor(layout.VIEW_WIDTH - layout.RIGHT) == ("end", -8)
