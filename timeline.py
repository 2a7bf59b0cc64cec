"""Render a trace as a self-contained HTML/SVG timeline: ``leanworker trace render TRACE -o timeline.html``.

One lane per worker slot and generation (plus one for the pool); requests are bars from admission to terminal,
coloured by outcome; rows are ticks under the bar; lifecycle events are marks (docs/tracing.md has the legend).
Hovering any element shows its details. No scripts, no network: the file opens anywhere.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from leanworker.actors.tracing import TraceEvent, lane_of, slot_of

OUTCOME_COLOURS = {"ok": "#2e7d32", "error": "#ef6c00", "cancelled": "#9e9e9e", "timeout": "#c62828",
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
}
LANE_HEIGHT = 34
LEFT = 150
WIDTH = 1100


@dataclass
class _Bar:
    lane: str
    start: float
    end: float | None
    command: str
    request_id: int
    outcome: str | None


def _lane_order(lane: str) -> tuple[int, int, str]:
    match = re.fullmatch(r"slot(\d+)(?: g(\d+))?", lane) or re.fullmatch(r"worker(\d+)(?: g(\d+))?", lane)
    if match:
        return (1, int(match.group(1)) * 10_000 + int(match.group(2) or 0), lane)
    return (0, 0, lane)


def render_timeline(events: list[TraceEvent], title: str = "leanworker trace") -> str:
    """The HTML page for ``events`` (oldest first)."""
    if not events:
        return f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><p>empty trace</p>"
    origin = events[0].time
    span = max(events[-1].time - origin, 1e-6)
    lanes = sorted({lane_of(e) for e in events if e.kind != "message"} | {"pool"}, key=_lane_order)
    row = {lane: i for i, lane in enumerate(lanes)}
    bars: list[_Bar] = []
    open_bars: dict[tuple[str, int], _Bar] = {}
    for event in events:
        if event.request_id is None:
            continue
        key = (slot_of(event.actor), event.request_id)
        if event.kind == "request_admitted":
            bar = _Bar(lane_of(event), event.time - origin, None, str(event.fields.get("command", "?")),
                       event.request_id, None)
            open_bars[key] = bar
            bars.append(bar)
        elif event.kind in ("done", "request_failed") and key in open_bars:
            bar = open_bars.pop(key)
            bar.end = event.time - origin
            bar.outcome = event.fields.get("outcome")

    def x(t: float) -> float:
        return LEFT + (t / span) * WIDTH

    def y(lane: str) -> float:
        return 40 + row.get(lane, 0) * LANE_HEIGHT

    parts: list[str] = []
    height = 40 + len(lanes) * LANE_HEIGHT + 30
    for lane in lanes:
        top = y(lane)
        parts.append(f"<rect x='0' y='{top}' width='{LEFT + WIDTH + 20}' height='{LANE_HEIGHT}' "
                     f"fill='{'#fafafa' if row[lane] % 2 else '#ffffff'}'/>")
        parts.append(f"<text x='6' y='{top + 21}' class='lane'>{html.escape(lane)}</text>")
    for tick in range(11):
        t = span * tick / 10
        parts.append(f"<line x1='{x(t):.1f}' y1='34' x2='{x(t):.1f}' y2='{height - 24}' class='grid'/>")
        parts.append(f"<text x='{x(t):.1f}' y='{height - 8}' class='axis'>{t * 1000:.1f} ms</text>")
    for bar in bars:
        end = bar.end if bar.end is not None else span
        colour = OUTCOME_COLOURS.get(bar.outcome, "#bdbdbd")
        tip = (f"request {bar.request_id}: {bar.command}, outcome {bar.outcome or 'unfinished'}, "
               f"{(end - bar.start) * 1000:.3f} ms")
        parts.append(f"<rect x='{x(bar.start):.2f}' y='{y(bar.lane) + 8}' width='{max(x(end) - x(bar.start), 1.5):.2f}'"
                     f" height='14' fill='{colour}' rx='2'><title>{html.escape(tip)}</title></rect>")
    for event in events:
        t = event.time - origin
        lane = lane_of(event)
        if event.kind == "rows":
            tip = f"rows: {event.fields.get('count')} on {event.fields.get('stream')} (request {event.request_id})"
            parts.append(f"<line x1='{x(t):.2f}' y1='{y(lane) + 24}' x2='{x(t):.2f}' y2='{y(lane) + 30}' "
                         f"class='tick'><title>{html.escape(tip)}</title></line>")
        elif event.kind in MARKS:
            shape, colour, label = MARKS[event.kind]
            detail = ", ".join(f"{k}={v}" for k, v in event.fields.items())
            tip = f"{label} at {t * 1000:.3f} ms ({event.actor}{'; ' + detail if detail else ''})"
            parts.append(_mark(shape, x(t), y(lane) + 15, colour, tip))
    legend = " ".join(f"<span class='key' style='background:{c}'></span>{html.escape(str(o))}"
                      for o, c in OUTCOME_COLOURS.items() if o is not None)
    marks = " ".join(f"<span class='mk' style='color:{c}'>{_glyph(s)}</span>{html.escape(k)}"
                     for k, (s, c, _) in MARKS.items())
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{LEFT + WIDTH + 20}' height='{height}'>"
           + "".join(parts) + "</svg>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 16px; color: #212121; }}
.lane {{ font: 12px monospace; fill: #37474f; }}
.axis {{ font: 10px monospace; fill: #757575; text-anchor: middle; }}
.grid {{ stroke: #eeeeee; }}
.tick {{ stroke: #00897b; stroke-width: 1; }}
.key {{ display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 10px; border-radius: 2px; }}
.mk {{ margin: 0 3px 0 10px; }}
</style></head><body>
<h2>{html.escape(title)}</h2>
<p>{len(events)} events over {span * 1000:.1f} ms, {len(bars)} requests, {len(lanes)} lanes (one per worker slot
and generation). Hover a bar or mark for details.</p>
<p>Requests by outcome: {legend}</p>
<p>Marks: {marks} <span class='mk' style='color:#00897b'>|</span>rows frame</p>
{svg}
</body></html>
"""


