"""Single flight: identical items in flight at once are checked once, and every request that asked gets the row."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from leanworker.serve.checker import Row


@dataclass
class _Flight:
    future: asyncio.Future[Row]
    waiters: int = 0


class SingleFlight:
    """One shared future per key while its check is in flight.

    ``join(key, start)`` returns the key's future, calling ``start()`` for it only when none is in flight; every
    ``join`` is matched by one ``leave(key, future)``. When the last waiter leaves before the row exists, the future is
    cancelled (which withdraws an item that has not reached a REPL yet). Waiters must not ``await`` the shared future
    itself (a cancelled waiter would cancel it for all): add a done callback instead.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        self.joined = 0  # joins that found a flight in progress (checks saved)

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: Hashable, start: Callable[[], asyncio.Future[Row]]) -> asyncio.Future[Row]:
        flight = self._flights.get(key)
        if flight is None or flight.future.done():  # done: its callbacks have not run yet; it is over all the same
            flight = _Flight(start())
            self._flights[key] = flight
            flight.future.add_done_callback(functools.partial(self._landed, key, flight))
        else:
            self.joined += 1
        flight.waiters += 1
        return flight.future

    def leave(self, key: Hashable, future: asyncio.Future[Row]) -> None:
        flight = self._flights.get(key)
        if flight is None or flight.future is not future:  # landed already (a later flight may use the key)
            return
        flight.waiters -= 1
        if flight.waiters <= 0 and not flight.future.done():
            flight.future.cancel()
            del self._flights[key]

    def _landed(self, key: Hashable, flight: _Flight, _future: asyncio.Future[Row]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
