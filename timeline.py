"""Render a trace as a self-contained HTML/SVG timeline: ``leanworker trace render TRACE -o timeline.html``.

A summary strip (requests by outcome, restarts by reason, slots stopped for another key or for memory) and a
legend; then a header that stays at the top while the page scrolls (stages, runs and the time axis) and the lanes:
grouped (the pool, then the slots of each session key) and ordered by first activity, each labelled with its key
and stage. Requests are bars coloured by outcome, never thinner than a few units, with a tick across the lane for a
short one and a marker above the lane where one failed, timed out, crashed or was cancelled; rows are ticks;
lifecycle, eviction and cycling events are marks. Hover anything for details: a request's tooltip names its lane,
request id, key, command, outcome and time. A few lines of plain JavaScript in the page zoom (Ctrl + wheel, the
buttons, + and -) and pan (drag, the arrow keys); nothing is fetched. docs/tracing.md explains how to read it.
What is shown comes from timeline_model.py, where it goes and what its labels say from _timeline_layout.py; this
module draws.
"""

from __future__ import annotations

import html
import json

from leanworker._timeline_layout import (
    GROUP_HEIGHT,
    HEAD_HEIGHT,
    LANE_DETAIL_CHARS,
    LANE_HEIGHT,
    LANE_NAME_CHARS,
    LEFT,
    MIN_BAR,
    PLOT,
    REASON_ROOM,
    RIGHT,
    STAGE_CHAR,
    VIEW_WIDTH,
    Scale,
    axis_label,
    bar_end,
    bar_tip,
    bar_width,
    elide,
    group_heading,
    lane_tip,
    lane_tops,
    mark_reason,
    mark_tip,
    reason_anchor,
    rows_tip,
    tick_times,
    time_label,
)
from leanworker.actors.core.trace_ring import TraceEvent
from leanworker.timeline_model import FAULTS, Bar, Lane, Model, build_model

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


def render_timeline(events: list[TraceEvent], title: str = "leanworker trace") -> str:
    """The HTML page for ``events`` (oldest first)."""
    if not events:
        return f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><p>empty trace</p>"
    model = build_model(events)
    return _page(model, _head(model), _body(model), title, len(events))


