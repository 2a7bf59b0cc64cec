"""Which batch a free runner of a plan takes next (docs/semantics.md, Running a plan), as a pure policy: no lock and
no waiting (runner_queue.py makes the runners wait on it; tests drive it without threads).

With affinity, a runner that holds a warm worker of a key takes that key's next batch first; a runner that needs a
new key takes the key no other runner is on, biggest batch first. Without affinity (the round-robin baseline the
benchmarks compare against) runners take batches in plan order, whatever they hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from leanworker.actors.core.config import SessionKey
from leanworker.planner.plan import PlannedBatch


@dataclass
class Task:
    """The modules of ``batch`` still to run (all of them, or a part after bisection)."""

    batch: PlannedBatch
    modules: tuple[str, ...]
    attempts: int = 0  # failed attempts of this module set so far
    order: int = 0  # position in the plan, for the round-robin order


class Schedule:
    """Pending tasks by key, biggest first; which keys runners are on; when the run is over."""

    def __init__(self, tasks: Iterable[Task], *, affinity: bool = True) -> None:
        self._affinity = affinity
        self._pending: dict[SessionKey, list[Task]] = {}
        self._running: Counter[SessionKey] = Counter()
        self._cancelled = False
        for task in tasks:
            self._pending.setdefault(task.batch.key, []).append(task)
        for tasks_of_key in self._pending.values():
            tasks_of_key.sort(key=self._rank)

    def _rank(self, task: Task) -> tuple[int, int]:
        # pop() takes the last: the biggest with affinity, the earliest in the plan without
        return (len(task.modules), 0) if self._affinity else (-task.order, 0)

    @property
    def over(self) -> bool:
        """Nothing is left to take, now or later: cancelled, or nothing pending and nothing running."""
        return self._cancelled or (not self._pending and not self._running)

    def take(self, warm_key: SessionKey | None) -> Task | None:
        """The next task for a runner holding ``warm_key``, or None when there is none now (see :attr:`over`)."""
        if self._cancelled:
            return None
        key = self._choose(warm_key) if self._affinity else self._earliest()
        if key is None:
            return None
        task = self._pending[key].pop()
        if not self._pending[key]:
            del self._pending[key]
        self._running[key] += 1
        return task

    def _choose(self, warm_key: SessionKey | None) -> SessionKey | None:
        if not self._pending:
            return None
        if warm_key in self._pending:
            return warm_key
        free = [k for k in self._pending if not self._running[k]]
        candidates = free or list(self._pending)
        return max(candidates, key=lambda k: (len(self._pending[k][-1].modules), sum(
            len(t.modules) for t in self._pending[k])))

    def _earliest(self) -> SessionKey | None:
        if not self._pending:
            return None
        return min(self._pending, key=lambda k: self._pending[k][-1].order)

    def finished(self, task: Task, *, requeue: Iterable[Task] = ()) -> list[Task]:
        """``task`` is no longer running; ``requeue`` goes back to the pending tasks, unless the schedule is
        cancelled: then nobody would take them, and they are returned (cancelled) instead."""
        self._running[task.batch.key] -= 1
        if self._running[task.batch.key] <= 0:
            del self._running[task.batch.key]
        if self._cancelled:
            return list(requeue)
        for again in requeue:
            tasks = self._pending.setdefault(again.batch.key, [])
            tasks.append(again)
            tasks.sort(key=self._rank)
        return []

    def cancel(self) -> list[Task]:
        """End the schedule: every later ``take`` returns None; the pending tasks are returned."""
        self._cancelled = True
        return self.abandon()

    def abandon(self) -> list[Task]:
        """Take the pending tasks out (cancelled, or no runner is left to run them)."""
        left = [task for tasks in self._pending.values() for task in tasks]
        self._pending.clear()
        return left
