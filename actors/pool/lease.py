"""``Lease``: the caller's handle of the affine right to run commands on one warm worker, granted by the pool.

The handle is not an actor (starting and stopping a pykka ThreadingActor costs 180-240 us on a 2-core machine,
more than a warm command): it is an affine token (a lock and a few fields) on the direct data path, whose commands
go to the slot's admission gate. Its lifecycle belongs to its slot's lease actor (lease_actor.py). Every command
checks that it is unreleased and names the generation it was granted on, so a restarted worker answers
``StaleLease``; ``release()`` returns the capacity to the pool exactly once (a second call does nothing); a lease
collected unreleased returns it too, with a ``ResourceWarning``, through its slot's lease actor (the handle keeps
that actor's ref: the finalizer only tells it, without a lock or a wait).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

import pykka

from leanworker.actors.core import lifecycle, locks
from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.results import CapabilityMetadata, Diagnostic, DoctorReport, Progress, WorkerSnapshot
from leanworker.actors.slot import RequestChannel, RequestPort, RowStream
from leanworker.errors import PoolClosed, StaleLease, WorkerClosed

ReturnFunction = Callable[[int], "Future[None] | None"]
_new_lock = locks.lock_factory("lease")  # one lock per lease, made without a call of locks.lock each
RELEASE_WAIT = 10.0  # seconds a release waits for the pool to book it (it never waits on a worker)


class ReleaseFunction(Protocol):
    """Returns lease ``lease_id`` (the pool's book); without ``wait``, by a message only, through ``lease_actor``
    (the slot's) when one is given."""

    def __call__(self, lease_id: int, wait: bool = True, lease_actor: pykka.ActorRef[Any] | None = None) -> None: ...


def wait_booked(done: Future[None]) -> None:
    """Wait (at most ``RELEASE_WAIT``) until the actor that books a release has booked it."""
    try:
        done.result(RELEASE_WAIT)
    except FutureTimeout:
        pass  # booked later all the same; the caller need not wait for a pool that is shutting down


def _released_by_gc(release: ReleaseFunction, lease_actor: pykka.ActorRef[Any] | None, lease_id: int,
                    key: SessionKey, owner_pid: int) -> None:
    if lifecycle.current_pid() != owner_pid:
        return  # a forked child's copy: the worker belongs to the parent
    warnings.warn(f"lease {lease_id} on {key.capability} was garbage-collected without release(); its capacity "
                  "was returned", ResourceWarning, stacklevel=2)
    release(lease_id, False, lease_actor)  # never wait: the collector may run in any thread, an actor's too


class Lease:
    """The right to run commands on one warm worker; a context manager. Use ``pool.lease(key)``."""

    __slots__ = ("lease_id", "key", "generation", "_port", "_release", "_return", "_lease_actor", "_lock",
                 "_released", "_ended", "_stream", "_call", "__weakref__")

    def __init__(self, lease_id: int, key: SessionKey, port: RequestPort, generation: int,
                 release: ReleaseFunction, return_lease: ReturnFunction,
                 lease_actor: pykka.ActorRef[Any] | None = None) -> None:
        self.lease_id = lease_id
        self.key = key
        self.generation = generation
        self._port = port
        self._release = release
        self._return = return_lease
        self._lease_actor = lease_actor  # the slot's, which a lease collected unreleased is returned through
        self._lock = _new_lock()  # held while a command is admitted, and by release()
        self._released = False
        self._ended = False  # the slot's lease actor heard that this lease's generation ended
        self._stream: RowStream | None = None
        self._call: RequestChannel | None = None  # a call() in flight

    @property
    def valid(self) -> bool:
        """True while the lease is unreleased and its worker generation is still the current one."""
        return not self._released and not self._ended and self._port.gate.latest_generation == self.generation

    def _check(self) -> None:
        if self._released:
            raise StaleLease(f"lease {self.lease_id} was released")
        if self._ended or self._port.gate.latest_generation != self.generation:
            raise StaleLease(f"lease {self.lease_id}: worker generation {self.generation} has ended "
                             f"(now {self._port.gate.latest_generation}); release it and lease again")

    def _closed(self, exc: WorkerClosed) -> PoolClosed:
        return exc if isinstance(exc, PoolClosed) else PoolClosed(str(exc))

    def call(self, command: str, request: Any = None, timeout: float | None = None) -> Any:
        """Run one command on the leased worker and return its result (see ``Worker.call``).

        If another thread releases the lease meanwhile, the call is cancelled and raises ``Cancelled``.
        """
        with self._lock:
            if self._released or self._ended or self._port.gate.latest_generation != self.generation:
                self._check()
            try:
                channel = self._port.admit_call(command, request, timeout, expect_generation=self.generation)
            except WorkerClosed as exc:
                raise self._closed(exc) from None
            self._call = channel
        try:
            return self._port.finish_call(channel)
        except WorkerClosed as exc:
            raise self._closed(exc) from None
        finally:
            if self._call is channel:  # no lock: release() takes the field under it, and either order is safe
                self._call = None

    def stream(self, command: str, request: Any = None, timeout: float | None = None,
               on_diagnostic: Callable[[Diagnostic], None] | None = None,
               on_progress: Callable[[Progress], None] | None = None) -> RowStream:
        """Run one command and stream its rows (see ``Worker.stream``)."""
        with self._lock:
            self._check()
            try:
                stream = self._port.stream(command, request, timeout, on_diagnostic=on_diagnostic,
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
        with self._lock:
            self._check()
            try:
                return self._port.admit_nowait(command, request, timeout, streaming=streaming,
                                               expect_generation=self.generation)
            except WorkerClosed as exc:
                raise self._closed(exc) from None

    def cancel_request(self, request_id: int) -> None:
        """Ask the worker to stop request ``request_id`` (never waits)."""
        self._port.cancel(request_id)

    def settle_timeout(self) -> float:
        """How long a cancelled request may take to end (its grace, then a kill and a reap)."""
        return self._port.settle_timeout()

    def metadata(self) -> CapabilityMetadata:
        self._check()
        return self._port.metadata(expect_generation=self.generation)

    def doctor(self) -> DoctorReport:
        self._check()
        return self._port.doctor(expect_generation=self.generation)

    def snapshot(self) -> WorkerSnapshot:
        """The leased worker's snapshot."""
        if self._released:
            raise StaleLease(f"lease {self.lease_id} was released")
        return self._port.snapshot()

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
        with self._lock:
            if self._released:
                return None
            self._released = True
            self._stream = self._call = None
        if lifecycle.current_pid() != self._port.owner_pid:
            return None
        return self._return(self.lease_id)

    def __del__(self) -> None:
        # Cheaper than weakref.finalize on the warm path (a lease per request); runs at most once per object.
        if not getattr(self, "_released", True):
            self._released = True
            _released_by_gc(self._release, self._lease_actor, self.lease_id, self.key, self._port.owner_pid)

    def generation_ended(self) -> None:
        """The generation this lease was granted on ended (the slot's lease actor says so): it is stale from now."""
        self._ended = True

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        # release()'s body: a with block ends here, in one call on the warm path
        with self._lock:  # waits for a command being admitted in another thread
            if self._released:
                return
            self._released = True
            stream, self._stream = self._stream, None
            call, self._call = self._call, None
        if lifecycle.current_pid() != self._port.owner_pid:
            return
        if stream is not None and not stream.done:
            stream.close()
        if call is not None and call.terminal is None:
            self._port.cancel(call.request_id)
            call.wait_terminal(self._port.settle_timeout())
        done = self._return(self.lease_id)  # booked in place (None) when nobody waits: the warm path
        if done is not None:
            wait_booked(done)

    def __repr__(self) -> str:
        state = "released" if self._released else ("valid" if self.valid else "stale")
        return f"<Lease {self.lease_id} {self.key.capability} generation {self.generation} {state}>"
