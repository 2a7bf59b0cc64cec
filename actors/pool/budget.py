"""The pool's memory budget as a pure policy the pool actor consults (tests drive it without processes).

A worker of a key is expected to hold the most seen for that key, else the most seen for any key, else the
configured estimate. A slot holds its last sample; while it starts (its session is being opened) it holds at least
its key's expectation, a *reservation*, so that concurrent cold starts cannot overrun the budget. With no slot
alive, one worker may always start. While any sample is unavailable, no budget decision is taken.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Protocol


class SlotMemory(Protocol):
    @property
    def key(self) -> Hashable: ...

    @property
    def state(self) -> str: ...

    @property
    def rss(self) -> float | None: ...

    @property
    def sampled(self) -> bool: ...


class MemoryBudget:
    """Peak memory seen per key, and the admission rule built on it."""

    def __init__(self, budget_mib: int | None, estimate_mib: int) -> None:
        self.budget_mib = budget_mib
        self.estimate_mib = float(estimate_mib)
        self.peak: dict[Hashable, float] = {}

    def observe(self, key: Hashable, rss_mib: float | None) -> None:
        if rss_mib is not None:
            self.peak[key] = max(self.peak.get(key, 0.0), rss_mib)

    def expected(self, key: Hashable) -> float:
        """What a worker of ``key`` will hold."""
        if key in self.peak:
            return self.peak[key]
        return max(self.peak.values(), default=self.estimate_mib)

    def held(self, slot: SlotMemory) -> float:
        rss = slot.rss if slot.sampled and slot.rss is not None else 0.0
        if slot.state == "starting":
            return max(rss, self.expected(slot.key))
        return rss

    def in_use(self, slots: Iterable[SlotMemory]) -> float:
        return sum(self.held(slot) for slot in slots)

    def allows(self, key: Hashable, slots: Iterable[SlotMemory]) -> bool:
        """Whether a new worker of ``key`` fits next to ``slots``."""
        live = list(slots)
        if self.budget_mib is None or not live:
            return True
        if any(slot.sampled and slot.rss is None for slot in live):
            return True  # sampling unavailable: no decision on missing data
        return self.in_use(live) + self.expected(key) <= self.budget_mib
