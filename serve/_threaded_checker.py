"""TEMPORARY: a :class:`~leanworker.serve.checker.Checker` over the threaded ``lw.WorkerPool``, one executor thread
per call in flight, until ``lw.AsyncWorkerPool`` exists (issue 24, part 2 replaces this module).

It is real (worker processes, warm REPLs by header, per-item deadlines), so every endpoint is tested end to end
through it; what it is not: asyncio-native (a thread per call in flight, rows handed to the loop with
``call_soon_threadsafe``), and it has no drain of its own beyond the pool's shutdown.
"""

from __future__ import annotations

import asyncio
import shlex
import threading
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import leanworker as lw
from leanworker.serve.checker import Row, unchecked

REPL_CAPABILITY = "leanworker.lean:repl"
_DONE = object()


class TemporaryThreadedChecker:
    """Checks on a threaded ``lw.WorkerPool`` of ``workers`` REPL workers (TEMPORARY, see the module)."""

    def __init__(self, repl: Sequence[str], *, workers: int = 2, workspace: str | None = None,
                 toolchain: str | None = None, simulated: bool = False, import_timeout: float = 600.0,
                 worker: lw.WorkerConfig | None = None) -> None:
        self._repl = shlex.join(repl)
        self._workers = workers
        self._workspace = workspace
        self._toolchain = toolchain
        self._simulated = simulated
        self._import_timeout = import_timeout
        self._config = lw.PoolConfig(max_workers=workers, queue_wait_timeout=3600.0,
                                     worker=worker or lw.WorkerConfig(request_timeout=None))
        self._pool: lw.WorkerPool | None = None
        self._executor = ThreadPoolExecutor(max_workers=workers + 1, thread_name_prefix="leanworker-serve-temporary")

    @property
    def capacity(self) -> int:
        return self._workers

    @property
    def identity(self) -> str:
        return f"repl={self._repl}; workspace={self._workspace}; toolchain={self._toolchain}"

    @property
    def simulated(self) -> bool:
        return self._simulated

    def _key(self, imports: tuple[str, ...]) -> lw.SessionKey:
        return lw.SessionKey(REPL_CAPABILITY, self._workspace, imports, None, self._toolchain,
                             (("repl", self._repl), ("import_timeout", self._import_timeout)))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._pool = await loop.run_in_executor(self._executor, lw.WorkerPool, self._config)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        loop = asyncio.get_running_loop()
        if pool is not None:
            await loop.run_in_executor(self._executor, pool.shutdown)
        await loop.run_in_executor(None, self._executor.shutdown)

    async def check(self, imports: tuple[str, ...], bodies: Sequence[str],
                    timeout: float | None) -> AsyncGenerator[tuple[int, Row], None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                stop.set()

        loop.run_in_executor(self._executor, self._run, imports, list(bodies), timeout, put, stop)
        delivered = 0
        try:
            while delivered < len(bodies):
                item = await queue.get()
                if item is _DONE:
                    break
                delivered += 1
                yield item
        finally:
            stop.set()

    def _run(self, imports: tuple[str, ...], bodies: list[str], timeout: float | None,
             put: Any, stop: threading.Event) -> None:
        pending = dict(enumerate(bodies))
        reason = "the service is stopping"
        try:
            for _attempt in range(2):  # a worker lost mid-call: its unanswered items once more on a fresh one
                pool = self._pool
                if not pending or stop.is_set() or pool is None:
                    break
                request = {"items": [{"id": i, "code": body} for i, body in pending.items()], "timeout": timeout}
                call_timeout = None if timeout is None else len(pending) * (timeout + 10.0) + 30.0
                try:
                    with pool.lease(self._key(imports)) as lease:
                        with lease.stream("check", request, timeout=call_timeout) as stream:
                            for row in stream:
                                payload = dict(row.payload)
                                index = payload.pop("id")
                                if pending.pop(index, None) is not None:
                                    put((index, payload))
                                if stop.is_set():
                                    stream.cancel()
                                    break
                except lw.PoolClosed as exc:
                    reason = f"the service is stopping ({exc})"
                    break
                except lw.CommandError as exc:
                    if exc.code == "import_failed":  # the header does not import: a verdict on every item
                        for index in list(pending):
                            put((index, {"status": "error", "messages": [], "sorries": [], "elapsed_s": 0.0,
                                         "error": exc.message}))
                        pending.clear()
                    reason = f"{exc.code}: {exc.message}"
                    break
                except lw.WorkerLost as exc:  # the same items may succeed on a fresh worker: once more
                    reason = f"{type(exc).__name__}: {exc}"
                except lw.LeanWorkerError as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    break
        finally:
            for index in list(pending):
                put((index, unchecked(reason)))
            put(_DONE)
