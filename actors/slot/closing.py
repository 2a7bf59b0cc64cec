"""A slot's shutdown, as a pure policy the supervisor consults (docs/semantics.md, Shutdown ladder; tests drive it
without processes).

The first ``Shutdown`` begins it; every later one is answered with the same report. With no live process the report
is ``already_exited`` at once; else the child actor's shutdown ladder answers it, unless the ``Stop`` could not be
delivered (the child had stopped: its process exited just then), in which case the exit, when the supervisor hears
of it, answers ``already_exited``.
"""

from __future__ import annotations

from concurrent.futures import Future

from leanworker.actors.core.results import ShutdownReport


class Closing:
    """Whether the slot is closing, and who gets its shutdown report."""

    def __init__(self) -> None:
        self.reply: Future[ShutdownReport] | None = None
        self.answer_at_exit = False  # the Stop could not be delivered: the exit answers

    @property
    def active(self) -> bool:
        return self.reply is not None

    def begin(self, reply: Future[ShutdownReport]) -> bool:
        """A shutdown was asked for, to be answered on ``reply``: True if it is the first (begin the shutdown);
        else ``reply`` gets the first one's report when there is one."""
        if self.reply is None:
            self.reply = reply
            return True
        self.reply.add_done_callback(lambda done: _copy(done, reply))
        return False

    def no_process(self, generation: int) -> None:
        """Nothing is running: the report is ``already_exited`` now."""
        assert self.reply is not None
        self.reply.set_result(ShutdownReport("already_exited", generation, None, None, 0.0))

    def stop_undelivered(self) -> None:
        """The child had stopped before the ``Stop`` reached it: the exit answers."""
        self.answer_at_exit = True

    def exited(self, generation: int, exit_code: int | None, signal: int | None) -> None:
        """The process exited while closing: answer now if the child's ladder never got the ``Stop``."""
        if self.reply is not None and self.answer_at_exit and not self.reply.done():
            self.reply.set_result(ShutdownReport("already_exited", generation, exit_code, signal, 0.0))


def _copy(source: Future[ShutdownReport], target: Future[ShutdownReport]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
