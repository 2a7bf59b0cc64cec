"""Items of concurrent requests grouped onto warm REPLs: one :class:`Checker` call per (header, timeout) group, at
most ``capacity`` calls at once, oldest item first.

A request of one snippet costs one lease and one call round trip when it runs alone; under load, the items that
arrived while every REPL was busy go together in the next call of their header, so the per-call cost is shared and
the header is never sent again (the REPL imported it once). A call takes at most ``max_batch`` items, and no more
than its share when several REPLs are free (:func:`batch_size`), so a burst is spread over every REPL.

Tracing: a call runs in the context (``contextvars``) of the request whose item is first in it, so the pool's spans
of that call are children of that HTTP request's span.

Fairness: the group whose oldest waiting item is oldest goes first; inside a group, a call takes items round robin
over the requests (*owners*) that wait in it (fair_queue.py), so a request of ten thousand items delays a one-item
request by one item per call, not by ten thousand.

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
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        while len(self._running) < self.checker.capacity:
            for key in list(self._groups):  # withdrawn items never reach a call
                self._groups[key].prune()
                if not self._groups[key].queues:
                    del self._groups[key]
            live = [(oldest, key) for key, group in self._groups.items() if (oldest := group.oldest()) is not None]
            if not live:
                return
            _, key = min(live)
            group = self._groups[key]
            batch = group.take(batch_size(len(group), self.checker.capacity - len(self._running), self.max_batch))
            if not group.queues:
                del self._groups[key]
            if batch:
                task = asyncio.get_running_loop().create_task(self._call(key, batch),
                                                              context=batch[0].context.copy())
                self._running.add(task)
                task.add_done_callback(self._call_ended)
                for waiting in batch:
                    waiting.future.add_done_callback(functools.partial(self._withdrawn, task, batch))

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
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
