"""``Lease``: the caller's handle of the affine right to run commands on one warm worker, granted by the pool.

The handle is not an actor (starting and stopping a pykka ThreadingActor costs 180-240 us on a 2-core machine,
more than a warm command): it is an affine token of three fields, its id, the generation it was granted on, and what
every lease of its slot shares (slot_leases.py: the port, the lease actor, the slot's lock, the gate state that fences
generations), on the direct data path, whose commands go to the slot's admission gate. Its lifecycle belongs to its
slot's lease actor (lease_actor.py). Every command checks that it is unreleased and that its generation is the slot's
live one (the gate's judgement: a restarted worker answers ``StaleLease``); ``release()`` returns the capacity to the
pool exactly once (a second call does nothing); a lease collected unreleased returns it too, with a
``ResourceWarning``, through its slot's lease actor (the finalizer only tells that actor, without a lock or a wait).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from leanworker.actors.core import lifecycle
from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.results import CapabilityMetadata, Diagnostic, DoctorReport, Progress, WorkerSnapshot
from leanworker.actors.pool.slot_leases import SlotLeases
from leanworker.actors.slot import RequestChannel, RowStream
from leanworker.errors import PoolClosed, StaleLease, WorkerClosed

RELEASE_WAIT = 10.0  # seconds a release waits for the pool to book it (it never waits on a worker)


def wait_booked(done: Future[None]) -> None:
    """Wait (at most ``RELEASE_WAIT``) until the actor that books a release has booked it."""
    try:
        done.result(RELEASE_WAIT)
    except FutureTimeout:
        pass  # booked later all the same; the caller need not wait for a pool that is shutting down


def _released_by_gc(slot: SlotLeases, lease_id: int) -> None:
    if lifecycle.current_pid() != slot.owner_pid:
        return  # a forked child's copy: the worker belongs to the parent
    warnings.warn(f"lease {lease_id} on {slot.key.capability} was garbage-collected without release(); its capacity "
                  "was returned", ResourceWarning, stacklevel=2)
    slot.release(lease_id, False, slot.lease_actor)  # never wait: the collector may run in any thread, an actor's too


class Lease:
    """The right to run commands on one warm worker; a context manager. Use ``pool.lease(key)``."""

    __slots__ = ("lease_id", "generation", "_slot", "_released", "_stream", "_call", "__weakref__")

    def __init__(self, lease_id: int, generation: int, slot: SlotLeases) -> None:
        self.lease_id = lease_id
        self.generation = generation
        self._slot = slot
        self._released = False
        self._stream: RowStream | None = None
        self._call: RequestChannel | None = None  # a call() in flight

    @property
    def key(self) -> SessionKey:
        """The session key of the leased worker."""
        return self._slot.key

    @property
    def valid(self) -> bool:
        """True while the lease is unreleased and its worker generation is still the current one."""
        return not self._released and self._slot.fence.live_generation == self.generation

    def _check_released(self) -> None:
        # before the slot's lock: a released lease never waits on the lock of the slot's next holder
        if self._released:
            raise StaleLease(f"lease {self.lease_id} was released")

    def _check(self) -> None:
        self._check_released()
        if self._slot.fence.live_generation != self.generation:
            raise StaleLease(f"lease {self.lease_id}: worker generation {self.generation} has ended "
                             f"(now {self._slot.fence.latest_generation}); release it and lease again")

    def _closed(self, exc: WorkerClosed) -> PoolClosed:
        return exc if isinstance(exc, PoolClosed) else PoolClosed(str(exc))

    def call(self, command: str, request: Any = None, timeout: float | None = None) -> Any:
        """Run one command on the leased worker and return its result (see ``Worker.call``).

        If another thread releases the lease meanwhile, the call is cancelled and raises ``Cancelled``.
        """
        slot = self._slot
        if self._released:
            self._check_released()
        with slot.lock:
            if self._released or slot.fence.live_generation != self.generation:
                self._check()
            port = slot.port
            try:
                channel = port.admit_call(command, request, timeout, expect_generation=self.generation)
            except WorkerClosed as exc:
                raise self._closed(exc) from None
            self._call = channel
        try:
            return port.finish_call(channel)
        except WorkerClosed as exc:
            raise self._closed(exc) from None
        finally:
            if self._call is channel:  # no lock: release() takes the field under it, and either order is safe
                self._call = None

    def stream(self, command: str, request: Any = None, timeout: float | None = None,
               on_diagnostic: Callable[[Diagnostic], None] | None = None,
               on_progress: Callable[[Progress], None] | None = None) -> RowStream:
        """Run one command and stream its rows (see ``Worker.stream``)."""
        self._check_released()
        with self._slot.lock:
            self._check()
            try:
                stream = self._slot.port.stream(command, request, timeout, on_diagnostic=on_diagnostic,
                                                on_progress=on_progress, expect_generation=self.generation)
            except WorkerClosed as exc:
                raise self._closed(exc) from None
            self._stream = stream
            return stream

    def admit_nowait(self, command: str, request: Any = None, timeout: float | None = None, *,
                     streaming: bool) -> RequestChannel | Future[RequestChannel]:
        """Admit one command without waiting, for a caller that must never block (``AsyncLease``): the request's
        channel, or a future of it (``RequestPort.admit_nowait``). The caller reads the channel with ``poll``,
        cancels with :meth:`cancel_request`, and waits for its terminal before :meth:`release`."""
        self._check_released()
        with self._slot.lock:
            self._check()
            try:
                return self._slot.port.admit_nowait(command, request, timeout, streaming=streaming,
                                                    expect_generation=self.generation)
            except WorkerClosed as exc:
                raise self._closed(exc) from None

    def cancel_request(self, request_id: int) -> None:
        """Ask the worker to stop request ``request_id`` (never waits)."""
        self._slot.port.cancel(request_id)

    def settle_timeout(self) -> float:
        """How long a cancelled request may take to end (its grace, then a kill and a reap)."""
        return self._slot.port.settle_timeout()

    def metadata(self) -> CapabilityMetadata:
        self._check()
        return self._slot.port.metadata(expect_generation=self.generation)

    def doctor(self) -> DoctorReport:
        self._check()
        return self._slot.port.doctor(expect_generation=self.generation)

    def snapshot(self) -> WorkerSnapshot:
        """The leased worker's snapshot."""
        self._check_released()
        return self._slot.port.snapshot()

    def release(self) -> None:
        """Return the worker to the pool. Idempotent: a second call does nothing.

        A command still running on the lease (a stream, or a call() in another thread) is cancelled first and
        waited for, so the next holder never gets a worker in the middle of a request. In the child of an
        ``os.fork()`` it only marks the lease released: the worker belongs to the parent.
        """
        self.__exit__(None, None, None)

    def release_nowait(self) -> Future[None] | None:
        """Release without ever waiting, for a caller that must not block (``AsyncLease``, which first waits, on its
        loop, for the command it ran to end). Idempotent. Returns a future resolved once the pool has booked the
        release, or None when there is nothing to wait for."""
        if self._mark_released() is None or lifecycle.current_pid() != self._slot.owner_pid:
            return None
        return self._slot.give_back(self.lease_id)

    def _mark_released(self) -> tuple[RowStream | None, RequestChannel | None] | None:
        """Mark the lease released, once: the command it may still have in flight, or None when it already was."""
        released = self._released  # before the slot's lock, which its next holder may hold (a local: mypy narrows)
        if released:
            return None
        with self._slot.lock:  # waits for a command being admitted in another thread
            if self._released:
                return None
            self._released = True
            in_flight = self._stream, self._call
            self._stream = self._call = None
        return in_flight

    def __del__(self) -> None:
        # Cheaper than weakref.finalize on the warm path (a lease per request); runs at most once per object.
        if not getattr(self, "_released", True):
            self._released = True
            _released_by_gc(self._slot, self.lease_id)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        # release()'s body: a with block ends here
        in_flight = self._mark_released()
        slot = self._slot
        if in_flight is None or lifecycle.current_pid() != slot.owner_pid:
            return
        stream, call = in_flight
        if stream is not None and not stream.done:
            stream.close()
        if call is not None and call.terminal is None:
            slot.port.cancel(call.request_id)
            call.wait_terminal(slot.port.settle_timeout())
        done = slot.give_back(self.lease_id)  # booked in place (None) when nobody waits: the warm path
        if done is not None:
            wait_booked(done)

    def __repr__(self) -> str:
        state = "released" if self._released else ("valid" if self.valid else "stale")
        return f"<Lease {self.lease_id} {self.key.capability} generation {self.generation} {state}>"
