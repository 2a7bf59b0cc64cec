"""``ResultStream``: the native endpoint's streamed answer, for a client that must keep reading it.

A client that stops reading a stream (its socket buffers fill, then every write waits) would hold its request's
items in the admission queue for ever: an item's share is given back when its line is written. Here a line that
cannot be written within ``write_timeout`` seconds ends the stream: what is left is withdrawn, the shares are given
back (the body's generator is closed), and the connection is closed (uvicorn logs that the answer was cut short).

``on_end`` runs once the stream is over, however it ended: also when its body never began (a head that could not be
written, a client gone before the first line), where closing the body's generator runs none of its code. What the
request holds (its admission ticket) is given back there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("leanworker.serve")


class _Stalled(Exception):
    """A write waited past its deadline."""


class ResultStream(StreamingResponse):
    """A ``StreamingResponse`` whose every write must finish within ``write_timeout`` seconds (module docstring)."""

    def __init__(self, content: Any, *, write_timeout: float, media_type: str,
                 on_end: Callable[[], None] | None = None) -> None:
        super().__init__(content, media_type=media_type)
        self.write_timeout = write_timeout
        self.on_end = on_end

    async def stream_response(self, send: Send) -> None:
        async def bounded(message: Message) -> None:
            try:
                async with asyncio.timeout(self.write_timeout):
                    await send(message)
            except TimeoutError:
                raise _Stalled from None

        await super().stream_response(bounded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except _Stalled:
            client = scope.get("client")
            log.warning("%s stopped reading its results for %g s: the stream is ended",
                        f"{client[0]}:{client[1]}" if client else "a client", self.write_timeout)
        finally:
            try:
                close = getattr(self.body_iterator, "aclose", None)
                if close is not None:
                    await close()
            finally:
                if self.on_end is not None:
                    self.on_end()
