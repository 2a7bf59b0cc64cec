"""What the timeline shows, computed from trace events (pure; timeline.py draws it).

Lanes: one per worker slot and generation (events of a slot recorded between generations join the slot's current
lane), plus the pool's; a lane with nothing to draw is left out. Each lane knows its session key and the stage or
run it started in. Lanes are grouped (the pool, then one group per session key, then one for lanes whose key the
trace does not hold, such as a single ``lw.Worker``'s) and ordered by first activity, groups too, so a lane reads
left to right where the one above it left off. Bars are requests; stages are the spans between ``stage_start`` and
``stage_end`` events (the probe's stages, ``pool.run``'s runs); the summary counts requests by outcome, restarts by
reason and slots stopped for another key or for memory.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from leanworker.actors.core.trace_ring import TraceEvent
from leanworker.actors.core.tracing import lane_of, slot_of

# Outcomes a person opens a timeline to find: drawn with a marker above the lane.
FAULTS = ("error", "timeout", "crashed", "memory", "protocol", "cancelled")
# The events drawn as marks (timeline.MARKS says how) or ticks; a lane with none of these and no request is not shown.
MARK_KINDS = frozenset({"spawn", "ready", "kill", "reap", "generation_end", "exhausted", "lease_granted",
                        "lease_released", "cancel", "memory_hard", "memory_soft", "protocol_error", "cooldown",
                        "cycle_for_key", "evict_for_memory", "slot_stop", "rows"})


@dataclass
class Bar:
    lane: str
    start: float
    end: float | None
    command: str
    request_id: int
    outcome: str | None


@dataclass
class Lane:
    name: str
    first: float
    key: str | None = None  # "capability|imports"
    stage: str | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    start: float
    end: float
    level: int = 0  # 0: a stage of the probe (or another driver); 1: a run of pool.run inside it


@dataclass
class Group:
    """Lanes shown together under one heading: the pool's, or the slots of one session key."""

    name: str  # "pool", a key ("capability|imports"), or NO_KEY
    lanes: list[Lane]

    @property
    def first(self) -> float:
        return min(lane.first for lane in self.lanes)


NO_KEY = ""  # the group of lanes whose key the trace does not hold (a single lw.Worker's)


@dataclass
class Model:
    origin: float
    span: float
    lanes: list[Lane]  # in the order drawn: group by group
    bars: list[Bar]
    stages: list[Stage]
    marks: list[tuple[str, float, TraceEvent]]  # lane, time since origin, event
    outcomes: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    stops: Counter[str] = field(default_factory=Counter)
    groups: list[Group] = field(default_factory=list)

    def lane(self, name: str) -> Lane | None:
        return next((lane for lane in self.lanes if lane.name == name), None)


def short_key(key: str | None) -> str:
    """``leanworker.fixtures.mathlib_scale:capability|Mathlib,Foo`` -> ``mathlib_scale · Mathlib,Foo``."""
    if not key:
        return ""
    capability, _, imports = key.partition("|")
    module = capability.split(":", 1)[0].rsplit(".", 1)[-1]
    label = f"{module} · {imports or '(no imports)'}"
    return label if len(label) <= 34 else label[:33] + "…"


def group_lanes(lanes: list[Lane]) -> list[Group]:
    """The pool first, then a group per key, ordered by first activity (lanes within a group too), and last the
    lanes whose key the trace does not hold."""
    by_name: dict[str, list[Lane]] = {}
    for lane in lanes:
        name = "pool" if lane.name == "pool" else (lane.key or NO_KEY)
        by_name.setdefault(name, []).append(lane)
    groups = [Group(name, sorted(members, key=lambda lane: (lane.first, _lane_number(lane.name))))
              for name, members in by_name.items()]
    # a pool's lanes are what a reader opens the page for: single workers' lanes (no key) go after every key's
    return sorted(groups, key=lambda g: (g.name != "pool", g.name == NO_KEY, g.first))


def _lane_number(lane: str) -> tuple[int, int, str]:
    match = re.fullmatch(r"(?:slot|worker)(\d+)(?: g(\d+))?", lane)
    if match:
        return (int(match.group(1)), int(match.group(2) or 0), lane)
    return (0, 0, lane)


