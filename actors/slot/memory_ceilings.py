"""A worker's memory ceilings as a pure policy the supervisor consults (docs/semantics.md, Memory).

Over the hard ceiling the request in flight is killed (``MemoryLimitExceeded``) and the worker replaced; over the
soft ceiling the worker is cycled once it is idle (once: a cycle already pending is not asked again). A sample that
could not be read (``None``) decides nothing, and neither does one of a generation that is not ready (still starting,
or already being replaced: its end is decided).
"""

from __future__ import annotations

from leanworker.actors.core.config import RestartPolicy
from leanworker.actors.slot.channel import MEMORY, Terminal
from leanworker.actors.slot.endings import MEMORY_HARD, MEMORY_SOFT, Ending
from leanworker.errors import MemoryLimitExceeded

HARD = MEMORY_HARD
SOFT = MEMORY_SOFT


class MemoryCeilings:
    """The soft and hard ceilings of a :class:`RestartPolicy`, and what a sample over them calls for."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.soft_mib = policy.rss_soft_limit_mib
        self.hard_mib = policy.rss_hard_limit_mib

    def verdict(self, rss_mib: float | None, cycle_pending: bool, ready: bool = True) -> str | None:
        """``HARD`` (kill now), ``SOFT`` (cycle when idle) or None (nothing to do) for a sample of ``rss_mib`` of a
        generation (``ready``: serving, and no end decided for it)."""
        if rss_mib is None or not ready:
            return None  # unavailable: never decide on missing data; not ready: nothing to replace
        if self.hard_mib is not None and rss_mib > self.hard_mib:
            return HARD
        if self.soft_mib is not None and rss_mib > self.soft_mib and not cycle_pending:
            return SOFT
        return None

    def judge(self, rss_mib: float | None, cycle_pending: bool,
              ready: bool = True) -> tuple[str, Terminal | None, Ending] | None:
        """What a sample calls for, if anything: its verdict, the terminal of the request in flight (over the hard
        ceiling: ``MemoryLimitExceeded``; over the soft one: None, it runs on) and the generation's end (a restart
        that kills, or a cycle once idle)."""
        verdict = self.verdict(rss_mib, cycle_pending, ready)
        if verdict is None or rss_mib is None:
            return None
        if verdict == SOFT:
            return verdict, None, Ending.cycle(SOFT)
        error = MemoryLimitExceeded(f"worker used {rss_mib:.0f} MiB, over the hard limit of {self.hard_mib} MiB",
                                    rss_mib=rss_mib, limit_mib=self.hard_mib)
        return verdict, Terminal(MEMORY, error=error), Ending.restart(HARD)
