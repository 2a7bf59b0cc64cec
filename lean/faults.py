"""What can go wrong when the REPL is asked something, by what the caller does about it (docs/lean.md).

Every fault names a ``reason`` (a stable code, the ``reason`` of a ``check`` row) and the ``status`` the item gets;
its text is one sentence a person can act on. ``timeout`` and every ``crashed`` reason mean the REPL that was asked
is gone (stopped, or never started), so the next request gets a fresh one.
"""

from __future__ import annotations

import signal


class ReplError(Exception):
    """The REPL gave no usable answer. ``status`` is the item's (``timeout`` or ``crashed``), ``reason`` its code."""

    status = "crashed"
    reason = "repl_error"

    def __init__(self, message: str, *, exit_status: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.stderr = stderr


class ReplTimeout(ReplError):
    """No answer within the request's deadline; the REPL was stopped."""

    status = "timeout"
    reason = "timeout"


class ReplCrashed(ReplError):
    """The REPL cannot be trusted with another request (the base of the ``crashed`` reasons)."""

    reason = "repl_crashed"


class ReplExited(ReplCrashed):
    """The REPL exited before the exchange was complete; ``exit_status`` says how (minus the signal number)."""

    reason = "repl_exited"


class ReplOutOfStep(ReplCrashed):
    """The REPL's output cannot be matched to the question: an extra or a missing answer, an answer with the wrong
    ``env``, output nobody asked for, or output that is not an answer. The REPL was stopped; no item was given an
    answer that might not be its own."""

    reason = "out_of_step"


class ReplUnsolicited(ReplOutOfStep):
    """Output arrived while nothing was asked: seen before a request was sent, so that request is not in doubt."""


class ReplAnswerTooLarge(ReplCrashed):
    """The answer (or a line without end) passed the cap on an answer's size; the REPL was stopped."""

    reason = "answer_too_large"


class ReplBadAnswer(ReplCrashed):
    """The answer is in step (matched to its request) but not shaped as the REPL's answers are (``messages`` that
    are not a list of messages, a severity Lean does not have...): no verdict can be read from it. The REPL is kept."""

    reason = "bad_answer"


class ReplUnavailable(ReplCrashed):
    """No REPL could be started for this request (its header import failed on a restart, for instance)."""

    reason = "repl_unavailable"


class ReplCancelled(ReplError):
    """The request was cancelled while the REPL worked on it; the REPL was stopped."""

    reason = "cancelled"


def describe_exit(status: int | None) -> str:
    """``exited with status 1``, ``was killed by signal SIGSEGV (status -11)``, or ``ended (status unknown)``."""
    if status is None:
        return "ended (status unknown)"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by signal {name} (status {status})"
    return f"exited with status {status}"


def stderr_summary(stderr: str, lines: int = 5) -> str:
    """The last non-blank lines of the REPL's stderr, joined for one line of text ('' when there are none)."""
    kept = [line.strip() for line in stderr.splitlines() if line.strip()][-lines:]
    return ("; stderr: " + " | ".join(kept)) if kept else ""
