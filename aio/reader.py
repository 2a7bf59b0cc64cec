"""``ChannelReader``: one request's channel read from an event loop (``RequestChannel.poll`` and a
:class:`LoopWakeup`): the next item, or the terminal, awaited without blocking the loop."""

from __future__ import annotations

import asyncio
from typing import Any

from leanworker.actors.slot import END, RequestChannel, Terminal
from leanworker.aio.wakeup import LoopWakeup


class ChannelReader:
    """Awaits the items of one request's channel on the running loop."""

    __slots__ = ("channel", "_wakeup")

    def __init__(self, channel: RequestChannel, loop: asyncio.AbstractEventLoop) -> None:
        self.channel = channel
        self._wakeup = LoopWakeup(loop)

    async def next(self) -> tuple[Any, ...]:
        """The next item, as ``RequestChannel.get`` gives it."""
        channel, wakeup = self.channel, self._wakeup
        while True:
            item = channel.poll(wakeup)
            if item is not None:
                return item
            await wakeup.arm()

    async def terminal(self) -> Terminal:
        """Skip what is buffered and await the request's terminal."""
        while True:
            item = await self.next()
            if item[0] is END:
                terminal: Terminal = item[1]
                return terminal
