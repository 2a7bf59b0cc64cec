"""The supervisor's answers to its callers: readiness, snapshots and the shutdown ladder's start. A mixin of
SupervisorActor (supervisor.py)."""

from __future__ import annotations

from concurrent.futures import Future

from leanworker.actors.core.process_tree import sample_tree_mib
from leanworker.actors.core.results import ShutdownReport, WorkerSnapshot
from leanworker.actors.slot.channel import SHUTDOWN, Terminal
from leanworker.actors.slot.messages import AwaitReady, Shutdown, Stop, TakeSnapshot
from leanworker.actors.slot.supervisor_base import SupervisorBase


class ControlHandlers(SupervisorBase):
    """AwaitReady, TakeSnapshot and Shutdown."""

    # -- readiness, snapshots, shutdown --------------------------------------------------------------------------

    def _on_await_ready(self, message: AwaitReady) -> Future[int]:
        future: Future[int] = Future()
        if self.state == "ready" and self.gen is not None:
            future.set_result(self.gen.number)
        elif self.state in ("failed", "exhausted") and self.failure is not None:
            future.set_exception(self.failure)
        elif self.closing is not None:
            future.set_exception(self.closed_error(f"worker {self.name} is shut down"))
        else:
            self.ready_waiters.append(future)
        return future

    def _on_snapshot(self, message: TakeSnapshot) -> WorkerSnapshot:
        gen = self.gen
        pid = gen.pid if gen is not None and not gen.exited else None
        rss = self.last_rss if self.sampler is not None else (sample_tree_mib(pid) if pid else None)
        state = self.state
        if state == "ready":
            state = "busy" if self.gate.inflight is not None else "idle"
        return WorkerSnapshot(
            state=state,
            generation=self.generation,
            pid=pid,
            requests_ok=self.gate.requests_ok,
            requests_failed=self.gate.requests_failed,
            requests_this_generation=self.gate.served if gen is not None and gen.phase == "ready" else 0,
            rows_delivered=self.counters.rows_delivered,
            restarts=dict(self.restarts),
            rss_mib=rss,
            stale_frames_dropped=self.counters.stale_frames_dropped,
            backpressure_waits=self.counters.backpressure_waits,
            sessions_opened=self.sessions_opened,
            events_dropped=self.counters.events_dropped,
            answers_read_by_caller=self.counters.answers_read_by_caller,
        )

    def _on_shutdown(self, message: Shutdown) -> None:
        if self.closing is not None:
            self.closing.add_done_callback(lambda done: _copy_future(done, message.reply))
            return
        self.closing = message.reply
        closed = self.closed_error(f"worker {self.name} was shut down")
        with self.gate.lock:
            self.gate.close_locked()
        self._fail_inflight(Terminal(SHUTDOWN, error=closed))
        self._fail_waiters(closed)
        gen = self.gen
        self.state = "stopping"
        if self.sampler is not None:
            self.sampler.unwatch(self)
        if gen is None or gen.exited:
            number = gen.number if gen is not None else 0
            message.reply.set_result(ShutdownReport("already_exited", number, None, None, 0.0))
            self.state = "closed"
            return
        self._cancel_gen_timer(gen)
        gen.ending = gen.ending or "shutdown"
        if not self._tell_child(gen, Stop(message.reply, graceful=True)):
            self._answer_at_exit = True


def _copy_future(source: Future[ShutdownReport], target: Future[ShutdownReport]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
