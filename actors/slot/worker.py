"""``lw.Worker``: one supervised worker process serving one session key (its requests go through a RequestPort,
port.py)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pykka

from leanworker.actors.core import lifecycle
from leanworker.actors.core.config import RestartPolicy, SessionKey, WorkerConfig
from leanworker.actors.core.interruptible import future_result
from leanworker.actors.core.results import (
    CapabilityMetadata,
    Diagnostic,
    DoctorReport,
    Progress,
    ShutdownReport,
    WorkerSnapshot,
)
from leanworker.actors.core.timers import Scheduler
from leanworker.actors.core.tracing import TraceSink, runtime_sink
from leanworker.actors.core.waits import settle_bound
from leanworker.actors.slot.endings import CYCLE
from leanworker.actors.slot.memory import MemorySampler
from leanworker.actors.slot.messages import (
    AwaitReady,
    Cycle,
    Shutdown,
)
from leanworker.actors.slot.stream import RowStream
from leanworker.actors.slot.supervisor import SupervisorActor
from leanworker.errors import StartupTimeout

_names = itertools.count(1)



class Worker:
    """One supervised worker process with its session open. A context manager.

    ``Worker(key)`` starts the process, waits for its ``hello`` and opens the session; it raises the typed error
    when that fails (``StartupTimeout``, ``HandshakeError``, ``CommandError`` from the session open,
    ``WorkerCrashed``). After a crash, timeout or forced cancel the worker is replaced automatically (restart
    intensity permitting); requests are one at a time (a second concurrent one gets ``WorkerBusy``).
    """

    def __init__(self, key: SessionKey, config: WorkerConfig = WorkerConfig(),
                 restart: RestartPolicy = RestartPolicy(),
                 trace: TraceSink | Sequence[TraceSink] | None = None) -> None:
        self.key = key
        self.config = config
        self.restart = restart
        self.trace = runtime_sink(trace)  # one tracer, or several grouped; one that raises is kept from the runtime
        self._scheduler = Scheduler()
        self._sampler = MemorySampler() if restart.watches_memory else None
        self._closed: ShutdownReport | None = None
        # No wait between starting the supervisor and registering this worker for shutdown (a Ctrl-C there would
        # leave the supervisor and its process behind): the port comes without asking the new actor.
        self._port = SupervisorActor.start_port(key, config, restart, self.trace, self._scheduler, self._sampler,
                                                f"worker{next(_names)}")
        self._supervisor = self._port.supervisor
        lifecycle.register(self)
        try:
            wait = self._port.wait_timeout()
            try:
                future_result(self._port.ask(AwaitReady()), wait)
            except FutureTimeout:
                raise StartupTimeout(f"the worker was not ready within {wait:g} s") from None
        except BaseException:
            self.shutdown()
            raise

    def call(self, command: str, request: Any = None, timeout: float | None = None) -> Any:
        """Run one command and return its terminal result. Rows it emits are counted, not sent: use stream()."""
        return self._port.call(command, request, timeout)

    def stream(self, command: str, request: Any = None, timeout: float | None = None,
               on_diagnostic: Callable[[Diagnostic], None] | None = None,
               on_progress: Callable[[Progress], None] | None = None) -> RowStream:
        """Run one command and stream its rows live (see :class:`RowStream`)."""
        return self._port.stream(command, request, timeout, on_diagnostic=on_diagnostic, on_progress=on_progress)

    def metadata(self) -> CapabilityMetadata:
        return self._port.metadata()

    def doctor(self) -> DoctorReport:
        return self._port.doctor()

    def snapshot(self) -> WorkerSnapshot:
        return self._port.snapshot()

    def cycle(self, reason: str = CYCLE) -> None:
        """Replace the worker process with a fresh one once it is idle (a planned restart)."""
        self._port.ask(Cycle(reason))

    def wait_ready(self, timeout: float | None = None) -> int:
        """Wait until a generation is ready (after a restart or cycle); return its number."""
        ready: Future[int] = self._port.ask(AwaitReady())
        return future_result(ready, timeout if timeout is not None else self._port.wait_timeout())

    def shutdown(self, timeout: float | None = None) -> ShutdownReport:
        """Stop the worker (stop, SIGTERM, SIGKILL: whichever ends it) and reap it. Idempotent.

        In the child of an ``os.fork()`` it does nothing: the worker belongs to the parent.
        """
        if self._closed is not None:
            return self._closed
        if os.getpid() != self._port.owner_pid:
            return ShutdownReport("already_exited", 0, None, None, 0.0)
        reply: Future[ShutdownReport] = Future()
        config = self.config
        wait = timeout if timeout is not None else settle_bound(config, shutdown=True)
        try:
            self._supervisor.tell(Shutdown(reply))
            report = reply.result(wait)
        except pykka.ActorDeadError:
            report = ShutdownReport("already_exited", 0, None, None, 0.0)
        finally:
            try:
                self._supervisor.stop(block=True, timeout=wait)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
            self._scheduler.stop()
            if self._sampler is not None:
                self._sampler.stop()
            lifecycle.unregister(self)
        self._closed = report
        return report

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()
