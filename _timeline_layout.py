"""Where the timeline puts things and what it says of them (pure; timeline.py draws it, tests/test_timeline_layout.py
checks each rule).

The page is a viewBox ``VIEW_WIDTH`` units wide: a label column, then the plot. Lanes stack under their group's
heading in the order the model gives; time maps linearly onto the plot; axis ticks fall on round times (1, 2 or 5
times a power of ten), about ten across, labelled in seconds from 1 s on and in milliseconds below; a request is
never drawn narrower than ``MIN_BAR`` and one narrower than ``SHORT_BAR`` is also ticked across its lane; a mark's
reason runs leftwards near the right edge so it is never cut; labels are cut in the middle to what fits.
"""

from __future__ import annotations

import math

from leanworker.actors.core.trace_ring import TraceEvent
from leanworker.timeline_model import NO_KEY, Bar, Group, Lane, Model, short_key

VIEW_WIDTH = 1600  # viewBox units; both SVGs take the page width, so a unit is the same size in each
LEFT = 260  # the label column
RIGHT = 70
PLOT = VIEW_WIDTH - LEFT - RIGHT
LANE_HEIGHT = 44
GROUP_HEIGHT = 22  # a group's heading row
HEAD_HEIGHT = 62  # the sticky header: stage band, run band, axis labels
MIN_BAR = 4.0  # the narrowest a request is drawn, in viewBox units
SHORT_BAR = 2 * MIN_BAR  # a request drawn narrower than this also gets a tick across its lane
LANE_NAME_CHARS = 30  # what fits the label column: 13-unit bold monospace, 11-unit monospace below
LANE_DETAIL_CHARS = 36
STAGE_CHAR = 6.5  # the width of a character of a stage label (11-unit sans-serif), for eliding to a band
REASON_ROOM = 220  # a mark's reason closer than this to the plot's right edge runs leftwards
ELLIPSIS = "…"


class Scale:
    """Time to viewBox x, for the whole trace (the page's script does the same for the zoomed view)."""

    def __init__(self, span: float) -> None:
        self.span = span

    def __call__(self, t: float) -> float:
        return LEFT + (t / self.span) * PLOT


def elide(text: str, chars: int) -> str:
    """``text`` cut in the middle to ``chars`` characters (an ellipsis marks the cut)."""
    if len(text) <= chars:
        return text
    if chars <= 1:
        return ""
    head = (chars - 1) - (chars - 1) // 2
    tail = (chars - 1) // 2
    return text[:head] + ELLIPSIS + (text[len(text) - tail:] if tail else "")


def key_label(key: str | None) -> str:
    """A session key in words: ``capability, imports A, B`` (or ``no imports``)."""
    if not key:
        return "not in the trace"
    capability, _, imports = key.partition("|")
    return f"{capability}, {'imports ' + imports.replace(',', ', ') if imports else 'no imports'}"


def lane_tops(model: Model) -> tuple[dict[str, float], list[tuple[Group, float]], float]:
    """Each lane's top, each group's heading top, and the height of the lanes."""
    top = 4.0
    lanes: dict[str, float] = {}
    groups: list[tuple[Group, float]] = []
    for group in model.groups:
        groups.append((group, top))
        top += GROUP_HEIGHT
        for lane in group.lanes:
            lanes[lane.name] = top
            top += LANE_HEIGHT
    return lanes, groups, top + 6


def group_heading(group: Group) -> tuple[str, str]:
    """A group's heading and its full text."""
    count = f"{len(group.lanes)} lane{'s' if len(group.lanes) != 1 else ''}"
    if group.name == "pool":
        return "pool: admission, leases, cycles and evictions", "the pool's own events"
    if group.name == NO_KEY:
        return f"workers whose key is not in the trace ({count})", "single lw.Worker lanes: the pool records keys"
    return f"key {short_key(group.name)} ({count})", f"key: {key_label(group.name)}"


def tick_times(start: float, end: float) -> list[float]:
    """Round tick times (1, 2 or 5 times a power of ten) covering ``[start, end]``, about ten of them."""
    raw = (end - start) / 10
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(start / step - 1e-9)
    return [i * step for i in range(first, int(end / step + 1e-9) + 1)]


def axis_label(t: float, step: float, end: float) -> str:
    """A tick's label: seconds when the view reaches 1 s, else milliseconds, with the decimals its step needs."""
    if end >= 1:
        return f"{t:.{min(6, max(1, math.ceil(-math.log10(step) - 1e-9)))}f} s"
    return f"{t * 1000:.{min(6, max(0, math.ceil(-math.log10(step * 1000) - 1e-9)))}f} ms"


def time_label(t: float, span: float) -> str:
    """A time in a trace ``span`` seconds long: in seconds from 1 s on, else in milliseconds."""
    if span >= 10:
        return f"{t:.1f} s"
    if span >= 1:
        return f"{t:.2f} s"
    return f"{t * 1000:.1f} ms" if span >= 0.01 else f"{t * 1000:.3f} ms"


def bar_end(bar: Bar, span: float) -> float:
    """Where a request's bar ends: at its end, or at the end of the trace for one that never ended."""
    return bar.end if bar.end is not None else span


def bar_width(left: float, right: float) -> tuple[float, bool]:
    """The width a request from ``left`` to ``right`` is drawn, and whether it also gets a tick across its lane."""
    return max(right - left, MIN_BAR), right - left < SHORT_BAR


def bar_tip(bar: Bar, lane: Lane | None, span: float) -> str:
    """A request's tooltip: its lane, id, command, outcome, key, length and start."""
    end = bar_end(bar, span)
    return (f"{bar.lane}, request {bar.request_id}: command {bar.command}, outcome {bar.outcome or 'unfinished'}; "
            f"key {key_label(lane.key if lane else None)}; {(end - bar.start) * 1000:.3f} ms from "
            f"{time_label(bar.start, span)}")


def lane_tip(lane: Lane) -> str:
    return f"{lane.name}: key {key_label(lane.key)}; started in stage {lane.stage or '-'}"


def rows_tip(event: TraceEvent) -> str:
    return (f"rows: {event.fields.get('count')} on stream {event.fields.get('stream')} "
            f"({event.actor}, request {event.request_id})")


def mark_tip(label: str, event: TraceEvent, t: float, span: float) -> str:
    detail = ", ".join(f"{k} {v}" for k, v in event.fields.items())
    return f"{label} at {time_label(t, span)} ({event.actor}{'; ' + detail if detail else ''})"


def mark_reason(event: TraceEvent) -> str | None:
    """Why a slot stopped, written beside its mark (cycled for another key, evicted for memory); None for the rest."""
    if event.kind == "cycle_for_key":
        return f"cycled for {short_key(str(event.fields.get('key', '')))}"
    if event.kind == "evict_for_memory":
        return "evicted for memory"
    return None


def reason_anchor(x: float) -> tuple[str, int]:
    """The text anchor and offset of a mark's reason at ``x``: leftwards near the right edge, so it is never cut (the
    page's script keeps it so when zoomed)."""
    return ("end", -8) if x > VIEW_WIDTH - RIGHT - REASON_ROOM else ("start", 8)