def _assign_lanes(events: list[TraceEvent]) -> dict[int, str]:
    """Each event's lane (by index); an event of a slot without a generation joins that slot's current lane."""
    lanes: dict[int, str] = {}
    current: dict[str, str] = {}
    pending: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        if event.kind == "message" or event.actor in ("probe", "run"):
            continue
        slot = slot_of(event.actor)
        if event.generation is None and slot != "pool":
            if slot in current:
                lanes[index] = current[slot]
            else:
                pending.setdefault(slot, []).append(index)
            continue
        lane = lane_of(event)
        lanes[index] = lane
        if slot != "pool":
            current[slot] = lane
            for earlier in pending.pop(slot, []):
                lanes[earlier] = lane
    for slot, never in pending.items():  # a slot that never had a generation: its own lane
        for earlier in never:
            lanes[earlier] = slot
    return lanes


def _stages(events: list[TraceEvent], origin: float, span: float) -> list[Stage]:
    stages: list[Stage] = []
    open_stages: dict[tuple[str, int], float] = {}
    for event in events:
        name = (str(event.fields.get("name", "?")), 1 if event.actor == "run" else 0)
        if event.kind == "stage_start":
            open_stages[name] = event.time - origin
        elif event.kind == "stage_end" and name in open_stages:
            stages.append(Stage(name[0], open_stages.pop(name), event.time - origin, name[1]))
    stages.extend(Stage(name, start, span, level) for (name, level), start in open_stages.items())
    return sorted(stages, key=lambda s: (s.start, s.level))


def _restart_reason(event: TraceEvent) -> str:
    """Why a generation ended, in a word: the planned reason, else how the process died."""
    reason = event.fields.get("reason")
    if reason:
        return str(reason)
    if event.fields.get("signal"):
        return f"crashed (signal {event.fields['signal']})"
    return f"exited (code {event.fields.get('exit_code')})"


def build_model(events: list[TraceEvent]) -> Model:
    """The lanes, bars, stages, marks and summary of ``events`` (oldest first, at least one)."""
    origin = events[0].time
    span = max(events[-1].time - origin, 1e-6)
    stages = _stages(events, origin, span)
    lane_of_event = _assign_lanes(events)
    lanes: dict[str, Lane] = {}  # the pool's lane exists only when the pool recorded something
    keys: dict[str, str] = {}  # slot -> key, from the pool's slot_start
    ended: dict[str, str] = {}  # slot -> why its current generation ended
    bars: list[Bar] = []
    open_bars: dict[tuple[str, int], Bar] = {}
    marks: list[tuple[str, float, TraceEvent]] = []
    model = Model(origin, span, [], bars, stages, marks)
    for index, event in enumerate(events):
        lane_name = lane_of_event.get(index)
        if lane_name is None:
            continue
        t = event.time - origin
        lane = lanes.setdefault(lane_name, Lane(lane_name, t))
        slot = slot_of(event.actor)
        if event.kind == "slot_start" and "key" in event.fields:
            keys[slot] = str(event.fields["key"])
        if lane.key is None and slot in keys:
            lane.key = keys[slot]
        if event.kind == "request_admitted" and event.request_id is not None:
            bar = Bar(lane_name, t, None, str(event.fields.get("command", "?")), event.request_id, None)
            open_bars[(slot, event.request_id)] = bar
            bars.append(bar)
        elif event.kind in ("done", "request_failed") and event.request_id is not None \
                and (slot, event.request_id) in open_bars:
            bar = open_bars.pop((slot, event.request_id))
            bar.end = t
            bar.outcome = event.fields.get("outcome")
            model.outcomes[str(bar.outcome)] += 1
        elif event.kind in ("generation_end", "exited") and slot not in ended:
            ended[slot] = _restart_reason(event)
        elif event.kind == "generation_start" and (event.generation or 0) > 1:
            model.restarts[ended.pop(slot, "unknown")] += 1
        elif event.kind == "cycle_for_key":
            model.stops["cycled for another key"] += 1
        elif event.kind == "evict_for_memory":
            model.stops["evicted for memory"] += 1
        marks.append((lane_name, t, event))
    model.outcomes.update("unfinished" for _ in open_bars)
    for lane in lanes.values():
        if lane.name == "pool":
            continue  # the pool spans every stage
        around = [s for s in stages if s.start <= lane.first + 1e-9 and lane.first <= s.end + 1e-9]
        names = [max((s for s in around if s.level == level), key=lambda s: s.start).name
                 for level in (0, 1) if any(s.level == level for s in around)]
        lane.stage = " / ".join(names) or None
    drawn = {bar.lane for bar in bars} | {lane for lane, _, event in marks if event.kind in MARK_KINDS}
    model.groups = group_lanes([lane for lane in lanes.values() if lane.name in drawn])
    model.lanes = [lane for group in model.groups for lane in group.lanes]
    return model