def _t(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def _head(model: Model) -> str:
    """The sticky header: stage bands, run bands and the time axis."""
    x = Scale(model.span)
    parts = [f"<rect x='0' y='0' width='{VIEW_WIDTH}' height='{HEAD_HEIGHT}' fill='white'/>",
             f"<text x='8' y='18' class='head-label'>stages</text><text x='8' y='34' class='head-label'>runs</text>",
             f"<text x='8' y='54' class='head-label'>time</text>",
             "<g clip-path='url(#head-plot)'>"]
    for index, stage in enumerate(model.stages):
        left, right = x(stage.start), x(stage.end)
        band_y, band_h = (6, 18) if stage.level == 0 else (26, 14)
        fill = ("#e3f2fd" if index % 2 else "#ede7f6") if stage.level == 0 else "#fff8e1"
        tip = f"{stage.name}: {time_label(stage.start, model.span)} to {time_label(stage.end, model.span)}"
        label = elide(stage.name, int((min(right, VIEW_WIDTH) - left - 6) / STAGE_CHAR))
        parts.append(
            f"<g class='stage stage-{stage.level}'><title>{html.escape(tip)}</title>"
            f"<rect class='tx' data-t='{_t(stage.start)}' data-t1='{_t(stage.end)}' data-min='2' x='{left:.2f}' "
            f"y='{band_y}' width='{max(right - left, 2):.2f}' height='{band_h}' fill='{fill}' stroke='#90a4ae'/>"
            f"<text class='tx fit stage-name' data-t='{_t(stage.start)}' data-t1='{_t(stage.end)}' "
            f"data-full='{html.escape(stage.name)}' transform='translate({left:.2f},0)' x='4' "
            f"y='{band_y + band_h - 4}'>{html.escape(label)}</text></g>")
    parts.append("</g><g id='axis'>")
    ticks = tick_times(0, model.span)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else model.span
    parts += [f"<text x='{x(t):.2f}' y='54' class='axis'>{axis_label(t, step, model.span)}</text>" for t in ticks]
    parts.append("</g>")
    return (f"<svg id='head' xmlns='http://www.w3.org/2000/svg' width='100%' viewBox='0 0 {VIEW_WIDTH} "
            f"{HEAD_HEIGHT}' preserveAspectRatio='xMinYMin meet'><defs><clipPath id='head-plot'><rect x='{LEFT}' "
            f"y='0' width='{PLOT + RIGHT}' height='{HEAD_HEIGHT}'/></clipPath></defs>{''.join(parts)}</svg>")


def _body(model: Model) -> str:
    x = Scale(model.span)
    lane_top, group_tops, height = lane_tops(model)
    lanes = {lane.name: lane for lane in model.lanes}
    parts: list[str] = []
    for index, (group, top) in enumerate(group_tops):
        heading, full = group_heading(group)
        parts.append(f"<g class='group' id='group-{index}'><title>{html.escape(full)}</title><rect x='0' y='{top}' "
                     f"width='{VIEW_WIDTH}' "
                     f"height='{GROUP_HEIGHT}' fill='#eceff1'/><text x='8' y='{top + 15}' class='group-name'>"
                     f"{html.escape(elide(heading, 200))}</text></g>")
        for row, lane in enumerate(group.lanes):
            parts.append(_lane_label(lane, lane_top[lane.name], row))
    parts.append("<g clip-path='url(#plot)'><g id='grid'>")
    parts += [f"<line x1='{x(t):.2f}' y1='0' x2='{x(t):.2f}' y2='{height}' class='grid'/>"
              for t in tick_times(0, model.span)]
    parts.append("</g>")
    for stage in model.stages:
        if stage.level == 0:
            parts.append(f"<line class='tx stage-edge' data-t='{_t(stage.start)}' x1='{x(stage.start):.2f}' y1='0' "
                         f"x2='{x(stage.start):.2f}' y2='{height}'/>")
    for bar in model.bars:
        parts.append(_bar(bar, lanes.get(bar.lane), lane_top[bar.lane], model, x))
    for lane_name, t, event in model.marks:
        if lane_name in lane_top:  # the pool's events that are not drawn have no lane
            parts.append(_event_mark(event, t, lane_top[lane_name], model, x))
    parts.append("</g>")
    return (f"<svg id='body' xmlns='http://www.w3.org/2000/svg' width='100%' viewBox='0 0 {VIEW_WIDTH} "
            f"{height:.0f}' preserveAspectRatio='xMinYMin meet'><defs><clipPath id='plot'><rect x='{LEFT}' y='0' "
            f"width='{PLOT + RIGHT}' height='{height:.0f}'/></clipPath></defs>{''.join(parts)}</svg>")


def _lane_label(lane: Lane, top: float, row: int) -> str:
    detail = lane.stage or ""  # its key heads its group
    tip = lane_tip(lane)
    return (f"<rect x='0' y='{top}' width='{VIEW_WIDTH}' height='{LANE_HEIGHT}' "
            f"fill='{'#f7f7f7' if row % 2 else '#ffffff'}'/><g class='lane-label'><title>{html.escape(tip)}</title>"
            f"<text x='8' y='{top + 18}' class='lane'>{html.escape(elide(lane.name, LANE_NAME_CHARS))}</text>"
            f"<text x='8' y='{top + 34}' class='lane-detail'>{html.escape(elide(detail, LANE_DETAIL_CHARS))}</text>"
            f"</g>")


def _bar(bar: Bar, lane: Lane | None, top: float, model: Model, x: Scale) -> str:
    end = bar_end(bar, model.span)
    colour = OUTCOME_COLOURS.get(bar.outcome, "#bdbdbd")
    title = f"<title>{html.escape(bar_tip(bar, lane, model.span))}</title>"
    left, right = x(bar.start), x(end)
    width, short = bar_width(left, right)
    parts = [f"<rect class='tx request' data-t='{_t(bar.start)}' data-t1='{_t(end)}' data-min='{MIN_BAR:g}' "
             f"x='{left:.2f}' y='{top + 16}' width='{width:.2f}' height='14' fill='{colour}' rx='2'>{title}</rect>"]
    if short:  # a short request: a tick across the lane, so it is seen at any zoom
        parts.append(f"<line class='tx short' data-t='{_t(bar.start)}' x1='{left:.2f}' y1='{top + 6}' "
                     f"x2='{left:.2f}' y2='{top + 40}' stroke='{colour}'>{title}</line>")
    if bar.outcome in FAULTS:  # a marker above the lane, the same size at any zoom and any request length
        parts.append(f"<g class='tx fault fault-{bar.outcome}' data-t='{_t(end)}' transform='translate({right:.2f},0)'>"
                     f"{title}<line x1='0' y1='{top + 9}' x2='0' y2='{top + 30}' stroke='{colour}' "
                     f"stroke-width='1.5'/><path d='M-6,{top + 1} L6,{top + 1} L0,{top + 11} Z' fill='{colour}' "
                     f"stroke='white' stroke-width='0.8'/></g>")
    return "".join(parts)


def _event_mark(event: TraceEvent, t: float, top: float, model: Model, x: Scale) -> str:
    if event.kind == "rows":
        tip = rows_tip(event)
        return (f"<line class='tx tick' data-t='{_t(t)}' x1='{x(t):.2f}' y1='{top + 32}' x2='{x(t):.2f}' "
                f"y2='{top + 38}'><title>{html.escape(tip)}</title></line>")
    if event.kind not in MARKS:
        return ""
    shape, colour, label = MARKS[event.kind]
    tip = mark_tip(label, event, t, model.span)
    mark = (f"<g class='tx mark mark-{event.kind}' data-t='{_t(t)}' transform='translate({x(t):.2f},0)'>"
            f"{_shape(shape, top + 23, colour, tip)}</g>")
    why = mark_reason(event)
    if why is None:
        return mark
    anchor, at = reason_anchor(x(t))
    return (mark + f"<g class='tx why-at' data-t='{_t(t)}' transform='translate({x(t):.2f},0)'><text x='{at}' "
                   f"y='{top + 12}' class='why' text-anchor='{anchor}'>{html.escape(why)}</text></g>")


SCRIPT = """
(function () {
  var W = %(width)d, L = %(left)d, R = %(right)d, P = W - L - R, SPAN = %(span)s;
  var v0 = 0, v1 = SPAN, drag = null;
  var head = document.getElementById('head'), body = document.getElementById('body');
  var shown = document.getElementById('shown'), NS = 'http://www.w3.org/2000/svg';
  function X(t) { return L + (t - v0) / (v1 - v0) * P; }
  function fmt(t, step) {
    if (v1 >= 1) return t.toFixed(Math.min(6, Math.max(1, Math.ceil(-Math.log10(step) - 1e-9)))) + ' s';
    return (t * 1000).toFixed(Math.min(6, Math.max(0, Math.ceil(-Math.log10(step * 1000) - 1e-9)))) + ' ms';
  }
  function ticks() {
    var raw = (v1 - v0) / 10, p = Math.pow(10, Math.floor(Math.log10(raw))), step = 10 * p, out = [];
    [1, 2, 5].some(function (m) { if (m * p >= raw) { step = m * p; return true; } return false; });
    for (var i = Math.ceil(v0 / step - 1e-9); i * step <= v1 + 1e-12; i++) out.push(i * step);
    return {step: step, at: out};
  }
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }
  function elide(text, n) {
    if (text.length <= n) return text;
    if (n <= 1) return '';
    var h = n - 1 - Math.floor((n - 1) / 2), t = Math.floor((n - 1) / 2);
    return text.slice(0, h) + '\\u2026' + (t ? text.slice(text.length - t) : '');
  }
  function draw() {
    document.querySelectorAll('.tx').forEach(function (e) {
      var x = X(+e.dataset.t), d = e.dataset;
      if (e.tagName === 'rect') {
        e.setAttribute('x', x); e.setAttribute('width', Math.max(X(+d.t1) - x, +(d.min || 0)));
      } else if (e.tagName === 'line') {
        e.setAttribute('x1', x); e.setAttribute('x2', x);
      } else {
        e.setAttribute('transform', 'translate(' + x + ',0)');
      }
      if (d.full !== undefined) {  // a band's label: from the band's visible start, elided to its visible width
        var a = Math.max(x, L);
        e.setAttribute('transform', 'translate(' + a + ',0)');
        e.textContent = elide(d.full, Math.floor((Math.min(X(+d.t1), W) - a - 6) / %(char)s));
      }
      if (e.classList.contains('why-at')) {
        var near = x > W - R - %(room)d, txt = e.firstElementChild;
        txt.setAttribute('x', near ? -8 : 8); txt.setAttribute('text-anchor', near ? 'end' : 'start');
      }
    });
    var axis = document.getElementById('axis'), grid = document.getElementById('grid');
    var h = body.viewBox.baseVal.height;
    axis.replaceChildren(); grid.replaceChildren();
    var tk = ticks();
    tk.at.forEach(function (t) {
      axis.appendChild(el('text', {x: X(t), y: 54, 'class': 'axis'}, fmt(t, tk.step)));
      grid.appendChild(el('line', {x1: X(t), x2: X(t), y1: 0, y2: h, 'class': 'grid'}));
    });
    shown.textContent = fmt(v0, tk.step / 10) + ' to ' + fmt(v1, tk.step / 10) +
      (v1 - v0 < SPAN ? ' (zoomed)' : ' (the whole trace)');
  }
  function view(a, b) {
    var w = Math.min(Math.max(b - a, SPAN / 1e5), SPAN);
    a = Math.min(Math.max(a, 0), SPAN - w);
    v0 = a; v1 = a + w; draw();
  }
  function zoom(f, at) { var c = at === undefined ? (v0 + v1) / 2 : at; view(c - (c - v0) * f, c + (v1 - c) * f); }
  function pan(frac) { var w = v1 - v0; view(v0 + frac * w, v1 + frac * w); }
  function timeAt(ev) {
    var r = body.getBoundingClientRect(), u = (ev.clientX - r.left) / r.width * W;
    return v0 + (u - L) / P * (v1 - v0);
  }
  [head, body].forEach(function (svg) {
    svg.addEventListener('wheel', function (ev) {
      if (ev.ctrlKey || ev.metaKey) { ev.preventDefault(); zoom(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(ev)); }
      else if (ev.shiftKey) { ev.preventDefault(); pan((ev.deltaY || ev.deltaX) > 0 ? 0.1 : -0.1); }
    }, {passive: false});
    svg.addEventListener('mousedown', function (ev) { drag = {x: ev.clientX, a: v0, b: v1}; });
  });
  window.addEventListener('mousemove', function (ev) {
    if (!drag) return;
    var dt = (ev.clientX - drag.x) / body.getBoundingClientRect().width * W / P * (drag.b - drag.a);
    view(drag.a - dt, drag.b - dt);
  });
  window.addEventListener('mouseup', function () { drag = null; });
  window.addEventListener('keydown', function (ev) {
    var k = {'+': function () { zoom(0.5); }, '=': function () { zoom(0.5); }, '-': function () { zoom(2); },
             '0': function () { view(0, SPAN); }, ArrowLeft: function () { pan(-0.2); },
             ArrowRight: function () { pan(0.2); }}[ev.key];
    if (k) { ev.preventDefault(); k(); }
  });
  document.getElementById('zoom-in').onclick = function () { zoom(0.5); };
  document.getElementById('zoom-out').onclick = function () { zoom(2); };
  document.getElementById('zoom-reset').onclick = function () { view(0, SPAN); };
  var asked = /^#view=([0-9.e-]+),([0-9.e-]+)$/.exec(location.hash);
  if (asked) view(+asked[1], +asked[2]); else draw();
})();
"""


def _script(model: Model) -> str:
    return SCRIPT % {"width": VIEW_WIDTH, "left": LEFT, "right": RIGHT, "span": json.dumps(model.span),
                     "char": json.dumps(STAGE_CHAR), "room": REASON_ROOM}


def _page(model: Model, head: str, body: str, title: str, event_count: int) -> str:
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
.sticky {{ position: sticky; top: 0; z-index: 1; background: white; border-bottom: 1px solid #cfd8dc; }}
.controls {{ display: flex; gap: 8px; align-items: center; padding: 4px 0; color: #424242; }}
.controls button {{ font: 13px system-ui, sans-serif; min-width: 28px; }}
#body {{ cursor: grab; user-select: none; }}
.lane {{ font: bold 13px monospace; fill: #263238; }}
.lane-detail {{ font: 11px monospace; fill: #607d8b; }}
.group-name {{ font: bold 12px system-ui, sans-serif; fill: #37474f; }}
.head-label {{ font: 11px system-ui, sans-serif; fill: #78909c; }}
.stage-name {{ font: 11px system-ui, sans-serif; fill: #263238; }}
.stage-edge {{ stroke: #90a4ae; stroke-dasharray: 4 3; }}
.axis {{ font: 11px monospace; fill: #616161; text-anchor: middle; }}
.why {{ font: 10px system-ui, sans-serif; fill: #00695c; }}
.grid {{ stroke: #e0e0e0; }}
.tick {{ stroke: #00897b; stroke-width: 1; }}
.short {{ stroke-width: 1.5; stroke-opacity: 0.55; }}
.key {{ display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 6px; border-radius: 2px; }}
.mk {{ margin: 0 3px 0 10px; }}
</style></head><body>
<h2>{html.escape(title)}</h2>
<div class="summary" id="summary">
<span><b>{time_label(model.span, model.span)}</b>, {event_count} events, {len(model.bars)} requests,
{len(model.lanes)} lanes</span>
<span>requests by outcome: {outcomes or "none"}</span>
<span>restarts by reason: {restarts}</span>
<span>slots stopped: {stops}</span>
</div>
<div class="legend">Bars (requests) by outcome: {legend}. A triangle above a lane marks a request that ended in
error, timeout, crash, memory, protocol error or cancel; a faint line across a lane marks a request too short to
see at this zoom.</div>
<div class="legend">Marks: {marks} <span class='mk' style='color:#00897b'>|</span>rows frame.
Lanes: one per worker slot and generation, grouped by session key, in order of first activity. Hover for details.</div>
<div class="sticky">
<div class="controls"><button id="zoom-out" title="zoom out (-)">&minus;</button>
<button id="zoom-in" title="zoom in (+)">+</button>
<button id="zoom-reset" title="the whole trace (0)">whole trace</button>
<span>showing <b id="shown">{time_label(0, model.span)} to {time_label(model.span, model.span)} (the whole trace)</b>;
Ctrl + wheel zooms at the
pointer, drag or the arrow keys pan</span></div>
{head}
</div>
{body}
<script>{_script(model)}</script>
</body></html>
"""


def _glyph(shape: str) -> str:
    return {"circle": "●", "circle-open": "○", "cross": "✕", "square": "■", "square-open": "□", "triangle": "▲",
            "diamond": "◆", "diamond-open": "◇", "bar": "┃", "swap": "⇄"}[shape]


def _shape(shape: str, cy: float, colour: str, tip: str) -> str:
    """A mark drawn around x = 0 (its group is moved to the event's time)."""
    title = f"<title>{html.escape(tip)}</title>"
    if shape in ("circle", "circle-open"):
        fill = colour if shape == "circle" else "white"
        return f"<circle cx='0' cy='{cy}' r='4' fill='{fill}' stroke='{colour}' stroke-width='1.5'>{title}</circle>"
    if shape in ("square", "square-open"):
        fill = colour if shape == "square" else "white"
        return (f"<rect x='-3.5' y='{cy - 3.5}' width='7' height='7' fill='{fill}' stroke='{colour}'>{title}"
                f"</rect>")
    if shape == "cross":
        return (f"<path d='M-4,{cy - 4} L4,{cy + 4} M-4,{cy + 4} L4,{cy - 4}' stroke='{colour}' stroke-width='2'>"
                f"{title}</path>")
    if shape == "triangle":
        return f"<path d='M0,{cy - 5} L5,{cy + 4} L-5,{cy + 4} Z' fill='{colour}'>{title}</path>"
    if shape in ("diamond", "diamond-open"):
        fill = colour if shape == "diamond" else "white"
        return (f"<path d='M0,{cy - 5} L5,{cy} L0,{cy + 5} L-5,{cy} Z' fill='{fill}' stroke='{colour}' "
                f"stroke-width='1.5'>{title}</path>")
    if shape == "swap":
        return (f"<path d='M-6,{cy - 3} L6,{cy - 3} L3,{cy - 6} M6,{cy + 3} L-6,{cy + 3} L-3,{cy + 6}' fill='none' "
                f"stroke='{colour}' stroke-width='2'>{title}</path>")
    return f"<line x1='0' y1='{cy - 7}' x2='0' y2='{cy + 7}' stroke='{colour}' stroke-width='2'>{title}</line>"
