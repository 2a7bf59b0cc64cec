"""Render a trace as a self-contained HTML/SVG timeline: ``leanworker trace render TRACE -o timeline.html``.

A summary strip (requests by outcome, restarts by reason, slots stopped for another key or for memory) and a
legend, then the SVG at the page's full width: stages (or runs) as a band on top; one lane per worker slot and
generation, labelled with its session key and stage; requests as bars (never thinner than a few pixels) coloured by
outcome, with a marker above the lane where a request failed, timed out, crashed or was cancelled; rows as ticks;
lifecycle, eviction and cycling events as marks. Hover anything for details. No scripts, no network.
docs/tracing.md explains how to read it.
"""

from __future__ import annotations

import html
import math

from leanworker.actors.core.tracing import TraceEvent
from leanworker.timeline_model import FAULTS, Model, build_model, short_key

OUTCOME_COLOURS = {"ok": "#2e7d32", "error": "#ef6c00", "cancelled": "#757575", "timeout": "#c62828",
                   "crashed": "#6d1b1b", "memory": "#6a1b9a", "protocol": "#795548", "shutdown": "#1565c0",
                   None: "#bdbdbd"}
# kind -> (shape, colour, label)
MARKS = {
    "spawn": ("circle-open", "#455a64", "spawn: process started"),
    "ready": ("circle", "#2e7d32", "ready: hello, configure and session open done"),
    "kill": ("cross", "#c62828", "kill: the process group was signalled"),
    "reap": ("square", "#212121", "reap: the process was reaped"),
    "generation_end": ("triangle", "#ef6c00", "generation end (restart or cycle begins)"),
    "exhausted": ("triangle", "#6d1b1b", "restart intensity exhausted"),
    "lease_granted": ("diamond", "#1565c0", "lease granted"),
    "lease_released": ("diamond-open", "#1565c0", "lease released"),
    "cancel": ("bar", "#616161", "cancel sent"),
    "memory_hard": ("bar", "#6a1b9a", "hard memory ceiling passed"),
    "memory_soft": ("bar", "#ab47bc", "soft memory ceiling passed"),
    "protocol_error": ("cross", "#795548", "protocol error"),
    "cooldown": ("triangle", "#6d1b1b", "key cooling down"),
    "cycle_for_key": ("swap", "#00838f", "cycled: stopped to make room for another key"),
    "evict_for_memory": ("swap", "#6a1b9a", "evicted: stopped to stay within the memory budget"),
    "slot_stop": ("square-open", "#455a64", "slot stopping"),
}
VIEW_WIDTH = 1600  # viewBox units; the SVG itself takes the page width
LEFT = 260
RIGHT = 70
TOP = 44  # below the stage band
LANE_HEIGHT = 44
MIN_BAR = 4.0  # the narrowest a request is drawn, in viewBox units


def render_timeline(events: list[TraceEvent], title: str = "leanworker trace") -> str:
    """The HTML page for ``events`` (oldest first)."""
    if not events:
        return f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><p>empty trace</p>"
    model = build_model(events)
    return _page(model, _svg(model), title, len(events))


