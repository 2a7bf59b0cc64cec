"""Every error leanworker raises. All subclass :class:`LeanWorkerError`, and most belong to one group that says what
a caller does about them (docs/errors.md has the table):

- :class:`WorkerLost`: the worker (or its node) was lost while it ran the request; the same request may succeed on
  a fresh worker (``pool.run`` retries these, then bisects).
- :class:`RequestRefused`: refused before anything was sent to a worker; nothing ran. Fix the request, or try again
  later (``retry_after`` says when, where it is known).
- :class:`UsageError`: the program, its configuration or its input is wrong; retrying the same call cannot help.

Deliberately alone: :class:`CommandError` (the capability's own answer), :class:`Cancelled` (the caller asked for
it), :class:`StartupTimeout` (the worker never became ready) and :class:`WorkerClosed` (the worker or pool was shut
down).
"""

from __future__ import annotations


def _rebuild(cls: type[BaseException], args: tuple[object, ...], state: dict[str, object]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class LeanWorkerError(Exception):
    """Base class of every leanworker error. Every subclass survives pickling with all its fields."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class WorkerLost(LeanWorkerError):
    """The worker (or its node) was lost while it ran the request: crashed, timed out, ran out of memory, broke the
    protocol, or its node went away. Its rows are not committed; the same request may succeed on a fresh worker."""


class RequestRefused(LeanWorkerError):
    """The request was refused before anything was sent to a worker: nothing ran. Fix the request (a value that is
    not plain data), or try again later (a busy worker, a stale lease, a full queue, the memory budget, a key that
    is cooling down)."""


class UsageError(LeanWorkerError):
    """The program, its configuration or its input is wrong (a module name, a Lake project, a resume of another
    plan, a pool used after ``os.fork()``): the same call cannot succeed until that is fixed."""


class ProtocolError(WorkerLost):
    """A peer sent bytes that are not a valid leanworker frame or message."""


class HandshakeError(ProtocolError):
    """The worker's ``hello`` was missing, malformed or of the wrong protocol version."""


class StartupTimeout(LeanWorkerError):
    """The worker process did not say ``hello`` within ``startup_timeout``."""


class RequestTimeout(WorkerLost):
    """A request did not finish within its timeout; the worker was killed and replaced."""


class Cancelled(LeanWorkerError):
    """The request was cancelled before it finished."""


class WorkerCrashed(WorkerLost):
    """The worker process exited while a request was in flight (or failed to start)."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None = None,
        signal: int | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.signal = signal
        self.stderr_tail = stderr_tail


class MemoryLimitExceeded(WorkerLost):
    """The worker's process tree passed the hard memory ceiling; the request was killed."""

    def __init__(self, message: str, *, rss_mib: float | None = None, limit_mib: int | None = None) -> None:
        super().__init__(message)
        self.rss_mib = rss_mib
        self.limit_mib = limit_mib


class RestartLimitExceeded(RequestRefused):
    """The worker slot restarted more often than the restart policy allows."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CommandError(LeanWorkerError):
    """The capability's command raised or reported an error; the worker stays usable.

    ``traceback`` is the worker-side traceback when the capability raised (code ``exception``), else None; its last
    lines end the message too.
    """

    def __init__(self, code: str, message: str, *, traceback: str | None = None) -> None:
        tail = ""
        if traceback:
            lines = [line for line in traceback.rstrip().splitlines() if line.strip()]
            tail = "\nworker traceback (last lines):\n" + "\n".join(lines[-6:])
        super().__init__(f"{code}: {message}{tail}")
        self.code = code
        self.message = message
        self.traceback = traceback


class WorkerBusy(RequestRefused):
    """A command was sent to a worker or lease that is still running another one."""


class WorkerClosed(LeanWorkerError):
    """The worker was shut down; the request ended with outcome ``shutdown``."""


class StaleLease(RequestRefused):
    """The lease was released, or its worker generation has ended."""


class QueueTimeout(RequestRefused):
    """No worker could be granted within the admission queue timeout."""


class MemoryBudgetExceeded(RequestRefused):
    """Starting another worker would pass the pool's memory budget."""


class PoolClosed(WorkerClosed):
    """The pool is shut down (or shutting down) and admits no more work."""


class InvalidModuleName(UsageError, ValueError):
    """A string is not a valid Lean module name."""


class LakeDiscoveryError(UsageError):
    """A Lake project could not be found or read at all."""


class NotPlainData(RequestRefused):
    """A value is not plain data (docs/protocol.md): it was refused before encoding and nothing was sent.

    ``path`` names the offending value, e.g. ``request['modules'][3]``.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class UnencodableType(NotPlainData, TypeError):
    """A value's type has no plain form (a set, a ``Decimal``, a datetime, an object, a tuple used as a key)."""


class UnencodableValue(NotPlainData, ValueError):
    """A value of a plain type is out of range: an int beyond 64 bits, nesting too deep, text that is not UTF-8."""


class UsedAfterFork(UsageError):
    """A pool or worker created before ``os.fork()`` was used in the forked child; create a new one there."""


class NodeLost(WorkerLost):
    """A Ray node or its agent was lost while it ran a batch (``leanworker.scaleout``); the batch's rows from that
    attempt were dropped, and the run retries it elsewhere. ``node_id`` names the node, ``reason`` what Ray said."""

    def __init__(self, message: str, *, node_id: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.node_id = node_id
        self.reason = reason
