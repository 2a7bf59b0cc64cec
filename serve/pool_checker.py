"""``PoolChecker``: the service's :class:`~leanworker.serve.checker.Checker` over ``lw.AsyncWorkerPool``.

One pool of REPL workers (capability ``leanworker.lean:repl``), one session key per import header, so a header is
imported once per worker and every later call of that header runs on a warm REPL. A call leases a worker of its
header, streams the capability's ``check`` command and hands each row on as it arrives; nothing blocks the event
loop and no thread is started per call (the asyncio pool wakes the loop from the worker's reader thread).

Faults: a REPL that crashes or hangs on an item costs that item only (inside the worker). A worker that is lost
mid-call (its host crashed, wrote garbage, passed its memory ceiling, or went silent past the stall deadline) costs
no verdict: the unanswered items run again on a fresh worker, and only an item that loses its worker twice is
answered ``crashed`` (serve/losses.py). An item that cannot run at all (the pool is closing, the worker cannot
start, the slot restarts too often) is answered ``unchecked`` with the reason, never dropped.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import Any

import leanworker as lw
from leanworker.serve.checker import STOPPING, Row, unchecked
from leanworker.serve.losses import LossPolicy, lost_row

REPL_CAPABILITY = "leanworker.lean:repl"
STALL_MARGIN = 10.0  # seconds past an item's own deadlines before a silent worker is taken for lost


class _Stalled(Exception):
    """No row came within the stall deadline: the worker is taken for lost."""


class PoolChecker:
    """Checks bodies on ``workers`` REPL workers of an ``lw.AsyncWorkerPool`` (see the module docstring).

    ``repl`` is the REPL's command line; ``import_timeout`` bounds a header's import in a REPL (a session option of
    the capability); ``worker``/``restart`` configure the pool's workers (``RestartPolicy(max_requests=...)`` cycles
    a worker after that many calls); ``trace`` is the pool's tracer(s) (an ``OpenTelemetryTracer`` makes the pool's
    spans children of the HTTP request's). ``wrap_key`` rewrites each session key before use (a fault plan's
    ``plan.wrap``, in tests).
    """

    def __init__(self, repl: Sequence[str], *, workers: int = 2, workspace: str | None = None,
                 toolchain: str | None = None, simulated: bool = False, import_timeout: float = 600.0,
                 worker: lw.WorkerConfig | None = None, restart: lw.RestartPolicy | None = None,
                 trace: Any = None, wrap_key: Callable[[lw.SessionKey], lw.SessionKey] | None = None,
                 stall_margin: float = STALL_MARGIN, max_strikes: int = 2) -> None:
        self._repl = shlex.join(repl)
        self._workers = workers
        self._workspace = workspace
        self._toolchain = toolchain
        self._simulated = simulated
        self._import_timeout = import_timeout
        self._wrap_key = wrap_key
        self._stall_margin = stall_margin
        self._max_strikes = max_strikes
        self._config = lw.PoolConfig(max_workers=workers, queue_wait_timeout=3600.0,
                                     worker=worker or lw.WorkerConfig(request_timeout=None),
                                     restart=restart or lw.RestartPolicy(), trace=trace)
        self._keys: dict[tuple[str, ...], lw.SessionKey] = {}
        self._pool: lw.AsyncWorkerPool | None = None

    @property
    def capacity(self) -> int:
        return self._workers

    @property
    def identity(self) -> str:
        return f"repl={self._repl}; workspace={self._workspace}; toolchain={self._toolchain}"

    @property
    def simulated(self) -> bool:
        return self._simulated

    @property
    def pool(self) -> lw.AsyncWorkerPool | None:
        """The pool, once started (its metrics: ``leanworker.metrics.PoolCollector(checker.pool)``)."""
        return self._pool

    def _key(self, imports: tuple[str, ...]) -> lw.SessionKey:
        key = self._keys.get(imports)
        if key is None:
            key = lw.SessionKey(REPL_CAPABILITY, self._workspace, imports, None, self._toolchain,
                                (("repl", self._repl), ("import_timeout", self._import_timeout)))
            if self._wrap_key is not None:
                key = self._wrap_key(key)
            if len(self._keys) < 4096:  # a bounded memo: headers are few, but clients choose them
                self._keys[imports] = key
        return key

    def _stall_after(self, timeout: float | None) -> float | None:
        """Seconds without a row before the worker is taken for lost: an item's deadline, plus a fresh REPL's
        header import (after a crash the REPL is replaced mid-call), plus a margin. None without a deadline."""
        if timeout is None:
            return None
        return timeout + self._import_timeout + self._stall_margin

    async def start(self) -> None:
        self._pool = lw.AsyncWorkerPool(self._config)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    async def check(self, imports: tuple[str, ...], bodies: Sequence[str],
                    timeout: float | None) -> AsyncGenerator[tuple[int, Row], None]:
        unanswered = dict(enumerate(bodies))  # in the order sent: the capability answers in that order
        losses = LossPolicy(self._max_strikes)
        reason = STOPPING
        while unanswered:
            pool = self._pool
            if pool is None:
                break
            try:
                async with aclosing(self._call(pool, imports, unanswered, timeout)) as rows:
                    async for index, row in rows:
                        if unanswered.pop(index, None) is not None:
                            yield index, row
                reason = "the worker ended the call without answering this item"
                break  # every item answered (an item the worker skipped is never run twice)
            except (lw.WorkerLost, _Stalled) as exc:  # no verdict lost: the unanswered items run again
                reason = _describe(exc)
                given_up = losses.lost(list(unanswered))
                if given_up is not None:
                    del unanswered[given_up]
                    yield given_up, lost_row(losses.strikes[given_up], reason)
            except lw.CommandError as exc:
                if exc.code == "import_failed":  # the header does not import: that is every item's verdict
                    for index in list(unanswered):
                        del unanswered[index]
                        yield index, {"status": "error", "messages": [], "sorries": [], "elapsed_s": 0.0,
                                      "error": exc.message}
                reason = f"{exc.code}: {exc.message}"
                break
            except lw.WorkerClosed as exc:  # the pool is shutting down (PoolClosed), or the worker was stopped
                reason = f"{STOPPING} ({exc})"
                break
            except lw.LeanWorkerError as exc:  # cannot start, restarts too often, refused: no verdict possible
                reason = _describe(exc)
                break
        for index in list(unanswered):  # (not when the caller closed this generator: then nobody reads them)
            del unanswered[index]
            yield index, unchecked(reason)

    async def _call(self, pool: lw.AsyncWorkerPool, imports: tuple[str, ...], items: dict[int, str],
                    timeout: float | None) -> AsyncGenerator[tuple[int, Row], None]:
        """One ``check`` call of ``items`` on a leased worker of the header: ``(index, row)`` as rows arrive."""
        request = {"items": [{"id": index, "code": body} for index, body in items.items()], "timeout": timeout}
        stall = self._stall_after(timeout)
        async with pool.lease(self._key(imports)) as lease:
            async with lease.stream("check", request) as stream:
                rows = aiter(stream)
                while True:
                    try:
                        async with asyncio.timeout(stall):
                            row = await anext(rows)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        raise _Stalled(f"no answer from the worker for {stall:g} s") from None
                    payload = dict(row.payload)
                    yield payload.pop("id"), payload


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