def _svg(model: Model) -> str:
    plot = VIEW_WIDTH - LEFT - RIGHT
    row = {lane.name: i for i, lane in enumerate(model.lanes)}
    height = TOP + len(model.lanes) * LANE_HEIGHT + 34

    def x(t: float) -> float:
        return LEFT + (t / model.span) * plot

    def y(lane: str) -> float:
        return TOP + row.get(lane, 0) * LANE_HEIGHT

    parts: list[str] = []
    for lane in model.lanes:
        top = y(lane.name)
        parts.append(f"<rect x='0' y='{top}' width='{VIEW_WIDTH}' height='{LANE_HEIGHT}' "
                     f"fill='{'#f5f5f5' if row[lane.name] % 2 else '#ffffff'}'/>")
        detail = " · ".join(p for p in (short_key(lane.key), lane.stage) if p)
        tip = f"{lane.name}: key {lane.key or '-'}; stage {lane.stage or '-'}"
        parts.append(f"<g class='lane-label'><title>{html.escape(tip)}</title>"
                     f"<svg x='0' y='{top}' width='{LEFT - 8}' height='{LANE_HEIGHT}'>"
                     f"<text x='8' y='18' class='lane'>{html.escape(lane.name)}</text>"
                     f"<text x='8' y='34' class='lane-detail'>{html.escape(detail)}</text></svg></g>")
    for index, stage in enumerate(model.stages):
        left, right = x(stage.start), max(x(stage.end), x(stage.start) + 2)
        band_y, band_h = (6, 18) if stage.level == 0 else (24, 14)
        fill = ("#e3f2fd" if index % 2 else "#ede7f6") if stage.level == 0 else "#fff8e1"
        parts.append(f"<g class='stage stage-{stage.level}'><title>{html.escape(stage.name)}: "
                     f"{_fmt(stage.start, model.span)} to {_fmt(stage.end, model.span)}</title>"
                     f"<rect x='{left:.1f}' y='{band_y}' width='{right - left:.1f}' height='{band_h}' fill='{fill}' "
                     f"stroke='#90a4ae'/><svg x='{left:.1f}' y='{band_y}' width='{right - left:.1f}' "
                     f"height='{band_h}'><text x='4' y='{band_h - 4}' class='stage-name'>{html.escape(stage.name)}"
                     f"</text></svg></g>")
        if stage.level == 0:
            parts.append(f"<line x1='{left:.1f}' y1='{TOP}' x2='{left:.1f}' y2='{height - 30}' "
                         f"class='stage-edge'/>")
    for t in _ticks(model.span):
        parts.append(f"<line x1='{x(t):.1f}' y1='{TOP}' x2='{x(t):.1f}' y2='{height - 30}' class='grid'/>")
        parts.append(f"<text x='{x(t):.1f}' y='{height - 12}' class='axis'>{_fmt(t, model.span)}</text>")
    for bar in model.bars:
        end = bar.end if bar.end is not None else model.span
        colour = OUTCOME_COLOURS.get(bar.outcome, "#bdbdbd")
        tip = (f"request {bar.request_id}: {bar.command}, outcome {bar.outcome or 'unfinished'}, "
               f"{(end - bar.start) * 1000:.3f} ms, from {_fmt(bar.start, model.span)}")
        left = x(bar.start)
        width = max(x(end) - left, MIN_BAR)
        parts.append(f"<rect class='request' x='{left:.2f}' y='{y(bar.lane) + 16}' width='{width:.2f}' "
                     f"height='14' fill='{colour}' rx='2'><title>{html.escape(tip)}</title></rect>")
        if bar.outcome in FAULTS:  # a marker above the lane, the same size at any zoom and any request length
            cx, top = left + width, y(bar.lane)
            parts.append(f"<g class='fault fault-{bar.outcome}'><title>{html.escape(tip)}</title>"
                         f"<line x1='{cx:.2f}' y1='{top + 9}' x2='{cx:.2f}' y2='{top + 30}' stroke='{colour}' "
                         f"stroke-width='1.5'/><path d='M{cx - 6:.2f},{top + 1} L{cx + 6:.2f},{top + 1} "
                         f"L{cx:.2f},{top + 11} Z' fill='{colour}' stroke='white' stroke-width='0.8'/></g>")
    for lane_name, t, event in model.marks:
        if event.kind == "rows":
            tip = f"rows: {event.fields.get('count')} on {event.fields.get('stream')} (request {event.request_id})"
            parts.append(f"<line x1='{x(t):.2f}' y1='{y(lane_name) + 32}' x2='{x(t):.2f}' y2='{y(lane_name) + 38}' "
                         f"class='tick'><title>{html.escape(tip)}</title></line>")
        elif event.kind in MARKS:
            shape, colour, label = MARKS[event.kind]
            detail = ", ".join(f"{k}={v}" for k, v in event.fields.items())
            tip = f"{label} at {_fmt(t, model.span)} ({event.actor}{'; ' + detail if detail else ''})"
            parts.append(_mark(shape, x(t), y(lane_name) + 23, colour, tip, event.kind))
            why = {"cycle_for_key": f"cycled for {short_key(str(event.fields.get('key', '')))}",
                   "evict_for_memory": "evicted for memory"}.get(event.kind)
            if why is not None:  # near the right edge the text runs leftwards, so it is never cut
                near_end = x(t) > VIEW_WIDTH - RIGHT - 220
                anchor, at = ("end", x(t) - 8) if near_end else ("start", x(t) + 8)
                parts.append(f"<text x='{at:.2f}' y='{y(lane_name) + 12}' class='why' text-anchor='{anchor}'>"
                             f"{html.escape(why)}</text>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='100%' viewBox='0 0 {VIEW_WIDTH} {height}' "
            f"preserveAspectRatio='xMinYMin meet'>" + "".join(parts) + "</svg>")


