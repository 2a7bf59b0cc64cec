"""``DrainingServer``: uvicorn's server, whose shutdown drains the service first (serve/lifecycle.py).

On SIGTERM or Ctrl-C uvicorn leaves its main loop and shuts down: this one closes the listening sockets (no new
connection), then awaits the app's drain (new requests on open connections get 503, those in flight finish within
the grace, the rest are answered as stopped), then lets uvicorn close the connections, now idle, and run the
lifespan's shutdown, which stops every worker. A second Ctrl-C still forces the exit, as uvicorn's does.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import uvicorn


class DrainingServer(uvicorn.Server):
    """A ``uvicorn.Server`` that awaits ``drain()`` between closing its sockets and closing its connections."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._drain = drain

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        if not self.force_exit:
            await self._drain()
        await super().shutdown(sockets)
