"""Telling an actor that may have stopped (pykka raises for a dead one; a stopped actor needs no news)."""

from __future__ import annotations

from typing import Any

import pykka


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
