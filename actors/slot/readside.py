"""The read side of one worker generation: who reads the worker's stdout, and when.

The reader thread reads and dispatches every frame while nobody else does. A caller waiting for the answer to its
own non-streaming call reads instead (:meth:`ReadSide.serve`): the answer then wakes the thread that wants it,
rather than a reader thread that must in turn wake the caller. Before it sleeps, that caller spins for
``spin_wait`` seconds of non-blocking reads, yielding the CPU between them: waking a sleeping thread costs more
than a short answer takes (measured in bench/pool.py), and the yield lets a worker that the kernel queued on this
CPU answer (pipe wakeups favour the waker's CPU).

One thread reads at a time: both hold ``lock`` while they read and dispatch, through one :class:`FrameReader`,
so frames are decoded and dispatched in order. While a caller reads, the fd is switched off in the reader thread's
epoll set (``epoll_ctl``, which wakes nobody), so the answer wakes only the caller. A caller hands back at end of
input and after a protocol violation (reported once, here); the reader thread alone ends the generation.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable

from leanworker.actors.core import locks
from leanworker.actors.slot.channel import RequestChannel
from leanworker.actors.slot.counters import Counters
from leanworker.errors import LeanWorkerError, ProtocolError
from leanworker.protocol.frames import FrameReader, Message, SpinWait

Dispatch = Callable[[Message, int], None]
Violation = Callable[[LeanWorkerError], None]

SLEEP_SLICE_MS = 50  # a sleeping caller looks at its channel at least this often (a terminal set by the supervisor)


class ReadSide:
    """Reads one generation's frames after its hello: in the reader thread, or in a caller awaiting its answer."""

    def __init__(self, reader: FrameReader, dispatch: Dispatch, violation: Violation, counters: Counters,
                 spin_wait: float) -> None:
        self.reader = reader
        self.fd = reader.fd
        self.dispatch = dispatch
        self.violation = violation
        self.counters = counters
        self.spin_wait = spin_wait
        self.lock = locks.lock("read_side")
        self.ended = False  # end of input seen or the protocol broken: nobody reads on
        self.closed = False  # the fd is about to be closed
        os.set_blocking(self.fd, False)
        self._epoll = select.epoll(1)
        self._epoll.register(self.fd, select.EPOLLIN)

    # -- the reader thread ----------------------------------------------------------------------------------------

    def run(self) -> None:
        """The reader thread: read and dispatch until end of input. A violation raises :class:`LeanWorkerError`."""
        while True:
            self._epoll.poll()
            with self.lock:
                if self.ended:
                    return  # a caller saw a violation and reported it
                try:
                    batch = self.reader.read_available()
                    if batch is None:
                        self.ended = True
                        return
                    for message, size in batch:
                        self.dispatch(message, size)
                except BaseException:
                    self.ended = True  # the stream cannot be read on: the reader thread reports and reaps
                    raise

    def close(self) -> None:
        """Stop all reading before the fd is closed; waits for a caller that is reading to let go."""
        with self.lock:
            self.ended = self.closed = True
            self._epoll.close()

    # -- a caller awaiting its answer ---------------------------------------------------------------------------

    def serve(self, channel: RequestChannel) -> None:
        """Read and dispatch frames in this thread until ``channel`` has its terminal, or hand back early.

        Hands back at once when the reader thread is reading (the caller then waits on the channel as before),
        at end of input, and after a violation, which is reported here and ends the generation.
        """
        if channel.terminal is not None or not self.lock.acquire(blocking=False):
            return
        try:
            if self.ended:
                return
            self._epoll.modify(self.fd, 0)
            try:
                self._serve_locked(channel)
            finally:
                self._epoll.modify(self.fd, select.EPOLLIN)
        finally:
            self.lock.release()

    def _serve_locked(self, channel: RequestChannel) -> None:
        reader, dispatch = self.reader, self.dispatch
        waiter = SpinWait(self.fd, self.spin_wait)
        answered = False  # the terminal came from a frame this thread dispatched
        reading = False  # from a read that may take bytes off the pipe to the end of their dispatch
        try:
            while channel.terminal is None:
                reading = True
                batch = reader.read_available()
                if batch is None:
                    return  # end of input: the reader thread reaps and reports
                for message, size in batch:
                    dispatch(message, size)
                reading = False
                answered = bool(batch)
                if not batch:
                    waiter.wait(SLEEP_SLICE_MS)
            if answered:
                self.counters.add("answers_read_by_caller")
        except LeanWorkerError as exc:
            self._violated(exc)
        except OSError:
            return  # the reader thread meets it too, and ends the generation
        except Exception as exc:
            if not reading:
                raise  # not from a frame (a signal handler's, say): the caller's, and nothing was lost
            error = ProtocolError(f"worker output could not be handled: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._violated(error)  # as in the reader thread: the request ends typed, with outcome protocol
        except BaseException as exc:
            # KeyboardInterrupt and the like can strike this thread anywhere. While it sleeps nothing is lost: the
            # reader thread reads on. Mid-read, bytes may have been lost with it: the stream cannot be trusted.
            if reading:
                self._violated(ProtocolError(f"reading the answer was interrupted by {type(exc).__name__}; "
                                             "the byte stream may be cut, so the worker is replaced"))
            raise

    def _violated(self, error: LeanWorkerError) -> None:
        self.ended = True
        self.violation(error)
