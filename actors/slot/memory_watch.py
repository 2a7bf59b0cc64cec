"""One slot's watch on its worker's memory (docs/semantics.md, Memory).

The current generation's process tree is registered with the sampler (one per pool or per ``Worker``, memory.py),
each sample is judged against the slot's ceilings (memory_ceilings.py, a pure policy) and the last one is kept for
snapshots. Without a sampler (a lone ``Worker`` with no ceilings) nothing is watched and a snapshot samples the tree
when it is taken.
"""

from __future__ import annotations

from leanworker.actors.core.config import RestartPolicy
from leanworker.actors.core.process_tree import sample_tree_mib
from leanworker.actors.slot.channel import Terminal
from leanworker.actors.slot.endings import Ending
from leanworker.actors.slot.memory import MemorySampler, SampleCallback
from leanworker.actors.slot.memory_ceilings import MemoryCeilings


class MemoryWatch:
    """The sampler's watch on one slot's current process tree, its ceilings and its last sample."""

    def __init__(self, sampler: MemorySampler | None, policy: RestartPolicy) -> None:
        self.sampler = sampler
        self.ceilings = MemoryCeilings(policy)
        self.last: float | None = None

    def watch(self, pid: int, report: SampleCallback) -> None:
        """Sample ``pid``'s tree from now on (instead of the last generation's), each sample to ``report``."""
        if self.sampler is not None:
            self.sampler.watch(self, pid, report)

    def unwatch(self) -> None:
        if self.sampler is not None:
            self.sampler.unwatch(self)

    def sample(self, rss_mib: float | None, cycle_pending: bool,
               serving: bool) -> tuple[str, Terminal | None, Ending] | None:
        """A sample arrived: keep it, and judge it (:meth:`MemoryCeilings.judge`)."""
        self.last = rss_mib
        return self.ceilings.judge(rss_mib, cycle_pending, serving)

    def rss(self, pid: int | None) -> float | None:
        """What a snapshot shows: the last sample, or without a sampler one taken now (None: unavailable)."""
        if self.sampler is not None:
            return self.last
        return sample_tree_mib(pid) if pid else None
