"""Every error leanworker raises. All subclass :class:`LeanWorkerError`."""

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


class ProtocolError(LeanWorkerError):
    """A peer sent bytes that are not a valid leanworker frame or message."""


class HandshakeError(ProtocolError):
    """The worker's ``hello`` was missing, malformed or of the wrong protocol version."""


class StartupTimeout(LeanWorkerError):
    """The worker process did not say ``hello`` within ``startup_timeout``."""


class RequestTimeout(LeanWorkerError):
    """A request did not finish within its timeout; the worker was killed and replaced."""


class Cancelled(LeanWorkerError):
    """The request was cancelled before it finished."""


class WorkerCrashed(LeanWorkerError):
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


class MemoryLimitExceeded(LeanWorkerError):
    """The worker's process tree passed the hard memory ceiling; the request was killed."""

    def __init__(self, message: str, *, rss_mib: float | None = None, limit_mib: int | None = None) -> None:
        super().__init__(message)
        self.rss_mib = rss_mib
        self.limit_mib = limit_mib


class RestartLimitExceeded(LeanWorkerError):
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


class WorkerBusy(LeanWorkerError):
    """A command was sent to a worker or lease that is still running another one."""


class WorkerClosed(LeanWorkerError):
    """The worker was shut down; the request ended with outcome ``shutdown``."""


class StaleLease(LeanWorkerError):
    """The lease was released, or its worker generation has ended."""


class QueueTimeout(LeanWorkerError):
    """No worker could be granted within the admission queue timeout."""


class MemoryBudgetExceeded(LeanWorkerError):
    """Starting another worker would pass the pool's memory budget."""


class PoolClosed(WorkerClosed):
    """The pool is shut down (or shutting down) and admits no more work."""


class InvalidModuleName(LeanWorkerError, ValueError):
    """A string is not a valid Lean module name."""


class LakeDiscoveryError(LeanWorkerError):
    """A Lake project could not be found or read at all."""


class NotPlainData(LeanWorkerError):
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


class UsedAfterFork(LeanWorkerError):
    """A pool or worker created before ``os.fork()`` was used in the forked child; create a new one there."""


class NodeLost(LeanWorkerError):
    """A Ray node or its agent was lost while it ran a batch (``leanworker.scaleout``); the batch's rows from that
    attempt were dropped, and the run retries it elsewhere. ``node_id`` names the node, ``reason`` what Ray said."""

    def __init__(self, message: str, *, node_id: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.node_id = node_id
        self.reason = reason
