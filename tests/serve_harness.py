"""The service in the test process: the app under uvicorn (the drain-aware server ``leanworker serve`` runs) on a
free port, in a thread, with an httpx client. Used by the service's in-process tests; the end-to-end ones start
``python -m leanworker.serve`` instead."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import uvicorn

from leanworker.serve import ServeConfig, create_app
from leanworker.serve.app import drain
from leanworker.serve.command import bind
from leanworker.serve.keys import KeyRing
from leanworker.serve.server import DrainingServer


class Running:
    """``create_app(config, checker, keys, **options)`` under uvicorn on a free port, in a thread of the test."""

    def __init__(self, config: ServeConfig, checker: Any, keys: KeyRing | None = None, **options: Any) -> None:
        self.checker = checker
        sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.app = create_app(config, checker, keys, **options)
        app = self.app
        self.server = DrainingServer(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                                                    timeout_graceful_shutdown=5),
                                     lambda: drain(app, config.grace))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.01)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def state(self) -> Any:
        return self.app.state.serve

    def close(self) -> None:
        """Stop as SIGTERM does (drain, then the lifespan's shutdown) and wait for the thread."""
        self.client.close()
        self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive(), "the server did not stop"

    def wait_holding(self, count: int) -> None:
        for _ in range(count):
            assert self.checker.holding.acquire(timeout=10), "the held item never reached the checker"
