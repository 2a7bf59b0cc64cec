"""Where a plan's attempts run. A run has ``concurrency`` runners, each with one :class:`Place`: on a local pool a
place holds at most one lease (``LeasePlace``, in the pool wing); on Ray it is a slot of a node agent
(``leanworker.scaleout``). The executor (executor.py) owns retries, bisection, commits and results; a place only
runs one attempt at a time.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.results import Row, StreamSummary

Attempt = tuple[tuple[Row, ...], StreamSummary | None]


class Requeue(Exception):
    """The attempt did not start through no fault of the batch (its worker was replaced between two batches):
    the batch goes back to the schedule without counting an attempt."""


class PlaceGone(Exception):
    """This place can never run anything again (its Ray node is dead): its runner ends."""


class Place(Protocol):
    """One runner's place to run attempts, one at a time."""

    @property
    def warm_key(self) -> SessionKey | None:
        """The key of the warm session this place holds, if any."""

    def attempt(self, key: SessionKey, command: str, request: Any, cancelled: threading.Event) -> Attempt:
        """Run one attempt; its rows and summary (None when it was cancelled). Raises LeanWorkerError, Requeue or
        PlaceGone."""

    def cancel(self) -> None:
        """Cancel the attempt in flight, if any (called from another thread)."""

    def close(self) -> None:
        """Give back what the place holds."""


class RunBackend(Protocol):
    """What a run runs on: how many runners, each one's place, and the sessions opened so far."""

    @property
    def concurrency(self) -> int: ...

    def place(self, index: int) -> Place: ...

    def sessions_opened(self) -> int: ...
