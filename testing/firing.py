"""Firing a fault, for real, in this worker process (the wrapper capability that receives it: inworker.py): what
each kind of fault does, and the ``ctx`` a command with a fault directive gets, which fires it after the command's
k-th row:

- ``crash``: rows so far are flushed to the parent, then the process exits (``os._exit(code)``), SIGKILLs itself
  or aborts (SIGABRT);
- ``hang``: waits forever, seeing a cancel (outcome ``cancelled``, the worker stays warm) unless ``ignore_cancel``;
- ``memory``: grows by ``mib`` MiB of written pages (16 MiB a step), holds them ``hold`` seconds (None: until the
  request ends), then lets go and carries on; it stops growing early rather than take the machine's last memory
  (:func:`may_grow`: a typo such as ``mib=10**6`` without a hard limit must not bring the OOM killer onto
  whatever else runs there);
- ``garbage``: writes bytes that are not a frame on the protocol pipe, then waits (the parent kills the worker);
- ``slow``: sleeps ``seconds`` (a cancel ends it), then carries on;
- ``node_lost``: SIGKILLs its parent when that is a Ray node agent (then dies with it);
- ``session_fail`` (at the session open): fails it with ``CommandError("injected_session_fail")``.

Each fault is announced on the worker's stderr first (it shows in ``WorkerCrashed.stderr_tail``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import Any, NoReturn

from leanworker.actors.core.env import AGENT_PID_ENV
from leanworker.errors import CommandError
from leanworker.host.capability import Context
from leanworker.host.serve import protocol_output
from leanworker.testing.wire import Directive


GROW_STEP_MIB = 16
KEEP_FREE_MIB = 1024  # the least a memory fault leaves available, by default (or 5% of the machine, if more)
GARBAGE_BODY = b"\xff\xfe leanworker.testing: injected garbage, not CBOR"
GARBAGE = len(GARBAGE_BODY).to_bytes(4, "big") + GARBAGE_BODY  # a frame of the right length, of bytes that are no item


def announce(directive: Directive, where: str) -> None:
    params = ", ".join(f"{name}={value!r}" for name, value in directive.get("params", {}).items())
    print(f"leanworker.testing: injected {directive.get('kind')}({params}) {where}", file=sys.stderr, flush=True)


def flush_rows() -> None:
    """Send the rows emitted so far, so that the parent sees them before the fault (tentative rows)."""
    writer = protocol_output()
    if writer is not None:
        writer.flush()


def wait_forever(ctx: Context, honour_cancel: bool) -> NoReturn:
    while True:
        if honour_cancel:
            ctx.sleep(3600)
        else:
            time.sleep(3600)


def fire(directive: Directive, ctx: Context) -> None:
    """Do what ``directive`` says, in this process; returns only for faults after which the command carries on."""
    kind = directive["kind"]
    params: dict[str, Any] = directive.get("params", {})
    nth = directive.get("nth")
    announce(directive, f"at request {nth} (rows so far flushed)" if nth is not None else "(rows so far flushed)")
    flush_rows()
    if kind == "crash":
        how = params.get("how", "exit")
        sys.stderr.flush()
        if how == "signal":
            os.kill(os.getpid(), signal.SIGKILL)
        elif how == "abort":
            os.abort()
        os._exit(int(params.get("code", 3)))
    elif kind == "hang":
        wait_forever(ctx, honour_cancel=not params.get("ignore_cancel", False))
    elif kind == "memory":
        grow(ctx, int(params.get("mib", 256)), params.get("hold"), params.get("keep_free_mib"))
    elif kind == "garbage":
        writer = protocol_output()
        if writer is None:
            raise CommandError("injected_garbage", "no protocol pipe to write garbage on")
        writer.send_raw(GARBAGE)
        wait_forever(ctx, honour_cancel=True)
    elif kind == "slow":
        ctx.sleep(float(params.get("seconds", 1.0)))
    elif kind == "node_lost":
        lose_node_agent(ctx)
    else:
        raise CommandError("injected_unknown", f"leanworker.testing cannot fire a fault of kind {kind!r}")


def grow(ctx: Context, mib: int, hold: float | None, keep_free_mib: int | None = None) -> None:
    held: list[bytes] = []
    grown = 0
    try:
        while grown < mib:
            step = min(GROW_STEP_MIB, mib - grown)
            if not may_grow(step, meminfo_mib(), keep_free_mib):
                print(f"leanworker.testing: memory fault stopped growing at {grown} of {mib} MiB: the machine keeps "
                      "its last memory (keep_free_mib)", file=sys.stderr, flush=True)
                break
            held.append(b"\x02" * (step << 20))  # written pages
            grown += step
            ctx.sleep(0.01)
        if hold is None:
            wait_forever(ctx, honour_cancel=True)
        ctx.sleep(float(hold))
    finally:
        held.clear()


def may_grow(step_mib: int, memory: tuple[int, int] | None, keep_free_mib: int | None) -> bool:
    """Whether a memory fault may take ``step_mib`` more, the machine having ``memory`` (available, total MiB; None
    where unknown: grow) and keeping at least ``keep_free_mib`` available (None: 1 GiB or 5% of it, the larger)."""
    if memory is None:
        return True
    available, total = memory
    floor = keep_free_mib if keep_free_mib is not None else max(KEEP_FREE_MIB, total // 20)
    return available - step_mib >= floor


def meminfo_mib() -> tuple[int, int] | None:
    """The machine's available and total memory in MiB (``/proc/meminfo``), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = {line.split(":")[0]: int(line.split()[1]) for line in meminfo if line.count(" ") >= 1}
        return fields["MemAvailable"] >> 10, fields["MemTotal"] >> 10
    except (OSError, KeyError, ValueError, IndexError):
        return None


