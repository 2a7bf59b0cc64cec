"""Why a generation ends, as a pure policy the supervisor consults (docs/semantics.md, Requests and outcomes;
Cancellation ladder; Restarts, intensity and cycling; tests drive it without processes).

The restart reasons that ``snapshot().restarts`` counts are named here, and so is what each event means for the
generation and for the request in flight: a ``done`` that needs a decision, a request or cancel deadline that fired,
a protocol violation, a failed start-up, a process exit (a memory ceiling passed: memory_ceilings.py). An
:class:`Ending` says how the generation ends: *unplanned* ends are restarts and kill the process group at once;
*planned* ones are cycles, do not count toward restart intensity, and stop the process with the shutdown ladder once
no request is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

from leanworker.actors.slot.channel import CANCELLED, PROTOCOL, TIMEOUT, RequestChannel, Terminal
from leanworker.errors import Cancelled, RequestTimeout, RestartLimitExceeded, WorkerCrashed

# The restart reasons, by what ended the generation (``snapshot().restarts`` counts them).
CRASH = "crash"  # the process exited with no end decided for it
TIMEOUT_REASON = "timeout"
CANCEL_REASON = "cancel"  # a cancel ignored past cancel_grace
PROTOCOL_REASON = "protocol"
STARTUP = "startup"
MEMORY_HARD = "memory_hard"
MAX_REQUESTS = "max_requests"
IDLE = "idle"
MEMORY_SOFT = "memory_soft"
CYCLE = "cycle"  # asked for: ``worker.cycle()``
SHUTDOWN_REASON = "shutdown"  # not a restart: the slot is closing


@dataclass(frozen=True)
class Ending:
    """How a generation ends: its restart ``reason``, whether it is a ``planned`` cycle, and whether its process
    group is killed at once (``kill``) or stopped with the shutdown ladder."""

    reason: str
    planned: bool
    kill: bool

    @classmethod
    def restart(cls, reason: str) -> Ending:
        """An unplanned end: a restart, counted toward intensity; the process group is killed."""
        return cls(reason, planned=False, kill=True)

    @classmethod
    def cycle(cls, reason: str) -> Ending:
        """A planned end: a cycle, not counted toward intensity; the process is stopped with the shutdown ladder."""
        return cls(reason, planned=True, kill=False)


def after_done(outcome: str, gate_open: bool, cycle_pending: str | None) -> Ending | None:
    """What a request's ``done`` that reached the supervisor means for the generation: a protocol outcome (rows were
    lost, the worker cannot be trusted) is a restart; a gate that closed itself as the request ended (its request
    budget spent, or a cycle was pending) is a cycle for that reason; else nothing (the idle clock starts)."""
    if outcome == PROTOCOL:
        return Ending.restart(PROTOCOL_REASON)
    if not gate_open:
        return Ending.cycle(cycle_pending or MAX_REQUESTS)
    return None


def after_deadline(kind: str, request_id: int, inflight: RequestChannel | None, where: str,
                   cancel_grace: float) -> tuple[Terminal, Ending] | None:
    """The terminal and the end a deadline of ``kind`` for ``request_id`` calls for (``inflight``: the request in
    flight; ``where``: the slot and generation, as ``name/number``): past its timeout, ``RequestTimeout`` and a
    restart; past ``cancel_grace`` after a cancel, ``Cancelled`` and a restart. None for another kind (the start-up's
    deadlines are the generation's: generation.py). The terminal ends the request only if it is still in flight."""
    command = inflight.command if inflight is not None and inflight.request_id == request_id else "?"
    label = f"{command!r} (request {where}/{request_id})"
    if kind == "request":
        timeout = inflight.timeout if inflight is not None and inflight.timeout is not None else 0.0
        error = RequestTimeout(f"{label} did not finish within {timeout:g} s; the worker was killed")
        return Terminal(TIMEOUT, error=error), Ending.restart(TIMEOUT_REASON)
    if kind == "cancel":
        cancelled = Cancelled(f"{label} ignored cancel for {cancel_grace:g} s; the worker was killed")
        return Terminal(CANCELLED, error=cancelled), Ending.restart(CANCEL_REASON)
    return None


def after_violation() -> Ending:
    """A frame that breaks the protocol once the generation is ready: the byte stream cannot be trusted."""
    return Ending.restart(PROTOCOL_REASON)


def after_startup_failure() -> Ending:
    """A start-up step failed (a broken hello, a missed deadline, a failed session open)."""
    return Ending.restart(STARTUP)


def exit_reason(ending: str | None) -> str:
    """The restart reason of a generation whose process exited: the end decided for it, else a crash."""
    return ending or CRASH


def crash_error(exit_code: int | None, signal: int | None, stderr_tail: str) -> WorkerCrashed:
    """What a request in flight (or a start-up) ends with when the process exits under it."""
    if signal is not None:
        said = f"worker was killed by signal {signal}"
    elif exit_code is not None:
        said = f"worker exited with code {exit_code}"
    else:
        said = "worker could not be started"
    return WorkerCrashed(said, exit_code=exit_code, signal=signal, stderr_tail=stderr_tail)


TRIED_AGAIN = "; it may be tried again in "
"""How an exhausted slot's error ends, before the seconds left (true when it is raised): a pool's cool-down, whose
refusals say their own seconds left, cuts it off."""


def exhausted_error(name: str, restarts: int, window: float, limit: int, retry_after: float) -> RestartLimitExceeded:
    """What requests of an exhausted slot fail with until ``retry_after`` seconds have passed."""
    return RestartLimitExceeded(f"worker {name} restarted {restarts} times in {window:g} s (limit {limit})"
                                f"{TRIED_AGAIN}{retry_after:.1f} s", retry_after=retry_after)
