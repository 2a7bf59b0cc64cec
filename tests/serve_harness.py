"""The service in the test process: the app under uvicorn (the drain-aware server ``leanworker serve`` runs) on a
free port, in a thread, with an httpx client; and a scripted checker whose calls a test holds and releases. Used by
the service's in-process tests; the end-to-end ones start ``python -m leanworker.serve`` instead."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from leanworker.serve import ServeConfig, create_app
from leanworker.serve.checker import Row
from leanworker.serve.command import bind
from leanworker.serve.keys import KeyRing
from leanworker.serve.server import DrainingServer

# The tests' clients speak plain HTTP to a service on this machine, but httpx builds a TLS context for every client it
# makes (a Client, or one call of httpx.post) and loads the CA bundle into it: ~20 ms of CPU each, and these tests make
# many (a thread each in the load tests). They share this one.
TLS = httpx.create_ssl_context()


class Running:
    """``create_app(config, checker, keys, **options)`` under uvicorn on a free port, in a thread of the test."""

    def __init__(self, config: ServeConfig, checker: Any, keys: KeyRing | None = None, **options: Any) -> None:
        self.checker = checker
        sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.app = create_app(config, checker, keys, **options)
        self.server = DrainingServer.for_app(self.app, config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.01)
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=TLS)

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


class ScriptedChecker:
    """A :class:`~leanworker.serve.checker.Checker` in the test process that answers by words in the body (``sorry``,
    ``ERROR``, ``BOOM`` raises); a body with ``HOLD`` waits until the test calls :meth:`release`, one with ``GATE``
    until it calls :meth:`open_gate`. Records every body it was asked to check and every call's timeout, and counts
    the calls cancelled."""

    capacity = 2
    identity = "scripted"
    simulated = True

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.timeouts: list[float | None] = []  # the timeout of every call
        self.loop: asyncio.AbstractEventLoop | None = None
        self._held: asyncio.Event | None = None
        self._gate: asyncio.Event | None = None
        self.holding = threading.Semaphore(0)  # one release per HOLD item that reached the checker
        self.cancelled = 0  # calls cancelled while they ran

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._held = asyncio.Event()
        self._gate = asyncio.Event()

    async def aclose(self) -> None:
        pass

    def release(self) -> None:
        assert self.loop is not None and self._held is not None
        self.loop.call_soon_threadsafe(self._held.set)

    def open_gate(self) -> None:
        assert self.loop is not None and self._gate is not None
        self.loop.call_soon_threadsafe(self._gate.set)

    async def check(self, imports: tuple[str, ...], bodies: Sequence[str],
                    timeout: float | None) -> AsyncGenerator[tuple[int, Row], None]:
        self.timeouts.append(timeout)
        try:
            async for answer in self._answers(bodies):
                yield answer
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def _answers(self, bodies: Sequence[str]) -> AsyncGenerator[tuple[int, Row], None]:
        for index, body in enumerate(bodies):
            self.bodies.append(body)
            if "BOOM" in body:
                raise RuntimeError("scripted failure")
            if "GATE" in body:
                assert self._gate is not None
                await self._gate.wait()
            if "HOLD" in body:
                self.holding.release()
                assert self._held is not None
                await self._held.wait()
            row: Row = {"status": "ok", "messages": [], "sorries": [], "elapsed_s": 0.001}
            if "sorry" in body:
                row.update(status="sorry", sorries=[{"pos": {"line": 1, "column": 0}, "goal": "⊢ True"}])
            if "ERROR" in body:
                row.update(status="error", messages=[{"severity": "error", "pos": {"line": 1, "column": 0},
                                                      "data": "unknown identifier 'ERROR'"}])
            yield index, row


def base_config(tmp_path: Path, **changes: Any) -> ServeConfig:
    return replace(ServeConfig(simulator=True, cache_path=tmp_path / "results.sqlite3", cache=False), **changes)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    running: list[Running] = []

    def start(keys: KeyRing | None = None, capacity: int = 2, **changes: Any) -> Running:
        checker = ScriptedChecker()
        checker.capacity = capacity
        server = Running(base_config(tmp_path, **changes), checker, keys)
        running.append(server)
        return server

    yield start
    for server in running:
        server.close()


def snippets(*codes: str) -> dict[str, Any]:
    return {"snippets": [{"id": f"s{i}", "code": code} for i, code in enumerate(codes)]}
