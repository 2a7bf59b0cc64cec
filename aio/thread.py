"""``in_thread``: run one blocking call (a pool's shutdown, opening a run's journal) in a short-lived thread of its
own and await its result on the loop. The thread ends with the call, so nothing is left behind; the loop is woken
with ``call_soon_threadsafe``. The call runs in a copy of the awaiting task's context (``contextvars``), so a run
started this way is made under the caller's OpenTelemetry span."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_thread(function: Callable[[], T], name: str) -> T:
    """Await ``function()`` run in a new daemon thread. A cancelled await leaves the call running to its end."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[T] = loop.create_future()

    def deliver(value: T | None, error: BaseException | None) -> None:
        if result.done():
            return
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(value)  # type: ignore[arg-type]

    def target() -> None:
        try:
            value = function()
        except BaseException as exc:  # handed to the awaiting task, where it is raised
            try:
                loop.call_soon_threadsafe(deliver, None, exc)
            except RuntimeError:
                pass  # the loop is closed: nobody awaits it
            return
        try:
            loop.call_soon_threadsafe(deliver, value, None)
        except RuntimeError:
            pass

    context = contextvars.copy_context()  # the call sees the awaiting task's context, as with asyncio.to_thread
    threading.Thread(target=context.run, args=(target,), name=name, daemon=True).start()
    return await result
