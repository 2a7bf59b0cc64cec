"""What a supervisor knows of one generation of its slot (its child actor, connection, process and phase), and of a
request that waits for a generation to become ready."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pykka

from leanworker.actors.core.timers import TimerHandle
from leanworker.actors.slot.channel import RequestChannel
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.messages import Submit
from leanworker.errors import LeanWorkerError


@dataclass
class Generation:
    """One generation of a slot: its child actor, its connection, its process and where its life stands."""

    number: int
    child: pykka.ActorRef[Any]
    connection: Connection
    started_at: float
    pid: int | None = None
    phase: str = "spawning"  # spawning, configuring, opening, ready, ending
    handshake: RequestChannel | None = None
    timer: TimerHandle | None = None
    ending: str | None = None  # why this generation is being ended (restart reason)
    planned: bool = False  # a planned cycle (does not count toward restart intensity)
    startup_error: LeanWorkerError | None = None
    exited: bool = False


@dataclass
class Pending:
    """A request that waits for the generation being started."""

    submit: Submit
    reply: Future[RequestChannel] = field(default_factory=Future)


SlotListener = Callable[[str, Any], None]
