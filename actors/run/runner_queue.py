"""The plan's runner threads wait here for their next task: the schedule (schedule.py) decides, under one lock."""

from __future__ import annotations

from collections.abc import Iterable

from leanworker.actors.core import locks
from leanworker.actors.core.config import SessionKey
from leanworker.actors.run.schedule import Schedule, Task


class RunnerQueue:
    """A :class:`Schedule` shared by a run's runner threads: ``take`` waits while others run what may requeue."""

    def __init__(self, schedule: Schedule) -> None:
        self._schedule = schedule
        self._cond = locks.condition("schedule")

    def take(self, warm_key: SessionKey | None) -> Task | None:
        """The next task for a runner holding ``warm_key``; None when the run is over."""
        with self._cond:
            while True:
                task = self._schedule.take(warm_key)
                if task is not None or self._schedule.over:
                    return task
                self._cond.wait()

    def finished(self, task: Task, *, requeue: Iterable[Task] = ()) -> list[Task]:
        """``task`` is no longer running (see ``Schedule.finished``); the requeued tasks a cancel dropped."""
        with self._cond:
            dropped = self._schedule.finished(task, requeue=requeue)
            self._cond.notify_all()
            return dropped

    def cancel(self) -> list[Task]:
        with self._cond:
            left = self._schedule.cancel()
            self._cond.notify_all()
            return left

    def abandon(self) -> list[Task]:
        with self._cond:
            left = self._schedule.abandon()
            self._cond.notify_all()
            return left
