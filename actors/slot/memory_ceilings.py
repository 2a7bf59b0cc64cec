"""A worker's memory ceilings as a pure policy the supervisor consults (docs/semantics.md, Memory).

Over the hard ceiling the request in flight is killed (``MemoryLimitExceeded``) and the worker replaced; over the
soft ceiling the worker is cycled once it is idle (once: a cycle already pending is not asked again). A sample that
could not be read (``None``) decides nothing.
"""

from __future__ import annotations

from leanworker.actors.core.config import RestartPolicy

HARD = "memory_hard"
SOFT = "memory_soft"


class MemoryCeilings:
    """The soft and hard ceilings of a :class:`RestartPolicy`, and what a sample over them calls for."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.soft_mib = policy.rss_soft_limit_mib
        self.hard_mib = policy.rss_hard_limit_mib

    def verdict(self, rss_mib: float | None, cycle_pending: bool) -> str | None:
        """``HARD`` (kill now), ``SOFT`` (cycle when idle) or None (nothing to do) for a sample of ``rss_mib``."""
        if rss_mib is None:
            return None  # unavailable: never decide on missing data
        if self.hard_mib is not None and rss_mib > self.hard_mib:
            return HARD
        if self.soft_mib is not None and rss_mib > self.soft_mib and not cycle_pending:
            return SOFT
        return None
