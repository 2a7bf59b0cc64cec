"""The service's requests in flight, and the drain that ends it: SIGTERM or Ctrl-C.

The drain: the listening sockets are closed first (by the server: no new connection), then the service *drains*:
a request arriving on a connection that is still open is refused with a typed 503; the requests in flight go on
for the grace period. Those that have not finished by then are *stopped*: every item still waiting or running is
answered ``unchecked`` ("the service is stopping"), so each such request answers at once (the Kimina endpoints with
503, the native stream with those lines), and the workers are stopped after. Nothing admitted is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("leanworker.serve")

AFTER_STOP = 10.0  # seconds the stopped requests have to write their answers before the server closes them


class Lifecycle:
    """Counts requests in flight (one event loop calls it) and runs the drain."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining = False  # new requests are refused (503)
        self.stopping = False  # the grace has passed: what is left is being stopped
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        """A request has come in (call :meth:`leave` when its answer is written)."""
        self.in_flight += 1
        if self._idle is not None:
            self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0 and self._idle is not None:
            self._idle.set()

    async def _until_idle(self, seconds: float) -> bool:
        """Wait until no request is in flight, at most ``seconds``; True if none is left."""
        if self._idle is None:
            self._idle = asyncio.Event()
        if self.in_flight <= 0:
            self._idle.set()
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self._idle.wait()
        except TimeoutError:
            return self.in_flight <= 0
        return True

    async def drain(self, grace: float, stop: Callable[[], Awaitable[None]]) -> None:
        """Refuse new requests, let those in flight finish for ``grace`` seconds, then ``stop()`` the work left
        (its items answered as stopped) and wait a little for those answers to be written."""
        self.draining = True
        started = time.monotonic()
        log.info("draining: %d requests in flight, %g s of grace", self.in_flight, grace)
        if await self._until_idle(grace):
            log.info("drained in %.1f s", time.monotonic() - started)
            return
        self.stopping = True
        log.warning("grace of %g s passed with %d requests in flight: stopping their items", grace, self.in_flight)
        await stop()
        if not await self._until_idle(AFTER_STOP):
            log.warning("%d requests still in flight after the stop: the server closes them", self.in_flight)