def lose_node_agent(ctx: Context) -> NoReturn:
    agent = os.environ.get(AGENT_PID_ENV)
    parent = os.getppid()
    if agent is None or agent != str(parent):
        raise CommandError("injected_node_lost", "node_lost fires only in a worker of a Ray node agent")
    os.kill(parent, signal.SIGKILL)  # the agent; its death takes this worker along (parent-death signal)
    wait_forever(ctx, honour_cancel=False)


class FaultingContext:
    """The ``ctx`` a command with a fault directive gets: the real one, which fires the fault after row k."""

    def __init__(self, ctx: Context, directive: Directive) -> None:
        self._ctx = ctx
        self._directive = directive
        self._after = int(directive.get("after_rows", 0))
        self._rows = 0
        self.fired = self._after == 0

    @property
    def session(self) -> Any:
        return self._ctx.session

    @property
    def request_id(self) -> int:
        return self._ctx.request_id

    @property
    def max_frame_bytes(self) -> int:
        return self._ctx.max_frame_bytes

    @property
    def cancelled(self) -> bool:
        return self._ctx.cancelled

    def check_cancelled(self) -> None:
        self._ctx.check_cancelled()

    def sleep(self, seconds: float) -> None:
        self._ctx.sleep(seconds)

    def row(self, stream: str, payload: Any) -> None:
        self._ctx.row(stream, payload)
        self._rows += 1
        if not self.fired and self._rows >= self._after:
            self.fire()

    def rows(self, stream: str, payloads: Iterable[Any]) -> None:
        for payload in payloads:
            self.row(stream, payload)

    def diagnostic(self, severity: str, code: str, message: str, data: Any = None) -> None:
        self._ctx.diagnostic(severity, code, message, data)

    def progress(self, phase: str, current: float, total: float | None = None) -> None:
        self._ctx.progress(phase, current, total)

    def fire(self) -> None:
        self.fired = True
        fire(self._directive, self._ctx)

    def __getattr__(self, name: str) -> Any:  # what a later host adds to its ctx reaches the command unchanged
        return getattr(self._ctx, name)
