"""What a stream makes of its request's channel, the same for ``RowStream`` and ``AsyncRowStream`` (pure; tests in
tests/test_policy_slot.py).

Diagnostics and progress are kept in the order they arrive and handed to the caller's callbacks; the terminal record
decides how iteration ends (quietly on success, or on a cancel the reader asked for; else with the request's typed
error), whether rows may be committed (success only) and what the summary is (success only): docs/semantics.md,
Requests and outcomes ("Rows are tentative").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leanworker.actors.core.results import Diagnostic, Progress, StreamSummary
from leanworker.actors.slot.channel import CANCELLED, DIAG, OK, PROGRESS, Terminal


class StreamEvents:
    """A stream's diagnostics and progress as they arrive, each also handed to the caller's callback."""

    __slots__ = ("diagnostics", "progress", "_on_diagnostic", "_on_progress")

    def __init__(self, on_diagnostic: Callable[[Diagnostic], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.progress: list[Progress] = []
        self._on_diagnostic = on_diagnostic
        self._on_progress = on_progress

    def take(self, item: tuple[Any, ...]) -> None:
        """Keep a channel item of kind ``DIAG`` or ``PROGRESS`` (any other kind is not an event: ignored)."""
        kind = item[0]
        if kind is DIAG:
            self.diagnostics.append(item[1])
            if self._on_diagnostic is not None:
                self._on_diagnostic(item[1])
        elif kind is PROGRESS:
            self.progress.append(item[1])
            if self._on_progress is not None:
                self._on_progress(item[1])


def end_of_iteration(terminal: Terminal, cancel_requested: bool) -> None:
    """Return when iteration over a stream that ended in ``terminal`` stops quietly: the request succeeded, or it was
    cancelled as its reader asked. Raise the request's typed error otherwise."""
    if terminal.outcome == OK or (terminal.outcome == CANCELLED and cancel_requested):
        return
    assert terminal.error is not None
    raise terminal.error


def terminal_result(terminal: Terminal) -> Any:
    """The command's terminal metadata of a successful request; the request's typed error otherwise."""
    if terminal.outcome != OK:
        assert terminal.error is not None
        raise terminal.error
    return terminal.result


def committed(terminal: Terminal | None) -> bool:
    """Rows may be committed only once the request has ended in success."""
    return terminal is not None and terminal.outcome == OK


def stream_summary(terminal: Terminal | None) -> StreamSummary | None:
    """The totals of a successful stream; None before its end or after a failure."""
    if terminal is None or terminal.outcome != OK:
        return None
    return StreamSummary(sum(terminal.counts.values()), dict(terminal.counts), terminal.elapsed, terminal.result)
