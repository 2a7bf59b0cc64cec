"""The check service: a request's items in, their results out as they complete.

Per item, in order: the size limit (an item over it is answered ``unchecked`` with the reason, the others run), the
import header split off (lean/items.py: the REPL imports a header once and runs bodies on its env), the results
cache, single flight (an identical item already in flight is not checked twice), then the batcher, which groups
items of every request by header onto warm REPLs. Results leave with their positions moved back into the item's code
as given. This module knows nothing of HTTP; the endpoints shape what it yields.

Reading import headers is Python, microseconds a character: a request of long headers (a client's 64 MiB of them)
would stop the event loop for minutes. A request of more than ``INLINE_CHARS`` characters of code is therefore
split on one thread of the service's own (started once, never one a request), while the loop goes on; a request
whose client goes away stops its split at the next item, and so does every request once the service is stopped
(its items are then answered as stopped at once, not after the rest of their split).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from leanworker.lean.items import CheckItem, shift_row, split_item
from leanworker.planner import parse_import_header
from leanworker.serve.batcher import Batcher
from leanworker.serve.cache import ResultCache, cache_key
from leanworker.serve.checker import STOPPING, Checker, Row, unchecked
from leanworker.serve.flight import SingleFlight

INLINE_CHARS = 8 * 1024  # a request of at most this much code is split on the event loop (at most ~50 ms of it)


@dataclass(frozen=True)
class CheckOptions:
    """How a request wants its items checked. ``verdict_options`` are request options that change an answer (they
    are part of the cache key); ``use_cache`` False skips cache reads (``disable_cache``, ``--no-cache``)."""

    timeout: float | None
    use_cache: bool = True
    verdict_options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class ItemResult:
    """The result of the request's item at ``position``: ``row`` with positions in the item's code as given."""

    position: int
    row: Row
    cached: bool = False


Split = ItemResult | tuple[CheckItem, bytes]  # an item's result when it needs no REPL, else its split and cache key


class CheckService:
    """Checks items on a :class:`Checker`, with a results cache (optional) and single flight."""

    def __init__(self, checker: Checker, *, cache: ResultCache | None = None, max_item_bytes: int = 2**20,
                 max_batch: int = 16) -> None:
        self.checker = checker
        self.cache = cache
        self.max_item_bytes = max_item_bytes
        self.batcher = Batcher(checker, max_batch)
        self.flight = SingleFlight()
        self._splitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leanworker-serve-split")
        self._closed = False

    async def aclose(self) -> None:
        """Stop: what waits or runs is answered as stopped, and so is every item that comes after."""
        self._closed = True
        await self.batcher.aclose()
        self._splitter.shutdown(wait=False)

    async def check(self, items: Sequence[tuple[Any, str]], options: CheckOptions) -> AsyncIterator[ItemResult]:
        """Results of ``items`` (``(id, code)`` pairs), one per item, in the order they complete."""
        done: asyncio.Queue[ItemResult] = asyncio.Queue()
        joined: list[tuple[tuple[bytes, float | None], asyncio.Future[Row]]] = []
        try:
            for position, early in enumerate(await self._split_all(items, options)):
                if isinstance(early, tuple):
                    early = self._cached(position, *early, options)
                if isinstance(early, ItemResult):
                    done.put_nowait(early)
                    continue
                item, key = early
                flight_key = (key, options.timeout)
                future = self.flight.join(flight_key, functools.partial(self._start, key, item, options.timeout,
                                                                        done))
                joined.append((flight_key, future))
                future.add_done_callback(functools.partial(_deliver, done, position, item))
            for _ in range(len(items)):
                yield await done.get()
        finally:
            for flight_key, future in joined:
                self.flight.leave(flight_key, future)

    async def _split_all(self, items: Sequence[tuple[Any, str]], options: CheckOptions) -> list[Split]:
        """Every item split (module docstring: on the loop when the request is small, else on the split thread);
        every item answered as stopped once the service is closed (the drain's stop)."""
        splits = [] if self._closed else await self._split_each(items, options)
        if self._closed:
            return [ItemResult(position, unchecked(STOPPING)) for position in range(len(items))]
        return splits

    async def _split_each(self, items: Sequence[tuple[Any, str]], options: CheckOptions) -> list[Split]:
        if sum(len(code) for _, code in items) <= INLINE_CHARS:
            return [self._split(position, item_id, code, options) for position, (item_id, code) in enumerate(items)]
        stop = threading.Event()

        def split_all() -> list[Split]:
            splits = []
            for position, (item_id, code) in enumerate(items):
                if stop.is_set() or self._closed:  # the request is gone, or every item is answered as stopped
                    break
                splits.append(self._split(position, item_id, code, options))
            return splits

        try:
            return await asyncio.get_running_loop().run_in_executor(self._splitter, split_all)
        finally:
            stop.set()

    def _split(self, position: int, item_id: Any, code: str, options: CheckOptions) -> Split:
        """The item's result when it needs no REPL (too large, a bad header, a zero timeout), else its split and its
        cache key. Pure: it may run on the split thread."""
        size = len(code.encode("utf-8", "surrogatepass"))
        if size > self.max_item_bytes:
            return ItemResult(position, unchecked(f"the item's code is {size} bytes, over the limit of "
                                                  f"{self.max_item_bytes} bytes per item"))
        header = parse_import_header(code)
        if header.problems:
            return ItemResult(position, {"status": "error", "messages": [], "sorries": [], "elapsed_s": 0.0,
                                         "error": "the import header is not valid: " + "; ".join(header.problems)})
        item = split_item(item_id, code, header)
        if options.timeout is not None and options.timeout <= 0:
            return ItemResult(position, {"status": "timeout", "messages": [], "sorries": [], "elapsed_s": 0.0,
                                         "error": "a timeout of 0 seconds: not run"})
        return item, cache_key(self.checker.identity, item.imports, item.body, options.verdict_options)

    def _cached(self, position: int, item: CheckItem, key: bytes, options: CheckOptions) -> Split:
        """The item's result from the results cache, if it has one that fits the request's timeout."""
        if self.cache is not None and options.use_cache:
            row = self.cache.get(key)
            if row is not None and (options.timeout is None or float(row.get("elapsed_s", 0)) <= options.timeout):
                return ItemResult(position, shift_row(row, item), cached=True)
        return item, key

    def _start(self, key: bytes, item: CheckItem, timeout: float | None, owner: object) -> asyncio.Future[Row]:
        future = self.batcher.submit(item.imports, item.body, timeout, owner)  # the request's queue names it
        if self.cache is not None:
            future.add_done_callback(functools.partial(_store, self.cache, key))
        return future


def _store(cache: ResultCache, key: bytes, future: asyncio.Future[Row]) -> None:
    if not future.cancelled():
        cache.put(key, future.result())


def _deliver(done: asyncio.Queue[ItemResult], position: int, item: CheckItem, future: asyncio.Future[Row]) -> None:
    row = unchecked("withdrawn: every request that asked for it has gone") if future.cancelled() else future.result()
    done.put_nowait(ItemResult(position, shift_row(row, item)))
