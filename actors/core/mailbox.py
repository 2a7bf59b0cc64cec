"""Actors' mailboxes: telling an actor that may have stopped (pykka raises for a dead one; a stopped actor needs no
news), an inbox a finalizer may put into, and, where locks are checked, a check on every wait for an actor's answer
or for a new actor's thread to run.
"""

from __future__ import annotations

import queue
from typing import Any

import pykka

from leanworker.actors.core import locks


def tell_if_alive(actor: pykka.ActorRef[Any], message: Any) -> bool:
    """Send ``message`` unless ``actor`` has stopped (then nobody needs it). True if it was sent."""
    try:
        actor.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


def stop_if_alive(actor: pykka.ActorRef[Any]) -> None:
    """Ask ``actor`` to stop, without waiting, unless it has stopped already."""
    try:
        actor.stop(block=False)
    except pykka.ActorDeadError:
        pass


def reentrant_inbox() -> queue.SimpleQueue[Any]:
    """An actor's inbox whose ``put`` takes no Python-level lock: a ``__del__`` may tell the actor from any thread,
    even one interrupted inside a ``put`` or ``get`` of the same inbox (pykka's default ``queue.Queue`` takes a plain
    lock there, which such a thread would wait on forever). An actor class uses it as
    ``_create_actor_inbox = staticmethod(reentrant_inbox)``, pykka's hook for an actor type's inbox."""
    return queue.SimpleQueue()


def _check_waits_for_actors() -> None:
    """Make every wait on a pykka future (an ask, a proxy's answer) and every start of an actor (which waits for its
    thread to run) check the locks its thread holds first (:func:`locks.check_wait`): no lock held only for
    bookkeeping, the pool's first, is held across one."""
    plain_get = pykka.ThreadingFuture.get
    if getattr(plain_get, "checks_locks", False):
        return
    plain_start = pykka.ThreadingActor.start.__func__  # type: ignore[attr-defined]

    def get(self: pykka.ThreadingFuture[Any], *, timeout: float | None = None) -> Any:
        locks.check_wait("an actor's answer")
        return plain_get(self, timeout=timeout)

    def start(cls: type[pykka.ThreadingActor], *args: Any, **kwargs: Any) -> Any:
        locks.check_wait(f"a {cls.__name__}'s thread to start")
        return plain_start(cls, *args, **kwargs)

    get.checks_locks = True  # type: ignore[attr-defined]
    pykka.ThreadingFuture.get = get  # type: ignore[method-assign]
    pykka.ThreadingActor.start = classmethod(start)  # type: ignore[assignment,method-assign]


if locks.checking:
    _check_waits_for_actors()
