"""What a check call does after its worker was lost mid-call: which items run again, which get a verdict of their own.

A REPL that crashes or hangs on an item is handled inside the worker (that item is ``crashed`` or ``timeout``, the
REPL is replaced, the call goes on). Losing the *worker* (its host process crashed, hung past every deadline, wrote
garbage, passed its memory ceiling) ends the whole call: the items it had not answered yet have no verdict. They
are run again on a fresh worker, in the same order. The capability checks items in the order it is sent them, so
the one it was checking when the worker was lost is the first unanswered one: that item is the *suspect* and is
charged a strike. An item charged ``max_strikes`` times is answered ``crashed`` with the reason and is not run
again; the others are never charged for it. So a deterministic worker killer costs its own item only, an injected
or one-off loss costs nothing (the items run again), and a call never loops: every loss charges one strike, and the
strikes of a call are bounded by ``max_strikes`` times its items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from leanworker.serve.checker import Row


def lost_row(strikes: int, reason: str) -> Row:
    """The verdict of an item whose worker was lost ``strikes`` times while it was being checked."""
    return {"status": "crashed", "messages": [], "sorries": [], "elapsed_s": 0.0, "reason": "worker_lost",
            "error": f"the worker was lost {strikes} times while checking this item (last: {reason})"}


@dataclass
class LossPolicy:
    """Strikes of one call's items (pure: no I/O, no clock)."""

    max_strikes: int = 2
    strikes: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_strikes < 1:
            raise ValueError("max_strikes must be >= 1")

    def lost(self, unanswered: Sequence[int]) -> int | None:
        """The worker was lost with ``unanswered`` items (in the order they were sent) still to answer: charge the
        first; return it when it has used up its strikes (answer it with :func:`lost_row`), else None (run every
        unanswered item again)."""
        if not unanswered:
            return None
        suspect = unanswered[0]
        self.strikes[suspect] = self.strikes.get(suspect, 0) + 1
        return suspect if self.strikes[suspect] >= self.max_strikes else None
