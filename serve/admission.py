"""Admission: a bounded queue counted in items and bytes, and a per-key limit of items in flight.

A request is admitted whole or refused whole, before its first item runs; once admitted, every item is answered
(never dropped). An item's bytes are what it holds in the service while it waits and runs (:func:`item_cost`): its
code and a fixed share for its bookkeeping, so the byte bound bounds the memory admitted items hold. Each item gives its share back when its result is out. A request that could never fit (more items
or bytes than the bound) is refused as too large (413); one that does not fit now waits outside with ``429`` and a
``Retry-After`` estimated from the recent completion rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ANONYMOUS = "-"  # the key id of requests when no API keys are configured
ITEM_OVERHEAD = 2048  # bytes an admitted item holds besides its code (measured: ~2 KB each over 50,000 items)


def item_cost(code: str) -> int:
    """The bytes an admitted item is counted for: its code (in characters) and its bookkeeping."""
    return len(code) + ITEM_OVERHEAD


@dataclass(frozen=True)
class Refusal:
    """Why a request was not admitted: ``status`` 429 (retry after ``retry_after`` s) or 413 (never fits)."""

    status: int
    detail: str
    retry_after: int | None = None


@dataclass
class Ticket:
    """An admitted request's share of the bounds; give it back item by item, then :meth:`Admission.release`."""

    key_id: str
    items: int
    size: int
    released: bool = field(default=False)


class Admission:
    """The admission policy: pure counting, no I/O and no waiting (one event loop calls it)."""

    def __init__(self, max_items: int, max_bytes: int, max_items_per_key: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_items < 1 or max_bytes < 1 or (max_items_per_key is not None and max_items_per_key < 1):
            raise ValueError("admission bounds must be >= 1")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_items_per_key = max_items_per_key
        self._clock = clock
        self.items = 0
        self.size = 0
        self.per_key: dict[str, int] = {}
        self.refused = 0
        self._rate = 0.0  # items completed per second, smoothed
        self._rate_since = clock()
        self._rate_count = 0

    def admit(self, key_id: str, items: int, size: int) -> Ticket | Refusal:
        """A ticket for ``items`` items of ``size`` bytes in all, or the reason they cannot come in now."""
        too_large = self.never_fits(items, size)
        if too_large is not None:
            self.refused += 1
            return Refusal(413, too_large)
        held = self.per_key.get(key_id, 0)
        if self.max_items_per_key is not None and held + items > self.max_items_per_key:
            self.refused += 1
            return Refusal(429, f"this key has {held} items in flight; {items} more would pass its limit of "
                                f"{self.max_items_per_key}", self._retry_after(held + items - self.max_items_per_key))
        if self.items + items > self.max_items or self.size + size > self.max_bytes:
            self.refused += 1
            over = max(self.items + items - self.max_items, 1)
            return Refusal(429, f"the queue is full ({self.items} items queued or running, limit {self.max_items})",
                           self._retry_after(over))
        self.items += items
        self.size += size
        self.per_key[key_id] = held + items
        return Ticket(key_id, items, size)

    @property
    def most_items(self) -> int:
        """The most items one request may ever have admitted (the queue's bound, or a key's if lower)."""
        return min(self.max_items, self.max_items_per_key or self.max_items)

    def never_fits(self, items: int, size: int) -> str | None:
        """Why a request of ``items`` items and ``size`` bytes could never be admitted (413), or None."""
        if items > self.max_items:
            return f"{items} items are more than the service queues at once ({self.max_items}); split the request"
        if self.max_items_per_key is not None and items > self.max_items_per_key:
            return (f"{items} items are more than one key may have in flight ({self.max_items_per_key}); split the "
                    "request")
        if size > self.max_bytes:
            return (f"{size} bytes (code and {ITEM_OVERHEAD} bytes an item) are more than the service queues at once "
                    f"({self.max_bytes})")
        return None

    def item_done(self, ticket: Ticket, size: int) -> None:
        """One item of ``ticket`` (of ``size`` bytes) is answered."""
        if ticket.released or ticket.items <= 0:
            return
        size = min(size, ticket.size)
        ticket.items -= 1
        ticket.size -= size
        self._give_back(ticket.key_id, 1, size)
        self._count_completion()

    def release(self, ticket: Ticket) -> None:
        """Give back what ``ticket`` still holds (the request ended). Idempotent."""
        if ticket.released:
            return
        ticket.released = True
        self._give_back(ticket.key_id, ticket.items, ticket.size)
        ticket.items = ticket.size = 0

    def _give_back(self, key_id: str, items: int, size: int) -> None:
        self.items -= items
        self.size -= size
        left = self.per_key.get(key_id, 0) - items
        if left > 0:
            self.per_key[key_id] = left
        else:
            self.per_key.pop(key_id, None)

    def _count_completion(self) -> None:
        self._rate_count += 1
        now = self._clock()
        span = now - self._rate_since
        if span >= 1.0:
            current = self._rate_count / span
            self._rate = current if self._rate == 0 else 0.7 * self._rate + 0.3 * current
            self._rate_since, self._rate_count = now, 0

    def _retry_after(self, items_over: int) -> int:
        """Seconds until about ``items_over`` items complete at the recent rate, in [1, 60]."""
        if self._rate <= 0:
            return 1
        return max(1, min(60, math.ceil(items_over / self._rate)))
