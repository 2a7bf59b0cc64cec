"""Items of concurrent requests grouped onto warm REPLs: one :class:`Checker` call per (header, timeout) group, at
most ``capacity`` calls at once, the requests waiting served in turn.

A request of one snippet costs one lease and one call round trip when it runs alone; under load, the items that
arrived while every REPL was busy go together in the next call of their header, so the per-call cost is shared and
the header is never sent again (the REPL imported it once). A call takes at most ``max_batch`` items, and no more
than its share when several REPLs are free (:func:`batch_size`), so a burst is spread over every REPL.

Tracing: a call runs in the context (``contextvars``) of the request whose item is first in it, so the pool's spans
of that call are children of that HTTP request's span.

Fairness: the requests (*owners*) with items waiting are served round robin, whatever their headers: the next call
is for the group of the oldest waiting item of the request served longest ago (a request that comes joins the end
of the turn), which then goes to the end; inside that group, the call takes items round robin over the requests
that wait in it (fair_queue.py), starting with that one. So a request of ten thousand items delays a one-item
request by one call, not by ten thousand items, whether or not their headers are the same.

Withdrawal: an item whose every asker has gone (its future cancelled) never reaches a call; a call whose items have
all been withdrawn is *abandoned*: cancelled at once (the pool cancels the request in its worker, which stops a REPL
that hangs on it and stays warm), so a client that sends hanging code and goes away does not hold a REPL until the
item's deadline.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import logging
import math
from collections.abc import Hashable

from leanworker.serve.checker import STOPPING, Checker, Row, unchecked
from leanworker.serve.fair_queue import FairQueue, Waiting

log = logging.getLogger("leanworker.serve")

GroupKey = tuple[tuple[str, ...], float | None]  # (imports, timeout)


def batch_size(waiting: int, free_calls: int, max_batch: int) -> int:
    """How many of ``waiting`` items of one group the next call takes when ``free_calls`` calls may start."""
    if waiting <= 0:
        return 0
    return max(1, min(max_batch, math.ceil(waiting / max(1, free_calls))))


class Batcher:
    """Submits items to a :class:`Checker`, grouped by header and timeout, ``checker.capacity`` calls at most."""

    def __init__(self, checker: Checker, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.checker = checker
        self.max_batch = max_batch
        self._groups: dict[GroupKey, FairQueue] = {}
        self._turn: dict[Hashable, None] = {}  # owners with items waiting, in the order they are served next
        self._seq = itertools.count()
        self._running: set[asyncio.Task[None]] = set()
        self.calls = 0  # calls started (for figures and tests)
        self.abandoned = 0  # calls cancelled because every item in them was withdrawn

    @property
    def waiting(self) -> int:
        """Items submitted and not yet handed to a call."""
        return sum(len(group) for group in self._groups.values())

    def submit(self, imports: tuple[str, ...], body: str, timeout: float | None,
               owner: Hashable = None) -> asyncio.Future[Row]:
        """The item's row, when its call yields it. ``owner`` (the request) is what fairness is counted by. Cancel
        the future to withdraw an item not yet handed out."""
        future: asyncio.Future[Row] = asyncio.get_running_loop().create_future()
        waiting = Waiting(next(self._seq), body, future, contextvars.copy_context())
        self._groups.setdefault((imports, timeout), FairQueue()).add(owner, waiting)
        self._turn.setdefault(owner, None)
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        while len(self._running) < self.checker.capacity:
            for key in list(self._groups):  # withdrawn items never reach a call
                self._groups[key].prune()
                if not self._groups[key].queues:
                    del self._groups[key]
            turn = self._next_turn()
            if turn is None:
                return
            key, owner = turn
            group = self._groups[key]
            batch = group.take(batch_size(len(group), self.checker.capacity - len(self._running), self.max_batch),
                               first=owner)
            if not group.queues:
                del self._groups[key]
            if batch:
                task = asyncio.get_running_loop().create_task(self._call(key, batch),
                                                              context=batch[0].context.copy())
                self._running.add(task)
                task.add_done_callback(self._call_ended)
                for waiting in batch:
                    waiting.future.add_done_callback(functools.partial(self._withdrawn, task, batch))

    def _next_turn(self) -> tuple[GroupKey, Hashable] | None:
        """The group of the oldest waiting item of the owner whose turn it is, and that owner (sent to the end of
        the turn); owners with nothing left waiting leave the turn. None when nothing waits."""
        for owner in list(self._turn):
            del self._turn[owner]
            heads = [(queue[0].seq, key) for key, group in self._groups.items()
                     if (queue := group.queues.get(owner))]  # pruned: a queue's head is live
            if heads:
                self._turn[owner] = None
                return min(heads)[1], owner
        return None

    def _withdrawn(self, task: asyncio.Task[None], batch: list[Waiting], future: asyncio.Future[Row]) -> None:
        """An item of a running call is done: when it was withdrawn and nothing in the call is left to answer, the
        call is abandoned."""
        if future.cancelled() and not task.done() and all(w.future.done() for w in batch):
            self.abandoned += 1
            task.cancel()

    def _call_ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._dispatch()

    async def _call(self, key: GroupKey, batch: list[Waiting]) -> None:
        imports, timeout = key
        self.calls += 1
        reason = "the checker ended the call without an answer for this item"
        try:
            rows = self.checker.check(imports, [w.body for w in batch], timeout)
            try:
                async for index, row in rows:
                    if 0 <= index < len(batch) and not batch[index].future.done():
                        batch[index].future.set_result(row)
            finally:
                await rows.aclose()
        except asyncio.CancelledError:
            reason = STOPPING
            raise
        except Exception as exc:  # a bug below must cost these items a typed answer, never the service
            log.exception("check call failed")
            reason = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_result(unchecked(reason))

    async def aclose(self) -> None:
        """Answer what waits as unchecked and cancel the calls in flight."""
        for group in self._groups.values():
            for queue in group.queues.values():
                for waiting in queue:
                    if not waiting.future.done():
                        waiting.future.set_result(unchecked(STOPPING))
        self._groups.clear()
        self._turn.clear()
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
