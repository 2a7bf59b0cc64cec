"""Faults in a run (``pool.run(..., faults=plan)``): what the run needs of a fault source, such as a
``leanworker.testing.FaultPlan``.

The run decides, at each attempt's admission, whether the attempt carries a fault: it asks the source, which
counts the key's requests, decides from its rules and seed, records the decision, and gives back the key and the
request to send (the fault travels with the request into the worker, where it fires). The run knows which attempts
carried a fault, so it tells modules lost to injected faults (``summary.injected``) apart from real poison modules
(``summary.quarantined``). The same protocol serves a local pool, Ray and an asyncio runner: the source is plain
Python in the driver; nothing of it travels but the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from leanworker.actors.core import intercept
from leanworker.actors.core.config import SessionKey


@dataclass(frozen=True)
class FaultedAttempt:
    """One attempt as the source decided it: the key and request to run it with, and its fault (None: none)."""

    key: SessionKey
    request: Any
    fault: Any = None


@runtime_checkable
class FaultSource(Protocol):
    """Decides and records the faults of a run's attempts."""

    @property
    def ambient(self) -> bool:
        """True when every run in this process without ``faults=`` takes this source (pytest's ``lw_chaos``)."""

    def attempt(self, key: SessionKey, command: str, request: Any, *, remote: bool) -> FaultedAttempt:
        """Decide one attempt's fault; ``remote``: the attempt runs on a Ray node (``node_lost`` may fire). The run's
        runners admit attempts in an order timing decides: a source that must replay decides from the attempt itself
        (its key, command and request, and how many times it was tried), not from that order."""

    def explains(self, fault: Any, error: BaseException) -> bool:
        """Whether ``error`` is what ``fault`` (the attempt's, or None) makes happen, or an injected failure the
        source decided elsewhere (a session open it failed)."""

    def fired(self) -> list[Any]:
        """Every fault the source has recorded, in firing order."""


def ambient_faults() -> FaultSource | None:
    """The source installed for every run of this process (see :attr:`FaultSource.ambient`), if any."""
    for interceptor in intercept.installed():
        if isinstance(interceptor, FaultSource) and interceptor.ambient:
            return interceptor
    return None
