"""What the service needs from a pool: check items of one import header on warm REPLs, results as they complete.

:class:`Checker` is the one seam between the HTTP service and the runtime. The service (batching, cache, single
flight, admission, the endpoints) is written against it; the pool binding implements it. A result row is the REPL
capability's ``check`` row (docs/lean.md): ``{"status", "messages", "sorries", "elapsed_s"}`` plus ``"error"`` for
a REPL error object, a timeout or a crash, with positions relative to the body the REPL saw. The service adds
:data:`UNCHECKED`, for an item that got no verdict at all.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, Protocol

Row = dict[str, Any]

VERDICTS = ("ok", "sorry", "error")  # deterministic outcomes: the only ones a cache may keep
STATUSES = ("ok", "sorry", "error", "timeout", "crashed")  # the statuses of ``leanworker check``
UNCHECKED = "unchecked"  # no verdict: the item could not be run (the row's "error" says why)
STOPPING = "the service is stopping"  # the reason of an item the service stopped before it had a verdict


def unchecked(reason: str) -> Row:
    """The row of an item that got no verdict."""
    return {"status": UNCHECKED, "messages": [], "sorries": [], "elapsed_s": 0.0, "error": reason}


def stopped(row: Row) -> bool:
    """True for the row of an item the service stopped before it had a verdict (a drain past its grace)."""
    return row.get("status") == UNCHECKED and str(row.get("error", "")).startswith(STOPPING)


class Checker(Protocol):
    """Checks Lean code bodies on warm REPLs, one import header per call.

    - ``check(imports, bodies, timeout)`` yields ``(index, row)`` for each body, in the order they complete, exactly
      once each; ``index`` is the body's position in ``bodies``. The bodies run on a REPL whose header (one
      ``import`` line per module of ``imports``) was imported once, as the REPL capability's ``check`` runs them;
      ``timeout`` is each body's deadline in seconds (None: none). An item that cannot be run (the worker cannot
      start, the pool is closing) is yielded as :func:`unchecked` with the reason, never dropped and never raised.
      Closing the iterator early (or cancelling the task that iterates it) cancels what has not run.
    - ``capacity`` is how many calls can run at once (the REPL count): the service never has more in flight.
    - ``identity`` names what decides a verdict besides the code (the toolchain's fingerprint, the REPL command, the
      workspace): the results cache keys on it.
    - ``simulated`` is True when the REPL is the simulator (every answer says so).
    - ``start()`` before the first call (may start workers); ``aclose()`` stops every worker.
    """

    @property
    def capacity(self) -> int: ...

    @property
    def identity(self) -> str: ...

    @property
    def simulated(self) -> bool: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def check(self, imports: tuple[str, ...], bodies: Sequence[str],
              timeout: float | None) -> AsyncGenerator[tuple[int, Row], None]: ...