def _page(model: Model, svg: str, title: str, event_count: int) -> str:
    outcomes = " ".join(
        f"<span class='chip' style='border-color:{OUTCOME_COLOURS.get(o, '#bdbdbd')}'>"
        f"<span class='key' style='background:{OUTCOME_COLOURS.get(o, '#bdbdbd')}'></span>{html.escape(o)} {n}</span>"
        for o, n in sorted(model.outcomes.items(), key=lambda item: (item[0] != "ok", item[0])))
    restarts = ", ".join(f"{html.escape(r)} {n}" for r, n in sorted(model.restarts.items())) or "none"
    stops = ", ".join(f"{html.escape(r)} {n}" for r, n in sorted(model.stops.items())) or "none"
    legend = " ".join(f"<span class='key' style='background:{c}'></span>{html.escape(str(o))}"
                      for o, c in OUTCOME_COLOURS.items() if o is not None)
    marks = " ".join(f"<span class='mk' style='color:{c}'>{_glyph(s)}</span>{html.escape(k)}"
                     for k, (s, c, _) in MARKS.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 12px; color: #212121; }}
h2 {{ margin: 0 0 6px 0; font-size: 16px; }}
.summary {{ display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center; padding: 6px 8px;
  background: #fafafa; border: 1px solid #e0e0e0; border-radius: 4px; margin-bottom: 6px; }}
.chip {{ border: 1px solid; border-radius: 10px; padding: 1px 8px 1px 2px; }}
.legend {{ color: #424242; margin: 4px 0; }}
.lane {{ font: bold 13px monospace; fill: #263238; }}
.lane-detail {{ font: 11px monospace; fill: #607d8b; }}
.stage-name {{ font: 11px system-ui, sans-serif; fill: #263238; }}
.stage-edge {{ stroke: #90a4ae; stroke-dasharray: 4 3; }}
.axis {{ font: 11px monospace; fill: #616161; text-anchor: middle; }}
.why {{ font: 10px system-ui, sans-serif; fill: #00695c; }}
.grid {{ stroke: #e0e0e0; }}
.tick {{ stroke: #00897b; stroke-width: 1; }}
.key {{ display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 6px; border-radius: 2px; }}
.mk {{ margin: 0 3px 0 10px; }}
</style></head><body>
<h2>{html.escape(title)}</h2>
<div class="summary" id="summary">
<span><b>{model.span * 1000:.1f} ms</b>, {event_count} events, {len(model.bars)} requests, {len(model.lanes)} lanes</span>
<span>requests by outcome: {outcomes or "none"}</span>
<span>restarts by reason: {restarts}</span>
<span>slots stopped: {stops}</span>
</div>
<div class="legend">Bars (requests) by outcome: {legend}. A triangle above a lane marks a request that ended in
error, timeout, crash, memory, protocol error or cancel.</div>
<div class="legend">Marks: {marks} <span class='mk' style='color:#00897b'>|</span>rows frame.
Lanes: one per worker slot and generation, labelled with its session key and stage. Hover for details.</div>
{svg}
</body></html>
"""


def _ticks(span: float) -> list[float]:
    """Round tick times (1, 2 or 5 times a power of ten) covering ``[0, span]``, about ten of them."""
    raw = span / 10
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(span / step + 1e-9) + 1)]


def _fmt(t: float, span: float) -> str:
    if span >= 10:
        return f"{t:.1f} s"
    if span >= 2:
        return f"{t:.2f} s"
    return f"{t * 1000:.1f} ms" if span >= 0.01 else f"{t * 1000:.3f} ms"


def _glyph(shape: str) -> str:
    return {"circle": "●", "circle-open": "○", "cross": "✕", "square": "■", "square-open": "□", "triangle": "▲",
            "diamond": "◆", "diamond-open": "◇", "bar": "┃", "swap": "⇄"}[shape]


def _mark(shape: str, cx: float, cy: float, colour: str, tip: str, kind: str) -> str:
    title = f"<title>{html.escape(tip)}</title>"
    attrs = f"class='mark mark-{kind}'"
    if shape in ("circle", "circle-open"):
        fill = colour if shape == "circle" else "white"
        return (f"<circle {attrs} cx='{cx:.2f}' cy='{cy}' r='4' fill='{fill}' stroke='{colour}' "
                f"stroke-width='1.5'>{title}</circle>")
    if shape in ("square", "square-open"):
        fill = colour if shape == "square" else "white"
        return (f"<rect {attrs} x='{cx - 3.5:.2f}' y='{cy - 3.5}' width='7' height='7' fill='{fill}' "
                f"stroke='{colour}'>{title}</rect>")
    if shape == "cross":
        return (f"<path {attrs} d='M{cx - 4:.2f},{cy - 4} L{cx + 4:.2f},{cy + 4} M{cx - 4:.2f},{cy + 4} "
                f"L{cx + 4:.2f},{cy - 4}' stroke='{colour}' stroke-width='2'>{title}</path>")
    if shape == "triangle":
        return (f"<path {attrs} d='M{cx:.2f},{cy - 5} L{cx + 5:.2f},{cy + 4} L{cx - 5:.2f},{cy + 4} Z' "
                f"fill='{colour}'>{title}</path>")
    if shape in ("diamond", "diamond-open"):
        fill = colour if shape == "diamond" else "white"
        return (f"<path {attrs} d='M{cx:.2f},{cy - 5} L{cx + 5:.2f},{cy} L{cx:.2f},{cy + 5} L{cx - 5:.2f},{cy} Z' "
                f"fill='{fill}' stroke='{colour}' stroke-width='1.5'>{title}</path>")
    if shape == "swap":
        return (f"<path {attrs} d='M{cx - 6:.2f},{cy - 3} L{cx + 6:.2f},{cy - 3} L{cx + 3:.2f},{cy - 6} "
                f"M{cx + 6:.2f},{cy + 3} L{cx - 6:.2f},{cy + 3} L{cx - 3:.2f},{cy + 6}' fill='none' "
                f"stroke='{colour}' stroke-width='2'>{title}</path>")
    return (f"<line {attrs} x1='{cx:.2f}' y1='{cy - 7}' x2='{cx:.2f}' y2='{cy + 7}' stroke='{colour}' "
            f"stroke-width='2'>{title}</line>")