def _glyph(shape: str) -> str:
    return {"circle": "●", "circle-open": "○", "cross": "✕", "square": "■", "triangle": "▲", "diamond": "◆",
            "diamond-open": "◇", "bar": "┃"}[shape]


def _mark(shape: str, cx: float, cy: float, colour: str, tip: str) -> str:
    title = f"<title>{html.escape(tip)}</title>"
    if shape in ("circle", "circle-open"):
        fill = colour if shape == "circle" else "white"
        return f"<circle cx='{cx:.2f}' cy='{cy}' r='4' fill='{fill}' stroke='{colour}' stroke-width='1.5'>{title}</circle>"
    if shape == "square":
        return f"<rect x='{cx - 3.5:.2f}' y='{cy - 3.5}' width='7' height='7' fill='{colour}'>{title}</rect>"
    if shape == "cross":
        return (f"<path d='M{cx - 4:.2f},{cy - 4} L{cx + 4:.2f},{cy + 4} M{cx - 4:.2f},{cy + 4} L{cx + 4:.2f},{cy - 4}'"
                f" stroke='{colour}' stroke-width='2'>{title}</path>")
    if shape == "triangle":
        return (f"<path d='M{cx:.2f},{cy - 5} L{cx + 5:.2f},{cy + 4} L{cx - 5:.2f},{cy + 4} Z' fill='{colour}'>"
                f"{title}</path>")
    if shape in ("diamond", "diamond-open"):
        fill = colour if shape == "diamond" else "white"
        return (f"<path d='M{cx:.2f},{cy - 5} L{cx + 5:.2f},{cy} L{cx:.2f},{cy + 5} L{cx - 5:.2f},{cy} Z' "
                f"fill='{fill}' stroke='{colour}' stroke-width='1.5'>{title}</path>")
    return (f"<line x1='{cx:.2f}' y1='{cy - 7}' x2='{cx:.2f}' y2='{cy + 7}' stroke='{colour}' stroke-width='2'>"
            f"{title}</line>")
