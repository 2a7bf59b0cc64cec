"""``DrainingServer``: uvicorn's server, whose shutdown drains the service first (serve/lifecycle.py).

On SIGTERM or Ctrl-C uvicorn leaves its main loop and shuts down: this one closes the listening sockets (no new
connection), then awaits the app's drain (new requests on open connections get 503, those in flight finish within
the grace, the rest are answered as stopped), then lets uvicorn close the connections, now idle, and run the
lifespan's shutdown, which stops every worker. A second Ctrl-C still forces the exit, as uvicorn's does.

:meth:`DrainingServer.for_app` is how ``leanworker serve`` (and the tests) run an app: connections speak
serve/connections.py's protocol, bounded in time and size before a request reaches the app.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import uvicorn
from starlette.applications import Starlette

from leanworker.serve.config import ServeConfig
from leanworker.serve.connections import GuardedHttpProtocol

AFTER_DRAIN = 5  # seconds uvicorn waits, after the drain, for answers still being written


class DrainingServer(uvicorn.Server):
    """A ``uvicorn.Server`` that awaits ``drain()`` between closing its sockets and closing its connections."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._drain = drain

    @classmethod
    def for_app(cls, app: Starlette, config: ServeConfig, log_level: str = "info") -> DrainingServer:
        """The server of ``app`` (made by ``create_app(config, ...)``): its drain has ``config.grace``, each request
        head must arrive within ``config.client_timeout``, and a client must take some of a full write buffer within
        it."""
        from leanworker.serve.app import drain

        protocol = GuardedHttpProtocol.bounded(head_timeout=config.client_timeout, write_timeout=config.client_timeout)
        return cls(uvicorn.Config(app, http=protocol, log_config=None, log_level=log_level, access_log=False,
                                  lifespan="on", timeout_graceful_shutdown=AFTER_DRAIN),
                   lambda: drain(app, config.grace))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        if not self.force_exit:
            await self._drain()
        await super().shutdown(sockets)
