"""Fairness inside one group of the batcher (one header and timeout): the items wait in a queue per owner (the
request that submitted them), and a call takes them round robin over the owners, so a request of ten thousand items
delays a one-item request by one item per call, not by ten thousand (batcher.py). An item whose future is done
(answered, or withdrawn by its asker) is never taken."""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

from leanworker.serve.checker import Row


@dataclass
class Waiting:
    """One item submitted and not yet handed to a call; ``seq`` orders items by arrival across every queue."""

    seq: int
    body: str
    future: asyncio.Future[Row]
    context: contextvars.Context  # the submitting request's (its span is the parent of the call's)


class FairQueue:
    """The items waiting for one (header, timeout): a queue per owner, served round robin."""

    def __init__(self) -> None:
        self.queues: dict[Hashable, deque[Waiting]] = {}  # insertion order: the order owners are served in

    def add(self, owner: Hashable, waiting: Waiting) -> None:
        self.queues.setdefault(owner, deque()).append(waiting)

    def prune(self) -> None:
        """Drop withdrawn items (and owners left with nothing)."""
        for owner in list(self.queues):
            queue = self.queues[owner]
            while queue and queue[0].future.done():
                queue.popleft()
            if not queue:
                del self.queues[owner]

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.queues.values())

    def take(self, count: int, first: Hashable = None) -> list[Waiting]:
        """Up to ``count`` live items, one per owner in turn, beginning with ``first`` when it waits here; an owner
        served goes to the back."""
        if first in self.queues and next(iter(self.queues)) is not first:
            self.queues = {first: self.queues.pop(first), **self.queues}
        taken: list[Waiting] = []
        while len(taken) < count and self.queues:
            owner, queue = next(iter(self.queues.items()))
            del self.queues[owner]
            while queue and queue[0].future.done():
                queue.popleft()
            if queue:
                taken.append(queue.popleft())
            if queue:
                self.queues[owner] = queue
        return taken
