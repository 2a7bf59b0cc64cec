"""Messages between the parent-side actors. Plain frozen dataclasses; actors dispatch on their type."""

from __future__ import annotations

import contextvars
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from leanworker.actors.slot.endings import CYCLE
from leanworker.errors import LeanWorkerError

if TYPE_CHECKING:
    from leanworker.actors.core.results import ShutdownReport
    from leanworker.actors.slot.channel import RequestChannel, Terminal


# Child -> supervisor


@dataclass(frozen=True)
class Spawned:
    generation: int
    pid: int


@dataclass(frozen=True)
class SpawnFailed:
    generation: int
    error: LeanWorkerError


@dataclass(frozen=True)
class HelloReceived:
    generation: int
    hello: dict[str, Any]


@dataclass(frozen=True)
class FrameViolation:
    generation: int
    error: LeanWorkerError


@dataclass(frozen=True)
class RequestDone:
    generation: int
    request_id: int
    terminal: Terminal


@dataclass(frozen=True)
class Exited:
    generation: int
    exit_code: int | None
    signal: int | None
    stderr_tail: str


# Supervisor -> child


@dataclass(frozen=True)
class Kill:
    reason: str


@dataclass(frozen=True)
class Stop:
    """Run the shutdown ladder; resolve ``reply`` with a ShutdownReport. ``at_once``: the worker has no session to
    close (it is starting, or opening one, and reads no frame until that ends): kill its tree at once."""

    reply: Future[ShutdownReport]
    graceful: bool = True
    at_once: bool = False


# Timers and samplers -> supervisor


@dataclass(frozen=True)
class Deadline:
    generation: int
    request_id: int
    kind: str  # startup, request, cancel


@dataclass(frozen=True)
class IdleCheck:
    generation: int
    served: int


@dataclass(frozen=True)
class MemorySample:
    generation: int
    rss_mib: float | None


# Callers -> supervisor


@dataclass(frozen=True)
class Submit:
    command: str
    request: Any
    streaming: bool
    timeout: float | None
    expect_generation: int | None = None
    # The caller's context (contextvars), for a request the supervisor admits on its behalf (the slow path): it is
    # admitted in that context, so that a tracer sees the caller's (its OpenTelemetry span, for one).
    context: contextvars.Context | None = field(default=None, compare=False, repr=False)

    def in_callers_context(self) -> Submit:
        """This request, carrying a copy of the calling thread's or task's context."""
        return replace(self, context=contextvars.copy_context())


@dataclass(frozen=True)
class SubmitLater:
    """A :class:`Submit` told, not asked: the channel (or the error) goes to ``reply``, for a caller that must not
    block (an event loop). A reply cancelled before the request is admitted leaves nothing running."""

    submit: Submit
    reply: Future[RequestChannel]


@dataclass(frozen=True)
class CancelRequest:
    request_id: int


@dataclass(frozen=True)
class AwaitReady:
    pass


@dataclass(frozen=True)
class Cycle:
    reason: str = CYCLE


@dataclass(frozen=True)
class TakeSnapshot:
    pass


@dataclass(frozen=True)
class Shutdown:
    reply: Future[ShutdownReport]
